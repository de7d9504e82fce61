package notify

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// session is one client's connection to the hub: who it is, what its token allows, its
// streams' recovery state, its outbox, and what it holds outside itself, which teardown gives
// back. It reaches the hub only through sessionHost and its client only through a transport.
// Which topics it is subscribed to is the hub's index's (see index).
//
// Its state is grouped by owner:
//   - Identity: set by newSession and never changed.
//   - Connection: set by connected, before the session is indexed or reads a message.
//   - Lifecycle: owned by the goroutine that sets the session up and tears it down (ServeHTTP,
//     then serve, on which the transport's connect runs).
//   - Read: owned by the transport's read loop.
//   - Streams: guarded by streamMu. Token: guarded by tokenMu. Each is taken before the
//     outbox's lock, never after it, and neither is held while taking the other; streamMu
//     orders a stream's frames into the outbox as deliver saw them.
type session struct {
	// Identity.
	host sessionHost
	id   string
	user string
	out  outbox

	// Connection.
	t   transport
	ctx context.Context // for broker calls on the read loop (see Hub.ServeHTTP)

	// Lifecycle.
	held  held      // what the session holds outside itself, for teardown
	since *Position // the user stream's recovery position asked at connect
	// topicSince holds the recovery positions of server-made subscriptions asked at connect.
	topicSince map[string]*Position
	// ident is the session's identity, for Config.Topics and the session hooks; info is its
	// presence record, first whether it was the user's first session anywhere when it joined,
	// joinErr why joining presence failed.
	ident   Identity
	info    SessionInfo
	first   bool
	joinErr error
	// presub, with a broker other than the in-memory one, answers the user stream's Subscribe
	// started while presence is joined (subscribeUserAhead); whoever takes the answer
	// (connected, or teardown) waits for that goroutine.
	presub   chan error
	welcomed bool

	// Read.
	strikes int    // bad messages in a row
	limit   bucket // the message rate limit

	// Streams.
	streamMu sync.Mutex
	// buffers holds a stream's live frames while the stream's history is read for recovery.
	buffers map[string][]buffered
	// userLast and topicLast are each stream's position last sent: a broker may deliver a
	// message the history already replayed (Redis pub/sub trails the history read), and it
	// must not go out twice. The user stream's is a field: every session has one.
	userLast  Position
	topicLast map[string]Position

	// Token.
	tokenMu sync.Mutex
	grants  []string
	expires time.Time
	iat     time.Time   // the current token's issue time, for the sweep of Hub.Disconnect
	timer   *time.Timer // the expiry warning, then the expiry close
	closed  bool
}

// sessionHost is what a session needs from its hub.
type sessionHost interface {
	settings() *Config
	metrics() *counters
	clock() time.Time // rate limiting's
	closing() bool    // Shutdown has begun
	// queue and handedOut serve the session's outbox (see outboxHost).
	queue(o *outbox)
	handedOut(n int64)
	index() *index
	// subscribe, history and unsubscribe are the broker's; unsubscribe counts and logs its
	// failure.
	subscribe(ctx context.Context, stream string) error
	history(ctx context.Context, stream string, since *Position) (Position, []Message, error)
	unsubscribe(ctx context.Context, stream string)
	joinPresence(ctx context.Context, s SessionInfo) (sessions int, refusedBefore time.Time, err error)
	leavePresence(ctx context.Context, s SessionInfo) (sessions int, removed bool, err error)
	verify(token string) (Identity, error)
	checkRefused(ctx context.Context, id Identity) error
	// leaveAdmission uncounts a session the hub admitted.
	leaveAdmission(user string)
}

// held is what a session holds outside itself: a bit is set once the thing is taken, and
// teardown gives back what is set, each once, in the reverse order of the setup.
type held uint8

const (
	heldAdmission  held = 1 << iota // counted by the hub's admission
	heldPresence                    // recorded in presence
	heldUserStream                  // the user stream's Subscribe made, or under way (presub)
	heldConnection                  // the transport connected (connected ran)
	heldIndex                       // in the hub's index, with its topics' subscriptions
)

type buffered struct {
	offset uint64
	epoch  string
	frame  []byte
}

// newSession returns the session of an admitted identity.
func newSession(h sessionHost, id Identity, since *Position) *session {
	s := &session{host: h, id: newID(), user: id.UserID, since: since, grants: id.Topics, expires: id.Expires,
		ident: id, iat: id.IssuedAt, held: heldAdmission}
	s.out.host, s.out.limit = s, h.settings().MaxQueueBytes
	return s
}

// The session is its outbox's host.
func (s *session) queue(o *outbox)   { s.host.queue(o) }
func (s *session) handedOut(n int64) { s.host.handedOut(n) }
func (s *session) slow(_ *outbox, queued int) {
	s.host.metrics().slow.Add(1)
	s.host.settings().Logger.Warn("notify: closing slow consumer", "user", s.user, "session", s.id, "queued_bytes", queued)
}

// Setup, in order: the hub admits the session (newSession), subscribeUserAhead, joinPresence,
// then the transport connects (connected). teardown gives back what was taken.

// subscribeUserAhead starts the user stream's subscription while presence is joined, rather
// than after it: a connect waits for one broker round trip less.
func (s *session) subscribeUserAhead() {
	s.presub = make(chan error, 1)
	s.held |= heldUserStream
	go func(stream string) { s.presub <- s.host.subscribe(context.Background(), stream) }(wire.UserStream(s.user))
}

// joinPresence records the session in presence and returns the time before which the user's
// tokens are refused, read in the same step. When presence cannot be reached, joined is false
// and the session goes on, to be turned away with 1013 before its welcome like a session
// whose stream the broker cannot subscribe (see connected).
func (s *session) joinPresence(ctx context.Context, node string) (refusedBefore time.Time, joined bool) {
	s.info = SessionInfo{ID: s.id, UserID: s.user, Node: node, ConnectedAt: time.Now().Truncate(time.Millisecond)}
	n, before, err := s.host.joinPresence(ctx, s.info)
	if err != nil {
		s.host.metrics().brokerErrors.Add(1)
		s.joinErr = err
		return time.Time{}, false
	}
	s.held |= heldPresence
	s.first = n == 1
	return before, true
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
	if cfg.Topics != nil {
		var err error
		if topics, err = cfg.Topics(ctx, s.ident); err != nil {
			s.turnAway("notify: session refused, Config.Topics failed", err)
			return
		}
	}
	stream := wire.UserStream(s.user)
	// Until the welcome is queued every frame waits, and the user stream's are buffered so
	// that the replay and the live events meet without a gap or a duplicate.
	s.bufferStream(stream, true)
	s.host.index().add(s)
	s.held |= heldIndex
	pos, replay, recovered, err := s.readStream(ctx, stream, s.since, s.subscribeUser(ctx))
	if err != nil {
		// Without the stream's subscription and position, events the broker accepts from now
		// on could be lost without the client knowing: it reconnects later and recovers.
		s.turnAway("notify: session refused, broker unavailable", err)
		return
	}
	s.welcomed = true
	s.host.metrics().connects.Add(1)
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
			cfg.Logger.Warn("notify: Config.Topics returned an invalid topic", "topic", t, "problem", p)
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
	if cfg.OnSessionEnd == nil {
		s.ident = Identity{UserID: s.user} // let the claims go
	}
	if cfg.OnConnect != nil {
		cfg.OnConnect(s.user)
	}
}

// subscribeUser subscribes the hub to the user stream, or takes the answer of the
// subscription subscribeUserAhead started.
func (s *session) subscribeUser(ctx context.Context) error {
	if s.presub != nil {
		err := <-s.presub
		s.presub = nil
		return err
	}
	s.held |= heldUserStream
	return s.host.subscribe(ctx, wire.UserStream(s.user))
}

// turnAway ends a session before its welcome with 1013 (try again later): the user stream's
// subscription goes first, then the connection, with nothing of what was pending.
func (s *session) turnAway(msg string, err error) {
	s.host.settings().Logger.Warn(msg, "user", s.user, "err", err)
	s.unsubscribeUser(s.ctx)
	s.out.abort(closeTryAgain)
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
	if s.held&heldConnection != 0 {
		ctx = s.ctx
		s.host.metrics().disconnected(s.out.endCode())
		s.close(closeNormal) // stops the timer; a no-op on the wire after a close
	}
	if s.held&heldIndex != 0 {
		s.held &^= heldIndex
		for _, t := range s.host.index().remove(s) {
			s.host.unsubscribe(ctx, wire.TopicStream(t))
		}
	}
	s.unsubscribeUser(ctx)
	if s.held&heldConnection != 0 {
		s.held &^= heldConnection
		if cfg.Logger.Enabled(ctx, slog.LevelDebug) {
			cfg.Logger.Debug("notify: session disconnected", "user", s.user, "session", s.id)
		}
		if cfg.OnDisconnect != nil && s.welcomed {
			cfg.OnDisconnect(s.user)
		}
	}
	if s.held&heldPresence != 0 {
		s.held &^= heldPresence
		s.leavePresence()
	}
	if s.held&heldAdmission != 0 {
		s.held &^= heldAdmission
		s.host.leaveAdmission(s.user)
	}
}

// unsubscribeUser undoes the user stream's subscription, once its Subscribe has returned (a
// Subscribe is undone whether it succeeded or not, see Broker.Subscribe). A no-op when there
// is none.
func (s *session) unsubscribeUser(ctx context.Context) {
	if s.held&heldUserStream == 0 {
		return
	}
	s.held &^= heldUserStream
	if s.presub != nil {
		<-s.presub
		s.presub = nil
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
		return
	}
	stats.present.Add(-1)
	if cfg.OnSessionEnd != nil {
		cfg.OnSessionEnd(s.ident, s.info)
	}
	if err == nil && removed && n == 0 {
		stats.offline.Add(1)
		if cfg.OnOffline != nil {
			cfg.OnOffline(s.user)
		}
	}
}

// cameOnline counts and reports the user's first session anywhere.
func (s *session) cameOnline() {
	s.host.metrics().online.Add(1)
	if on := s.host.settings().OnOnline; on != nil {
		on(s.user)
	}
}

// Streams: what the session has had of each stream, and the recovery merge of a stream's
// history with its live frames (see recovery.go for the pure parts).

// deliver hands the outbox a stream's frame, or buffers it while the stream is being
// recovered. A frame the session has had already is dropped. It reports whether the caller
// must queue the outbox for the flusher. Broadcasts do not come here: they have no position
// and no recovery, and go to the outbox directly (Hub.deliver).
func (s *session) deliver(stream string, offset uint64, epoch string, frame []byte) (wake bool) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.lastOf(stream).Covers(offset, epoch) {
		return false
	}
	if buf, ok := s.buffers[stream]; ok {
		if s.out.reserve(len(frame)) {
			s.buffers[stream] = append(buf, buffered{offset, epoch, frame})
		}
		return false
	}
	if offset > 0 {
		s.setLast(stream, Position{Offset: offset, Epoch: epoch})
	}
	return s.out.enqueue(frame)
}

// lastOf returns the stream's position last sent (the zero Position, which covers nothing,
// when none was). The only user stream a session gets is its own.
func (s *session) lastOf(stream string) Position {
	if wire.IsUserStream(stream) {
		return s.userLast
	}
	return s.topicLast[stream]
}

func (s *session) setLast(stream string, p Position) {
	if wire.IsUserStream(stream) {
		s.userLast = p
		return
	}
	if s.topicLast == nil {
		s.topicLast = make(map[string]Position)
	}
	s.topicLast[stream] = p
}

// forget drops a topic stream's position when the session leaves it.
func (s *session) forget(stream string) {
	s.streamMu.Lock()
	delete(s.topicLast, stream)
	s.streamMu.Unlock()
}

// readStream reads a stream's position and history once the broker's Subscribe for the
// session returned subErr, and plans what a session asking to recover from since gets
// replayed (see planReplay). Both must succeed: a session that went on without the
// subscription, or without a position, could lose events the broker accepts from now on
// without being told. On an error the caller undoes the subscription.
func (s *session) readStream(ctx context.Context, stream string, since *Position, subErr error) (pos Position, replay [][]byte, recovered *bool, err error) {
	if err = subErr; err == nil {
		var msgs []Message
		if pos, msgs, err = s.host.history(ctx, stream, since); err == nil {
			replay, recovered = planReplay(pos, msgs, since)
			s.host.metrics().recovery(recovered)
			return pos, replay, recovered, nil
		}
	}
	s.host.metrics().brokerErrors.Add(1)
	return Position{}, nil, nil, err
}

// bufferStream starts keeping the stream's live frames aside until flushRecovered; with all
// set, every other frame waits too (until the welcome).
func (s *session) bufferStream(stream string, all bool) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	if s.buffers == nil {
		s.buffers = make(map[string][]buffered)
	}
	s.buffers[stream] = nil
	if all {
		s.out.hold()
	}
}

// flushRecovered ends a stream's recovery: first (the welcome or subscribed frame) goes out,
// then the replayed history, then the frames buffered meanwhile that the history did not hold,
// then whatever waited for the welcome. upTo is the position the replay reaches.
func (s *session) flushRecovered(stream string, first []byte, replay [][]byte, upTo Position) {
	s.streamMu.Lock()
	wake := s.flushRecoveredLocked(stream, first, replay, upTo)
	s.streamMu.Unlock()
	if wake {
		s.queue(&s.out)
	}
}

func (s *session) flushRecoveredLocked(stream string, first []byte, replay [][]byte, upTo Position) (wake bool) {
	buf := s.buffers[stream]
	delete(s.buffers, stream)
	if len(s.buffers) == 0 {
		s.buffers = nil // most sessions recover rarely: do not keep the map
	}
	if upTo.Epoch != "" {
		s.setLast(stream, upTo)
	}
	reserved := 0
	live := make([][]byte, 0, len(buf))
	for _, b := range buf {
		reserved += len(b.frame)
		if s.lastOf(stream).Covers(b.offset, b.epoch) {
			continue // replayed already
		}
		if b.offset > 0 {
			s.setLast(stream, Position{Offset: b.offset, Epoch: b.epoch})
		}
		live = append(live, b.frame)
	}
	return s.out.release(reserved, first, replay, live)
}

// dropRecovered ends a stream's recovery that failed: the frames buffered meanwhile go.
func (s *session) dropRecovered(stream string) {
	s.streamMu.Lock()
	defer s.streamMu.Unlock()
	reserved := 0
	for _, b := range s.buffers[stream] {
		reserved += len(b.frame)
	}
	delete(s.buffers, stream)
	if len(s.buffers) == 0 {
		s.buffers = nil
	}
	s.out.release(reserved, nil, nil, nil)
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

// written runs on the transport's write loop after a frame of n bytes was written.
func (s *session) written(n int) {
	s.host.metrics().written(n)
	s.out.sent()
}

// goAway tells the session how long to spread its reconnect over, then closes it with 1001.
func (s *session) goAway() {
	spread := s.host.settings().ReconnectSpread
	s.out.send(wire.Control{Op: "goaway", Reconnect: int64((spread + time.Second - 1) / time.Second)}.Frame())
	s.close(closeGoingAway)
}

// Token: the grants and the expiry of the session's current token.

// close ends the session with code after the frames already pending (such as the error frame
// that led to the close); later frames are dropped.
func (s *session) close(code CloseCode) {
	s.tokenMu.Lock()
	s.closed = true
	s.stopTimerLocked()
	s.tokenMu.Unlock()
	s.out.close(code)
}

// token returns the current token's grants and expiry.
func (s *session) token() ([]string, time.Time) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	return s.grants, s.expires
}

// schedule sets the current token's grants and expiry, and arms the expiry warning and the
// expiry close for it.
func (s *session) schedule(grants []string, expires time.Time) {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	if s.closed {
		return
	}
	s.stopTimerLocked()
	s.grants, s.expires = grants, expires
	if expires.IsZero() {
		return
	}
	left := time.Until(expires)
	// Warn ExpiryWarning before expiry, but never sooner than half the token's remaining
	// life: a token shorter than the warning must not cause a refresh storm.
	warnIn := max(left-s.host.settings().ExpiryWarning, left/2, 0)
	// One timer per session, not two: it warns, then is re-armed for the expiry.
	var t *time.Timer
	warned := false // guarded by tokenMu
	t = time.AfterFunc(warnIn, func() {
		s.tokenMu.Lock()
		if s.timer != t { // stopped or rescheduled meanwhile
			s.tokenMu.Unlock()
			return
		}
		if !warned {
			warned = true
			wake := s.out.enqueue(wire.Control{Op: "expiring", Exp: expires.Unix()}.Frame())
			t.Reset(time.Until(expires))
			s.tokenMu.Unlock()
			if wake {
				s.queue(&s.out)
			}
			return
		}
		s.tokenMu.Unlock()
		s.close(CloseTokenExpired)
	})
	s.timer = t
}

func (s *session) stopTimerLocked() {
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
}

// issuedAt returns the current token's issue time.
func (s *session) issuedAt() time.Time {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	return s.iat
}

// setIssuedAt records a refreshed token's issue time.
func (s *session) setIssuedAt(t time.Time) {
	s.tokenMu.Lock()
	s.iat = t
	s.tokenMu.Unlock()
}

func (s *session) granted(topic string) bool {
	s.tokenMu.Lock()
	defer s.tokenMu.Unlock()
	return topicGranted(s.grants, topic)
}
