package redisbroker_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// newNodeTTL starts a node on the Redis at url whose presence entries live ttl.
func newNodeTTL(t testing.TB, url, prefix string, ttl time.Duration, adjust func(*notify.Config)) *node {
	t.Helper()
	b, err := redisbroker.New(redisbroker.Config{URL: url, Prefix: prefix, PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, b, adjust)
}

// TestOfflineAfterKill: two node processes are killed with SIGKILL while two nodes survive.
// Each user whose sessions were all on the killed nodes is reported offline once, by one
// survivor, once the killed nodes' records expire; a user with a session on a survivor is
// not, until that session closes. The killed nodes' records are then gone from Redis.
func TestOfflineAfterKill(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(u, "redis://")})
	t.Cleanup(func() { rc.Close() })
	offlineAfterKill(t, u, p, rc, func(ttl time.Duration, adjust func(*notify.Config)) *node {
		return newNodeTTL(t, u, p, ttl, adjust)
	})
}

// TestOfflineAfterKillCluster is TestOfflineAfterKill on a Redis Cluster, where a node's
// users set is not in its users' slots.
func TestOfflineAfterKillCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	p := prefix(t)
	offlineAfterKill(t, "cluster:"+strings.Join(c.addrs(), ","), p, c.probe, func(ttl time.Duration, adjust func(*notify.Config)) *node {
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs()})
		t.Cleanup(func() { cc.Close() }) // after the hub's shutdown
		b, err := redisbroker.New(redisbroker.Config{Client: cc, Prefix: p, PresenceTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return startNode(t, b, adjust)
	})
}

// offlineAfterKill runs the scenario of TestOfflineAfterKill with helper nodes on url,
// survivors made by newSurvivor, and rc to read the records.
func offlineAfterKill(t *testing.T, url, p string, rc redis.UniversalClient, newSurvivor func(time.Duration, func(*notify.Config)) *node) {
	t.Helper()
	const ttl = 1500 * time.Millisecond
	var log hookLog
	s1 := newSurvivor(ttl, log.config("s1"))
	s2 := newSurvivor(ttl, log.config("s2"))
	cid, w := s1.dial(t, "cid", nil)
	k1 := startHelperNode(t, url, p, ttl, "ann", "ben", "cid", "ann")
	k2 := startHelperNode(t, url, p, ttl, "ben", "dee", "dee")
	ctx := context.Background()
	for user, want := range map[string]int{"ann": 2, "ben": 2, "cid": 2, "dee": 2} {
		if s, err := s2.hub.Presence(ctx, user); err != nil || len(s) != want {
			t.Fatalf("Presence(%s) before the kill = %d sessions, %v; want %d", user, len(s), err, want)
		}
	}
	log.mu.Lock()
	log.log = nil // the online reports
	log.mu.Unlock()
	all, err := rc.ZRange(ctx, p+":{nodes}", 0, -1).Result()
	if err != nil || len(all) != 3 {
		t.Fatalf("registry before the kill: %v, %v; want s1 and the two helpers", all, err)
	}
	cidOn, err := s2.hub.Presence(ctx, "cid")
	if err != nil {
		t.Fatal(err)
	}
	var s1Node string
	for _, si := range cidOn {
		if si.ID == w["session"] {
			s1Node = si.Node
		}
	}
	dead := slices.DeleteFunc(all, func(n string) bool { return n == s1Node }) // the helpers'
	if len(dead) != 2 {
		t.Fatalf("registry before the kill without s1's record (%s): %v; want the two helpers'", s1Node, dead)
	}

	for _, k := range []interface{ Kill() error }{k1.Process, k2.Process} {
		if err := k.Kill(); err != nil { // SIGKILL: no cleanup runs
			t.Fatal(err)
		}
	}
	killed := time.Now()
	offline := func() []string { // the users reported, sorted
		log.mu.Lock()
		defer log.mu.Unlock()
		var users []string
		for _, l := range log.log {
			f := strings.Fields(l)
			if f[1] != "offline" {
				t.Fatalf("unexpected hook %q", l)
			}
			users = append(users, f[2])
		}
		slices.Sort(users)
		return users
	}
	wstest.WaitFor(t, "ann, ben and dee reported offline", func() bool { return len(offline()) >= 3 })
	t.Logf("reported %v after the kill (PresenceTTL %v): %s", time.Since(killed), ttl, &log)
	// The sweep is over once the dead nodes' records are gone: s1's is the only one left (s2
	// has no session, so no record). No report can come after it.
	wstest.WaitFor(t, "the dead nodes' records swept", func() bool {
		n, err := rc.ZCard(ctx, p+":{nodes}").Result()
		return err == nil && n == 1
	})
	if got := strings.Join(offline(), " "); got != "ann ben dee" {
		t.Fatalf("reported offline: %q, want each of ann ben dee once (%s)", got, &log)
	}
	s, err := s2.hub.Presence(ctx, "cid")
	if err != nil || len(s) != 1 {
		t.Fatalf("Presence(cid) after the sweep = %+v, %v; want its session on s1", s, err)
	}
	if keys, err := rc.ZRange(ctx, p+":{nodes}", 0, -1).Result(); err != nil || len(keys) != 1 || keys[0] != s1Node {
		t.Fatalf("registry %v, %v; want s1's record alone", keys, err)
	}
	for _, node := range dead {
		for g := range 3 {
			k := fmt.Sprintf("%s:{n:%s}:u%d", p, node, g)
			if n, err := rc.Exists(ctx, k).Result(); err != nil || n != 0 {
				t.Errorf("a dead node's users set is left: %s (%d, %v)", k, n, err)
			}
		}
	}
	// cid goes offline when its session on s1 closes: once, on s1.
	cid.WS.Close()
	wstest.WaitFor(t, "cid reported offline", func() bool { return len(offline()) == 4 })
	if got := log.String(); !strings.HasSuffix(got, "s1 offline cid") {
		t.Fatalf("hooks %q, want cid's offline last, on s1", got)
	}
	if got := s1.hub.Stats().Offline + s2.hub.Stats().Offline; got != 4 {
		t.Fatalf("Stats().Offline on both survivors: %d, want 4", got)
	}
}

// TestMaxUserSessionsAcrossNodes: the per-user cap counts the user's sessions on every node,
// and a refused upgrade frees its place; refused sessions cost no online or offline report.
func TestMaxUserSessionsAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	var log hookLog
	capped := func(name string) func(*notify.Config) {
		return func(c *notify.Config) {
			log.config(name)(c)
			c.MaxUserSessions = 2
		}
	}
	a, b := newNode(t, u, p, capped("a")), newNode(t, u, p, capped("b"))
	first, _ := a.dial(t, "alice", nil)
	b.dial(t, "alice", nil)
	for _, n := range []*node{a, b} {
		tok, err := n.hub.IssueToken("alice", time.Minute, ">")
		if err != nil {
			t.Fatal(err)
		}
		_, resp, err := wstest.Dial(t, n.url, http.Header{"Authorization": {"Bearer " + tok}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("third session of alice: %v, %v; want 429", resp, err)
		}
		if got := n.hub.Stats().Refused["user_sessions"]; got != 1 {
			t.Fatalf("Refused[user_sessions] = %d, want 1", got)
		}
	}
	if s, err := a.hub.Presence(context.Background(), "alice"); err != nil || len(s) != 2 {
		t.Fatalf("Presence = %d sessions, %v; want the 2 admitted", len(s), err)
	}
	first.WS.Close()
	wstest.WaitFor(t, "alice's first session gone from presence", func() bool {
		s, err := a.hub.Presence(context.Background(), "alice")
		return err == nil && len(s) == 1
	})
	b.dial(t, "alice", nil) // her place is free again
	if got := log.String(); got != "a online alice" {
		t.Fatalf("hooks %q, want alice online once", got)
	}
}

// TestNodeRecordsOnShutdown: a node that shuts down removes its records: no survivor has to
// sweep it.
func TestNodeRecordsOnShutdown(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	b, err := redisbroker.New(redisbroker.Config{URL: u, Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	h, err := notify.New(notify.Config{Secret: secret, Broker: b, Presence: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := b.Join(ctx, notify.SessionInfo{ID: "s1", UserID: "ann", Node: "n1", ConnectedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(u, "redis://")})
	defer rc.Close()
	if n := rc.ZCard(ctx, p+":{nodes}").Val(); n != 1 {
		t.Fatalf("%d records in the registry with a session joined, want 1", n)
	}
	if n := rc.SCard(ctx, p+":{n:n1}:u0").Val(); n != 1 {
		t.Fatalf("%d users in the node's users set, want 1", n)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rc.Exists(ctx, p+":{nodes}", p+":{n:n1}:u0").Val(); n != 0 {
		t.Fatalf("%d of the node's records left after its shutdown, want none", n)
	}
}
