package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Redis Cluster: sharded pub/sub.
//
// A stream's channel is "<prefix>:{<stream>}:c", in the slot of the stream's keys, so the
// publish script's SPUBLISH runs on the shard that holds the stream, and only that shard's
// nodes pass the message on (a PUBLISH would be broadcast to every node of the cluster).
//
// A node subscribes to a channel with SSUBSCRIBE on its connection to the master of the
// channel's slot: a subscriber per master, a PubSub of that master's own go-redis client, which
// always reconnects to that address. One connection serves every channel this node has on the
// shard, whatever their slots, and each SSUBSCRIBE names one channel: Redis refuses one whose
// channels are in different slots (CROSSSLOT). A subscriber's SSUBSCRIBEs and SUNSUBSCRIBEs
// leave from its own writer goroutine, in order: a dial to a master that went away (up to
// go-redis's DialTimeout) never holds b.mu, which every shard's delivery takes.
//
// What can go wrong, and what the subscriber does (see subscriber.receive):
//   - The connection drops (the master restarted, the network failed). Subscribe fails at once
//     for a first subscription to a stream of the shard, and the Subscribe calls waiting for
//     one fail too. go-redis reconnects and resubscribes every channel in one SSUBSCRIBE,
//     which Redis refuses (CROSSSLOT) unless they share a slot; so when the connection answers
//     again, resync subscribes every channel not confirmed on it, and the confirmation of a
//     channel that was subscribed before starts its catch-up from the stream's history, as
//     with a single Redis.
//   - The shard refuses a subscription for a while (CLUSTERDOWN, TRYAGAIN): the error reply
//     makes receive resync again after a backoff.
//   - The slot moved (resharding, a failover that demoted this master): Redis answers MOVED,
//     or unsubscribes the channel itself (an sunsubscribe this node did not ask for). go-redis
//     is asked to reload the cluster's layout, and resync moves the channel to the subscriber
//     of its slot's master.
//   - The master is gone for good (a failover promoted its replica): while the connection
//     cannot be restored, resync checks the layout go-redis reloads, and once the slots have a
//     new master, the subscriber hands every channel over to the new master's and closes.
//
// A subscriber left without channels is closed. While a stream's shard cannot be reached,
// Subscribe (a first subscription on this node) and History return errors, so the hub refuses
// the session (1013) or the subscribe ("unavailable") rather than serve it without events.

// checkSharded fails for a master without sharded pub/sub (before Redis 7).
func checkSharded(ctx context.Context, c *redis.Client) error {
	info, err := c.Do(ctx, "COMMAND", "INFO", "SPUBLISH").Slice()
	if err != nil {
		return err
	}
	if len(info) == 0 || info[0] == nil {
		return fmt.Errorf("Redis Cluster node %s has no sharded pub/sub (SPUBLISH): redisbroker needs Redis 7 or later", c.Options().Addr)
	}
	return nil
}

// shardSubscribe subscribes ch on the subscriber of its slot's master, creating it. While
// that connection is down it fails at once: the session waits for the shard (1013). Called
// with b.mu held; it queues the SSUBSCRIBE for the subscriber's writer, so that no dial to a
// master that went away holds b.mu, and with it every other shard's delivery.
func (b *Broker) shardSubscribe(ctx context.Context, ch string) error {
	s, err := b.shardFor(ctx, ch)
	if err != nil {
		return err
	}
	if s.down {
		return fmt.Errorf("shard %s unreachable", s.addr)
	}
	s.attach(ch)
	return nil
}

// shardFor returns the subscriber of ch's slot's master, creating it. Called with b.mu held.
func (b *Broker) shardFor(ctx context.Context, ch string) (*subscriber, error) {
	node, err := b.cluster.MasterForKey(ctx, ch)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	if s := b.shards[addr]; s != nil {
		return s, nil
	}
	if b.closed {
		return nil, errClosed
	}
	s := &subscriber{b: b, ps: node.SSubscribe(context.Background()), quit: make(chan struct{}), addr: addr,
		chans: map[string]struct{}{}, ok: map[string]bool{}, unsubs: map[string]int{}, stale: map[string]struct{}{},
		kick: make(chan struct{}, 1)}
	b.shards[addr] = s
	b.subs.Add(2)
	go s.receive()
	go s.write()
	return s, nil
}

// attach makes s the subscriber of ch and queues its SSUBSCRIBE, unless the connection is
// down: then resync subscribes it once the connection is back. Called with b.mu held.
func (s *subscriber) attach(ch string) {
	delete(s.stale, ch)
	s.chans[ch] = struct{}{}
	s.b.shardOf[ch] = s
	if !s.down {
		s.queue(subOp{ch: ch})
	}
}

// remove unsubscribes ch. The last channel closes the connection instead: remove then returns
// s, for the caller to close (closeLater) once b.mu is released. Called with b.mu held.
func (s *subscriber) remove(ch string) (idle *subscriber) {
	b := s.b
	delete(s.chans, ch)
	delete(s.ok, ch)
	if b.shardOf[ch] == s {
		delete(b.shardOf, ch)
	}
	if len(s.chans) == 0 {
		s.drop()
		return s
	}
	if s.down {
		s.stale[ch] = struct{}{} // resync unsubscribes it when the connection is back
	} else {
		s.queue(subOp{ch: ch, unsub: true})
	}
	return nil
}

// A subOp is an SSUBSCRIBE, or an SUNSUBSCRIBE, for the writer to send.
type subOp struct {
	ch    string
	unsub bool
}

// next waits for operations queued for the writer and takes them; false when s closes.
func (s *subscriber) next() ([]subOp, bool) {
	select {
	case <-s.b.stop:
		return nil, false
	case <-s.quit:
		return nil, false
	case <-s.kick:
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	ops := s.ops
	s.ops = nil
	return ops, true
}

// queue hands op to the writer. Called with b.mu held.
func (s *subscriber) queue(op subOp) {
	s.ops = append(s.ops, op)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// write sends the queued operations, in order, until the subscriber closes. When one fails
// (the connection is lost), the rest are dropped: resync redoes what is still wanted once the
// connection is back.
func (s *subscriber) write() {
	defer s.b.subs.Done()
	b := s.b
	ctx := context.Background()
	for {
		ops, ok := s.next()
		if !ok {
			return
		}
		for i, op := range ops {
			var err error
			if op.unsub {
				b.mu.Lock()
				s.unsubs[op.ch]++ // before it is sent: the reply may come at once
				b.mu.Unlock()
				err = s.ps.SUnsubscribe(ctx, op.ch)
			} else {
				err = s.ps.SSubscribe(ctx, op.ch)
			}
			if s.ended() {
				return
			}
			if err != nil {
				s.setDown(ctx, err, ops[i+1:]...)
				break
			}
		}
	}
}

// drop takes s out of the broker's subscribers. Called with b.mu held.
func (s *subscriber) drop() {
	if s.b.shards[s.addr] == s {
		delete(s.b.shards, s.addr)
	}
}

// setDown records that the connection failed (go-redis replaces it): what s knew of its
// state goes, the operations not sent are dropped (the SUNSUBSCRIBEs kept for resync), and
// the Subscribe calls waiting for a channel of s return an error now rather than at their
// timeout.
func (s *subscriber) setDown(ctx context.Context, cause error, unsent ...subOp) {
	b := s.b
	if b.cluster == nil {
		return
	}
	b.mu.Lock()
	s.down = true
	s.wasDown.Store(true)
	clear(s.ok)
	clear(s.unsubs)
	for _, op := range append(unsent, s.ops...) {
		if _, wanted := s.chans[op.ch]; op.unsub && !wanted {
			s.stale[op.ch] = struct{}{}
		}
	}
	s.ops = nil
	err := fmt.Errorf("shard %s unreachable: %w", s.addr, cause)
	for ch := range s.chans {
		b.release(ch, err)
	}
	b.mu.Unlock()
	b.cluster.ReloadState(ctx) // in the background: the shard may have a new master
}

// up records that the connection works, and reports whether it was down.
func (s *subscriber) up() bool {
	if s.b.cluster == nil || !s.wasDown.Load() {
		return false
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	was := s.down
	s.down = false
	s.wasDown.Store(false)
	return was
}

// subscribed handles Redis's confirmation of ch: on the first one on this connection, the
// catch-up of a channel that was subscribed before, and the waiting Subscribe calls. It
// reports whether it was the first.
func (s *subscriber) subscribed(ctx context.Context, ch string) bool {
	b := s.b
	b.mu.Lock()
	if b.shardOf[ch] != s || s.ok[ch] { // moved to another subscriber, or confirmed already
		b.mu.Unlock()
		return false
	}
	s.ok[ch] = true
	p, again := b.pos[ch]
	b.mu.Unlock()
	if again {
		b.catchUp(ctx, ch, p)
	}
	b.confirmed(ch)
	return true
}

// dropped handles an sunsubscribe of ch, and reports whether it was Redis's own doing (the
// slot moved away from this shard) rather than the reply to this node's SUNSUBSCRIBE.
func (s *subscriber) dropped(ctx context.Context, ch string) bool {
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if n := s.unsubs[ch]; n > 0 {
		if n == 1 {
			delete(s.unsubs, ch)
		} else {
			s.unsubs[ch] = n - 1
		}
		return false
	}
	if b.shardOf[ch] != s {
		return false
	}
	delete(s.ok, ch)
	b.cluster.ReloadState(ctx)
	return true
}

// refused handles an error reply: a moved slot makes go-redis reload the cluster's layout
// before resync looks the channels' masters up.
func (s *subscriber) refused(ctx context.Context, err redis.Error) {
	if msg := err.Error(); strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") {
		s.b.cluster.ReloadState(ctx)
	}
}

// resync brings the connection's subscriptions in line with what the node wants. With
// subscribe (the connection works), it unsubscribes the channels left while it was down, moves
// each unconfirmed channel whose slot has another master now to that master's subscriber, and
// subscribes the others again. Without (the connection is down), it moves all the channels or
// none, once the cluster's layout gives their slots a new master: a channel leaves a go-redis
// PubSub only through an SUNSUBSCRIBE, which would wait for a connection. It reports whether
// it handed every channel over, closing s.
func (s *subscriber) resync(ctx context.Context, subscribe bool) (gone bool) {
	b := s.b
	var idle []*subscriber
	b.mu.Lock()
	moved := func(ch string) bool {
		node, err := b.cluster.MasterForKey(ctx, ch)
		return err == nil && node.Options().Addr != s.addr
	}
	follow := func(ch string) { // ch has left s
		t, err := b.shardFor(ctx, ch)
		if err != nil {
			if !errors.Is(err, errClosed) {
				b.opts.Logger.Warn("notify: redisbroker: cannot subscribe", "channel", ch, "err", err)
			}
			return
		}
		t.attach(ch)
	}
	switch {
	case !subscribe:
		if !s.down || !slices.ContainsFunc(slices.Collect(maps.Keys(s.chans)), moved) {
			break
		}
		b.reconnects.Add(1)
		b.opts.Logger.Info("notify: redisbroker: shard has a new master; moving its streams", "shard", s.addr, "streams", len(s.chans))
		s.drop()
		idle = append(idle, s)
		gone = true
		chans := s.chans
		s.chans = map[string]struct{}{}
		for ch := range chans {
			delete(b.shardOf, ch)
			follow(ch)
		}
	case !s.down:
		for ch := range s.stale {
			s.queue(subOp{ch: ch, unsub: true})
		}
		clear(s.stale)
		for ch := range s.chans {
			if s.ok[ch] {
				continue
			}
			if moved(ch) {
				if i := s.remove(ch); i != nil {
					idle = append(idle, i)
				}
				follow(ch)
				continue
			}
			s.queue(subOp{ch: ch})
		}
	}
	b.mu.Unlock()
	for _, i := range idle {
		i.closeLater()
	}
	return gone
}
