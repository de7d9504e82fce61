package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// ownCluster is a Redis Cluster of three masters, without replicas or persistence, that a
// test starts in its temporary directory and can kill masters of. A killed master started
// again on its port with its nodes file is the same node, with its slots, and empty: Redis
// writes the cluster's layout to the nodes file whatever the persistence settings, so the
// tests need no persistence, and its loss shows as a new epoch of the streams it held.
type ownCluster struct {
	t           testing.TB
	server      string
	dir         string
	nodeTimeout time.Duration
	nodes       []*clusterNode
	probe       *redis.ClusterClient // the test's own view of the cluster
}

type clusterNode struct {
	port, bus int
	cmd       *exec.Cmd
	client    *redis.Client // to this node alone
}

func (n *clusterNode) addr() string { return fmt.Sprintf("127.0.0.1:%d", n.port) }

var redisVersion = regexp.MustCompile(`v=(\d+)\.`)

// startCluster starts the cluster, or skips the test when redis-server or redis-cli, or
// Redis 7 (sharded pub/sub), is missing. With replicas, each master has that many; with
// nodeTimeout set, it is the cluster's (how long a master may be unreachable before its
// replica takes over), else Redis's default, 15 s.
func startCluster(t testing.TB, replicas int, nodeTimeout time.Duration) *ownCluster {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	wstest.RequireService(t, "redis-server and redis-cli (to run a Redis Cluster)", errors.Join(err, err2))
	out, err := exec.Command(server, "--version").Output()
	if err == nil {
		if m := redisVersion.FindSubmatch(out); m == nil {
			err = fmt.Errorf("unknown version: %s", out)
		} else if v, _ := strconv.Atoi(string(m[1])); v < 7 {
			err = fmt.Errorf("%s", strings.TrimSpace(string(out)))
		}
	}
	wstest.RequireService(t, "Redis 7 or later (a cluster with sharded pub/sub)", err)

	c := &ownCluster{t: t, server: server, dir: t.TempDir(), nodeTimeout: nodeTimeout}
	count := 3 * (1 + replicas)
	ports := freePorts(t, 2*count) // each node's, and its cluster bus'
	var addrs []string
	for i := range count {
		n := &clusterNode{port: ports[2*i], bus: ports[2*i+1]}
		n.client = redis.NewClient(&redis.Options{Addr: n.addr(), DialerRetries: 1, MaxRetries: -1})
		c.nodes = append(c.nodes, n)
		addrs = append(addrs, n.addr())
	}
	t.Cleanup(c.stop)
	for _, n := range c.nodes {
		c.start(n)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", fmt.Sprint(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, n := range c.nodes {
		c.waitOK(n)
	}
	c.probe = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	return c
}

// freePorts returns n ports that are free now, below Linux's ephemeral range (32768 and up by
// default): a port that Listen(":0") hands out and the test then releases can be taken, before
// redis-server binds it, as the source port of any outgoing connection (go-redis dials plenty),
// and redis-server then fails to start.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			t.Fatal("no free port below 32768")
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue // taken
		}
		defer l.Close() // all held until every port is chosen
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func (c *ownCluster) start(n *clusterNode) {
	c.t.Helper()
	n.cmd = exec.Command(c.server, "--port", fmt.Sprint(n.port), "--cluster-port", fmt.Sprint(n.bus),
		"--bind", "127.0.0.1", "--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(c.dir, fmt.Sprintf("nodes-%d.conf", n.port)),
		"--dir", c.dir, "--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0")
	if c.nodeTimeout > 0 {
		n.cmd.Args = append(n.cmd.Args, "--cluster-node-timeout", fmt.Sprint(c.nodeTimeout.Milliseconds()))
	}
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	wstest.WaitFor(c.t, "redis-server up on "+n.addr(), func() bool {
		conn, err := net.Dial("tcp", n.addr())
		if err == nil {
			conn.Close()
		}
		return err == nil
	})
}

// waitOK waits until the node serves its slots.
func (c *ownCluster) waitOK(n *clusterNode) {
	c.t.Helper()
	wstest.WaitFor(c.t, "cluster_state:ok on "+n.addr(), func() bool {
		info, err := n.client.ClusterInfo(context.Background()).Result()
		return err == nil && strings.Contains(info, "cluster_state:ok")
	})
}

func (c *ownCluster) kill(n *clusterNode) {
	if n.cmd != nil && n.cmd.Process != nil {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		n.cmd = nil
	}
}

func (c *ownCluster) stop() {
	if c.probe != nil {
		c.probe.Close()
	}
	for _, n := range c.nodes {
		c.kill(n)
		n.client.Close()
	}
}

func (c *ownCluster) addrs() []string {
	var a []string
	for _, n := range c.nodes {
		a = append(a, n.addr())
	}
	return a
}

// newNode starts a hub on the cluster, through a cluster client of its own.
func (c *ownCluster) newNode(t testing.TB, prefix string, adjust func(*redis.ClusterOptions)) *node {
	t.Helper()
	// One dial per attempt, not go-redis's five: a command to a dead master fails in a few
	// hundred milliseconds (four attempts) rather than two seconds.
	o := &redis.ClusterOptions{Addrs: c.addrs(), DialerRetries: 1}
	if adjust != nil {
		adjust(o)
	}
	cc := redis.NewClusterClient(o)
	t.Cleanup(func() { cc.Close() }) // after the hub's shutdown (cleanups run last first)
	b, err := redisbroker.New(redisbroker.Config{Client: cc, Prefix: prefix, HistorySize: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	return startNode(t, b, nil)
}

// replicaOf returns a replica of master.
func (c *ownCluster) replicaOf(t testing.TB, master *clusterNode) *clusterNode {
	t.Helper()
	for _, n := range c.nodes {
		info := n.client.Info(context.Background(), "replication").Val()
		if strings.Contains(info, "role:slave") && strings.Contains(info, fmt.Sprintf("master_port:%d\r", master.port)) {
			return n
		}
	}
	t.Fatalf("no replica of %s", master.addr())
	return nil
}

// replOffset reads how far the node is in its shard's replication stream.
func replOffset(t testing.TB, n *clusterNode) int64 {
	t.Helper()
	info := n.client.Info(context.Background(), "replication").Val()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			o, _ := strconv.ParseInt(v, 10, 64)
			return o
		}
	}
	t.Fatalf("no replication offset in %q", info)
	return 0
}

// shard returns the master that holds the stream on n's broker.
func (c *ownCluster) shard(t testing.TB, n *node, stream string) *clusterNode {
	t.Helper()
	keys, _ := n.broker.Names(stream)
	m, err := c.probe.MasterForKey(context.Background(), keys[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, cn := range c.nodes {
		if cn.addr() == m.Options().Addr {
			return cn
		}
	}
	t.Fatalf("no node at %s", m.Options().Addr)
	return nil
}

// nameOn returns the first of base0, base1... whose stream (made by kind) is on shard, or
// with on unset, is not.
func (c *ownCluster) nameOn(t testing.TB, n *node, kind func(string) string, base string, shard *clusterNode, on bool) string {
	t.Helper()
	for i := 0; ; i++ {
		name := fmt.Sprint(base, i)
		if (c.shard(t, n, kind(name)) == shard) == on {
			return name
		}
	}
}

// moveSlot migrates a slot and its keys from one master to another, as resharding does.
func (c *ownCluster) moveSlot(t testing.TB, slot int64, from, to *clusterNode) {
	t.Helper()
	ctx := context.Background()
	fromID, toID := from.client.ClusterMyID(ctx).Val(), to.client.ClusterMyID(ctx).Val()
	must := func(cmd redis.Cmder) {
		t.Helper()
		if err := cmd.Err(); err != nil {
			t.Fatalf("%v: %v", cmd.Args(), err)
		}
	}
	must(to.client.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", fromID))
	must(from.client.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", toID))
	keys := from.client.ClusterGetKeysInSlot(ctx, int(slot), 1000).Val()
	if len(keys) > 0 {
		args := []any{"MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(from.client.Do(ctx, args...))
	}
	for _, n := range append([]*clusterNode{to, from}, c.nodes...) {
		must(n.client.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", toID))
	}
}

// commandCalls reads how many times the node ran each of cmds.
func commandCalls(t testing.TB, n *clusterNode, cmds ...string) map[string]int {
	t.Helper()
	info, err := n.client.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		for _, cmd := range cmds {
			if rest, ok := strings.CutPrefix(line, "cmdstat_"+cmd+":calls="); ok {
				calls[cmd], _ = strconv.Atoi(rest[:strings.IndexByte(rest, ',')])
			}
		}
	}
	return calls
}

// TestCluster runs the cross-node guarantees on a Redis Cluster, and checks that a stream's
// channel shares its keys' slot and that a send is one shard's work.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	ctx := context.Background()

	t.Run("slots", func(t *testing.T) {
		n := c.newNode(t, prefix(t), nil)
		for _, stream := range []string{notify.BroadcastStream, notify.UserStream("alice"), notify.TopicStream("news"),
			notify.TopicStream("a}b"), notify.TopicStream("{x}"), notify.UserStream("}"), notify.TopicStream("a{b}c"),
			notify.UserStream(strings.Repeat("é", 300))} {
			keys, ch := n.broker.Names(stream)
			want := c.probe.ClusterKeySlot(ctx, ch).Val()
			for _, k := range keys {
				if got := c.probe.ClusterKeySlot(ctx, k).Val(); got != want {
					t.Errorf("stream %q: key %q in slot %d, channel %q in %d", stream, k, got, ch, want)
				}
			}
		}
	})

	t.Run("delivery", func(t *testing.T) {
		p := prefix(t)
		crossNodeDelivery(t, c.newNode(t, p, nil), c.newNode(t, p, nil))
	})

	t.Run("recovery", func(t *testing.T) {
		p := prefix(t)
		recoveryAcrossNodes(t, c.newNode(t, p, nil), c.newNode(t, p, nil))
	})

	t.Run("publish answers", func(t *testing.T) {
		p := prefix(t)
		publishAnswers(t, c.newNode(t, p, nil), c.newNode(t, p, nil))
	})

	// A node that cannot reach a shard at all (its packets dropped: dials hang until their
	// timeout) goes on serving the other shards while a session waits for that one: no dial
	// holds the broker's lock.
	t.Run("unreachable shard", func(t *testing.T) {
		p := prefix(t)
		cut := &cutter{conns: map[*cutConn]bool{}, hang: true, timeout: 2 * time.Second, hanging: make(chan string, 1)}
		// After the node's cleanup (cleanups run last first): go-redis dials on goroutines of
		// its own, which its Close does not wait for, and a held dial ends only at its timeout.
		t.Cleanup(cut.dials.Wait)
		a := c.newNode(t, p, func(o *redis.ClusterOptions) { o.Dialer = cut.dial })
		b := c.newNode(t, p, nil)
		var dark *clusterNode // a shard a has no connection to pub/sub on yet
		for _, n := range c.nodes {
			if n != c.shard(t, a, notify.BroadcastStream) {
				dark = n
			}
		}
		bob := c.nameOn(t, a, notify.UserStream, "bob-", dark, false)
		dave := c.nameOn(t, a, notify.UserStream, "dave-", dark, true)
		bobC, _ := a.dial(t, bob, nil)
		tok, err := a.hub.IssueToken(dave, time.Minute, ">")
		if err != nil {
			t.Fatal(err)
		}

		cut.cut(dark.addr())
		refused := make(chan error, 1)
		go func() {
			c, _, err := wstest.Dial(t, a.url, http.Header{"Authorization": {"Bearer " + tok}})
			if err == nil {
				var m map[string]any
				m, err = c.Read(10 * time.Second)
				if err == nil {
					err = fmt.Errorf("got %v", m)
				}
			}
			refused <- err
		}()
		<-cut.hanging // dave's subscription is dialing the dark shard
		for i := range 2 {
			if _, err := b.hub.Send(context.Background(), bob, notify.Event{Type: "n", Data: i}); err != nil {
				t.Fatal(err)
			}
			m, err := bobC.Read(time.Second)
			for err == nil && m["op"] == "ping" {
				m, err = bobC.Read(time.Second)
			}
			if err != nil || m["type"] != "n" {
				t.Fatalf("bob's event while a dial to another shard hangs: %v, %v", m, err)
			}
		}
		if err := <-refused; !websocket.IsCloseError(err, 1013) {
			t.Fatalf("dave's session with his shard unreachable: %v, want close 1013", err)
		}
		cut.restore()
		a.dial(t, dave, nil)
	})

	// A node subscribes to a stream on the stream's shard only, and a send runs on that shard
	// alone: its script, and an SPUBLISH that no other shard sees.
	t.Run("one shard", func(t *testing.T) {
		p := prefix(t)
		a, b := c.newNode(t, p, nil), c.newNode(t, p, nil)
		alice, _ := a.dial(t, "alice", nil)
		stream := notify.UserStream("alice")
		owner := c.shard(t, a, stream)
		_, ch := a.broker.Names(stream)
		for _, n := range c.nodes {
			want := int64(0)
			if n == owner {
				want = 1
			}
			if got := n.client.PubSubShardNumSub(ctx, ch).Val()[ch]; got != want {
				t.Errorf("node %s: %d subscribers to %s, want %d", n.addr(), got, ch, want)
			}
		}
		b.hub.Send(context.Background(), "alice", notify.Event{Type: "warm-up"}) // the script is loaded by now
		expect(t, alice, "warm-up", nil)
		cmds := []string{"evalsha", "spublish", "publish"}
		before := map[*clusterNode]map[string]int{}
		for _, n := range c.nodes {
			before[n] = commandCalls(t, n, cmds...)
		}
		for i := range 20 {
			if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "n", Data: i}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 20 {
			expect(t, alice, "n", i)
		}
		for _, n := range c.nodes {
			after := commandCalls(t, n, cmds...)
			want := map[string]int{"evalsha": 0, "spublish": 0, "publish": 0}
			if n == owner {
				want["evalsha"], want["spublish"] = 20, 20
			}
			for _, cmd := range cmds {
				if got := after[cmd] - before[n][cmd]; got != want[cmd] {
					t.Errorf("node %s ran %s %d times for 20 sends, want %d", n.addr(), cmd, got, want[cmd])
				}
			}
		}
	})

	// Resharding moves alice's slot, and her history with it, to another master: the old one
	// drops node a's subscription to her channel (an sunsubscribe a did not ask for), and a
	// subscribes on the new one; her session, which stayed open, goes on in a new epoch (her
	// stream's epoch was minted on another node, which the broker cannot tell from a failover
	// that lost events: see failover.go). (Last: the layout changes.)
	t.Run("slot moved", func(t *testing.T) {
		p := prefix(t)
		a, b := c.newNode(t, p, nil), c.newNode(t, p, nil)
		alice, _ := a.dial(t, "alice", nil)
		b.hub.Send(context.Background(), "alice", notify.Event{Type: "before"})
		pos := position(t, expect(t, alice, "before", nil))
		stream := notify.UserStream("alice")
		keys, ch := a.broker.Names(stream)
		from, to := c.shard(t, a, stream), c.nodes[0]
		if to == from {
			to = c.nodes[1]
		}
		c.moveSlot(t, c.probe.ClusterKeySlot(ctx, keys[0]).Val(), from, to)
		wstest.WaitFor(t, "node a subscribed to alice's channel on the slot's new master", func() bool {
			return to.client.PubSubShardNumSub(ctx, ch).Val()[ch] == 1 && from.client.PubSubShardNumSub(ctx, ch).Val()[ch] == 0
		})
		for i := range 3 {
			if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: i}); err != nil {
				t.Fatal(err)
			}
			m := expect(t, alice, "after", i)
			if got := position(t, m); got.Epoch == pos.Epoch || got.Offset != uint64(i)+1 {
				t.Fatalf("after %d at %v, want offset %d of a new epoch", i, got, i+1)
			}
		}
	})
}

func TestClusterPrefix(t *testing.T) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer cc.Close()
	_, err := redisbroker.New(redisbroker.Config{Client: cc, Prefix: "app{1}"})
	if want := "notify: redisbroker: with Redis Cluster, Prefix cannot contain '{' or '}'"; err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

// cutter dials for a node's cluster client, and can cut it off from one Redis node: it
// closes the connections to it and refuses new ones until restore, or with hang set, holds
// the dials until their timeout, as when the node's packets are dropped.
type cutter struct {
	hang    bool
	timeout time.Duration // with hang: how long a dial is held
	hanging chan string   // with hang: the address of each dial held, when it starts

	dials sync.WaitGroup // the dials in progress

	mu    sync.Mutex
	off   string
	conns map[*cutConn]bool
}

type cutConn struct {
	net.Conn
	c    *cutter
	addr string
}

func (cc *cutConn) Close() error {
	cc.c.mu.Lock()
	delete(cc.c.conns, cc)
	cc.c.mu.Unlock()
	return cc.Conn.Close()
}

func (c *cutter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	defer c.dials.Done()
	c.mu.Lock()
	held := c.hang && addr == c.off
	c.mu.Unlock()
	if held {
		select {
		case c.hanging <- addr:
		default:
		}
		select { // as net.Dialer with its Timeout, go-redis's default
		case <-ctx.Done():
		case <-time.After(c.timeout):
		}
		return nil, fmt.Errorf("dial %s: timeout (packets dropped by the test)", addr)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if addr == c.off {
		conn.Close()
		return nil, fmt.Errorf("dial %s: cut off by the test", addr)
	}
	cc := &cutConn{Conn: conn, c: c, addr: addr}
	c.conns[cc] = true
	return cc, nil
}

func (c *cutter) cut(addr string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off = addr
	for cc := range c.conns {
		if cc.addr == addr {
			cc.Conn.Close()
			delete(c.conns, cc)
		}
	}
}

func (c *cutter) restore() {
	c.mu.Lock()
	c.off = ""
	c.mu.Unlock()
}

// TestClusterCatchUp: node A loses one shard (its connections to that master are cut) while
// the cluster stays up and node B goes on sending to A's user and topic there, and to a user
// on another shard. The other shard's events arrive meanwhile; when A reaches the shard again
// its subscriptions come back (two channels in different slots: go-redis's resubscription
// in one SSUBSCRIBE is refused) and A reads what it missed from the history: the session gets
// every event once, in order, without reconnecting.
func TestClusterCatchUp(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	p := prefix(t)
	cut := &cutter{conns: map[*cutConn]bool{}}
	a := c.newNode(t, p, func(o *redis.ClusterOptions) { o.Dialer = cut.dial })
	b := c.newNode(t, p, nil)
	shard := c.shard(t, a, notify.UserStream("alice"))
	topic := c.nameOn(t, a, notify.TopicStream, "news-", shard, true)
	bob := c.nameOn(t, a, notify.UserStream, "bob-", shard, false)
	nobody := c.nameOn(t, a, notify.UserStream, "nobody-", shard, true)

	alice, _ := a.dial(t, "alice", nil)
	subscribe(t, alice, topic, nil)
	bobC, _ := a.dial(t, bob, nil)
	b.hub.Send(context.Background(), "alice", notify.Event{Type: "before", Data: 0})
	expect(t, alice, "before", 0)

	cut.cut(shard.addr())
	wstest.WaitFor(t, "A to lose the shard", func() bool {
		return errOf(a.hub.Send(context.Background(), nobody, notify.Event{Type: "probe"})) != nil
	})
	for i := range 5 {
		if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "missed", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := b.hub.Publish(context.Background(), topic, notify.Event{Type: "news", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // the other shards are not affected
		if _, err := b.hub.Send(context.Background(), bob, notify.Event{Type: "live", Data: i}); err != nil {
			t.Fatal(err)
		}
		expect(t, bobC, "live", i)
	}
	cut.restore()

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
	// Nothing twice: a marker on each stream, and nothing before them (a node receives a
	// shard's messages in the order the shard published them).
	if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.hub.Publish(context.Background(), topic, notify.Event{Type: "marker"}); err != nil {
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
	if !markers[nil] || !markers[topic] {
		t.Fatalf("markers of streams %v, want alice's and %s's", markers, topic)
	}
	if s := a.broker.Stats(); s.CaughtUp != 7 || s.Reconnects < 1 {
		t.Errorf("A's stats %+v, want 7 caught up and a reconnect", s)
	}
}

// TestClusterShardRestart kills the master that holds alice's stream and a topic she is
// subscribed to, on node A, and starts it again, empty: the streams start a new epoch. While
// it is down, sends to its streams fail and the other shards' go on. Node A is also cut off
// from it until node B's first sends after the restart are accepted, so that A cannot be
// subscribed again before them: when A reaches the shard, its subscriptions come back and it
// reads the new epoch from the history. Alice's session on A, which stayed open, gets every
// accepted send once, in order, from the first offset of the new epoch, then live ones.
func TestClusterShardRestart(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	p := prefix(t)
	cut := &cutter{conns: map[*cutConn]bool{}}
	a := c.newNode(t, p, func(o *redis.ClusterOptions) { o.Dialer = cut.dial })
	b := c.newNode(t, p, nil)
	shard := c.shard(t, a, notify.UserStream("alice"))
	topic := c.nameOn(t, a, notify.TopicStream, "news-", shard, true)
	bob := c.nameOn(t, a, notify.UserStream, "bob-", shard, false)
	alice, _ := a.dial(t, "alice", nil)
	subscribe(t, alice, topic, nil)
	bobC, _ := a.dial(t, bob, nil)
	b.hub.Send(context.Background(), "alice", notify.Event{Type: "before"})
	before := position(t, expect(t, alice, "before", nil))

	c.kill(shard)
	if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "during"}); err == nil {
		t.Fatal("a send to a dead shard reported success")
	}
	if _, err := b.hub.Send(context.Background(), bob, notify.Event{Type: "during"}); err != nil {
		t.Fatalf("a send to another shard: %v", err)
	}
	expect(t, bobC, "during", nil)

	cut.cut(shard.addr())
	c.start(shard)
	// The first send the shard accepts (it refuses them while it rejoins the cluster), then more.
	wstest.WaitFor(t, "the restarted shard to accept a send", func() bool {
		return errOf(b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: 0})) == nil
	})
	for i := 1; i < 10; i++ {
		if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := b.hub.Publish(context.Background(), topic, notify.Event{Type: "news", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	cut.restore()
	// Node A's subscriber comes back after its reconnect backoff (up to 2 s) and catches up:
	// wait for that outcome, not for a read's 5 s. (Its history read once met the restarted
	// master's empty script cache, NOSCRIPT, and the catch-up was lost: about 1 run in 5.)
	wstest.WaitFor(t, "node A to catch up after the cut", func() bool { return a.broker.Stats().CaughtUp >= 12 })

	// Per stream in order, from offset 1 of a new epoch; the two streams may interleave.
	next := map[string]int{}
	var epoch string
	for range 12 {
		m := alice.NextNonPing()
		typ, _ := m["type"].(string)
		if fmt.Sprint(m["data"]) != fmt.Sprint(next[typ]) || (typ != "after" && typ != "news") {
			t.Fatalf("got %v, want %s %d", m, typ, next[typ])
		}
		pos := position(t, m)
		if epoch == "" {
			epoch = pos.Epoch
		}
		if pos.Epoch == before.Epoch || pos.Offset != uint64(next[typ]+1) {
			t.Fatalf("%s %d at %v, want offset %d of a new epoch", typ, next[typ], pos, next[typ]+1)
		}
		next[typ]++
	}
	for i := 10; i < 15; i++ {
		if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: i}); err != nil {
			t.Fatal(err)
		}
		if m := expect(t, alice, "after", i); position(t, m).Offset != uint64(i+1) {
			t.Fatalf("live event %v, want offset %d", m, i+1)
		}
	}
	if s := a.broker.Stats(); s.CaughtUp != 12 || s.Reconnects < 1 {
		t.Errorf("A's stats %+v, want 12 caught up and a reconnect", s)
	}
}

// TestClusterFailover kills the master of alice's shard, whose replica takes over (an
// automatic failover, after the cluster's node timeout). Node A cannot reach the old master
// any more; once the cluster's layout names the new one, A moves its subscriptions there and
// reads from the history what node B sent meanwhile: alice's session, which stayed open, gets
// every accepted send once, in order, in a new epoch (the new master cannot tell whether it
// has all her events: see failover.go), and the topic's events come again too.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, time.Second)
	ctx := context.Background()
	p := prefix(t)
	a, b := c.newNode(t, p, nil), c.newNode(t, p, nil)
	master := c.shard(t, a, notify.UserStream("alice"))
	replica := c.replicaOf(t, master)
	topic := c.nameOn(t, a, notify.TopicStream, "news-", master, true)
	alice, _ := a.dial(t, "alice", nil)
	subscribe(t, alice, topic, nil)
	b.hub.Send(context.Background(), "alice", notify.Event{Type: "before"})
	pos := position(t, expect(t, alice, "before", nil))
	written := replOffset(t, master)
	wstest.WaitFor(t, "the replica to have alice's history", func() bool { return replOffset(t, replica) >= written })

	c.kill(master)
	wstest.WaitFor(t, "the replica to take over", func() bool {
		return strings.Contains(replica.client.Info(ctx, "replication").Val(), "role:master")
	})
	wstest.WaitFor(t, "node b to send to the new master", func() bool {
		return errOf(b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: 0})) == nil
	})
	for i := 1; i < 10; i++ {
		if _, err := b.hub.Send(context.Background(), "alice", notify.Event{Type: "after", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		m := expect(t, alice, "after", i)
		if got := position(t, m); got.Epoch == pos.Epoch || got.Offset != uint64(i)+1 {
			t.Fatalf("after %d at %v, want offset %d of a new epoch", i, got, i+1)
		}
	}
	if _, err := b.hub.Publish(context.Background(), topic, notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if m := expect(t, alice, "marker", nil); m["topic"] != topic {
		t.Fatalf("marker %v, want on topic %s", m, topic)
	}
	if s := a.broker.Stats(); s.Reconnects < 1 {
		t.Errorf("A's stats %+v, want a reconnect", s)
	}
}

// TestClusterOutage: while a shard is down, node A welcomes no session whose stream is on it
// (1013: a second tab of a user with a session on A, for whom only reading the position
// fails; a client recovering; a first session) and serves no subscribe to a topic on it
// ("unavailable"), while the streams on the other shards are served. When the shard is back,
// each is served; the shard restarted empty, so the recovery is refused with recovered:false.
func TestClusterOutage(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	p := prefix(t)
	a := c.newNode(t, p, nil)
	shard := c.shard(t, a, notify.UserStream("carol"))
	dave := c.nameOn(t, a, notify.UserStream, "dave-", shard, true)
	erinUser := c.nameOn(t, a, notify.UserStream, "erin-", shard, false)
	deadTopic := c.nameOn(t, a, notify.TopicStream, "news-", shard, true)
	liveTopic := c.nameOn(t, a, notify.TopicStream, "sport-", shard, false)
	_, w := a.dial(t, "carol", nil) // stays: carol's stream is subscribed on A
	carolPos := position(t, w)
	erin, _ := a.dial(t, erinUser, nil)

	c.kill(shard)
	carolURL := a.url + "?" + url.Values{"epoch": {carolPos.Epoch}, "offset": {fmt.Sprint(carolPos.Offset)}}.Encode()
	for _, s := range []struct{ url, user string }{{a.url, "carol"}, {carolURL, "carol"}, {a.url, dave}} {
		if _, err := tryWelcome(t, a, s.url, s.user); !websocket.IsCloseError(err, 1013) {
			t.Fatalf("%s's session opened with its shard down: %v, want close 1013", s.user, err)
		}
	}
	if _, err := tryWelcome(t, a, a.url, erinUser); err != nil {
		t.Fatalf("a session on a healthy shard: %v", err)
	}
	erin.Send(map[string]any{"op": "subscribe", "topic": deadTopic})
	if m := erin.NextNonPing(); m["op"] != "error" || m["code"] != "unavailable" {
		t.Fatalf("subscribe to a topic on the dead shard: %v, want error unavailable", m)
	}
	subscribe(t, erin, liveTopic, nil)

	c.start(shard)
	if back := welcomed(t, a, carolURL, "carol"); back.welcome["recovered"] != false {
		t.Fatalf("carol's welcome %v, want recovered false (the shard lost her history)", back.welcome)
	}
	welcomed(t, a, a.url, dave)
	wstest.WaitFor(t, "erin's subscribe served", func() bool {
		erin.Send(map[string]any{"op": "subscribe", "topic": deadTopic})
		m := erin.NextNonPing()
		return m["op"] == "subscribed"
	})
	if _, err := a.hub.Publish(context.Background(), deadTopic, notify.Event{Type: "back"}); err != nil {
		t.Fatal(err)
	}
	expect(t, erin, "back", nil)
}
