package redisbroker

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// A subscriber is one subscriber connection and the goroutine that reads it: with a single
// Redis the broker has one, for every channel; on a cluster, one per shard (see cluster.go).
type subscriber struct {
	b    *Broker
	ps   *redis.PubSub
	quit chan struct{} // closed by close
	once sync.Once

	// Guarded by b.mu, on a single Redis and on a cluster:
	ops  []subOp       // for the writer to send
	kick chan struct{} // capacity 1: ops were queued

	// On a cluster only, guarded by b.mu:
	addr    string              // the shard master's address
	chans   map[string]struct{} // the channels this node wants through this connection
	ok      map[string]bool     // those Redis confirmed on the current connection
	unsubs  map[string]int      // SUNSUBSCRIBE replies expected, per channel
	stale   map[string]struct{} // channels left while the connection was down, for resync to unsubscribe
	down    bool                // the connection failed and is not back yet
	wasDown atomic.Bool         // down, for receive to read without b.mu on every message
}

// closeLater closes s in the background: go-redis's Close waits for a dial in progress.
func (s *subscriber) closeLater() {
	if s == nil {
		return
	}
	s.b.subs.Add(1) // while s's own goroutines still count: Close's Wait is not at zero
	go func() {
		defer s.b.subs.Done()
		_ = s.close()
	}()
}

// close closes the connection and ends receive; it may be called more than once.
func (s *subscriber) close() error {
	if s == nil {
		return nil
	}
	var err error
	s.once.Do(func() {
		close(s.quit)
		err = s.ps.Close()
	})
	return err
}

func (s *subscriber) ended() bool {
	select {
	case <-s.b.stop:
		return true
	case <-s.quit:
		return true
	default:
		return false
	}
}

// receive reads the subscriber connection until Close; go-redis reconnects it and
// resubscribes its channels after an error. Messages published while the connection was down
// never reach this node through the channel, so when a channel is subscribed again, receive
// reads what came after its position from the stream's history (see catchUp).
//
// On a cluster, go-redis's resubscription is not enough (see cluster.go): when the connection
// is back, resync subscribes again every channel not confirmed on it, and an error reply
// (CLUSTERDOWN, MOVED...) makes it do so again after a backoff.
func (s *subscriber) receive() {
	defer s.b.subs.Done()
	b := s.b
	ctx := context.Background()
	lost := false
	backoff := 50 * time.Millisecond
	var retryAt time.Time // cluster: when to resync after an error reply
	retryBackoff := 50 * time.Millisecond
	for {
		timeout := 30 * time.Second
		if !retryAt.IsZero() {
			timeout = max(time.Until(retryAt), time.Millisecond)
		}
		msg, err := s.ps.ReceiveTimeout(ctx, timeout)
		if s.ended() {
			return
		}
		var refused redis.Error
		switch {
		case err == nil || (b.cluster != nil && errors.As(err, &refused)):
			// A message, or an error reply: the connection works.
			if lost {
				lost, backoff = false, 50*time.Millisecond
				b.reconnects.Add(1)
				b.opts.Logger.Info("notify: redisbroker: reconnected, resubscribed streams", s.logAttrs("streams", s.streams())...)
			}
			if s.up() {
				s.resync(ctx, true)
			}
		case isTimeout(err):
			if retryAt.IsZero() {
				// Keeps an idle connection checked; go-redis reconnects it when this fails.
				if err := s.ps.Ping(ctx); err != nil && b.cluster != nil {
					lost = true
					s.setDown(ctx, err)
				}
			}
		default:
			if !lost {
				lost = true
				b.opts.Logger.Warn("notify: redisbroker: lost the subscriber connection", s.logAttrs("err", err)...)
			}
			s.setDown(ctx, err)
			if !s.wait(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		if refused != nil {
			// CROSSSLOT answers go-redis's resubscription, which resync has replaced already.
			if !strings.HasPrefix(refused.Error(), "CROSSSLOT") {
				level := slog.LevelDebug
				if retryBackoff == 2*time.Second {
					level = slog.LevelWarn // not a passing state
				}
				b.opts.Logger.Log(ctx, level, "notify: redisbroker: Redis refused a subscription; subscribing again",
					s.logAttrs("err", refused, "in", retryBackoff)...)
				s.refused(ctx, refused)
				if retryAt.IsZero() {
					retryAt = time.Now().Add(retryBackoff)
					retryBackoff = min(2*retryBackoff, 2*time.Second)
				}
			}
			continue
		}
		if !retryAt.IsZero() && !time.Now().Before(retryAt) {
			retryAt = time.Time{}
			s.resync(ctx, true)
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			switch m.Kind {
			case "subscribe":
				// A first subscription has no position yet (History gives it one); a channel
				// with one was subscribed before and is again, after an outage.
				b.mu.Lock()
				p, again := b.pos[m.Channel]
				b.mu.Unlock()
				if again {
					b.catchUp(ctx, m.Channel, p)
				}
				b.confirmed(m.Channel)
			case "ssubscribe":
				if s.subscribed(ctx, m.Channel) {
					retryBackoff = 50 * time.Millisecond
				}
			case "sunsubscribe":
				if s.dropped(ctx, m.Channel) && retryAt.IsZero() {
					retryAt = time.Now().Add(retryBackoff)
					retryBackoff = min(2*retryBackoff, 2*time.Second)
				}
			}
		case *redis.Message:
			b.received.Add(1)
			if nm, ok := b.parse(m); ok {
				if nm.Offset > 0 {
					b.advance(m.Channel, notify.Position{Offset: nm.Offset, Epoch: nm.Epoch}, true)
				}
				b.deliver(nm)
			}
		}
	}
}

// wait waits d before the next attempt to reconnect, and reports false when the subscriber
// is closed or hands its channels over meanwhile. On a cluster it looks every 250 ms whether
// the shard has a new master (a failover), and asks go-redis to reload the cluster's layout
// every second: once it names one, resync moves the channels there.
func (s *subscriber) wait(ctx context.Context, d time.Duration) bool {
	end := time.Now().Add(d)
	for i := 1; ; i++ {
		step := time.Until(end)
		if s.b.cluster != nil {
			step = min(step, 250*time.Millisecond)
		}
		select {
		case <-s.b.stop:
			return false
		case <-s.quit:
			return false
		case <-time.After(step):
		}
		if s.b.cluster != nil {
			if s.resync(ctx, false) {
				return false
			}
			if i%4 == 0 {
				s.b.cluster.ReloadState(ctx)
			}
		}
		if !time.Now().Before(end) {
			return true
		}
	}
}

// writeSingle sends the SUBSCRIBEs and UNSUBSCRIBEs queued on a single Redis's subscriber, in
// order, until the subscriber closes: a run of subscriptions queued meanwhile (a burst of
// connects) leaves in one command. b.mu is not held across a write, in which go-redis dials
// when the connection is down. A SUBSCRIBE that cannot be sent fails the Subscribe calls
// waiting for its channels at once; go-redis keeps the channels in its set and subscribes them
// when it reconnects, unless the hub's Unsubscribe, which follows such a failure, comes first.
func (s *subscriber) writeSingle() {
	defer s.b.subs.Done()
	b := s.b
	ctx := context.Background()
	var chans []string
	for {
		ops, ok := s.next()
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
				err = s.ps.Unsubscribe(ctx, chans...)
			} else {
				err = s.ps.Subscribe(ctx, chans...)
			}
			if s.ended() {
				return
			}
			if err != nil && !ops[0].unsub {
				b.mu.Lock()
				for _, ch := range chans {
					b.release(ch, err)
				}
				b.mu.Unlock()
			}
			ops = ops[n:]
		}
	}
}

func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// streams is how many streams the connection serves, for the logs.
func (s *subscriber) streams() int {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if s.b.cluster != nil {
		return len(s.chans)
	}
	return len(s.b.refs)
}

func (s *subscriber) logAttrs(args ...any) []any {
	if s.addr != "" {
		args = append(args, "shard", s.addr)
	}
	return args
}
