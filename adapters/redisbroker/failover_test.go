package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// A failover that loses the last writes: the replica's link to its master is cut and kept
// down (its next handshake authenticates as a user the master does not have), two events
// are sent that only the master gets, the master is killed, and the replica is promoted.
// Alice's session, open on node A through all of it, received the lost events; the events
// sent after the promotion must reach her once each, in a new epoch, never at the offsets
// of the lost ones in the old epoch; a client recovering from the lost events' position is
// told recovered:false.

// cutReplication cuts the replica's link to master and keeps it down.
func cutReplication(t *testing.T, master, replica *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for _, cmd := range []*redis.StatusCmd{
		replica.ConfigSet(ctx, "masteruser", "notify-test-nobody"),
		replica.ConfigSet(ctx, "masterauth", "wrong"),
	} {
		if err := cmd.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := master.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the replica's link down", func() bool {
		return strings.Contains(replica.Info(ctx, "replication").Val(), "master_link_status:down")
	})
}

// failoverScenario runs the sends and checks around promote, which kills the master and
// promotes the replica, after cutReplication.
func failoverScenario(t *testing.T, a, b *node, master, replica *redis.Client, promote func()) {
	t.Helper()
	ctx := context.Background()
	alice, _ := a.dial(t, "alice", nil)
	seen := map[notify.Position]string{} // what alice got at each position
	receive := func(typ string, i int) notify.Position {
		t.Helper()
		m := expect(t, alice, typ, i)
		pos := position(t, m)
		what := fmt.Sprint(typ, " ", i)
		if prev, ok := seen[pos]; ok {
			t.Fatalf("%s at %v, where alice already got %s: a reused offset", what, pos, prev)
		}
		seen[pos] = what
		return pos
	}
	for i := range 3 {
		if _, err := b.hub.Send(ctx, "alice", notify.Event{Type: "before", Data: i}); err != nil {
			t.Fatal(err)
		}
		receive("before", i)
	}
	want := master.Info(ctx, "replication").Val()
	wstest.WaitFor(t, "the replica to have alice's first events", func() bool {
		return replOffsetOf(replica) >= replOffsetIn(want)
	})
	cutReplication(t, master, replica)
	var lost notify.Position
	for i := range 2 {
		if _, err := b.hub.Send(ctx, "alice", notify.Event{Type: "lost", Data: i}); err != nil {
			t.Fatal(err)
		}
		lost = receive("lost", i)
	}

	promote()
	wstest.WaitFor(t, "node b to send to the new master", func() bool {
		return errOf(b.hub.Send(ctx, "alice", notify.Event{Type: "after", Data: 0})) == nil
	})
	for i := 1; i < 5; i++ {
		if _, err := b.hub.Send(ctx, "alice", notify.Event{Type: "after", Data: i}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		if pos := receive("after", i); pos.Epoch == lost.Epoch {
			t.Fatalf("after %d at %v: the lost events' epoch", i, pos)
		}
	}
	// A client that received the lost events, recovering now.
	_, w := a.dial(t, "alice", &lost)
	if w["recovered"] != false {
		t.Fatalf("welcome %v after recovering from %v, want recovered:false", w, lost)
	}
}

func replOffsetIn(info string) int64 {
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			var o int64
			fmt.Sscan(v, &o)
			return o
		}
	}
	return -1
}

func replOffsetOf(c *redis.Client) int64 {
	return replOffsetIn(c.Info(context.Background(), "replication").Val())
}

// TestFailoverLosingWrites runs the scenario on a Redis Cluster with a replica per master:
// the master of alice's shard is killed and its replica takes over (CLUSTER FAILOVER
// TAKEOVER).
func TestFailoverLosingWrites(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, 0)
	p := prefix(t)
	a, b := c.newNode(t, p, nil), c.newNode(t, p, nil)
	master := c.shard(t, a, notify.UserStream("alice"))
	replica := c.replicaOf(t, master)
	failoverScenario(t, a, b, master.client, replica.client, func() {
		c.kill(master)
		if err := replica.client.Do(context.Background(), "CLUSTER", "FAILOVER", "TAKEOVER").Err(); err != nil {
			t.Fatal(err)
		}
		wstest.WaitFor(t, "the replica to take over", func() bool {
			return strings.Contains(replica.client.Info(context.Background(), "replication").Val(), "role:master")
		})
	})
}

// TestFailoverLosingWritesSingle runs the scenario on a single Redis with a replica: the
// master is killed, the replica promoted (REPLICAOF NO ONE) and the nodes' clients dial it
// from then on, as a Sentinel client does after a failover.
func TestFailoverLosingWritesSingle(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, "redis-server (to run a master and its replica)", 2)
	masterCmd, master, replica := r.masterCmd, r.master, r.replica
	var current atomic.Value // the address the nodes dial: the master's, then the replica's
	current.Store(master.Options().Addr)
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, current.Load().(string))
	}
	p := prefix(t)
	newNode := func() *node {
		rc := redis.NewClient(&redis.Options{Dialer: dial, DialerRetries: 1})
		t.Cleanup(func() { rc.Close() }) // after the hub's shutdown
		return newNodeWithClient(t, rc, p)
	}
	a, b := newNode(), newNode()
	failoverScenario(t, a, b, master, replica, func() {
		_ = masterCmd.Process.Kill()
		_ = masterCmd.Wait()
		if err := replica.Do(context.Background(), "REPLICAOF", "NO", "ONE").Err(); err != nil {
			t.Fatal(err)
		}
		current.Store(replica.Options().Addr)
	})
}

// TestFailoverLosingWritesSentinel runs the scenario on a single Redis with a replica behind
// a real Sentinel: the master is killed, Sentinel promotes the replica, and the nodes' failover
// clients follow it.
func TestFailoverLosingWritesSentinel(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, "redis-server (to run a master, its replica and a Sentinel)", 3)
	masterCmd, master, replica, ports, dir := r.masterCmd, r.master, r.replica, r.ports, r.dir
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("sentinel monitor m 127.0.0.1 %d 1\n"+
		"sentinel down-after-milliseconds m 400\nsentinel failover-timeout m 5000\n", ports[0])), 0o600); err != nil {
		t.Fatal(err)
	}
	_, sentinel := r.start(ports[2], conf, "--sentinel")
	wstest.WaitFor(t, "the Sentinel to know the replica", func() bool {
		r, err := sentinel.Do(context.Background(), "SENTINEL", "REPLICAS", "m").Slice()
		return err == nil && len(r) == 1
	})
	p := prefix(t)
	newNode := func() *node {
		fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{sentinel.Options().Addr}})
		t.Cleanup(func() { fc.Close() }) // after the hub's shutdown
		return newNodeWithClient(t, fc, p)
	}
	a, b := newNode(), newNode()
	failoverScenario(t, a, b, master, replica, func() {
		_ = masterCmd.Process.Kill()
		_ = masterCmd.Wait()
		wstest.WaitFor(t, "the Sentinel to promote the replica", func() bool {
			return strings.Contains(replica.Info(context.Background(), "replication").Val(), "role:master")
		})
	})
}

// TestNoNewEpochWithoutFailover: sends and history reads on the same server keep the epoch.
func TestNoNewEpochWithoutFailover(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a := newNode(t, u, p, nil)
	ctx := context.Background()
	var first notify.Position
	for i := range 3 {
		r, err := a.hub.Send(ctx, "alice", notify.Event{Type: "x", Data: i})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.Position
		}
		if r.Position.Epoch != first.Epoch || r.Position.Offset != first.Offset+uint64(i) {
			t.Fatalf("send %d at %v, want offset %d of epoch %s", i, r.Position, first.Offset+uint64(i), first.Epoch)
		}
	}
	_, w := a.dial(t, "alice", &first)
	if w["recovered"] != true || position(t, w).Epoch != first.Epoch {
		t.Fatalf("welcome %v, want recovered in epoch %s", w, first.Epoch)
	}
}

// TestWaitReplicas: with WaitReplicas, a send returns once its write reached the replica; with
// the replica's link cut, it returns ErrNotReplicated after WaitTimeout (the event was still
// delivered and stored). A configuration the broker cannot serve is refused.
func TestWaitReplicas(t *testing.T) {
	t.Parallel()
	r := startReplicated(t, "redis-server (to run a master and its replica)", 2)
	master, replica := r.master, r.replica
	b, err := redisbroker.New(redisbroker.Config{URL: "redis://" + master.Options().Addr, Prefix: prefix(t),
		WaitReplicas: 1, WaitTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	a := startNode(t, b, nil)
	alice, _ := a.dial(t, "alice", nil)
	ctx := context.Background()
	keys, _ := b.Names(notify.UserStream("alice"))
	if _, err := a.hub.Send(ctx, "alice", notify.Event{Type: "x", Data: 0}); err != nil {
		t.Fatalf("send with the replica linked: %v", err)
	}
	expect(t, alice, "x", 0)
	if n := replica.LLen(ctx, keys[1]).Val(); n != 1 {
		t.Fatalf("the replica's history holds %d events once the send returned, want 1", n)
	}
	if _, err := a.hub.Publish(ctx, "news", notify.Event{Type: "y", Ephemeral: true}); err != nil {
		t.Fatalf("an ephemeral publish (no write to wait for): %v", err)
	}

	cutReplication(t, master, replica)
	_, err = a.hub.Send(ctx, "alice", notify.Event{Type: "x", Data: 1})
	if !errors.Is(err, redisbroker.ErrNotReplicated) {
		t.Fatalf("send with the replica cut off: %v, want ErrNotReplicated", err)
	}
	expect(t, alice, "x", 1) // delivered all the same

	for _, tt := range []struct {
		name string
		cfg  redisbroker.Config
		want string
	}{
		{"negative", redisbroker.Config{URL: "redis://127.0.0.1:1", WaitReplicas: -1}, "notify: invalid config: redisbroker: WaitReplicas is negative"},
		{"timeout", redisbroker.Config{URL: "redis://127.0.0.1:1", WaitReplicas: 1, WaitTimeout: 3 * time.Second}, "notify: invalid config: redisbroker: WaitTimeout is over 2s"},
		{"cluster", redisbroker.Config{Client: redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}}), WaitReplicas: 1},
			"notify: invalid config: redisbroker: WaitReplicas is not available on Redis Cluster"},
	} {
		_, err := redisbroker.New(tt.cfg)
		if err == nil || err.Error() != tt.want || !errors.Is(err, notify.ErrConfig) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
		if tt.cfg.Client != nil {
			tt.cfg.Client.Close()
		}
	}
}

// replicated is a master and its replica, private redis-servers without persistence that a
// test may kill, with the ports it took (more than two when the test asked for more) and the
// servers' directory (where the replica writes the master's snapshot).
type replicated struct {
	t               *testing.T
	bin, dir        string
	ports           []int
	masterCmd       *exec.Cmd
	master, replica *redis.Client
}

// startReplicated starts a master on the first of n free ports and its replica on the second,
// and waits for their link; need names them in the message of a skip without redis-server.
func startReplicated(t *testing.T, need string, n int) *replicated {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	wstest.RequireService(t, need, err)
	r := &replicated{t: t, bin: bin, dir: t.TempDir(), ports: freePorts(t, n)}
	r.masterCmd, r.master = r.start(r.ports[0])
	_, r.replica = r.start(r.ports[1], "--replicaof", "127.0.0.1", fmt.Sprint(r.ports[0]))
	wstest.WaitFor(t, "the replica linked", func() bool {
		return strings.Contains(r.replica.Info(context.Background(), "replication").Val(), "master_link_status:up")
	})
	return r
}

// start starts a redis-server on port with args first (a configuration file must be), and
// returns it and a client, both stopped when the test ends.
func (r *replicated) start(port int, args ...string) (*exec.Cmd, *redis.Client) {
	t := r.t
	t.Helper()
	cmd := exec.Command(r.bin, append(args, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", r.dir)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	wstest.WaitFor(t, "redis-server up", func() bool { return c.Ping(context.Background()).Err() == nil })
	return cmd, c
}
