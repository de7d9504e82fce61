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

// A subscriber holds this node's subscriptions: the Subscribe calls counted per channel, the
// pub/sub connections that carry them (one with a single Redis; on a cluster one per shard
// master, see cluster.go), the goroutines that read and write those connections, and the
// catch-up after an outage. mu guards the fields below it and every conn's subscription state,
// as one: a channel moves from one conn to another in one step, and no write to a connection
// happens under it.
type subscriber struct {
	client  redis.UniversalClient
	cluster *redis.ClusterClient // set on Redis Cluster: sharded pub/sub
	names   names
	// history reads a stream's position and the events after a position, for catchUp.
	history func(ctx context.Context, stream string, after *notify.Position) (notify.Position, []notify.Message, error)
	log     *slog.Logger
	stop    <-chan struct{}      // the broker's
	deliver func(notify.Message) // set by start, before any conn exists
	wg      sync.WaitGroup       // the conns' goroutines

	received   atomic.Uint64
	reconnects atomic.Uint64
	caughtUp   atomic.Uint64

	mu      sync.Mutex
	refs    map[string]int          // channel -> Subscribe calls not undone
	waiting map[string][]chan error // channel -> Subscribe calls awaiting the confirmation (see release)
	live    map[string]bool         // channel -> confirmed
	// pos is, per subscribed channel, the position up to which this node's sessions have
	// everything: the last message received, or the position History or a join gave once the
	// channel was subscribed. After an outage, catchUp starts there. A message updates it in
	// place: one map lookup per message.
	pos map[string]*notify.Position
	// single is the connection of every channel with a single Redis; on a cluster, shards
	// holds one per shard master (by address) and shardOf each channel's.
	single  *conn
	shards  map[string]*conn
	shardOf map[string]*conn
	closed  bool // by close: no conn is created any more
}

func newSubscriber(client redis.UniversalClient, cluster *redis.ClusterClient, n names,
	history func(context.Context, string, *notify.Position) (notify.Position, []notify.Message, error),
	log *slog.Logger, stop <-chan struct{}) *subscriber {
	s := &subscriber{client: client, cluster: cluster, names: n, history: history, log: log, stop: stop,
		refs: map[string]int{}, waiting: map[string][]chan error{}, live: map[string]bool{},
		pos: map[string]*notify.Position{}}
	if cluster != nil {
		s.shards, s.shardOf = map[string]*conn{}, map[string]*conn{}
	}
	return s
}

// start makes the subscriber deliver to deliver and, with a single Redis, starts its
// connection; on a cluster each shard's starts with its first subscription.
func (s *subscriber) start(deliver func(notify.Message)) {
	s.deliver = deliver
	if s.cluster != nil {
		return
	}
	s.single = &conn{sub: s, ps: s.client.Subscribe(context.Background()), quit: make(chan struct{}),
		kick: make(chan struct{}, 1)}
	s.wg.Add(2)
	go s.single.receive()
	go s.single.writeSingle()
}

// close closes every connection and waits for their goroutines.
func (s *subscriber) close() error {
	s.mu.Lock()
	s.closed = true
	conns := []*conn{s.single}
	for _, c := range s.shards {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var err error
	for _, c := range conns {
		if e := c.close(); e != nil && err == nil {
			err = e
		}
	}
	s.wg.Wait()
	return err
}

// subscribe subscribes this node to the stream's channel on the first call for it and waits
// for Redis to confirm. The SUBSCRIBE leaves from the connection's writer goroutine, with the
// others queued meanwhile, so that no write to Redis (nor a dial, while it is down) holds
// s.mu. While Redis is unreachable it returns an error, and the stream is subscribed when
// Redis is back.
func (s *subscriber) subscribe(ctx context.Context, stream string) error {
	ch := s.names.channel(stream)
	s.mu.Lock()
	s.refs[ch]++
	if s.live[ch] {
		s.mu.Unlock()
		return nil
	}
	w := make(chan error, 1)
	s.waiting[ch] = append(s.waiting[ch], w)
	var err error
	if s.refs[ch] == 1 {
		if s.cluster != nil {
			err = s.shardSubscribe(ctx, ch)
		} else {
			s.single.queue(subOp{ch: ch})
		}
	}
	s.mu.Unlock()
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

// unsubscribe undoes one subscribe; the last one unsubscribes the node from the channel (the
// UNSUBSCRIBE leaves from the connection's writer, after what was queued before it).
func (s *subscriber) unsubscribe(stream string) {
	ch := s.names.channel(stream)
	var idle *conn
	defer func() { idle.closeLater() }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs[ch] == 0 {
		return
	}
	s.refs[ch]--
	if s.refs[ch] > 0 {
		return
	}
	delete(s.refs, ch)
	delete(s.live, ch)
	delete(s.pos, ch)
	s.release(ch, nil)
	if s.cluster != nil {
		if c := s.shardOf[ch]; c != nil {
			idle = c.remove(ch)
		}
	} else {
		s.single.queue(subOp{ch: ch, unsub: true})
	}
}

// stats returns the subscriber's counters.
func (s *subscriber) stats() Stats {
	s.mu.Lock()
	n := len(s.refs)
	s.mu.Unlock()
	return Stats{Received: s.received.Load(), Reconnects: s.reconnects.Load(), CaughtUp: s.caughtUp.Load(), Streams: n}
}

// positioned records p, which History read, as the stream's position if its channel is
// subscribed and has none yet.
func (s *subscriber) positioned(stream string, p notify.Position) {
	s.advance(s.names.channel(stream), p, false)
}

// advance records p as channel's position while the channel is subscribed: always when
// received is set (a message), and only if it has none yet otherwise (History's answer).
func (s *subscriber) advance(channel string, p notify.Position, received bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pp := s.pos[channel]; pp != nil {
		if received {
			*pp = p
		}
		return
	}
	if s.refs[channel] > 0 {
		s.pos[channel] = &p
	}
}

// unpositioned reports whether the stream's channel is subscribed and confirmed on a
// connection that works, so that every message published on it from now on reaches this
// node, and the node has no position for it yet: a join then reads one (see presence.join).
func (s *subscriber) unpositioned(stream string) bool {
	ch := s.names.channel(stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.pos[ch]
	return !ok && s.liveLocked(ch)
}

func (s *subscriber) liveLocked(ch string) bool {
	if s.refs[ch] == 0 || !s.live[ch] {
		return false
	}
	if s.cluster != nil {
		c := s.shardOf[ch]
		return c != nil && !c.down && c.ok[ch]
	}
	return true
}

// localPosition returns the position of a stream whose channel is live, when the node has
// one: the last message the node received, or the position History or a join read once the
// channel was confirmed. A session that asks for no recovery may start there without a round
// trip to Redis: it is in the hub's index by then (see Broker.History), and the messages after
// that position reach the node, since the node records a message's position before it
// delivers it.
func (s *subscriber) localPosition(stream string) (notify.Position, bool) {
	ch := s.names.channel(stream)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pp := s.pos[ch]; pp != nil && s.liveLocked(ch) {
		return *pp, true
	}
	return notify.Position{}, false
}

// position returns channel's position, and whether it has one: a channel subscribed again
// after an outage has one, a first subscription not yet (History gives it one).
func (s *subscriber) position(channel string) (notify.Position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pp := s.pos[channel]; pp != nil {
		return *pp, true
	}
	return notify.Position{}, false
}

// confirmed handles Redis's confirmation of channel, whose position was p (again: it had one,
// see position): a channel subscribed again catches up from the history first; then the
// Subscribe calls waiting for it return.
func (s *subscriber) confirmed(ctx context.Context, channel string, p notify.Position, again bool) {
	if again {
		// Not live until caught up: History reads Redis meanwhile (see localPosition).
		s.mu.Lock()
		delete(s.live, channel)
		s.mu.Unlock()
		s.catchUp(ctx, channel, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs[channel] == 0 {
		return
	}
	s.live[channel] = true
	s.release(channel, nil)
}

// catchUp delivers the messages of channel's stream after p that its history holds. The
// channel is subscribed again by now, so whatever is published after the history is read
// arrives live; the hub drops what it receives twice. A new epoch means Redis lost the
// stream's history: what it holds now is all new.
func (s *subscriber) catchUp(ctx context.Context, channel string, p notify.Position) {
	stream, _ := s.names.streamOf(channel)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos, msgs, err := s.history(ctx, stream, &p)
	if err == nil && pos.Epoch != p.Epoch { // all the stream holds is new
		_, msgs, err = s.history(ctx, stream, &notify.Position{Epoch: pos.Epoch})
	}
	if err != nil {
		s.log.Warn("notify: redisbroker: cannot catch up after reconnecting", "stream", stream, "err", err)
		// The node no longer knows where the stream stands: History reads Redis again.
		s.mu.Lock()
		delete(s.pos, channel)
		s.mu.Unlock()
		return
	}
	n := 0
	for _, m := range msgs {
		if p.Covers(m.Offset, m.Epoch) {
			continue
		}
		s.advance(channel, notify.Position{Offset: m.Offset, Epoch: m.Epoch}, true)
		s.deliver(m)
		n++
	}
	if pos.Epoch != p.Epoch {
		// The node is at the new epoch's position, even where no message carried it there
		// (the history was lost with the epoch): a session starting from it (localPosition)
		// is told of the new epoch.
		s.advance(channel, pos, true)
	}
	if n > 0 {
		s.caughtUp.Add(uint64(n))
		s.log.Info("notify: redisbroker: caught up after reconnecting", "stream", stream, "messages", n)
	}
}

// release answers the Subscribe calls waiting for channel: nil for a confirmation, or why it
// will not come soon. Called with s.mu held.
func (s *subscriber) release(channel string, err error) {
	for _, w := range s.waiting[channel] {
		w <- err // capacity 1, one answer each
	}
	delete(s.waiting, channel)
}

// message delivers a message received on a channel.
func (s *subscriber) message(m *redis.Message) {
	s.received.Add(1)
	nm, ok := s.parse(m)
	if !ok {
		return
	}
	if nm.Offset > 0 {
		s.advance(m.Channel, notify.Position{Offset: nm.Offset, Epoch: nm.Epoch}, true)
	}
	s.deliver(nm)
}

// A message on a channel is "<offset> <epoch> <payload>"; offset 0 and epoch "-" for an
// ephemeral one.
func (s *subscriber) parse(m *redis.Message) (notify.Message, bool) {
	stream, ok := s.names.streamOf(m.Channel)
	if !ok {
		return notify.Message{}, false
	}
	off, rest, ok1 := strings.Cut(m.Payload, " ")
	epoch, payload, ok2 := strings.Cut(rest, " ")
	offset, err := strconv.ParseUint(off, 10, 64)
	if !ok1 || !ok2 || err != nil {
		s.log.Error("notify: redisbroker: malformed message", "channel", m.Channel)
		return notify.Message{}, false
	}
	if offset == 0 || len(payload) < 2 {
		return notify.Message{Stream: stream, Payload: []byte(payload)}, true
	}
	// The frame sessions get, built here once (the hub would build it otherwise), in the
	// payload's allocation.
	p, frame := wire.PayloadAndFrame(payload, offset, epoch)
	return notify.Message{Stream: stream, Offset: offset, Epoch: epoch, Payload: p, Frame: frame}, true
}

// A conn is one pub/sub connection of the subscriber and the two goroutines that serve it:
// receive reads it, and the writer sends the subscriptions queued for it. sub, ps, quit, kick
// and addr are set when it is made; wasDown is atomic; every other field is guarded by
// sub.mu (see subscriber).
type conn struct {
	sub  *subscriber
	ps   *redis.PubSub
	quit chan struct{} // closed by close
	once sync.Once
	kick chan struct{} // capacity 1: ops were queued
	addr string        // cluster: the shard master's address

	ops []subOp // for the writer to send

	// On a cluster only:
	chans   map[string]struct{} // the channels this node wants through this connection
	ok      map[string]bool     // those Redis confirmed on the current connection
	unsubs  map[string]int      // SUNSUBSCRIBE replies expected, per channel
	stale   map[string]struct{} // channels left while the connection was down, for resync to unsubscribe
	down    bool                // the connection failed and is not back yet
	wasDown atomic.Bool         // down, for receive to read without sub.mu on every message
}

// closeLater closes c in the background: go-redis's Close waits for a dial in progress.
func (c *conn) closeLater() {
	if c == nil {
		return
	}
	c.sub.wg.Add(1) // while c's own goroutines still count: close's Wait is not at zero
	go func() {
		defer c.sub.wg.Done()
		_ = c.close()
	}()
}

// close closes the connection and ends receive; it may be called more than once.
func (c *conn) close() error {
	if c == nil {
		return nil
	}
	var err error
	c.once.Do(func() {
		close(c.quit)
		err = c.ps.Close()
	})
	return err
}

func (c *conn) ended() bool {
	select {
	case <-c.sub.stop:
		return true
	case <-c.quit:
		return true
	default:
		return false
	}
}

// receive reads the connection until it closes; go-redis reconnects it and resubscribes its
// channels after an error. Messages published while the connection was down never reach this
// node through the channel, so when a channel is subscribed again, its confirmation reads what
// came after its position from the stream's history (see catchUp).
//
// On a cluster, go-redis's resubscription is not enough (see cluster.go): when the connection
// is back, resync subscribes again every channel not confirmed on it, and an error reply
// (CLUSTERDOWN, MOVED...) makes it do so again after a backoff.
func (c *conn) receive() {
	defer c.sub.wg.Done()
	ctx := context.Background()
	r := receiver{c: c}
	for {
		msg, err := c.ps.ReceiveTimeout(ctx, r.timeout())
		if c.ended() || !r.handle(ctx, msg, err) {
			return
		}
	}
}

// receiver is the state receive keeps between reads; only receive's goroutine touches it.
type receiver struct {
	c         *conn
	lost      bool      // the connection failed and has not answered since
	reconnect backoff   // between attempts to restore a lost connection
	retry     backoff   // cluster: before subscribing again after a refusal
	retryAt   time.Time // cluster: when to resync after a refusal; zero for none
}

// idleTimeout is how long a connection may stay silent before receive pings it.
const idleTimeout = 30 * time.Second

func (r *receiver) timeout() time.Duration {
	if r.retryAt.IsZero() {
		return idleTimeout
	}
	return max(time.Until(r.retryAt), time.Millisecond)
}

// handle takes the result of one read, and reports false when the conn closed meanwhile.
func (r *receiver) handle(ctx context.Context, msg any, err error) bool {
	var refused redis.Error
	switch {
	case err == nil || (r.c.sub.cluster != nil && errors.As(err, &refused)):
		r.answered(ctx) // a message, or an error reply: the connection works
	case isTimeout(err):
		r.idle(ctx)
	default:
		return r.failed(ctx, err)
	}
	if refused != nil {
		r.refusal(ctx, refused)
		return true
	}
	if !r.retryAt.IsZero() && !time.Now().Before(r.retryAt) {
		r.retryAt = time.Time{}
		r.c.resync(ctx, true)
	}
	switch m := msg.(type) {
	case *redis.Subscription:
		r.subscription(ctx, m)
	case *redis.Message:
		r.c.sub.message(m)
	}
	return true
}

// answered notes that the connection works: after an outage, that it is back.
func (r *receiver) answered(ctx context.Context) {
	c := r.c
	if r.lost {
		r.lost = false
		r.reconnect.reset()
		c.sub.reconnects.Add(1)
		c.sub.log.Info("notify: redisbroker: reconnected, resubscribed streams", c.logAttrs("streams", c.streams())...)
	}
	if c.up() {
		c.resync(ctx, true)
	}
}

// idle pings a connection that has been silent: go-redis reconnects it when the ping fails.
func (r *receiver) idle(ctx context.Context) {
	if !r.retryAt.IsZero() {
		return // the timeout was the retry's
	}
	if err := r.c.ps.Ping(ctx); err != nil && r.c.sub.cluster != nil {
		r.lost = true
		r.c.setDown(ctx, err)
	}
}

// failed handles a failed read: the connection is lost. It waits out the reconnect backoff,
// and reports false when the conn closed meanwhile.
func (r *receiver) failed(ctx context.Context, err error) bool {
	c := r.c
	if !r.lost {
		r.lost = true
		c.sub.log.Warn("notify: redisbroker: lost the subscriber connection", c.logAttrs("err", err)...)
	}
	if c.sub.cluster == nil {
		// On a single Redis no channel is live until Redis confirms it again, on the
		// connection go-redis makes (a cluster's conn is down meanwhile: see setDown).
		c.sub.mu.Lock()
		clear(c.sub.live)
		c.sub.mu.Unlock()
	}
	c.setDown(ctx, err)
	return c.wait(ctx, r.reconnect.next())
}

// refusal handles an error reply (cluster): resync subscribes again after the retry backoff.
// CROSSSLOT answers go-redis's resubscription, which resync has replaced already.
func (r *receiver) refusal(ctx context.Context, refused redis.Error) {
	if strings.HasPrefix(refused.Error(), "CROSSSLOT") {
		return
	}
	level := slog.LevelDebug
	if r.retry.peek() == maxBackoff {
		level = slog.LevelWarn // not a passing state
	}
	r.c.sub.log.Log(ctx, level, "notify: redisbroker: Redis refused a subscription; subscribing again",
		r.c.logAttrs("err", refused, "in", r.retry.peek())...)
	r.c.refused(ctx, refused)
	r.retryLater()
}

// retryLater makes receive resync after the retry backoff, unless a resync is due already.
func (r *receiver) retryLater() {
	if r.retryAt.IsZero() {
		r.retryAt = time.Now().Add(r.retry.next())
	}
}

// subscription handles Redis's confirmation of a subscription, or of its end.
func (r *receiver) subscription(ctx context.Context, m *redis.Subscription) {
	switch m.Kind {
	case "subscribe":
		p, again := r.c.sub.position(m.Channel)
		r.c.sub.confirmed(ctx, m.Channel, p, again)
	case "ssubscribe":
		if r.c.subscribed(ctx, m.Channel) {
			r.retry.reset()
		}
	case "sunsubscribe":
		if r.c.dropped(ctx, m.Channel) {
			r.retryLater()
		}
	}
}

// The bounds of a backoff.
const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// A backoff is a delay that doubles at each use, from minBackoff up to maxBackoff, until it
// is reset. The zero value is at minBackoff.
type backoff struct{ d time.Duration }

// peek returns the next delay without using it.
func (b *backoff) peek() time.Duration { return max(b.d, minBackoff) }

// next returns the delay to wait now, and doubles the one after.
func (b *backoff) next() time.Duration {
	d := b.peek()
	b.d = min(2*d, maxBackoff)
	return d
}

func (b *backoff) reset() { b.d = 0 }

// wait waits d before the next attempt to reconnect, and reports false when the conn is
// closed or hands its channels over meanwhile. On a cluster it looks every 250 ms whether the
// shard has a new master (a failover), and asks go-redis to reload the cluster's layout every
// second: once it names one, resync moves the channels there.
func (c *conn) wait(ctx context.Context, d time.Duration) bool {
	cluster := c.sub.cluster
	end := time.Now().Add(d)
	for i := 1; ; i++ {
		step := time.Until(end)
		if cluster != nil {
			step = min(step, 250*time.Millisecond)
		}
		select {
		case <-c.sub.stop:
			return false
		case <-c.quit:
			return false
		case <-time.After(step):
		}
		if cluster != nil {
			if c.resync(ctx, false) {
				return false
			}
			if i%4 == 0 {
				cluster.ReloadState(ctx)
			}
		}
		if !time.Now().Before(end) {
			return true
		}
	}
}

// writeSingle sends the SUBSCRIBEs and UNSUBSCRIBEs queued on a single Redis's connection, in
// order, until the conn closes: a run of subscriptions queued meanwhile (a burst of connects)
// leaves in one command. sub.mu is not held across a write, in which go-redis dials when the
// connection is down. A SUBSCRIBE that cannot be sent fails the Subscribe calls waiting for
// its channels at once; go-redis keeps the channels in its set and subscribes them when it
// reconnects, unless the hub's Unsubscribe, which follows such a failure, comes first.
func (c *conn) writeSingle() {
	defer c.sub.wg.Done()
	ctx := context.Background()
	var chans []string
	for {
		ops, ok := c.next()
		if !ok {
			return
		}
		for len(ops) > 0 {
			n := 1
			for n < len(ops) && ops[n].unsub == ops[0].unsub {
				n++
			}
			chans = chans[:0]
			for _, op := range ops[:n] {
				chans = append(chans, op.ch)
			}
			var err error
			if ops[0].unsub {
				err = c.ps.Unsubscribe(ctx, chans...)
			} else {
				err = c.ps.Subscribe(ctx, chans...)
			}
			if c.ended() {
				return
			}
			if err != nil && !ops[0].unsub {
				c.sub.mu.Lock()
				for _, ch := range chans {
					c.sub.release(ch, err)
				}
				c.sub.mu.Unlock()
			}
			ops = ops[n:]
		}
	}
}

// A subOp is a subscription, or its end, for the writer to send.
type subOp struct {
	ch    string
	unsub bool
}

// next waits for operations queued for the writer and takes them; false when c closes.
func (c *conn) next() ([]subOp, bool) {
	select {
	case <-c.sub.stop:
		return nil, false
	case <-c.quit:
		return nil, false
	case <-c.kick:
	}
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	ops := c.ops
	c.ops = nil
	return ops, true
}

// queue hands op to the writer. Called with sub.mu held.
func (c *conn) queue(op subOp) {
	c.ops = append(c.ops, op)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// streams is how many streams the connection serves, for the logs.
func (c *conn) streams() int {
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	if c.sub.cluster != nil {
		return len(c.chans)
	}
	return len(c.sub.refs)
}

func (c *conn) logAttrs(args ...any) []any {
	if c.addr != "" {
		args = append(args, "shard", c.addr)
	}
	return args
}
