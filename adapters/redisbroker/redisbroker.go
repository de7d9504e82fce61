// Package redisbroker connects the notify hubs of several processes through Redis, and keeps
// each stream's history in Redis for missed-event recovery.
//
//	b, err := redisbroker.New(redisbroker.Config{URL: "redis://127.0.0.1:6379"})
//	...
//	hub, err := notify.New(notify.Config{Secret: secret, Broker: b, Presence: b})
//
// The Broker is also the cluster's [notify.Presence]: give it as Config.Presence too, or each
// node keeps its own sessions and sign-outs.
//
// A Send on any node reaches the user's sessions on every node. Each node subscribes only to
// the Redis channels of users and topics that have sessions on it, so it receives only the
// messages it delivers. Assigning a stream's offset, appending to its history and publishing
// happen in one Lua script; the sends that arrive while one round trip is in flight leave
// together in the next, in one script call on a single Redis (no timer delays a lone send).
// A connect is one script call as well: the hub subscribes the user's stream first, and the
// join that writes the session's presence entry reads the stream's position in the same
// call; a second tab on the same node reads no position at all.
//
// While Redis is unreachable, sends return an error (each hub still delivers to its own
// sessions), and when Redis is back the broker resubscribes every stream that still has
// sessions, logs it and counts it in [Stats].
//
// On Redis Cluster (Config.Client a *redis.ClusterClient; Redis 7 or later) the broker uses
// sharded pub/sub: a stream's channel hashes to the slot of its position and history, a send
// is one script and one SPUBLISH on that slot's shard, and each node holds one subscriber
// connection per shard it has streams on. While a shard is unreachable, the streams on it
// behave as all do while a single Redis is; when it is back, or its replica has taken over, the
// broker subscribes there again and catches up from the history.
//
// A failover never hands out a lost event's offset again: each stream's position records the
// server its epoch was minted on, and the first send or history read a new master serves for a
// stream starts a new epoch, so its clients are told recovered:false (see failover.go for
// how the server is told apart, on Redis Cluster and on a single Redis behind Sentinel).
//
// The broker reports, through [notify.Config.OnOffline] on one surviving node, the users of a
// node killed without closing its sessions, once their entries expire ([Broker.WatchOffline]);
// and its presence counts a user's sessions on every node, which [notify.Config.MaxUserSessions]
// caps.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Config configures a Broker. Zero values mean the documented defaults; a negative size or
// duration is an error wrapping [notify.ErrConfig].
type Config struct {
	// URL of the Redis server, such as "redis://:password@127.0.0.1:6379/0" (see
	// redis.ParseURL). Used when Client is nil.
	URL string
	// Client, when set, is used instead of URL: a *redis.Client, a Sentinel-backed failover
	// client or a *redis.ClusterClient. The broker does not close it. New adds to a
	// *redis.Client's OnConnect (after the one it has) a script that records the server's
	// replication ID, which tells the broker a failover happened: create the broker before
	// the client is in use elsewhere. With a
	// *redis.ClusterClient the broker uses sharded pub/sub (SPUBLISH, SSUBSCRIBE), which needs
	// Redis 7 or later: a stream's channel, position and history share one slot, so a send
	// touches one shard, and a node keeps one subscriber connection per shard.
	Client redis.UniversalClient
	// Prefix starts every Redis key and channel the broker uses. Default "notify". With Redis
	// Cluster it cannot contain '{' or '}': the braces around the stream's name in each key
	// and channel are its hash tag.
	Prefix string
	// HistorySize is how many recent events of each stream are kept. Default 100.
	HistorySize int
	// HistoryTTL is how long an event is kept for recovery. Default 5m.
	HistoryTTL time.Duration
	// PresenceTTL bounds how long the sessions of a node that died without closing them stay
	// in presence ([notify.Hub.Presence]): each node refreshes its sessions' entries every
	// PresenceTTL/3. Default 30s (DefaultPresenceTTL).
	PresenceTTL time.Duration
	// WaitReplicas is how many replicas must acknowledge a send's write before Publish
	// returns: each pipeline of sends ends with a Redis WAIT, so that an acknowledged send
	// survives a failover. A send whose write fewer replicas acknowledged within WaitTimeout
	// returns an error wrapping ErrNotReplicated; it is stored and was delivered all the same,
	// but a failover may lose it. The cost: each pipeline waits for the replicas' round trip
	// (the sends of a pipeline share one wait), and Redis runs one more command per pipeline.
	// Default 0: no wait. Not available on Redis Cluster, where New refuses it.
	WaitReplicas int
	// WaitTimeout bounds a pipeline's WAIT, when WaitReplicas is set. Default 1s; at most 2s,
	// and it must stay below the client's ReadTimeout (3s by default), which bounds the
	// pipeline's reply.
	WaitTimeout time.Duration
	// Logger receives the broker's logs. Default: none.
	Logger *slog.Logger
}

// ErrNotReplicated is the error of a send whose write fewer than Config.WaitReplicas replicas
// acknowledged within Config.WaitTimeout.
var ErrNotReplicated = errors.New("write not acknowledged by enough replicas")

// maxWaitTimeout is the longest WaitTimeout: below go-redis's default ReadTimeout.
const maxWaitTimeout = 2 * time.Second

// check refuses negative sizes and durations.
func (c *Config) check() error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"HistorySize", int64(c.HistorySize)},
		{"HistoryTTL", int64(c.HistoryTTL)},
		{"PresenceTTL", int64(c.PresenceTTL)},
		{"WaitReplicas", int64(c.WaitReplicas)},
		{"WaitTimeout", int64(c.WaitTimeout)},
	} {
		if f.v < 0 {
			return fmt.Errorf("%w: redisbroker: %s is negative", notify.ErrConfig, f.name)
		}
	}
	if c.WaitTimeout > maxWaitTimeout {
		return fmt.Errorf("%w: redisbroker: WaitTimeout is over %v", notify.ErrConfig, maxWaitTimeout)
	}
	return nil
}

// Stats are the broker's counters since New.
type Stats struct {
	// Received counts the messages this node received from Redis.
	Received uint64
	// Reconnects counts the times a subscriber connection came back after losing Redis (with
	// Redis Cluster, one connection per shard, and a failover counts when the streams of a
	// shard whose master is gone move to its new master), each time resubscribing every
	// stream of it that still has sessions.
	Reconnects uint64
	// CaughtUp counts the messages published while a subscriber connection was down that
	// this node read from the streams' history after resubscribing, and delivered.
	CaughtUp uint64
	// Streams is how many streams this node is subscribed to now.
	Streams int
}

// Broker is a [notify.Broker] and a [notify.Presence] on Redis. Create it with [New] and pass
// it in notify.Config.Broker; the hub closes it on Shutdown. Its methods are safe for
// concurrent use.
//
// A Broker assembles owners that share nothing but the Redis client and the stop channel:
// the publisher (publish.go: the pipelined sends), the subscriber (subscriber.go and
// cluster.go: the pub/sub connections, the counted subscriptions, delivery and reconnects),
// presence (presence.go: sessions and token refusals) and the reader (history.go: the
// pipelined script calls of History and presence). Each guards its own state; the Broker has
// no lock, since its fields are set by New and Start, before the hub calls anything else.
type Broker struct {
	client  redis.UniversalClient
	own     bool // the broker created client and closes it
	cluster *redis.ClusterClient
	stop    chan struct{} // closed by Close: every owner's goroutines return
	started bool          // Start succeeded: the owners' goroutines run

	pub   *publisher
	sub   *subscriber
	pres  *presence
	reads *reader
}

var (
	_ notify.Broker         = (*Broker)(nil)
	_ notify.Presence       = (*Broker)(nil)
	_ notify.OfflineWatcher = (*Broker)(nil)
)

// New returns a broker on the Redis of cfg.URL or cfg.Client. It does not contact Redis
// yet; the hub's New does, and reports an unreachable Redis.
func New(cfg Config) (*Broker, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	b := &Broker{client: cfg.Client, stop: make(chan struct{})}
	if b.client == nil {
		if cfg.URL == "" {
			return nil, errors.New("notify: redisbroker: set URL or Client")
		}
		o, err := redis.ParseURL(cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("notify: redisbroker: %w", err)
		}
		b.client, b.own = redis.NewClient(o), true
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "notify"
	}
	b.cluster, _ = b.client.(*redis.ClusterClient)
	if b.cluster != nil && strings.ContainsAny(cfg.Prefix, "{}") {
		return nil, errors.New("notify: redisbroker: with Redis Cluster, Prefix cannot contain '{' or '}'")
	}
	if b.cluster != nil && cfg.WaitReplicas > 0 {
		return nil, fmt.Errorf("%w: redisbroker: WaitReplicas is not available on Redis Cluster", notify.ErrConfig)
	}
	if cfg.WaitTimeout == 0 {
		cfg.WaitTimeout = time.Second
	}
	if cfg.HistorySize == 0 {
		cfg.HistorySize = notify.DefaultHistorySize
	}
	if cfg.HistoryTTL == 0 {
		cfg.HistoryTTL = notify.DefaultHistoryTTL
	}
	if cfg.PresenceTTL == 0 {
		cfg.PresenceTTL = DefaultPresenceTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := names{prefix: cfg.Prefix, cluster: b.cluster != nil}
	if c, ok := b.client.(*redis.Client); ok {
		guardConnections(c, n.markerKey()) // see failover.go
		n.marker = true
	}
	b.reads = newReader(b.client, b.cluster, n, cfg.HistoryTTL, cfg.Logger, b.stop)
	b.pub = newPublisher(b.client, b.cluster, n, cfg.HistorySize, cfg.HistoryTTL, b.stop)
	b.pub.waitReplicas, b.pub.waitTimeout = cfg.WaitReplicas, cfg.WaitTimeout
	b.sub = newSubscriber(b.client, b.cluster, n, b.reads.history, cfg.Logger, b.stop)
	b.pres = newPresence(b.client, b.reads, b.sub, n, cfg.PresenceTTL, cfg.Logger, b.stop)
	return b, nil
}

// names makes the Redis keys and channels of streams and users from the prefix.
type names struct {
	prefix  string
	cluster bool
	marker  bool // a single Redis whose replication ID the broker copies into its marker
}

// channel is a stream's pub/sub channel: "<prefix>:c:<stream>" on a single Redis, and on a
// cluster "<prefix>:{<stream>}:c", whose hash tag is its keys' (see keys): the channel, the
// position and the history of a stream are on one slot, so a publish is one shard's work.
func (n names) channel(stream string) string {
	if n.cluster {
		return n.prefix + ":{" + stream + "}:c"
	}
	return n.prefix + ":c:" + stream
}

// streamOf is channel's inverse.
func (n names) streamOf(channel string) (string, bool) {
	if n.cluster {
		s, ok := strings.CutPrefix(channel, n.prefix+":{")
		if !ok {
			return "", false
		}
		return strings.CutSuffix(s, "}:c")
	}
	return strings.CutPrefix(channel, n.prefix+":c:")
}

// keys are a stream's position (a hash of epoch and offset) and history (a list), in one
// cluster slot: the hash tag is the stream's name in braces. The prefix has none on a
// cluster (see New), so the tag is the same in the keys and the channel.
func (n names) keys(stream string) []string {
	k := n.prefix + ":{" + stream + "}"
	return []string{k + ":pos", k + ":hist"}
}

// presenceKeys returns the user's presence set and refusal keys, in the slot of the user's
// stream.
func (n names) presenceKeys(user string) []string {
	k := n.prefix + ":{" + notify.UserStream(user) + "}"
	return []string{k + ":pres", k + ":nbf"}
}

// Start checks that Redis answers (on a cluster, that every master has sharded pub/sub) and
// starts the owners' goroutines: with a single Redis the subscriber's connection; on a
// cluster each shard's starts with its first subscription.
func (b *Broker) Start(ctx context.Context, deliver func(notify.Message)) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: %w", err)
	}
	if b.cluster != nil {
		if err := b.cluster.ForEachMaster(ctx, checkSharded); err != nil {
			return fmt.Errorf("redisbroker: %w", err)
		}
	}
	if b.pub.names.marker { // for the connections opened before New's hook (failover.go)
		if err := guardScript.Run(ctx, b.client, []string{b.pub.names.markerKey()}).Err(); err != nil {
			return fmt.Errorf("redisbroker: %w", err)
		}
	}
	b.started = true
	b.sub.start(deliver)
	b.pub.start()
	b.reads.start()
	b.pres.start()
	return nil
}

// Publish hands the send to the publisher and waits for Redis's answer: the event's position
// and the nodes PUBLISH (SPUBLISH on a cluster) reached, which are the nodes subscribed to the
// stream.
func (b *Broker) Publish(ctx context.Context, stream string, payload []byte, ephemeral bool) (notify.Report, error) {
	now := time.Now()
	pos, nodes, err := b.pub.publish(ctx, stream, payload, ephemeral)
	if err != nil {
		return notify.Report{}, err
	}
	r := notify.Report{Position: pos, Nodes: nodes}
	if !ephemeral {
		r.Stored, r.StoredUntil = true, now.Add(b.pub.historyTTL)
	}
	return r, nil
}

// Subscribe subscribes this node to the stream's channel on the first call for it and waits
// for Redis to confirm. While Redis is unreachable it returns an error, and the stream is
// subscribed when Redis is back.
func (b *Broker) Subscribe(ctx context.Context, stream string) error {
	return b.sub.subscribe(ctx, stream)
}

// Unsubscribe undoes one Subscribe; the last one unsubscribes the node from the channel.
func (b *Broker) Unsubscribe(ctx context.Context, stream string) error {
	b.sub.unsubscribe(stream)
	return nil
}

// History reads the stream's position and, when after is of its current epoch, the events
// after it that the history holds within the TTL, in one pipelined round trip.
//
// A stream whose channel this node has live, with a position it knows (see
// subscriber.localPosition), is answered without Redis when after is nil or that position:
// a session that asks for no recovery, or that has everything, starts there. That position
// is the last message this node received, which may be behind Redis's by the messages on
// their way here: they reach the session live.
func (b *Broker) History(ctx context.Context, stream string, after *notify.Position) (notify.Position, []notify.Message, error) {
	if p, ok := b.sub.localPosition(stream); ok && (after == nil || *after == p) {
		return p, nil, nil
	}
	pos, msgs, err := b.reads.history(ctx, stream, after)
	if err != nil {
		return notify.Position{}, nil, err
	}
	b.sub.positioned(stream, pos)
	return pos, msgs, nil
}

// Join records the session in the user's presence set and reads the user's refusal, in one
// round trip; when the user stream's channel is live on this node (the hub subscribes it
// before it joins) and the node has no position for it yet, the same step reads the
// stream's position, which History then gives without Redis. The node keeps the entry alive
// until Leave.
func (b *Broker) Join(ctx context.Context, s notify.SessionInfo) (int, time.Time, error) {
	return b.pres.join(ctx, s)
}

// Leave removes the session from the user's presence set.
func (b *Broker) Leave(ctx context.Context, s notify.SessionInfo) (int, bool, error) {
	return b.pres.leave(ctx, s)
}

// WatchOffline sets the function the broker calls for each user whose last sessions ended
// without a Leave ([notify.OfflineWatcher]): the sessions of a node killed without closing them,
// once their node's record in Redis expires (PresenceTTL after its last upkeep; a survivor
// notices within PresenceTTL/3 more), on one surviving node. The hub calls it from New; the
// calls come from the broker's presence goroutine, or from a Join or Leave that found the
// user's last entries expired, and stop when the broker is closed. Without it, those users
// are not reported.
func (b *Broker) WatchOffline(offline func(userID string)) { b.pres.offline.Store(&offline) }

// Sessions returns the user's sessions whose entries have not expired, oldest first.
func (b *Broker) Sessions(ctx context.Context, userID string) ([]notify.SessionInfo, error) {
	return b.pres.sessions(ctx, userID)
}

// Refuse records the user's token refusal for ttl; a later refusal time already recorded
// stays.
func (b *Broker) Refuse(ctx context.Context, userID string, before time.Time, ttl time.Duration) error {
	return b.pres.refuse(ctx, userID, before, ttl)
}

// RefusedBefore reads the user's token refusal.
func (b *Broker) RefusedBefore(ctx context.Context, userID string) (time.Time, error) {
	return b.pres.refusedBefore(ctx, userID)
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats { return b.sub.stats() }

// Reconnects reports how many times the broker has reconnected to Redis, as Stats does;
// promnotify.NewBrokerCollector exports it.
func (b *Broker) Reconnects() uint64 { return b.sub.reconnects.Load() }

// Close stops receiving, waits for every owner's goroutines, removes this node's records
// from the registry of nodes (within a second; see sweep.go) and closes the Redis client the
// broker created.
func (b *Broker) Close() error {
	select {
	case <-b.stop:
		return nil
	default:
	}
	close(b.stop)
	var err error
	if b.started {
		err = b.sub.close()
		b.pub.wait()
		b.reads.wait()
		b.pres.wait()
		b.pres.unregister()
	}
	if b.own {
		if e := b.client.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}
