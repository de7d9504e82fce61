package redisbroker_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// hookLog records the presence hooks of several nodes, in order.
type hookLog struct {
	mu  sync.Mutex
	log []string
}

func (l *hookLog) add(s string) { l.mu.Lock(); l.log = append(l.log, s); l.mu.Unlock() }

func (l *hookLog) String() string { l.mu.Lock(); defer l.mu.Unlock(); return strings.Join(l.log, "|") }

func (l *hookLog) config(name string) func(*notify.Config) {
	return func(c *notify.Config) {
		c.OnOnline = func(u string) { l.add(name + " online " + u) }
		c.OnOffline = func(u string) { l.add(name + " offline " + u) }
	}
}

func sessionIDs(p []notify.SessionInfo) string {
	var s []string
	for _, e := range p {
		s = append(s, e.ID)
	}
	return strings.Join(s, ",")
}

// TestPresenceAcrossNodes: with alice's sessions on two nodes, either node lists both; the first
// session anywhere fires OnOnline once, on its node, and the last one OnOffline once; Stats
// agree.
func TestPresenceAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	var hooks hookLog
	a, b := newNode(t, u, p, hooks.config("a")), newNode(t, u, p, hooks.config("b"))
	ctx := context.Background()
	if s, err := a.hub.Presence(ctx, "alice"); err != nil || len(s) != 0 {
		t.Fatalf("Presence of an unknown user = %v, %v", s, err)
	}
	if _, err := a.hub.Presence(ctx, ""); err == nil {
		t.Fatal("Presence of an empty user: no error")
	}
	c1, w1 := a.dial(t, "alice", nil)
	c2, w2 := b.dial(t, "alice", nil)
	want := fmt.Sprint(w1["session"], ",", w2["session"])
	for _, n := range []*node{a, b} {
		s, err := n.hub.Presence(ctx, "alice")
		if err != nil || sessionIDs(s) != want || s[0].Node == s[1].Node {
			t.Fatalf("Presence = %+v, %v; want sessions %s on two nodes", s, err, want)
		}
	}
	if a.hub.LocalSessions("alice") != 1 || b.hub.LocalSessions("alice") != 1 {
		t.Fatal("the local view is wrong")
	}
	c1.WS.Close()
	wstest.WaitFor(t, "alice's first session to leave", func() bool { return a.hub.Stats().Present == 0 })
	if s, _ := b.hub.Presence(ctx, "alice"); sessionIDs(s) != fmt.Sprint(w2["session"]) {
		t.Fatalf("Presence after one left: %+v", s)
	}
	c2.WS.Close()
	wstest.WaitFor(t, "alice's last session to leave", func() bool { return b.hub.Stats().Present == 0 })
	if got := hooks.String(); got != "a online alice|b offline alice" {
		t.Fatalf("hooks %q, want a online, then b offline", got)
	}
	sa, sb := a.hub.Stats(), b.hub.Stats()
	if sa.Online != 1 || sa.Offline != 0 || sb.Online != 0 || sb.Offline != 1 {
		t.Fatalf("stats: a %d/%d, b %d/%d", sa.Online, sa.Offline, sb.Online, sb.Offline)
	}
	if s, _ := a.hub.Presence(ctx, "alice"); len(s) != 0 {
		t.Fatalf("Presence after both left: %+v", s)
	}
}

// TestDisconnectAcrossNodes: a Disconnect on node a closes alice's ten sessions on both nodes with
// 4001 and refuses her old token on node b too, at connect (401) and in a refresh.
func TestDisconnectAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	tok, err := a.hub.IssueToken("alice", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var sessions []*wstest.Client
	for i := range 10 {
		n := []*node{a, b}[i%2]
		c, _ := wstest.Welcome(t, n.url, tok)
		sessions = append(sessions, c)
	}
	bob, _ := b.dial(t, "bob", nil)
	if err := a.hub.Disconnect(context.Background(), "nobody", notify.DisconnectOptions{}); err != nil {
		t.Fatalf("Disconnect of a user with no sessions: %v", err)
	}
	start := time.Now()
	// A refusal a second ahead: tok, issued within this second, is older.
	err = a.hub.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range sessions {
		if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
			t.Fatalf("close %d, want 4001", code)
		}
	}
	t.Logf("10 sessions on 2 nodes closed %v after Disconnect began", time.Since(start))
	c, resp, err := wstest.Dial(t, b.url, http.Header{"Authorization": {"Bearer " + tok}})
	if err == nil {
		c.WS.Close()
		t.Fatal("node b accepted the refused token")
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "signed out") {
		t.Fatalf("node b: %d %q, want 401 signed out", resp.StatusCode, body)
	}
	wstest.WaitFor(t, "presence to be empty", func() bool {
		s, err := b.hub.Presence(context.Background(), "alice")
		return err == nil && len(s) == 0
	})
	// The refused connect's subscription to alice's stream, made while presence was joined,
	// is undone: node b keeps the broadcasts' and bob's only.
	wstest.WaitFor(t, "node b to keep two streams", func() bool { return b.broker.Stats().Streams == 2 })
	// bob, on node b, still gets his events.
	b.hub.Send(context.Background(), "bob", notify.Event{Type: "still"})
	expect(t, bob, "still", nil)
}

// TestRefusedRefreshAcrossNodes: a session on node b refreshing with a token older than a refusal
// recorded in Redis gets an error frame, then close 4001.
func TestRefusedRefreshAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	c, _ := b.dial(t, "alice", nil)
	tok, _ := b.hub.IssueToken("alice", time.Minute)
	// Recorded without Disconnect's command, so that the session stays to refresh.
	if err := a.broker.Refuse(context.Background(), "alice", time.Now().Add(time.Second), time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Send(map[string]any{"op": "refresh", "token": tok})
	if m := c.NextNonPing(); m["op"] != "error" || m["code"] != "invalid_token" || !strings.Contains(fmt.Sprint(m["reason"]), "signed out") {
		t.Fatalf("refresh: %v", m)
	}
	if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
		t.Fatalf("close %d, want 4001", code)
	}
}

// TestSubscribeAcrossNodes: Subscribe on node a reaches alice's session on node b, marked as the
// server's; Unsubscribe ends it; an invalid topic is an error.
func TestSubscribeAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	c, _ := b.dial(t, "alice", nil)
	if err := a.hub.Subscribe(context.Background(), "alice", "bad topic"); err == nil {
		t.Fatal("Subscribe to an invalid topic: no error")
	}
	if err := a.hub.Subscribe(context.Background(), "alice", "billing"); err != nil {
		t.Fatal(err)
	}
	if m := c.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "billing" || m["server"] != true {
		t.Fatalf("got %v", m)
	}
	a.hub.Publish(context.Background(), "billing", notify.Event{Type: "invoice"})
	expect(t, c, "invoice", nil)
	if err := a.hub.Unsubscribe(context.Background(), "alice", "billing"); err != nil {
		t.Fatal(err)
	}
	if m := c.NextNonPing(); m["op"] != "unsubscribed" || m["topic"] != "billing" {
		t.Fatalf("got %v", m)
	}
}

// TestDisconnectRedisDown: with Redis down, Disconnect returns an error, with and without a
// refusal.
func TestDisconnectRedisDown(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	a := newNode(t, r.url(), prefix(t), nil)
	a.dial(t, "alice", nil)
	r.kill()
	for _, opts := range []notify.DisconnectOptions{{}, {RefuseBefore: time.Now()}} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := a.hub.Disconnect(ctx, "alice", opts)
		cancel()
		if err == nil {
			t.Fatalf("Disconnect(%+v) with Redis down: no error", opts)
		}
	}
}

// TestNodeKilled: a node process with two sessions is killed with SIGKILL; the other node's
// presence drops them within the node's PresenceTTL.
func TestNodeKilled(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	const ttl = 1500 * time.Millisecond
	a := newNode(t, u, p, nil)
	cmd := startHelperNode(t, u, p, ttl, "zed", "zed")
	if s, err := a.hub.Presence(context.Background(), "zed"); err != nil || len(s) != 2 {
		t.Fatalf("Presence before the kill = %+v, %v; want the helper's two sessions", s, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup runs
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		s, err := a.hub.Presence(context.Background(), "zed")
		if err != nil {
			t.Fatal(err)
		}
		if len(s) == 0 {
			break
		}
		if time.Since(killed) > ttl+500*time.Millisecond {
			t.Fatalf("presence still lists %d sessions %v after the kill (PresenceTTL %v)", len(s), time.Since(killed), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("presence converged %v after the kill (PresenceTTL %v)", time.Since(killed), ttl)
}

// startHelperNode runs TestHelperNode in a process of its own, a node on the Redis at url
// (or "cluster:" and the addresses of a Redis Cluster) with a session for each of users, and returns once the sessions are welcomed. The test
// kills it (SIGKILL, as kill -9), or its cleanup does.
func startHelperNode(t *testing.T, url, prefix string, ttl time.Duration, users ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNode$")
	cmd.Env = append(os.Environ(), "NOTIFY_HELPER_NODE="+url+" "+prefix+" "+ttl.String()+" "+strings.Join(users, ","))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				_, _ = io.Copy(io.Discard, out)
				return
			}
		}
		ready <- fmt.Errorf("helper node ended before it was ready: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("helper node not ready")
	}
	return cmd
}

// TestHelperNode is the node startHelperNode runs in a process of its own and a test kills: a
// session for each user it is given, then it waits to be killed.
func TestHelperNode(t *testing.T) {
	env := os.Getenv("NOTIFY_HELPER_NODE")
	if env == "" {
		t.Skip("run by startHelperNode only")
	}
	f := strings.Fields(env)
	ttl, err := time.ParseDuration(f[2])
	if err != nil {
		t.Fatal(err)
	}
	cfg := redisbroker.Config{URL: f[0], Prefix: f[1], PresenceTTL: ttl}
	if addrs, ok := strings.CutPrefix(f[0], "cluster:"); ok {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: strings.Split(addrs, ",")})
		t.Cleanup(func() { cc.Close() })
		cfg.URL, cfg.Client = "", cc
	}
	br, err := redisbroker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, br, nil)
	for _, user := range strings.Split(f[3], ",") {
		n.dial(t, user, nil)
	}
	fmt.Println("ready")
	select {} // until killed
}

// TestSendReportAcrossNodes: the report counts alice's sessions on both nodes and the two
// nodes that received the event, and gives the position her sessions see.
func TestSendReportAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	ctx := context.Background()
	r, err := a.hub.Send(ctx, "carol", notify.Event{Type: "x"})
	if err != nil || r.Nodes != 0 || !r.Stored || r.Position.Offset != 1 {
		t.Fatalf("report for a user offline: %+v, %v", r, err)
	}
	c1, _ := a.dial(t, "alice", nil)
	b.dial(t, "alice", nil)
	b.dial(t, "alice", nil)
	r, err = a.hub.Send(ctx, "alice", notify.Event{Type: "x"})
	if err != nil || r.Nodes != 2 || !r.Stored || r.StoredUntil.Before(time.Now()) {
		t.Fatalf("report for alice: %+v, %v", r, err)
	}
	m := expect(t, c1, "x", nil)
	if got := position(t, m); got != r.Position {
		t.Fatalf("event at %v, report says %v", got, r.Position)
	}
	r, err = b.hub.Send(ctx, "alice", notify.Event{Type: "typing", Ephemeral: true})
	if err != nil || r.Stored || r.Position != (notify.Position{}) || r.Nodes != 2 {
		t.Fatalf("report of an ephemeral event: %+v, %v", r, err)
	}
	expect(t, c1, "typing", nil)
}

// TestRefusalClockSkew: node a's clock runs 3 s ahead of node b's, and a signs alice out.
// Node b, with a leeway of 5 s, accepts the token it issues right after (its iat is 3 s before
// a's refusal time by a's clock); node c, same clock as b but no leeway, refuses it.
func TestRefusalClockSkew(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a := newNode(t, u, p, nil)
	b := newNode(t, u, p, func(c *notify.Config) { c.Leeway = 5 * time.Second })
	c := newNode(t, u, p, nil)
	aNow := time.Now().Add(3 * time.Second) // a's clock
	if err := a.hub.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: aNow}); err != nil {
		t.Fatal(err)
	}
	b.dial(t, "alice", nil) // a token b issues now, by its clock: accepted within the leeway
	tok, _ := c.hub.IssueToken("alice", time.Minute)
	ws, resp, err := wstest.Dial(t, c.url, http.Header{"Authorization": {"Bearer " + tok}})
	if err == nil {
		ws.WS.Close()
		t.Fatal("node c, without leeway, accepted a token issued 3 s before the refusal by a's clock")
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("node c: %d, want 401", resp.StatusCode)
	}
}

// TestRefuseKeepsTheLater: a refusal at an earlier time does not replace a later one.
func TestRefuseKeepsTheLater(t *testing.T) {
	t.Parallel()
	n := newNode(t, redisURL(t), prefix(t), nil)
	ctx := context.Background()
	if got, err := n.broker.RefusedBefore(ctx, "alice"); err != nil || !got.IsZero() {
		t.Fatalf("RefusedBefore without a refusal = %v, %v", got, err)
	}
	later := time.Now().Truncate(time.Millisecond)
	for _, at := range []time.Time{later, later.Add(-time.Hour)} {
		if err := n.broker.Refuse(ctx, "alice", at, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := n.hub.RefusedBefore(ctx, "alice"); err != nil || !got.Equal(later) {
		t.Fatalf("RefusedBefore = %v, %v; want %v", got, err, later)
	}
}

// TestServerTopicsAcrossNodes: Config.Subscriptions subscribes alice on every connect; after she
// leaves node a and comes back on node b with the topic's position in the URL, she gets what
// was published meanwhile.
func TestServerTopicsAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	topics := func(c *notify.Config) {
		c.Subscriptions = func(context.Context, notify.Identity) ([]string, error) { return []string{"team.red"}, nil }
	}
	a, b := newNode(t, u, p, topics), newNode(t, u, p, topics)
	c, _ := a.dial(t, "alice", nil)
	m := c.NextNonPing()
	if m["op"] != "subscribed" || m["topic"] != "team.red" || m["server"] != true {
		t.Fatalf("after the welcome: %v", m)
	}
	pos := position(t, m)
	c.WS.Close()
	wstest.WaitFor(t, "alice gone from a", func() bool { return a.hub.LocalSessions("alice") == 0 })
	b.hub.Publish(context.Background(), "team.red", notify.Event{Type: "missed"})
	tok, _ := b.hub.IssueToken("alice", time.Minute)
	q := fmt.Sprintf("?t.team.red=%d.%s", pos.Offset, pos.Epoch)
	c, _ = wstest.Welcome(t, b.url+q, tok)
	if m := c.NextNonPing(); m["op"] != "subscribed" || m["recovered"] != true {
		t.Fatalf("after the reconnect on b: %v, want recovered", m)
	}
	expect(t, c, "missed", nil)
}
