package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef")

// redisURL is the shared Redis of the tests: NOTIFY_REDIS_URL or 127.0.0.1:6379.
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
	wstest.RequireService(t, "Redis at "+u, err)
	return u
}

// node is one process of a cluster: a hub on the Redis broker, served over HTTP.
type node struct {
	hub    *notify.Hub
	broker *redisbroker.Broker
	url    string // of the WebSocket endpoint
}

// newNode starts a node on the Redis at redisURL, or on the in-memory broker when it is "".
func newNode(t testing.TB, redisURL, prefix string, adjust func(*notify.Config)) *node {
	t.Helper()
	if redisURL == "" {
		return startNode(t, nil, adjust)
	}
	b, err := redisbroker.New(redisbroker.Config{URL: redisURL, Prefix: prefix, HistorySize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, b, adjust)
}

func newNodeWithClient(t testing.TB, client redis.UniversalClient, prefix string) *node {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{Client: client, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, b, nil)
}

func startNode(t testing.TB, b *redisbroker.Broker, adjust func(*notify.Config)) *node {
	t.Helper()
	cfg := notify.Config{Secret: secret}
	if b != nil {
		cfg.Broker, cfg.Presence = b, b
	}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := notify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return &node{hub: h, broker: b, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/notify/ws"}
}

// prefix isolates a test's keys and channels in the shared Redis.
func prefix(t testing.TB) string {
	return fmt.Sprintf("notifytest:%s:%d", t.Name(), time.Now().UnixNano())
}

func (n *node) dial(t testing.TB, user string, since *notify.Position) (*wstest.Client, map[string]any) {
	t.Helper()
	tok, err := n.hub.IssueToken(user, time.Minute, ">")
	if err != nil {
		t.Fatal(err)
	}
	u := n.url
	if since != nil {
		u += "?" + url.Values{"epoch": {since.Epoch}, "offset": {fmt.Sprint(since.Offset)}}.Encode()
	}
	return wstest.Welcome(t, u, tok)
}

func position(t testing.TB, m map[string]any) notify.Position {
	t.Helper()
	e, _ := m["epoch"].(string)
	o, _ := m["offset"].(float64)
	if e == "" {
		t.Fatalf("no epoch in %v", m)
	}
	return notify.Position{Epoch: e, Offset: uint64(o)}
}

func subscribe(t testing.TB, c *wstest.Client, topic string, since *notify.Position) map[string]any {
	t.Helper()
	req := map[string]any{"op": "subscribe", "topic": topic}
	if since != nil {
		req["epoch"], req["offset"] = since.Epoch, since.Offset
	}
	c.Send(req)
	m := c.NextNonPing()
	if m["op"] != "subscribed" {
		t.Fatalf("got %v, want subscribed", m)
	}
	return m
}

func expect(t testing.TB, c *wstest.Client, typ string, data any) map[string]any {
	t.Helper()
	m := c.NextNonPing()
	if m["type"] != typ || fmt.Sprint(m["data"]) != fmt.Sprint(data) {
		t.Fatalf("got %v, want %s %v", m, typ, data)
	}
	return m
}

func TestCrossNodeDelivery(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	crossNodeDelivery(t, newNode(t, u, p, nil), newNode(t, u, p, nil))
}

// crossNodeDelivery: sends, topic publishes and broadcasts on either node reach the sessions
// of both, and only theirs.
func crossNodeDelivery(t *testing.T, a, b *node) {
	t.Helper()
	alice, _ := a.dial(t, "alice", nil)
	bob, _ := b.dial(t, "bob", nil)
	alice2, _ := b.dial(t, "alice", nil) // alice's second tab, on the other node
	subscribe(t, alice, "news", nil)

	if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: "from b"}); err != nil {
		t.Fatal(err)
	}
	expect(t, alice, "dm", "from b")
	expect(t, alice2, "dm", "from b")
	if _, err := a.hub.Send(context.Background(), "bob", notify.Event{Type: "dm", Data: "from a"}); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, "dm", "from a")
	if _, err := b.hub.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: "hi"}); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, alice, "headline", "hi"); m["topic"] != "news" {
		t.Fatalf("topic event %v", m)
	}
	if _, err := a.hub.Broadcast(context.Background(), notify.Event{Type: "maintenance", Data: "soon"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{alice, alice2, bob} {
		expect(t, c, "maintenance", "soon")
	}
	// bob got neither alice's dm nor the topic: they would have come before a marker.
	if _, err := a.hub.Send(context.Background(), "bob", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, "marker", nil)
}

// TestTargetedRouting: each node receives from Redis only the messages of streams that have
// sessions on it.
func TestTargetedRouting(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	alice, _ := a.dial(t, "alice", nil)
	bob, _ := b.dial(t, "bob", nil)
	subscribe(t, alice, "news", nil)
	base := []uint64{a.broker.Stats().Received, b.broker.Stats().Received}

	for i := range 100 {
		a.hub.Send(context.Background(), "alice", notify.Event{Type: "n", Data: i})
		b.hub.Send(context.Background(), "alice", notify.Event{Type: "n", Data: i})
	}
	for i := range 30 {
		a.hub.Send(context.Background(), "bob", notify.Event{Type: "n", Data: i})
		b.hub.Publish(context.Background(), "news", notify.Event{Type: "n", Data: i})
		a.hub.Send(context.Background(), "carol", notify.Event{Type: "n", Data: i}) // nobody's online: nobody receives
	}
	for range 230 {
		alice.NextNonPing()
	}
	for range 30 {
		bob.NextNonPing()
	}
	got := []uint64{a.broker.Stats().Received - base[0], b.broker.Stats().Received - base[1]}
	if got[0] != 230 || got[1] != 30 {
		t.Fatalf("node a received %d messages (want 230: alice's 200 and news' 30), node b %d (want 30: bob's)", got[0], got[1])
	}
	// The last session of a stream gone, its node unsubscribes.
	alice.WS.Close()
	wstest.WaitFor(t, "node a unsubscribed", func() bool { return a.broker.Stats().Streams == 1 }) // broadcasts only
	a.hub.Send(context.Background(), "alice", notify.Event{Type: "n"})
	// Then a broadcast, which both nodes receive: a node receives its channels' messages in
	// the order Redis published them, so alice's would be counted before it.
	if _, err := a.hub.Broadcast(context.Background(), notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	expect(t, bob, "marker", nil) // bob got no alice's event either
	wstest.WaitFor(t, "node a to receive the broadcast", func() bool { return a.broker.Stats().Received-base[0] > 230 })
	if r := a.broker.Stats().Received - base[0]; r != 231 {
		t.Fatalf("node a received %d after alice left, want 231 (230 and the broadcast)", r)
	}
}

func TestRecoveryAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	recoveryAcrossNodes(t, newNode(t, u, p, nil), newNode(t, u, p, nil))
}

// recoveryAcrossNodes: a client that leaves node a and comes back on node b recovers what was
// sent meanwhile, on its user stream and on a topic.
func recoveryAcrossNodes(t *testing.T, a, b *node) {
	t.Helper()
	c, w := a.dial(t, "alice", nil)
	userPos := position(t, w)
	newsPos := position(t, subscribe(t, c, "news", nil))
	c.WS.Close()
	wstest.WaitFor(t, "alice offline", func() bool { return (a.hub.LocalSessions("alice") == 0) })

	for i := range 50 {
		if _, err := a.hub.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: i}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.hub.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	c, w = b.dial(t, "alice", &userPos) // back, on the other node
	if w["recovered"] != true {
		t.Fatalf("welcome %v, want recovered", w)
	}
	check := func(typ string, from notify.Position) notify.Position {
		for i := range 50 {
			m := expect(t, c, typ, i)
			if got := position(t, m); got.Epoch != from.Epoch || got.Offset != from.Offset+1 {
				t.Fatalf("%s %d at %v, want offset %d", typ, i, got, from.Offset+1)
			}
			from = position(t, m)
		}
		return from
	}
	userPos = check("dm", userPos)
	if m := subscribe(t, c, "news", &newsPos); m["recovered"] != true {
		t.Fatalf("subscribed %v, want recovered", m)
	}
	check("headline", newsPos)
	a.hub.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: "live"})
	if m := expect(t, c, "dm", "live"); position(t, m).Offset != userPos.Offset+1 {
		t.Fatalf("live event %v", m)
	}
}

// TestRecoveryRaceAcrossNodes: a node keeps sending while the client hops between nodes with
// recovery; it sees every event once, in order.
func TestRecoveryRaceAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	nodes := []*node{newNode(t, u, p, nil), newNode(t, u, p, nil)}
	for round := range 5 {
		user := fmt.Sprint("racer-", round)
		c, w := nodes[0].dial(t, user, nil)
		pos := position(t, w)
		const total = 1000
		errc := make(chan error, 1)
		go func() {
			for i := range total {
				if _, err := nodes[i%2].hub.Send(context.Background(), user, notify.Event{Type: "seq", Data: i}); err != nil {
					errc <- err
					return
				}
			}
			errc <- nil
		}()
		next, hops := 0, 0
		for next < total {
			for n := 50 + next%97; n > 0 && next < total; n-- {
				m := expect(t, c, "seq", next)
				if got := position(t, m); got.Offset != pos.Offset+1 {
					t.Fatalf("event %d at %v, want offset %d", next, got, pos.Offset+1)
				}
				pos = position(t, m)
				next++
			}
			c.WS.Close()
			if next < total {
				hops++
				c, w = nodes[hops%2].dial(t, user, &pos)
				if w["recovered"] != true {
					t.Fatalf("welcome %v, want recovered", w)
				}
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// ownRedis starts a redis-server without persistence on a free port, for a test that kills it.
type ownRedis struct {
	t    testing.TB
	port int
	cmd  *exec.Cmd
}

func startRedis(t testing.TB) *ownRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	wstest.RequireService(t, "redis-server (to run a Redis the test can kill)", err)
	r := &ownRedis{t: t, port: freePorts(t, 1)[0]} // below the ephemeral range: see freePorts
	r.start(bin)
	t.Cleanup(r.kill)
	return r
}

func (r *ownRedis) url() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.port) }

func (r *ownRedis) start(bin string) {
	r.t.Helper()
	r.cmd = exec.Command(bin, "--port", fmt.Sprint(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	wstest.WaitFor(r.t, "redis-server up", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", r.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (r *ownRedis) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Process.Kill()
		r.cmd.Wait()
		r.cmd = nil
	}
}

// TestRedisOutage kills Redis mid-stream and restarts it: sends fail while it is down (and
// still reach each node's own sessions), and cross-node delivery resumes on both nodes
// without restarting either; the lost history shows as an epoch change.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	p := prefix(t)
	a, b := newNode(t, r.url(), p, nil), newNode(t, r.url(), p, nil)
	alice, w := a.dial(t, "alice", nil)
	alicePos := position(t, w)
	bob, _ := b.dial(t, "bob", nil)
	for i := range 10 {
		b.hub.Send(context.Background(), "alice", notify.Event{Type: "before", Data: i})
		a.hub.Send(context.Background(), "bob", notify.Event{Type: "before", Data: i})
	}
	for i := range 10 {
		alicePos = position(t, expect(t, alice, "before", i))
		expect(t, bob, "before", i)
	}

	r.kill()
	_, err := a.hub.Send(context.Background(), "alice", notify.Event{Type: "during", Data: 0})
	if err == nil || !strings.HasPrefix(err.Error(), "notify: broker: redisbroker: publish:") {
		t.Fatalf("Send with Redis down: %v", err)
	}
	expect(t, alice, "during", 0) // a's own session still gets it
	if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "during", Data: 1}); err == nil {
		t.Fatal("Send to another node's user reported success with Redis down")
	}
	// And that one cannot arrive: once delivery resumes, nothing but the events sent since
	// does (see resumed), and it comes after everything published before.

	bin, _ := exec.LookPath("redis-server")
	r.start(bin)
	// Both nodes resubscribe by themselves: delivery resumes in both directions. The reads
	// time out only to send again while the nodes reconnect.
	resumed := func(from, to *node, c *wstest.Client, user string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			if time.Now().After(deadline) {
				t.Fatalf("delivery to %s did not resume", user)
			}
			if _, err := from.hub.Send(context.Background(), user, notify.Event{Type: "after", Data: i}); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			m, err := c.Read(500 * time.Millisecond)
			for err == nil && m["type"] != "after" {
				if m["op"] != "ping" {
					t.Fatalf("%s got %v, want only the events sent since Redis is back", user, m)
				}
				m, err = c.Read(500 * time.Millisecond)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, wstest.ErrTimeout) {
				t.Fatal(err)
			}
		}
	}
	resumed(b, a, alice, "alice")
	resumed(a, b, bob, "bob")
	for _, n := range []*node{a, b} {
		if s := n.broker.Stats(); s.Reconnects < 1 {
			t.Fatalf("stats %+v, want a counted reconnect", s)
		}
		if got := n.broker.Reconnects(); got != n.broker.Stats().Reconnects {
			t.Fatalf("Reconnects() = %d, want the stats' %d", got, n.broker.Stats().Reconnects)
		}
	}
	// Redis lost the history: alice's old position is from a dead epoch.
	alice.WS.Close()
	c, w := b.dial(t, "alice", &alicePos)
	if w["recovered"] != false || position(t, w).Epoch == alicePos.Epoch {
		t.Fatalf("welcome %v, want recovered false with a new epoch", w)
	}
	_ = c
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts redisbroker.Config
		want string
	}{
		{"nothing", redisbroker.Config{}, "notify: redisbroker: set URL or Client"},
		{"bad URL", redisbroker.Config{URL: "http://x"}, "notify: redisbroker: redis: invalid URL scheme: http"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := redisbroker.New(tt.opts); err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	// An unreachable Redis is reported by notify.New.
	b, err := redisbroker.New(redisbroker.Config{URL: "redis://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	// One "notify: " prefix: the broker's error is wrapped once, by the hub.
	if _, err := notify.New(notify.Config{Secret: secret, Broker: b}); err == nil || !strings.HasPrefix(err.Error(), "notify: start broker: redisbroker: dial tcp") {
		t.Fatalf("New with Redis unreachable: %v", err)
	}
	b.Close()
}

// TestCatchUpAfterSubscriberOutage: node A loses its connections to Redis (a proxy cuts them
// and refuses new ones) while Redis stays up and node B goes on sending to A's user and topic.
// When A reaches Redis again it resubscribes and reads what it missed from the history: the
// session on A gets every event once, in order, without reconnecting itself.
func TestCatchUpAfterSubscriberOutage(t *testing.T) {
	t.Parallel()
	u := redisURL(t)
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	redisAddr := opts.Addr
	px := wstest.NewProxy(t, redisAddr)
	opts.Addr = px.Addr
	clientA := redis.NewClient(opts)
	t.Cleanup(func() { clientA.Close() }) // after the node's shutdown (cleanups run last first)
	p := prefix(t)
	a := newNodeWithClient(t, clientA, p)
	b := newNode(t, u, p, nil)

	alice, _ := a.dial(t, "alice", nil)
	subscribe(t, alice, "news", nil)
	b.hub.Send(context.Background(), "alice", notify.Event{Type: "before", Data: 0})
	expect(t, alice, "before", 0)

	px.Outage()
	wstest.WaitFor(t, "A to notice the outage", func() bool {
		return errOf(a.hub.Send(context.Background(), "nobody", notify.Event{Type: "probe"})) != nil
	})
	for i := range 5 {
		if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "missed", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := b.hub.Publish(context.Background(), "news", notify.Event{Type: "news", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	px.Restore(redisAddr)

	// Per stream in order; the two streams may interleave.
	next := map[string]int{}
	last := map[string]notify.Position{}
	for range 7 {
		m, err := alice.Read(10 * time.Second)
		for err == nil && m["op"] == "ping" {
			m, err = alice.Read(10 * time.Second)
		}
		if err != nil {
			t.Fatalf("after %v: %v", next, err)
		}
		typ, _ := m["type"].(string)
		if fmt.Sprint(m["data"]) != fmt.Sprint(next[typ]) || (typ != "missed" && typ != "news") {
			t.Fatalf("got %v, want %s %d", m, typ, next[typ])
		}
		pos := position(t, m)
		if l, ok := last[typ]; ok && (pos.Epoch != l.Epoch || pos.Offset != l.Offset+1) {
			t.Fatalf("%v follows %v: not consecutive", pos, l)
		}
		last[typ] = pos
		next[typ]++
	}
	b.hub.Send(context.Background(), "alice", notify.Event{Type: "live", Data: 0})
	expect(t, alice, "live", 0)
	// Nothing twice: a marker on each stream, and nothing before them (a node receives its
	// channels' messages in the order Redis published them).
	if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.hub.Publish(context.Background(), "news", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	markers := map[any]bool{}
	for range 2 {
		m := alice.NextNonPing()
		if m["type"] != "marker" {
			t.Fatalf("got %v, want a marker", m)
		}
		markers[m["topic"]] = true
	}
	if !markers[nil] || !markers["news"] {
		t.Fatalf("markers of streams %v, want alice's and news'", markers)
	}
	if s := a.broker.Stats(); s.CaughtUp != 7 || s.Reconnects < 1 {
		t.Errorf("A's stats %+v, want 7 caught up and a reconnect", s)
	}
}

// errOf keeps the error of a send and drops its report.
func errOf(_ notify.Report, err error) error { return err }
