package inbox

import (
	"math"
	"sync"
	"time"
)

// limiter bounds each user's requests to the HTTP handler on this node: a token bucket per
// user, Config.RequestBurst deep, refilled at Config.RequestRate per second.
//
// mu guards users and swept. A user's entry exists only while their bucket is not full: a full
// bucket is the same as none, so the sweep drops those, and the map holds at most the users
// (each with a valid token) who made a request within the last burst/rate seconds.
type limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu     sync.Mutex
	users  map[string]*bucket
	swept  time.Time
	refill time.Duration // how long an empty bucket takes to fill: burst/rate
}

type bucket struct {
	tokens float64
	at     time.Time // when tokens was counted
}

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	return &limiter{rate: rate, burst: float64(burst), now: now, users: make(map[string]*bucket),
		refill: time.Duration(float64(burst) / rate * float64(time.Second))}
}

// allow takes a token of user's bucket, or reports how long until the next one.
func (l *limiter) allow(user string) (ok bool, retry time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) >= l.refill {
		l.sweep(now)
	}
	b := l.users[user]
	if b == nil {
		b = &bucket{tokens: l.burst, at: now}
		l.users[user] = b
	} else {
		b.tokens = math.Min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
		b.at = now
	}
	if b.tokens < 1 {
		return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	}
	b.tokens--
	return true, 0
}

// sweep drops the buckets that are full again by now.
func (l *limiter) sweep(now time.Time) {
	l.swept = now
	for u, b := range l.users {
		if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
			delete(l.users, u)
		}
	}
}

// size returns the number of users with a bucket that is not full (tests).
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users)
}
