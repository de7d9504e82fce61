package notify

import (
	"fmt"
	"sync"
	"time"
)

// admission counts the sessions of the hub and of each user from before the upgrade to the
// session's end, so that upgrades racing each other cannot overshoot a cap: a session is
// counted by enter, before the hub answers the upgrade, and uncounted by leave in its
// teardown. mu guards every field; nothing is called with it held.
type admission struct {
	maxTotal int // 0: no hub-wide cap
	maxUser  int

	mu    sync.Mutex
	total int
	users map[string]int
}

// enter counts a new session of user, or returns the refusal label when a cap is reached.
func (a *admission) enter(user string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.maxTotal > 0 && a.total >= a.maxTotal {
		return refusedHubSessions
	}
	if a.users[user] >= a.maxUser {
		return refusedUserSessions
	}
	if a.users == nil {
		a.users = make(map[string]int)
	}
	a.total++
	a.users[user]++
	return ""
}

// leave uncounts a session enter counted.
func (a *admission) leave(user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total--
	if n := a.users[user] - 1; n > 0 {
		a.users[user] = n
	} else {
		delete(a.users, user)
	}
}

// answer is the HTTP answer to an upgrade refused for label: its status and body.
func (a *admission) answer(label string) (int, string) {
	if label == refusedUserSessions {
		return 429, fmt.Sprintf("notify: too many sessions for this user (at most %d)", a.maxUser)
	}
	return 503, "notify: too many sessions on this server"
}

// bucket limits one session's messages: a token bucket holding up to burst messages and
// refilled at rate per second. Messages over the limit add to excess, which drains by one a second;
// past burst the session is closed. Only the session's read loop touches it, so it has no lock.
type bucket struct {
	tokens float64
	last   time.Time
	excess float64
}

// allow reports whether a message arriving at now may be served and, when not, whether the
// excess now warrants closing the session.
func (b *bucket) allow(now time.Time, rate float64, burst int) (ok, abuse bool) {
	if b.last.IsZero() {
		b.tokens = float64(burst)
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(float64(burst), b.tokens+d*rate)
		b.excess = max(0, b.excess-d)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, false
	}
	b.excess++
	return false, b.excess > float64(burst)
}
