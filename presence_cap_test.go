package notify_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify"
)

// clusterPresence is a Presence that plays the rest of a cluster: the user it is given has
// other sessions on other nodes, which Join counts, and which are gone by the time Leave runs.
type clusterPresence struct {
	others int // the user's sessions elsewhere at Join

	mu       sync.Mutex
	sessions map[string]bool // this hub's, by ID
	watch    func(string)
}

func (p *clusterPresence) Join(_ context.Context, s notify.SessionInfo) (int, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sessions[s.ID] = true
	return p.others + len(p.sessions), time.Time{}, nil
}

func (p *clusterPresence) Leave(_ context.Context, s notify.SessionInfo) (int, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	removed := p.sessions[s.ID]
	delete(p.sessions, s.ID)
	return len(p.sessions), removed, nil // the others left meanwhile
}

func (p *clusterPresence) Sessions(context.Context, string) ([]notify.SessionInfo, error) {
	return nil, nil
}
func (p *clusterPresence) Refuse(context.Context, string, time.Time, time.Duration) error {
	return nil
}
func (p *clusterPresence) RefusedBefore(context.Context, string) (time.Time, error) {
	return time.Time{}, nil
}
func (p *clusterPresence) WatchOffline(f func(string)) { p.watch = f }

// TestMaxUserSessionsInPresence: the cap counts the sessions Presence reports for the whole
// cluster: an upgrade whose join makes them more than MaxUserSessions is refused with 429,
// though this hub holds none. The user's other sessions leaving meanwhile counted the refused
// one, so its leave, which empties the user's presence, reports the user offline, once.
func TestMaxUserSessionsInPresence(t *testing.T) {
	t.Parallel()
	p := &clusterPresence{others: 2, sessions: map[string]bool{}}
	var mu sync.Mutex
	var offline []string
	h := newHub(t, func(c *notify.Config) {
		c.Presence = p
		c.MaxUserSessions = 2
		c.OnOffline = func(u string) { mu.Lock(); offline = append(offline, u); mu.Unlock() }
	})
	srv := serve(t, h)
	_, resp, err := dialHeader(t, srv, bearer(token(t, h, "alice")))
	assertRefused(t, resp, err, http.StatusTooManyRequests, "notify: too many sessions for this user (at most 2)")
	mu.Lock()
	got := append([]string(nil), offline...)
	mu.Unlock()
	if len(got) != 1 || got[0] != "alice" {
		t.Fatalf("OnOffline calls %v, want alice once", got)
	}
	if s := h.Stats(); s.Refused["user_sessions"] != 1 || s.Offline != 1 || s.Online != 0 {
		t.Fatalf("stats %+v, want one refusal, one offline, no online", s)
	}
}

// TestOfflineWatcher: a Presence that is an OfflineWatcher gets the hub's report, which calls
// OnOffline and counts it.
func TestOfflineWatcher(t *testing.T) {
	t.Parallel()
	p := &clusterPresence{sessions: map[string]bool{}}
	var got []string
	h := newHub(t, func(c *notify.Config) {
		c.Presence = p
		c.OnOffline = func(u string) { got = append(got, u) }
	})
	if p.watch == nil {
		t.Fatal("New did not call WatchOffline")
	}
	p.watch("bob")
	if len(got) != 1 || got[0] != "bob" || h.Stats().Offline != 1 {
		t.Fatalf("OnOffline calls %v, Stats().Offline %d; want bob once", got, h.Stats().Offline)
	}
}
