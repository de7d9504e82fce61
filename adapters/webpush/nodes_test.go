package webpush_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// session opens a WebSocket session of user on e's hub.
func (e *env) session(user string) *wstest.Client {
	e.t.Helper()
	tok, err := e.hub.IssueToken(user, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	c, _ := wstest.Welcome(e.t, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/notify/ws", tok)
	return c
}

// fence pushes one notification to a fresh user through e and waits for it: with one worker,
// every push e queued before it has been sent by then.
func (e *env) fence() {
	e.t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	user := "fence-" + hex.EncodeToString(b[:])
	endpoint := e.subscribe(user)
	e.notify(user, inbox.Notification{Type: "fence"})
	e.pushes(endpoint, 1)
	wstest.WaitFor(e.t, "the fence counted", func() bool {
		st := e.sender.Stats()
		return st.Sent+st.Failed+st.Gone+st.Refused+st.Dropped >= 1
	})
}

// pushOnlyTo returns an env option of one worker, so that fence orders the pushes.
func oneWorker(c *webpush.Config) { c.Workers = 1 }

// One node, the in-memory broker: a user with a session gets no push (Report.Nodes 1); once
// the session is gone, Nodes is 0 and the push goes out.
func TestNoPushWhileASessionIsOpen(t *testing.T) {
	e := newEnv(t, options{sender: oneWorker})
	endpoint := e.subscribe("alice")
	s := e.session("alice")
	if rep := e.notify("alice", inbox.Notification{ID: "live", Type: "t"}); rep.Nodes != 1 {
		t.Errorf("Report.Nodes = %d with a session, want 1", rep.Nodes)
	}
	e.fence()
	if got, n := e.ps.got(endpoint); n != 0 {
		t.Errorf("alice, with a session, got %d pushes: %v", n, got)
	}
	s.WS.Close()
	start := time.Now()
	var i int
	wstest.WaitFor(t, "Report.Nodes 0 after the session closed", func() bool {
		i++
		return e.notify("alice", inbox.Notification{ID: fmt.Sprint("after-", i), Type: "t"}).Nodes == 0
	})
	t.Logf("Nodes was 0 %v after the session closed (%d notifications)", time.Since(start), i)
	if got := e.pushes(endpoint, 1); got[0].payload["id"] != fmt.Sprint("after-", i) {
		t.Errorf("pushed %v, want after-%d only", got[0].payload["id"], i)
	}
}

// redisURL is the shared Redis of the tests: NOTIFY_REDIS_URL or 127.0.0.1:6379; the test
// skips when it does not answer, or fails when NOTIFY_REQUIRE_SERVICES=1.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("NOTIFY_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379"
	}
	o, err := redis.ParseURL(u)
	if err == nil {
		c := redis.NewClient(o)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		c.Close()
	}
	wstest.RequireService(t, "Redis at "+u+" (set NOTIFY_REDIS_URL)", err)
	return u
}

// redisHub returns a hub on Redis, under prefix, shut down when the test ends.
func redisHub(t testing.TB, url, prefix string) *notify.Hub {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: url, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	h, err := notify.New(notify.Config{Secret: secret, Broker: b, Presence: b})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// Two nodes on Redis, their inboxes on one store: a user with no session anywhere gets
// exactly one push per notification, whichever node notifies; a user with a session on the
// other node gets none; once that session closes, Nodes falls to 0 and pushes resume.
func TestTwoNodesOnRedis(t *testing.T) {
	url := redisURL(t)
	var b [4]byte
	_, _ = rand.Read(b[:])
	prefix := "webpushtest-" + hex.EncodeToString(b[:])
	store := inbox.NewMemoryStore()
	a := newEnv(t, options{sender: oneWorker, hub: redisHub(t, url, prefix), inbox: func(c *inbox.Config) { c.Store = store }})
	bn := newEnv(t, options{sender: oneWorker, hub: redisHub(t, url, prefix), inbox: func(c *inbox.Config) { c.Store = store }, like: a})

	carol := a.subscribe("carol")
	for i, node := range []*env{a, bn, a, bn} {
		if rep := node.notify("carol", inbox.Notification{ID: fmt.Sprint("c", i), Type: "t"}); rep.Nodes != 0 {
			t.Errorf("notification c%d: Report.Nodes = %d, want 0", i, rep.Nodes)
		}
	}
	a.fence()
	bn.fence()
	got := a.pushes(carol, 4)
	ids := map[any]int{}
	for _, r := range got {
		ids[r.payload["id"]]++
	}
	if fmt.Sprint(ids) != "map[c0:1 c1:1 c2:1 c3:1]" {
		t.Errorf("carol's pushes by ID: %v, want each of c0..c3 once", ids)
	}

	alice := a.subscribe("alice")
	s := bn.session("alice")
	for i, node := range []*env{a, bn} {
		if rep := node.notify("alice", inbox.Notification{ID: fmt.Sprint("a", i), Type: "t"}); rep.Nodes != 1 {
			t.Errorf("notification a%d: Report.Nodes = %d with a session on node b, want 1", i, rep.Nodes)
		}
	}
	a.fence()
	bn.fence()
	if got, n := a.ps.got(alice); n != 0 {
		t.Errorf("alice, with a session on node b, got %d pushes: %v", n, got)
	}

	// Node b held alice's last session and loses it: it stops counting.
	s.WS.Close()
	start := time.Now()
	var i int
	wstest.WaitFor(t, "Report.Nodes 0 after the session on node b closed", func() bool {
		i++
		return a.notify("alice", inbox.Notification{ID: fmt.Sprint("after-", i), Type: "t"}).Nodes == 0
	})
	t.Logf("node b stopped counting %v after the session closed (%d notifications)", time.Since(start), i)
	if got := a.pushes(alice, 1); got[0].payload["id"] != fmt.Sprint("after-", i) {
		t.Errorf("pushed %v, want after-%d only", got[0].payload["id"], i)
	}
}
