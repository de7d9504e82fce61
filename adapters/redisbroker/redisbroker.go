// Package redisbroker connects the notify hubs of several processes through Redis, and keeps
// each stream's history in Redis for missed-event recovery.
//
//	b, err := redisbroker.New(redisbroker.Options{URL: "redis://127.0.0.1:6379"})
//	...
//	hub, err := notify.New(notify.Config{Secret: secret, Broker: b})
//
// A Send on any node reaches the user's sessions on every node. Each node subscribes only to
// the Redis channels of users and topics that have sessions on it, so it receives only the
// messages it delivers. Assigning a stream's offset, appending to its history and publishing
// happen in one Lua script; the sends that arrive while one round trip is in flight leave
// together in the next, pipelined (no timer delays a lone send).
//
// While Redis is unreachable, sends return an error (each hub still delivers to its own
// sessions), and when Redis is back the broker resubscribes every stream that still has
// sessions, logs it and counts it in [Stats].
//
// On Redis Cluster (Options.Client a *redis.ClusterClient; Redis 7 or later) the broker uses
// sharded pub/sub: a stream's channel hashes to the slot of its position and history, a send
// is one script and one SPUBLISH on that slot's shard, and each node holds one subscriber
// connection per shard it has streams on. While a shard is unreachable, the streams on it
// behave as all do while a single Redis is; when it is back, or its replica has taken over, the
// broker subscribes there again and catches up from the history.
package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wire"
)

// Options configures a Broker. Zero values mean the documented defaults.
type Options struct {
	// URL of the Redis server, such as "redis://:password@127.0.0.1:6379/0" (see
	// redis.ParseURL). Used when Client is nil.
	URL string
	// Client, when set, is used instead of URL: a *redis.Client, a Sentinel-backed failover
	// client or a *redis.ClusterClient. The broker does not close it. With a
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
	// Logger receives the broker's logs. Default: none.
	Logger *slog.Logger
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

// Broker is a [notify.Broker] on Redis. Create it with [New] and pass it in
// notify.Config.Broker; the hub closes it on Shutdown.
type Broker struct {
	opts    Options
	client  redis.UniversalClient
	own     bool                 // the broker created client and closes it
	cluster *redis.ClusterClient // set on Redis Cluster: sharded pub/sub
	script  *redis.Script        // publishScript, or shardedPublishScript on a cluster
	deliver func(notify.Message)
	started bool // Start succeeded: the goroutines run

	mu      sync.Mutex
	refs    map[string]int          // channel -> Subscribe calls not undone
	waiting map[string][]chan error // channel -> Subscribe calls awaiting the confirmation (see release)
	live    map[string]bool         // channel -> confirmed
	// pos is, per subscribed channel, the position up to which this node's sessions have
	// everything: the last message received, or the position History gave when the channel
	// was first subscribed. After an outage, catchUp starts there.
	pos map[string]notify.Position
	// single is the subscriber connection of every channel with a single Redis; on a cluster,
	// shards holds one per shard master (by address) and shardOf each channel's.
	single  *subscriber
	shards  map[string]*subscriber
	shardOf map[string]*subscriber
	closed  bool           // by Close: no subscriber is created any more
	subs    sync.WaitGroup // the subscribers' receiving goroutines

	received   atomic.Uint64
	reconnects atomic.Uint64
	caughtUp   atomic.Uint64

	pubQ    chan *pubReq   // sends waiting for the publisher (see publish.go)
	callQ   chan *callReq  // script calls waiting for a reader (see history.go)
	pubDone sync.WaitGroup // the publishers and the readers

	pres presenceState // see presence.go

	stop chan struct{}
}

var _ notify.Broker = (*Broker)(nil)

// New returns a broker on the Redis of opts.URL or opts.Client. It does not contact Redis
// yet; the hub's New does, and reports an unreachable Redis.
func New(opts Options) (*Broker, error) {
	b := &Broker{opts: opts, client: opts.Client, refs: map[string]int{}, waiting: map[string][]chan error{},
		live: map[string]bool{}, pos: map[string]notify.Position{}, stop: make(chan struct{}),
		pubQ: make(chan *pubReq, maxPipeline), callQ: make(chan *callReq, maxPipeline), script: publishScript}
	if b.client == nil {
		if opts.URL == "" {
			return nil, errors.New("notify: redisbroker: set URL or Client")
		}
		o, err := redis.ParseURL(opts.URL)
		if err != nil {
			return nil, fmt.Errorf("notify: redisbroker: %w", err)
		}
		b.client, b.own = redis.NewClient(o), true
	}
	if b.opts.Prefix == "" {
		b.opts.Prefix = "notify"
	}
	if cc, ok := b.client.(*redis.ClusterClient); ok {
		if strings.ContainsAny(b.opts.Prefix, "{}") {
			return nil, errors.New("notify: redisbroker: with Redis Cluster, Prefix cannot contain '{' or '}'")
		}
		b.cluster, b.script = cc, shardedPublishScript
		b.shards, b.shardOf = map[string]*subscriber{}, map[string]*subscriber{}
	}
	if b.opts.HistorySize <= 0 {
		b.opts.HistorySize = notify.DefaultHistorySize
	}
	if b.opts.HistoryTTL <= 0 {
		b.opts.HistoryTTL = notify.DefaultHistoryTTL
	}
	if b.opts.PresenceTTL <= 0 {
		b.opts.PresenceTTL = DefaultPresenceTTL
	}
	b.pres.local, b.pres.done = map[string]map[string]struct{}{}, make(chan struct{})
	if b.opts.Logger == nil {
		b.opts.Logger = slog.New(slog.DiscardHandler)
	}
	return b, nil
}

// channel is a stream's pub/sub channel: "<prefix>:c:<stream>" on a single Redis, and on a
// cluster "<prefix>:{<stream>}:c", whose hash tag is its keys' (see keys): the channel, the
// position and the history of a stream are on one slot, so a publish is one shard's work.
func (b *Broker) channel(stream string) string {
	if b.cluster != nil {
		return b.opts.Prefix + ":{" + stream + "}:c"
	}
	return b.opts.Prefix + ":c:" + stream
}

// streamOf is channel's inverse.
func (b *Broker) streamOf(channel string) (string, bool) {
	if b.cluster != nil {
		s, ok := strings.CutPrefix(channel, b.opts.Prefix+":{")
		if !ok {
			return "", false
		}
		return strings.CutSuffix(s, "}:c")
	}
	return strings.CutPrefix(channel, b.opts.Prefix+":c:")
}

// keys are a stream's position (a hash of epoch and offset) and history (a list), in one
// cluster slot: the hash tag is the stream's name in braces. The prefix has none on a
// cluster (see New), so the tag is the same in the keys and the channel.
func (b *Broker) keys(stream string) []string {
	k := b.opts.Prefix + ":{" + stream + "}"
	return []string{k + ":pos", k + ":hist"}
}

// Start checks that Redis answers (on a cluster, that every master has sharded pub/sub) and
// starts the publisher and, with a single Redis, the receiving goroutine; on a cluster each
// shard's starts with its first subscription.
func (b *Broker) Start(ctx context.Context, deliver func(notify.Message)) error {
	if err := b.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisbroker: %w", err)
	}
	if b.cluster != nil {
		if err := b.cluster.ForEachMaster(ctx, checkSharded); err != nil {
			return fmt.Errorf("redisbroker: %w", err)
		}
	}
	b.deliver = deliver
	b.started = true
	if b.cluster == nil {
		b.single = &subscriber{b: b, ps: b.client.Subscribe(context.Background()), quit: make(chan struct{}),
			kick: make(chan struct{}, 1)}
		b.subs.Add(2)
		go b.single.receive()
		go b.single.writeSingle()
	}
	b.pubDone.Add(publishers + readers)
	for range publishers {
		go b.publisher()
	}
	for range readers {
		go b.reader()
	}
	go b.keepPresence()
	return nil
}

// advance records p as channel's position while the channel is subscribed: always when
// received is set (a message), and only if it has none yet otherwise (History's answer).
func (b *Broker) advance(channel string, p notify.Position, received bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs[channel] == 0 {
		return
	}
	if _, ok := b.pos[channel]; ok && !received {
		return
	}
	b.pos[channel] = p
}

// catchUp delivers the messages of channel's stream after p that its history holds. The
// channel is subscribed again by now, so whatever is published after the history is read
// arrives live; the hub drops what it receives twice. A new epoch means Redis lost the
// stream's history: what it holds now is all new.
func (b *Broker) catchUp(ctx context.Context, channel string, p notify.Position) {
	stream, _ := b.streamOf(channel)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos, msgs, err := b.History(ctx, stream, &p)
	if err == nil && pos.Epoch != p.Epoch { // all the stream holds is new
		_, msgs, err = b.History(ctx, stream, &notify.Position{Epoch: pos.Epoch})
	}
	if err != nil {
		b.opts.Logger.Warn("notify: redisbroker: cannot catch up after reconnecting", "stream", stream, "err", err)
		return
	}
	n := 0
	for _, m := range msgs {
		if p.Covers(m.Offset, m.Epoch) {
			continue
		}
		b.advance(channel, notify.Position{Offset: m.Offset, Epoch: m.Epoch}, true)
		b.deliver(m)
		n++
	}
	if n > 0 {
		b.caughtUp.Add(uint64(n))
		b.opts.Logger.Info("notify: redisbroker: caught up after reconnecting", "stream", stream, "messages", n)
	}
}

func (b *Broker) confirmed(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs[channel] == 0 {
		return
	}
	b.live[channel] = true
	b.release(channel, nil)
}

// release answers the Subscribe calls waiting for channel: nil for a confirmation, or why it
// will not come soon. Called with b.mu held.
func (b *Broker) release(channel string, err error) {
	for _, w := range b.waiting[channel] {
		w <- err // capacity 1, one answer each
	}
	delete(b.waiting, channel)
}

// A message on a channel is "<offset> <epoch> <payload>"; offset 0 and epoch "-" for an
// ephemeral one.
func (b *Broker) parse(m *redis.Message) (notify.Message, bool) {
	stream, ok := b.streamOf(m.Channel)
	if !ok {
		return notify.Message{}, false
	}
	off, rest, ok1 := strings.Cut(m.Payload, " ")
	epoch, payload, ok2 := strings.Cut(rest, " ")
	offset, err := strconv.ParseUint(off, 10, 64)
	if !ok1 || !ok2 || err != nil {
		b.opts.Logger.Error("notify: redisbroker: malformed message", "channel", m.Channel)
		return notify.Message{}, false
	}
	nm := notify.Message{Stream: stream, Offset: offset, Payload: []byte(payload)}
	if offset > 0 {
		nm.Epoch = epoch
		// The frame sessions get, built here once (the hub would build it otherwise).
		nm.Frame = wire.WithPosition(nm.Payload, offset, epoch)
	}
	return nm, true
}

// Subscribe subscribes this node to the stream's channel on the first call for it and waits
// for Redis to confirm. The SUBSCRIBE leaves from the subscriber's writer goroutine, with the
// others queued meanwhile, so that no write to Redis (nor a dial, while it is down) holds b.mu.
// While Redis is unreachable it returns an error, and the stream is subscribed when Redis is
// back.
func (b *Broker) Subscribe(ctx context.Context, stream string) error {
	ch := b.channel(stream)
	b.mu.Lock()
	b.refs[ch]++
	if b.live[ch] {
		b.mu.Unlock()
		return nil
	}
	w := make(chan error, 1)
	b.waiting[ch] = append(b.waiting[ch], w)
	var err error
	if b.refs[ch] == 1 {
		if b.cluster != nil {
			err = b.shardSubscribe(ctx, ch)
		} else {
			b.single.queue(subOp{ch: ch})
		}
	}
	b.mu.Unlock()
	if err != nil {
		return fmt.Errorf("redisbroker: subscribe: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	select {
	case err := <-w:
		if err != nil {
			return fmt.Errorf("redisbroker: subscribe: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("redisbroker: subscribe: no confirmation: %w", ctx.Err())
	}
}

// Unsubscribe undoes one Subscribe; the last one unsubscribes the node from the channel (the
// UNSUBSCRIBE leaves from the subscriber's writer, after what was queued before it).
func (b *Broker) Unsubscribe(ctx context.Context, stream string) error {
	ch := b.channel(stream)
	var idle *subscriber
	defer func() { idle.closeLater() }()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.refs[ch] == 0 {
		return nil
	}
	b.refs[ch]--
	if b.refs[ch] > 0 {
		return nil
	}
	delete(b.refs, ch)
	delete(b.live, ch)
	delete(b.pos, ch)
	b.release(ch, nil)
	if b.cluster != nil {
		if s := b.shardOf[ch]; s != nil {
			idle = s.remove(ch)
		}
	} else {
		b.single.queue(subOp{ch: ch, unsub: true})
	}
	return nil
}

// Stats returns the broker's counters.
func (b *Broker) Stats() Stats {
	b.mu.Lock()
	n := len(b.refs)
	b.mu.Unlock()
	return Stats{Received: b.received.Load(), Reconnects: b.reconnects.Load(), CaughtUp: b.caughtUp.Load(), Streams: n}
}

// Reconnects reports how many times the broker has reconnected to Redis; notify's Hub.Stats
// reads it as BrokerReconnects.
func (b *Broker) Reconnects() uint64 { return b.reconnects.Load() }

// Close stops receiving, waits for the receiving goroutines and closes the Redis client the
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
		b.mu.Lock()
		b.closed = true
		subs := []*subscriber{b.single}
		for _, s := range b.shards {
			subs = append(subs, s)
		}
		b.mu.Unlock()
		for _, s := range subs {
			if e := s.close(); e != nil && err == nil {
				err = e
			}
		}
		b.subs.Wait()
		b.pubDone.Wait()
		<-b.pres.done
	}
	if b.own {
		if e := b.client.Close(); e != nil && err == nil {
			err = e
		}
	}
	return err
}
