package notify

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/olahol/melody"

	"github.com/gonotify/notify/internal/wire"
)

// Hub holds the sessions of one process and delivers events to them. It is an http.Handler
// for the WebSocket endpoint; [Hub.SSE] is the server-sent events one. All methods are safe for
// concurrent use.
//
// The hub's state has owners of its own: the index (which sessions there are, by user and by
// topic), the flusher (frames on their way to melody), each session (with its outbox), the
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
	// presence is Config.Presence, or a localPresence when it is nil.
	presence Presence
	node     string    // this hub's random ID in presence and in commands
	cmds     commander // other nodes' subscription commands
	sse      sseSessions
	tickets  TicketStore
	reqs     *requests // Config.Requests' handlers and recent answers

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
	h.reqs = newRequests(&h.cfg)
	h.m = newMelody(&h.cfg, func(r *http.Request) bool { return originAllowed(&h.cfg, r) })
	h.broker = cfg.Broker
	if h.broker == nil {
		h.broker = newMemoryBroker(cfg.HistorySize, cfg.HistoryTTL, h.holds)
	}
	h.node = NewEpoch()
	h.presence = cfg.Presence
	h.tickets = cfg.Tickets
	if h.tickets == nil {
		h.tickets = newLocalTickets(time.Now)
	}
	if h.presence == nil {
		h.presence = newLocalPresence(time.Now)
	}
	h.watchOffline()
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

// deliver hands a broker's message to this hub's sessions on its stream.
func (h *Hub) deliver(m Message) {
	if isCommand(m) {
		if user, ok := wire.UserOf(m.Stream); ok {
			h.commanded(user, m)
		}
		return
	}
	var ex *excepted // sent with an except (see except.go): each session's frame is ex's
	if hasExcept(m.Payload) {
		var ok bool
		if ex, ok = splitExcept(m); !ok {
			h.cfg.Logger.Error("notify: malformed except", "stream", m.Stream)
			return
		}
		m = ex.m
	}
	frame := m.frameOf()
	x := h.idx
	x.mu.RLock()
	var w wakeList
	var n int
	if m.Stream == wire.Broadcast {
		// A broadcast has no offset and is never buffered for a recovery: it goes straight to
		// the outboxes, without the sessions' stream locks (see session.deliver).
		for _, c := range x.all {
			f := frame
			if ex != nil && c.id == ex.session {
				if f = ex.frameFor(c); f == nil {
					continue
				}
			}
			if c.out.enqueue(f) {
				w.add(h.fl, &c.out)
			}
		}
		n = len(x.all)
	} else if user, ok := wire.UserOf(m.Stream); ok {
		n = h.deliverTo(&w, x.users[user], m, frame, ex)
	} else if topic, ok := wire.TopicOf(m.Stream); ok {
		set := x.topics[topic]
		for s := range set {
			f := frame
			if ex != nil && s.id == ex.session {
				if f = ex.frameFor(s); f == nil {
					continue
				}
			}
			if s.deliver(m.Stream, m.Offset, m.Epoch, f) {
				w.add(h.fl, &s.out)
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

// deliverTo hands the frame to each session, but the one ex leaves out (ex nil: none);
// called with the index's lock held.
func (h *Hub) deliverTo(w *wakeList, sessions []*session, m Message, frame []byte, ex *excepted) int {
	for _, s := range sessions {
		f := frame
		if ex != nil && s.id == ex.session {
			if f = ex.frameFor(s); f == nil {
				continue
			}
		}
		if s.deliver(m.Stream, m.Offset, m.Epoch, f) {
			w.add(h.fl, &s.out)
		}
	}
	return len(sessions)
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
			h.idx.each(func(s *session) {
				if s.out.enqueue(wire.PingFrame) {
					w.add(h.fl, &s.out)
				}
			})
			w.wake(h.fl)
		}
	}
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
		h.idx.each((*session).goAway)
		go h.finish()
	})
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.idx.each(func(s *session) { s.t.cut() })
		return ctx.Err()
	}
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

// LocalSessions returns how many sessions the user has on this hub, this node only.
// [Hub.Presence] lists them on every hub sharing the broker.
func (h *Hub) LocalSessions(userID string) int { return h.idx.count(userID) }

// holds reports whether this hub has a session on a stream: the in-memory broker's Nodes.
func (h *Hub) holds(stream string) bool {
	x := h.idx
	x.mu.RLock()
	defer x.mu.RUnlock()
	if stream == BroadcastStream {
		return true
	}
	if user, ok := StreamUser(stream); ok {
		return len(x.users[user]) > 0
	}
	topic, _ := wire.TopicOf(stream)
	return len(x.topics[topic]) > 0
}

// Stats returns the hub's current state and counters.
func (h *Hub) Stats() Stats {
	var st Stats
	st.Sessions, st.Users, st.Topics = h.idx.sizes()
	st.SSESessions = h.sse.count()
	h.stats.fill(&st)
	st.Deliveries = h.fl.deliveries.Load()
	return st
}

// hubHost is the hub as its sessions' host (see sessionHost): the hub's parts a session
// may use, kept out of Hub's own methods.
type hubHost struct{ h *Hub }

func (x hubHost) settings() *Config                     { return &x.h.cfg }
func (x hubHost) metrics() *counters                    { return &x.h.stats }
func (x hubHost) clock() time.Time                      { return x.h.now() }
func (x hubHost) closing() bool                         { return x.h.closed.Load() }
func (x hubHost) queue(o *outbox)                       { x.h.fl.queueOne(o) }
func (x hubHost) handedOut(n int64)                     { x.h.fl.waiting.Add(n) }
func (x hubHost) leaveAdmission(user string)            { x.h.admit.leave(user) }
func (x hubHost) verify(token string) (Identity, error) { return x.h.auth.verify(token) }

func (x hubHost) checkRefused(ctx context.Context, id Identity) error {
	return x.h.checkRefused(ctx, id)
}

func (x hubHost) subscribe(ctx context.Context, stream string) error {
	return x.h.broker.Subscribe(ctx, stream)
}

func (x hubHost) history(ctx context.Context, stream string, since *Position) (Position, []Message, error) {
	return x.h.broker.History(ctx, stream, since)
}

func (x hubHost) unsubscribe(ctx context.Context, stream string) {
	if err := x.h.broker.Unsubscribe(ctx, stream); err != nil {
		x.h.stats.brokerErrors.Add(1)
		x.h.cfg.Logger.Warn("notify: broker unsubscribe failed", "stream", stream, "err", err)
	}
}

func (x hubHost) joinPresence(ctx context.Context, s SessionInfo) (int, time.Time, error) {
	return x.h.presence.Join(ctx, s)
}

func (x hubHost) leavePresence(ctx context.Context, s SessionInfo) (int, bool, error) {
	return x.h.presence.Leave(ctx, s)
}

func (x hubHost) indexAdd(s *session)                   { x.h.idx.add(s) }
func (x hubHost) indexRemove(s *session) []string       { return x.h.idx.remove(s) }
func (x hubHost) indexClientTopics(s *session) []string { return x.h.idx.clientTopics(s) }
func (x hubHost) indexUnsubscribe(s *session, topic string) bool {
	return x.h.idx.unsubscribe(s, topic)
}
func (x hubHost) indexSubscribe(s *session, topic string, byServer bool) bool {
	return x.h.idx.subscribe(s, topic, byServer)
}
func (x hubHost) indexSubscription(s *session, topic string) (bool, int) {
	return x.h.idx.subscription(s, topic)
}
