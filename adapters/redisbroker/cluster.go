package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
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
// go-redis's DialTimeout) never holds the subscriber's mu, which every shard's delivery takes.
//
// What can go wrong, and what the subscriber does (see conn.receive):
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

// shardSubscribe subscribes ch on the conn of its slot's master, creating it. While that
// connection is down it fails at once: the session waits for the shard (1013). Called with
// s.mu held; it queues the SSUBSCRIBE for the conn's writer, so that no dial to a master that
// went away holds s.mu, and with it every other shard's delivery.
func (s *subscriber) shardSubscribe(ctx context.Context, ch string) error {
	c, err := s.shardFor(ctx, ch)
	if err != nil {
		return err
	}
	if c.down {
		return fmt.Errorf("shard %s unreachable", c.addr)
	}
	c.attach(ch)
	return nil
}

// shardFor returns the conn of ch's slot's master, creating it. Called with s.mu held.
func (s *subscriber) shardFor(ctx context.Context, ch string) (*conn, error) {
	node, err := s.cluster.MasterForKey(ctx, ch)
	if err != nil {
		return nil, err
	}
	addr := node.Options().Addr
	if c := s.shards[addr]; c != nil {
		return c, nil
	}
	if s.closed {
		return nil, errClosed
	}
	c := &conn{sub: s, ps: node.SSubscribe(context.Background()), quit: make(chan struct{}), addr: addr,
		chans: map[string]struct{}{}, ok: map[string]bool{}, unsubs: map[string]int{}, stale: map[string]struct{}{},
		kick: make(chan struct{}, 1)}
	s.shards[addr] = c
	s.wg.Add(2)
	go c.receive()
	go c.write()
	return c, nil
}

// attach makes c the conn of ch and queues its SSUBSCRIBE, unless the connection is down:
// then resync subscribes it once the connection is back. Called with sub.mu held.
func (c *conn) attach(ch string) {
	delete(c.stale, ch)
	c.chans[ch] = struct{}{}
	c.sub.shardOf[ch] = c
	if !c.down {
		c.queue(subOp{ch: ch})
	}
}

// remove unsubscribes ch. The last channel closes the connection instead: remove then returns
// c, for the caller to close (closeLater) once sub.mu is released. Called with sub.mu held.
func (c *conn) remove(ch string) (idle *conn) {
	s := c.sub
	delete(c.chans, ch)
	delete(c.ok, ch)
	if s.shardOf[ch] == c {
		delete(s.shardOf, ch)
	}
	if len(c.chans) == 0 {
		c.drop()
		return c
	}
	if c.down {
		c.stale[ch] = struct{}{} // resync unsubscribes it when the connection is back
	} else {
		c.queue(subOp{ch: ch, unsub: true})
	}
	return nil
}

// write sends the queued operations, in order, until the conn closes. When one fails (the
// connection is lost), the rest are dropped: resync redoes what is still wanted once the
// connection is back.
func (c *conn) write() {
	defer c.sub.wg.Done()
	ctx := context.Background()
	for {
		ops, ok := c.next()
		if !ok {
			return
		}
		for i, op := range ops {
			var err error
			if op.unsub {
				c.sub.mu.Lock()
				c.unsubs[op.ch]++ // before it is sent: the reply may come at once
				c.sub.mu.Unlock()
				err = c.ps.SUnsubscribe(ctx, op.ch)
			} else {
				err = c.ps.SSubscribe(ctx, op.ch)
			}
			if c.ended() {
				return
			}
			if err != nil {
				c.setDown(ctx, err, ops[i+1:]...)
				break
			}
		}
	}
}

// drop takes c out of the subscriber's conns. Called with sub.mu held.
func (c *conn) drop() {
	if c.sub.shards[c.addr] == c {
		delete(c.sub.shards, c.addr)
	}
}

// setDown records that the connection failed (go-redis replaces it): what c knew of its state
// goes, the operations not sent are dropped (the SUNSUBSCRIBEs kept for resync), and the
// Subscribe calls waiting for a channel of c return an error now rather than at their timeout.
func (c *conn) setDown(ctx context.Context, cause error, unsent ...subOp) {
	s := c.sub
	if s.cluster == nil {
		return
	}
	s.mu.Lock()
	c.down = true
	c.wasDown.Store(true)
	clear(c.ok)
	clear(c.unsubs)
	for _, op := range append(unsent, c.ops...) {
		if _, wanted := c.chans[op.ch]; op.unsub && !wanted {
			c.stale[op.ch] = struct{}{}
		}
	}
	c.ops = nil
	err := fmt.Errorf("shard %s unreachable: %w", c.addr, cause)
	for ch := range c.chans {
		s.release(ch, err)
	}
	s.mu.Unlock()
	s.cluster.ReloadState(ctx) // in the background: the shard may have a new master
}

// up records that the connection works, and reports whether it was down.
func (c *conn) up() bool {
	if c.sub.cluster == nil || !c.wasDown.Load() {
		return false
	}
	c.sub.mu.Lock()
	defer c.sub.mu.Unlock()
	was := c.down
	c.down = false
	c.wasDown.Store(false)
	return was
}

// subscribed handles Redis's confirmation of ch: on the first one on this connection, the
// catch-up of a channel that was subscribed before, and the waiting Subscribe calls. It
// reports whether it was the first.
func (c *conn) subscribed(ctx context.Context, ch string) bool {
	s := c.sub
	s.mu.Lock()
	if s.shardOf[ch] != c || c.ok[ch] { // moved to another conn, or confirmed already
		s.mu.Unlock()
		return false
	}
	c.ok[ch] = true
	var p notify.Position
	pp := s.pos[ch]
	if pp != nil {
		p = *pp
	}
	s.mu.Unlock()
	s.confirmed(ctx, ch, p, pp != nil)
	return true
}

// dropped handles an sunsubscribe of ch, and reports whether it was Redis's own doing (the
// slot moved away from this shard) rather than the reply to this node's SUNSUBSCRIBE.
func (c *conn) dropped(ctx context.Context, ch string) bool {
	s := c.sub
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := c.unsubs[ch]; n > 0 {
		if n == 1 {
			delete(c.unsubs, ch)
		} else {
			c.unsubs[ch] = n - 1
		}
		return false
	}
	if s.shardOf[ch] != c {
		return false
	}
	delete(c.ok, ch)
	s.cluster.ReloadState(ctx)
	return true
}

// refused handles an error reply: a moved slot makes go-redis reload the cluster's layout
// before resync looks the channels' masters up.
func (c *conn) refused(ctx context.Context, err redis.Error) {
	if msg := err.Error(); strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ") {
		c.sub.cluster.ReloadState(ctx)
	}
}

// resync brings the connection's subscriptions in line with what the node wants. With
// subscribe (the connection works), it unsubscribes the channels left while it was down, moves
// each unconfirmed channel whose slot has another master now to that master's conn, and
// subscribes the others again. Without (the connection is down), it moves all the channels or
// none, once the cluster's layout gives their slots a new master: a channel leaves a go-redis
// PubSub only through an SUNSUBSCRIBE, which would wait for a connection. It reports whether
// it handed every channel over, closing c.
func (c *conn) resync(ctx context.Context, subscribe bool) (gone bool) {
	s := c.sub
	var idle []*conn
	s.mu.Lock()
	moved := func(ch string) bool {
		node, err := s.cluster.MasterForKey(ctx, ch)
		return err == nil && node.Options().Addr != c.addr
	}
	follow := func(ch string) { // ch has left c
		t, err := s.shardFor(ctx, ch)
		if err != nil {
			if !errors.Is(err, errClosed) {
				s.log.Warn("notify: redisbroker: cannot subscribe", "channel", ch, "err", err)
			}
			return
		}
		t.attach(ch)
	}
	switch {
	case !subscribe:
		if !c.down || !slices.ContainsFunc(slices.Collect(maps.Keys(c.chans)), moved) {
			break
		}
		s.reconnects.Add(1)
		s.log.Info("notify: redisbroker: shard has a new master; moving its streams", "shard", c.addr, "streams", len(c.chans))
		c.drop()
		idle = append(idle, c)
		gone = true
		chans := c.chans
		c.chans = map[string]struct{}{}
		for ch := range chans {
			delete(s.shardOf, ch)
			follow(ch)
		}
	case !c.down:
		for ch := range c.stale {
			c.queue(subOp{ch: ch, unsub: true})
		}
		clear(c.stale)
		for ch := range c.chans {
			if c.ok[ch] {
				continue
			}
			if moved(ch) {
				if i := c.remove(ch); i != nil {
					idle = append(idle, i)
				}
				follow(ch)
				continue
			}
			c.queue(subOp{ch: ch})
		}
	}
	s.mu.Unlock()
	for _, i := range idle {
		i.closeLater()
	}
	return gone
}
