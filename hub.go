package notify

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/gonotify/notify/internal/wire"
)

// Hub holds the WebSocket sessions of one process and delivers events to them. It is an
// http.Handler for the WebSocket endpoint. All methods are safe for concurrent use.
//
// The hub's state has owners of its own: the index (which sessions there are, by user and by
// topic), the flusher (frames on their way to melody), each session's conn and outbox, the
// admission counts and the counters. The hub holds them together and runs the lifecycle:
// acceptMu orders the setting of closed with the adding to handlers; closed is read without it
// where that order does not matter (sends, a session's start).
type Hub struct {
	cfg    Config
	auth   *verifier
	m      *melody.Melody
	broker Broker
	idx    *index
	fl     *flusher
	admit  admission // sessions counted against MaxSessions and MaxUserSessions
	stats  counters
	now    func() time.Time // the clock of rate limiting
	// presence is the broker when it implements Presence, a localPresence otherwise.
	presence Presence
	node     string    // this hub's random ID in presence and in commands
	cmds     commander // other nodes' subscription commands

	acceptMu sync.Mutex
	closed   atomic.Bool
	handlers sync.WaitGroup // one per ServeHTTP in flight, until its session ends
	bg       sync.WaitGroup // the hub's own goroutines: the pinger and the flusher
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the shutdown's work is done
}

// startTimeout bounds New's wait for its broker: connecting and subscribing to broadcasts.
const startTimeout = 10 * time.Second

// New returns a hub configured by cfg, or the configuration mistake it found. It connects its
// broker within 10 seconds.
func New(cfg Config) (*Hub, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	h := &Hub{cfg: cfg, idx: newIndex(), fl: newFlusher(), now: time.Now,
		admit: admission{maxTotal: cfg.MaxSessions, maxUser: cfg.MaxUserSessions},
		stop:  make(chan struct{}), done: make(chan struct{})}
	h.auth = newVerifier(&h.cfg)
	h.m = h.newMelody()
	h.broker = cfg.Broker
	if h.broker == nil {
		h.broker = newMemoryBroker(cfg.HistorySize, cfg.HistoryTTL)
	}
	h.node = NewEpoch()
	if p, ok := h.broker.(Presence); ok {
		h.presence = p
	} else {
		h.presence = newLocalPresence(time.Now)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := h.broker.Start(ctx, h.deliver); err != nil {
		return nil, fmt.Errorf("notify: start broker: %w", err)
	}
	if err := h.broker.Subscribe(ctx, wire.Broadcast); err != nil {
		_ = h.broker.Close()
		return nil, fmt.Errorf("notify: subscribe to broadcasts: %w", err)
	}
	h.bg.Add(2)
	go func() {
		defer h.bg.Done()
		h.pinger()
	}()
	go func() {
		defer h.bg.Done()
		h.fl.run(h.stop)
	}()
	return h, nil
}

// newMelody configures melody for the hub's sessions.
func (h *Hub) newMelody() *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = h.cfg.MaxMessageSize
	m.Config.PingPeriod = h.cfg.PingInterval
	m.Config.PongWait = 2*h.cfg.PingInterval + 10*time.Second
	m.Config.WriteWait = h.cfg.WriteTimeout
	// At most one data frame per session waits in melody (see outbox), plus close frames.
	m.Config.MessageBufferSize = 4
	m.Upgrader = &websocket.Upgrader{
		// Clients send little (subscriptions, token refreshes); larger messages are read in
		// several pieces. Writes use the small buffer detachedWriter.Hijack hands over (no
		// WriteBufferSize and no pool: a pooled buffer would cost an allocation per write,
		// and with it the writer's share of the collector's work while it runs).
		ReadBufferSize: 256,
		Subprotocols:   []string{Subprotocol},
		CheckOrigin:    h.originAllowed,
	}
	m.HandleConnect(func(s *melody.Session) {
		limitUnsent(s.WebsocketConnection().NetConn())
		h.connected(s)
	})
	m.HandleDisconnect(h.disconnected)
	m.HandleMessage(h.received)
	m.HandleMessageBinary(h.receivedBinary)
	m.HandleSentMessage(func(s *melody.Session, msg []byte) {
		h.stats.written(len(msg))
		if c := connOf(s); c != nil {
			c.out.sent()
		}
	})
	m.HandleError(h.sessionError)
	return m
}

// deliver hands a broker's message to this hub's sessions on its stream.
func (h *Hub) deliver(m Message) {
	if isCommand(m) {
		if user, ok := wire.UserOf(m.Stream); ok {
			h.commanded(user, m)
		}
		return
	}
	frame := m.frameOf()
	x := h.idx
	x.mu.RLock()
	var w wakeList
	var n int
	if m.Stream == wire.Broadcast {
		// A broadcast has no offset and is never buffered for a recovery: it goes straight to
		// the outboxes, without the sessions' stream locks (see conn.deliver).
		for _, c := range x.all {
			if c.out.enqueue(frame) {
				w.add(h.fl, &c.out)
			}
		}
		n = len(x.all)
	} else if user, ok := wire.UserOf(m.Stream); ok {
		n = h.deliverTo(&w, x.users[user], m, frame)
	} else if topic, ok := wire.TopicOf(m.Stream); ok {
		set := x.topics[topic]
		for c := range set {
			if c.deliver(m.Stream, m.Offset, m.Epoch, frame) {
				w.add(h.fl, &c.out)
			}
		}
		n = len(set)
	}
	h.fl.delivered(n)
	w.wake(h.fl)
	x.mu.RUnlock()
	// After the delivery, not before: an event whose delivery waited for a yield would carry
	// the time the writes of a whole round took.
	h.fl.pace(runtime.Gosched)
}

// deliverTo hands the frame to each session; called with the index's lock held.
func (h *Hub) deliverTo(w *wakeList, conns []*conn, m Message, frame []byte) int {
	for _, c := range conns {
		if c.deliver(m.Stream, m.Offset, m.Epoch, frame) {
			w.add(h.fl, &c.out)
		}
	}
	return len(conns)
}

// pinger sends the in-band ping that lets browsers detect a dead connection.
func (h *Hub) pinger() {
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			var w wakeList
			h.idx.each(func(c *conn) {
				if c.out.enqueue(wire.PingFrame) {
					w.add(h.fl, &c.out)
				}
			})
			w.wake(h.fl)
		}
	}
}

// slowConsumer counts and logs a session its outbox closed as a slow consumer.
func (h *Hub) slowConsumer(c *conn, queued int) {
	h.stats.slow.Add(1)
	h.cfg.Logger.Warn("notify: closing slow consumer", "user", c.user, "session", c.id, "queued_bytes", queued)
}

// Shutdown stops accepting sessions, closes every session with code 1001 (going away,
// reconnect), and waits for the sessions and the hub's goroutines to end and for its broker
// to close. When ctx ends first it cuts the connections that remain and returns ctx.Err() at
// once; what is left of the work ends shortly after, on its own. It is safe to call more than
// once, and every call waits as described.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.acceptMu.Lock()
		h.closed.Store(true)
		h.acceptMu.Unlock()
		close(h.stop)
		h.idx.each(h.goAway)
		go h.finish()
	})
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.idx.each(func(c *conn) { _ = c.s.WebsocketConnection().Close() })
		return ctx.Err()
	}
}

// goAway tells a session how long to spread its reconnect over, then closes it with 1001.
func (h *Hub) goAway(c *conn) {
	c.out.send(wire.Control{Op: "goaway", Reconnect: int64((h.cfg.ReconnectSpread + time.Second - 1) / time.Second)}.Frame())
	c.close(closeGoingAway)
}

// finish waits for the sessions and the hub's goroutines, then closes melody and the broker.
func (h *Hub) finish() {
	defer close(h.done)
	h.handlers.Wait()
	h.cmds.wg.Wait()
	h.bg.Wait()
	_ = h.m.Close()
	if err := h.broker.Close(); err != nil {
		h.cfg.Logger.Warn("notify: closing broker", "err", err)
	}
}

// Online reports whether the user has at least one session on this hub. [Hub.Presence]
// answers for every hub sharing the broker.
func (h *Hub) Online(userID string) bool { return h.Sessions(userID) > 0 }

// Sessions returns how many sessions the user has on this hub. [Hub.Presence] lists them on
// every hub sharing the broker.
func (h *Hub) Sessions(userID string) int { return h.idx.count(userID) }

// Stats returns the hub's current state and counters.
func (h *Hub) Stats() Stats {
	var st Stats
	st.Sessions, st.Users, st.Topics = h.idx.sizes()
	h.stats.fill(&st)
	st.Deliveries = h.fl.deliveries.Load()
	if r, ok := h.broker.(interface{ Reconnects() uint64 }); ok {
		st.BrokerReconnects = r.Reconnects()
	}
	return st
}
