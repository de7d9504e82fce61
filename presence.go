package notify

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// SessionInfo describes one session of a user, as presence knows it.
type SessionInfo struct {
	// ID is the session's ID, as its welcome frame names it.
	ID string
	// UserID is the user the session belongs to.
	UserID string
	// Node is the ID of the hub holding the session (random, per hub).
	Node string
	// ConnectedAt is when the session was admitted, to the millisecond.
	ConnectedAt time.Time
}

// Presence keeps the cluster's view of who is connected and which tokens are refused. A
// [Broker] that implements it (adapters/redisbroker does) is used for both, so that every node
// sees the sessions and the refusals of all; with one that does not (the in-memory broker),
// presence is the hub's own sessions and refusals are kept in the process. A hub calls the
// methods concurrently.
type Presence interface {
	// Join records a session until Leave, or until its node stops keeping it alive (a bound
	// the implementation documents). It returns how many sessions the user has after it, and
	// the time before which the user's tokens are refused (zero when none), read in the same
	// step.
	Join(ctx context.Context, s SessionInfo) (sessions int, refusedBefore time.Time, err error)
	// Leave removes a session Join recorded. It returns how many sessions the user has after
	// it, and whether the session was there to remove.
	Leave(ctx context.Context, s SessionInfo) (sessions int, removed bool, err error)
	// Sessions returns the user's live sessions on every node, oldest first.
	Sessions(ctx context.Context, userID string) ([]SessionInfo, error)
	// Refuse makes the user's tokens issued before the given time refused, for ttl; a later
	// refusal time already recorded stays.
	Refuse(ctx context.Context, userID string, before time.Time, ttl time.Duration) error
	// RefusedBefore returns the time before which the user's tokens are refused, zero when
	// none.
	RefusedBefore(ctx context.Context, userID string) (time.Time, error)
}

// Presence returns the user's sessions on every hub sharing the broker, oldest first: from the
// broker when it implements [Presence], and this hub's own otherwise. It is a snapshot. The
// sessions of a node that died without closing them stay listed until their entries expire
// (adapters/redisbroker: Config.PresenceTTL, 30 s by default). An empty user ID is
// [ErrInvalidUser]; a user without sessions gets an empty list and no error.
func (h *Hub) Presence(ctx context.Context, userID string) ([]SessionInfo, error) {
	if userID == "" {
		return nil, ErrInvalidUser
	}
	s, err := h.presence.Sessions(ctx, userID)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return nil, fmt.Errorf("notify: presence of %q: %w", userID, err)
	}
	return s, nil
}

// checkRefused returns the error that refuses id's token when [Hub.Disconnect] refused the
// user's tokens issued before a time later than the token's, and nil otherwise; an error
// reading the refusal is returned too (it refuses as well: a refusal must not be skipped
// because Redis did not answer). It is the one check of refusals, called on every refresh
// and by every authentication path that does not join presence (see admitRequest).
func (h *Hub) checkRefused(ctx context.Context, id Identity) error {
	before, err := h.RefusedBefore(ctx, id.UserID)
	if err != nil {
		return err
	}
	return h.refusedBy(id, before)
}

// refusedBy applies a refusal time to a token. iat has a precision of a second: a token
// issued in the second of the refusal is refused too (the old token of a tab that logged out
// in that second must not come back; a fresh one issued in it is refused once, and the next
// second's is not). With Config.Leeway set, a token issued less than Leeway before the refusal
// is accepted: with clocks that far apart, it cannot be told from one issued just after. A
// token without iat is refused by any refusal.
func (h *Hub) refusedBy(id Identity, before time.Time) error {
	if before.IsZero() {
		return nil
	}
	if id.IssuedAt.IsZero() {
		return refused(refusedSignedOut, "token has no iat and the user was signed out")
	}
	if id.IssuedAt.Unix() <= before.Add(-h.cfg.Leeway).Unix() {
		return refused(refusedSignedOut, "token issued before the user was signed out")
	}
	return nil
}

// RefusedBefore returns the time before which [Hub.Disconnect] refused the user's tokens,
// as every hub sharing the broker sees it; zero when there is no refusal (or it has expired).
// An application checks its own login sessions against it, so that "sign out everywhere" ends
// them too and its token endpoint stops handing out fresh tokens to a signed-out browser.
func (h *Hub) RefusedBefore(ctx context.Context, userID string) (time.Time, error) {
	if userID == "" {
		return time.Time{}, ErrInvalidUser
	}
	t, err := h.presence.RefusedBefore(ctx, userID)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return time.Time{}, fmt.Errorf("notify: read token refusals: %w", err)
	}
	return t, nil
}

// localPresence is the Presence of a hub whose broker keeps none: the hub's own sessions and
// refusals, in memory. mu guards every field.
type localPresence struct {
	now func() time.Time

	mu       sync.Mutex
	sessions map[string][]SessionInfo // by user, oldest first
	refusals map[string]tokenRefusal  // by user
}

// tokenRefusal is a kept refusal: tokens issued before before, until until.
type tokenRefusal struct{ before, until time.Time }

func newLocalPresence(now func() time.Time) *localPresence {
	return &localPresence{now: now, sessions: map[string][]SessionInfo{}, refusals: map[string]tokenRefusal{}}
}

func (p *localPresence) Join(_ context.Context, s SessionInfo) (int, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions[s.UserID] = append(p.sessions[s.UserID], s)
	return len(p.sessions[s.UserID]), p.refusedLocked(s.UserID), nil
}

func (p *localPresence) Leave(_ context.Context, s SessionInfo) (int, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.sessions[s.UserID]
	i := slices.IndexFunc(list, func(e SessionInfo) bool { return e.ID == s.ID })
	if i < 0 {
		return len(list), false, nil
	}
	list = slices.Delete(list, i, i+1)
	if len(list) == 0 {
		delete(p.sessions, s.UserID)
	} else {
		p.sessions[s.UserID] = list
	}
	return len(list), true, nil
}

func (p *localPresence) Sessions(_ context.Context, userID string) ([]SessionInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sessions[userID]), nil
}

func (p *localPresence) Refuse(_ context.Context, userID string, before time.Time, ttl time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	for u, r := range p.refusals { // the map holds signed-out users for a token's lifetime
		if !now.Before(r.until) {
			delete(p.refusals, u)
		}
	}
	r := tokenRefusal{before: before, until: now.Add(ttl)}
	if old, ok := p.refusals[userID]; ok && old.before.After(before) {
		r.before = old.before
	}
	p.refusals[userID] = r
	return nil
}

func (p *localPresence) RefusedBefore(_ context.Context, userID string) (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refusedLocked(userID), nil
}

func (p *localPresence) refusedLocked(userID string) time.Time {
	r, ok := p.refusals[userID]
	if !ok || !p.now().Before(r.until) {
		return time.Time{}
	}
	return r.before
}
