package notify

import (
	"context"
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
	// Transport is the session's transport: "websocket", or "sse" for a server-sent events
	// stream, the only sessions a POST of the client's messages reaches (PROTOCOL.md,
	// "Client messages"). A Presence must keep it; one that does not, or a node of a version
	// before it, reports "" for the sessions it recorded, which count as WebSockets.
	Transport string
}

// Presence keeps the cluster's view of who is connected and which tokens are refused: given
// as [Config.Presence] (adapters/redisbroker's Broker is one), every node sees the sessions
// and the refusals of all; without one, presence is the hub's own sessions and refusals are
// kept in the process. A hub calls the methods concurrently.
type Presence interface {
	// Join records a session until Leave, or until its node stops keeping it alive (a bound
	// the implementation documents). It returns how many sessions the user has after it, and
	// the time before which the user's tokens are refused (zero when none), read in the same
	// step. With a Config.Broker, the hub has subscribed the user's stream ([UserStream])
	// when it calls Join, so a Presence that is also the Broker may read the stream's
	// position in the same step and answer the session's History from it (adapters/redisbroker
	// does).
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

// OfflineWatcher is implemented by a Presence that notices the users whose last sessions
// ended without a Leave: their node was killed, or lost the Presence for longer than its
// bound. New gives it the hub's report of a user going offline, so that [Config.OnOffline]
// fires for those users too (and [Stats] counts them), once per user going offline in the
// cluster, on one node that watches. adapters/redisbroker's Broker is one.
type OfflineWatcher interface {
	// WatchOffline sets the function to call, once per such user going offline, on one of
	// the nodes that watch (not on each). New calls it once, before any session joins;
	// offline may be called concurrently and should return promptly.
	WatchOffline(offline func(userID string))
}

// watchOffline hands the hub's report of a user going offline to its Presence, if it is an
// OfflineWatcher.
func (h *Hub) watchOffline() {
	if w, ok := h.presence.(OfflineWatcher); ok {
		w.WatchOffline(h.expiredOffline)
	}
}

// expiredOffline counts and reports a user whose last sessions expired.
func (h *Hub) expiredOffline(userID string) {
	h.stats.offline.Add(1)
	if h.cfg.OnOffline != nil {
		h.cfg.OnOffline(userID)
	}
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
