package notify

import (
	"context"
	"log/slog"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// A session's life: the hub admits it (newSession), subscribeUserFirst, joinPresence, then the
// transport connects (connected) and feeds it messages (see messages.go) until it is over;
// teardown gives back what was taken on the way, each once, in the reverse order.

// subscribeUserFirst subscribes the hub to the user stream before presence is joined, and
// keeps the answer for connected: the broker's Join then runs with the stream subscribed, so
// that a broker may read the stream's position in the join's step and answer connected's
// History without another round trip (adapters/redisbroker does). A connect makes as many
// round trips in a row as when the subscription went beside the join and the History after
// it.
func (s *session) subscribeUserFirst(ctx context.Context) {
	s.held |= heldUserStream
	s.presubErr = s.host.subscribe(ctx, wire.UserStream(s.user))
}

// joinPresence records the session in presence and returns the time before which the user's
// tokens are refused and the user's sessions in the cluster with this one, read in the same
// step. When presence cannot be reached, joined is false and the session goes on, to be
// turned away with 1013 before its welcome like a session whose stream the broker cannot
// subscribe (see connected).
func (s *session) joinPresence(ctx context.Context, node string, kind transportKind) (refusedBefore time.Time, sessions int, joined bool) {
	s.info = SessionInfo{ID: s.id, UserID: s.user, Node: node, ConnectedAt: time.Now().Truncate(time.Millisecond),
		Transport: kind.String()}
	n, before, err := s.host.joinPresence(ctx, s.info)
	if err != nil {
		s.host.metrics().brokerErrors.Add(1)
		s.joinErr = err
		return time.Time{}, 0, false
	}
	s.held |= heldPresence
	s.first = n == 1
	return before, n, true
}

// connected starts the session once its transport is up, on the goroutine that will read its
// messages: the welcome, with the user stream's recovery, then the application's
// subscriptions, then the hooks. A session that cannot be served is turned away with 1013.
func (s *session) connected(ctx context.Context, t transport) {
	s.t, s.out.sink, s.ctx = t, t, ctx
	s.held |= heldConnection
	cfg := s.host.settings()
	if s.joinErr != nil {
		s.turnAway("notify: session refused, presence unavailable", s.joinErr)
		return
	}
	var topics []string
	if cfg.Subscriptions != nil {
		var err error
		if topics, err = cfg.Subscriptions(ctx, s.ident); err != nil {
			s.turnAway("notify: session refused, Config.Subscriptions failed", err)
			return
		}
	}
	stream := wire.UserStream(s.user)
	// Until the welcome is queued every frame waits, and the user stream's are buffered so
	// that the replay and the live events meet without a gap or a duplicate.
	s.bufferStream(stream, true)
	s.host.indexAdd(s)
	s.held |= heldIndex
	pos, replay, recovered, err := s.readStream(ctx, stream, s.since, s.subscribeUser(ctx))
	if err != nil {
		// Without the stream's subscription and position, events the broker accepts from now
		// on could be lost without the client knowing: it reconnects later and recovers.
		s.turnAway("notify: session refused, broker unavailable", err)
		return
	}
	s.welcomed = true
	s.host.metrics().connects[s.t.kind()].Add(1)
	grants, expires := s.token()
	welcome := wire.Control{Op: "welcome", User: s.user, Session: s.id, Ping: int64(cfg.PingInterval / time.Second),
		Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered}
	if !expires.IsZero() {
		welcome.Exp = expires.Unix()
	}
	s.start(stream, welcome.Frame(), replay, pos)
	s.schedule(grants, expires)
	if s.host.closing() {
		s.goAway()
	}
	// The application's subscriptions, before the client's first message is read.
	for _, t := range topics {
		if p := topicProblem(t); p != "" {
			cfg.Logger.Warn("notify: Config.Subscriptions returned an invalid topic", "topic", t, "problem", p)
			continue
		}
		if _, err := s.join(ctx, t, s.topicSince[t], true); err != nil {
			s.out.send(wire.Error(wire.CodeUnavailable, t, "broker unavailable, try again later"))
		}
	}
	s.topicSince = nil
	if cfg.Logger.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		cfg.Logger.Debug("notify: session connected", "user", s.user, "session", s.id)
	}
	s.host.metrics().present.Add(1)
	if cfg.OnSessionStart != nil {
		cfg.OnSessionStart(s.ident, s.info)
	}
	if s.first {
		s.cameOnline()
	}
	if !s.keepsIdentity() {
		s.ident = Identity{UserID: s.user} // let the claims go
	}
}

// subscribeUser subscribes the hub to the user stream, or takes the answer of the
// subscription subscribeUserFirst made (the stream is held already).
func (s *session) subscribeUser(ctx context.Context) error {
	if s.held&heldUserStream != 0 {
		return s.presubErr
	}
	s.held |= heldUserStream
	return s.host.subscribe(ctx, wire.UserStream(s.user))
}

// turnAway ends a session before its welcome with 1013 (try again later): the user stream's
// subscription goes first, then the connection, with nothing of what was pending.
func (s *session) turnAway(msg string, err error) {
	s.host.settings().Logger.Warn(msg, "user", s.user, "err", err)
	s.unsubscribeUser(s.ctx)
	s.out.abort(CloseTryAgain)
}

// teardown gives back what the session holds, in the reverse order of the setup, each once:
// the connection's end (its counters, its timer), the index and the topics' subscriptions,
// the user stream's subscription, presence with the hooks of the session's end, and the
// admission. It runs once the session is over, or refused before its transport connected.
//
// It is a function of its own so that its locals are not in the frame of serve, which stays
// on the stack of every session for its whole life, where a larger frame keeps more sessions'
// stacks from shrinking at a collection (bench S4, three rounds against the code with them
// inline in serve: goroutine stacks 7.1 against 7.8 KB per idle connection, medians).
func (s *session) teardown() {
	cfg := s.host.settings()
	ctx := context.Background()
	connected := s.giveBack(heldConnection)
	s.reqs.stop() // the handlers' context ends; they are waited for last
	if connected {
		ctx = s.ctx
		s.host.metrics().disconnected(s.t.kind(), s.out.endCode())
		s.close(CloseNormal) // stops the timer; a no-op on the wire after a close
	}
	if s.giveBack(heldIndex) {
		for _, t := range s.host.indexRemove(s) {
			s.host.unsubscribe(ctx, wire.TopicStream(t))
		}
	}
	s.unsubscribeUser(ctx)
	if connected && cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		cfg.Logger.Debug("notify: session disconnected", "user", s.user, "session", s.id)
	}
	if s.giveBack(heldPresence) {
		s.leavePresence()
	}
	if s.giveBack(heldAdmission) {
		s.host.leaveAdmission(s.user)
	}
	s.reqs.wait()
}

// giveBack reports whether the session holds h, and marks it given back.
func (s *session) giveBack(h held) bool {
	had := s.held&h != 0
	s.held &^= h
	return had
}

// unsubscribeUser undoes the user stream's subscription, once its Subscribe has returned (a
// Subscribe is undone whether it succeeded or not, see Broker.Subscribe). A no-op when there
// is none.
func (s *session) unsubscribeUser(ctx context.Context) {
	if !s.giveBack(heldUserStream) {
		return
	}
	s.host.unsubscribe(ctx, wire.UserStream(s.user))
}

// leaveTimeout bounds the removal of an ended session from presence; past it the entry
// expires on its own (see Presence.Join).
const leaveTimeout = 5 * time.Second

// leavePresence removes the session from presence and runs the hooks of its end: OnSessionEnd
// for a welcomed session, and OnOffline when it was the user's last one anywhere.
func (s *session) leavePresence() {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	cfg, stats := s.host.settings(), s.host.metrics()
	n, removed, err := s.host.leavePresence(ctx, s.info)
	if err != nil {
		// Its entry expires on its own: this node no longer keeps it alive.
		stats.brokerErrors.Add(1)
		cfg.Logger.Warn("notify: presence leave failed", "user", s.user, "session", s.id, "err", err)
	}
	if !s.welcomed {
		// It was the user's first session anywhere, but failed before reporting the user
		// online; if others joined meanwhile, the user is online, and the report is due here.
		if err == nil && removed && s.first && n > 0 {
			s.cameOnline()
		}
		// It was not the first: the user is online (another session reported it), and if the
		// others left meanwhile, their leaves counted this one, and the report is due here.
		if err == nil && removed && !s.first && n == 0 {
			s.wentOffline()
		}
		return
	}
	stats.present.Add(-1)
	if cfg.OnSessionEnd != nil {
		cfg.OnSessionEnd(s.ident, s.info)
	}
	if err == nil && removed && n == 0 {
		s.wentOffline()
	}
}

// wentOffline counts and reports the user's last session anywhere ending.
func (s *session) wentOffline() {
	s.host.metrics().offline.Add(1)
	if off := s.host.settings().OnOffline; off != nil {
		off(s.user)
	}
}

// cameOnline counts and reports the user's first session anywhere.
func (s *session) cameOnline() {
	s.host.metrics().online.Add(1)
	if on := s.host.settings().OnOnline; on != nil {
		on(s.user)
	}
}

// start writes the welcome through the transport and then flushes the user stream's recovery
// like flushRecovered. It runs on the transport's connect, before anything else can write:
// every other frame waits for the flush.
func (s *session) start(stream string, welcome []byte, replay [][]byte, upTo Position) {
	if err := s.t.welcome(welcome, s.host.settings().WriteTimeout); err != nil {
		// The connection is broken: the transport's read loop ends the session.
		s.out.broken()
		s.t.cut()
	} else {
		s.host.metrics().written(len(welcome))
	}
	s.flushRecovered(stream, nil, replay, upTo)
}

// goAway tells the session how long to spread its reconnect over, then closes it with 1001.
func (s *session) goAway() {
	spread := s.host.settings().ReconnectSpread
	s.out.send(wire.Control{Op: "goaway", Reconnect: int64((spread + time.Second - 1) / time.Second)}.Frame())
	s.close(CloseGoingAway)
}
