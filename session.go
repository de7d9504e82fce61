package notify

import (
	"context"
	"sync"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// session is one client's connection to the hub: who it is, what its token allows, its
// streams' recovery state, its outbox, and what it holds outside itself, which teardown gives
// back. It reaches the hub only through sessionHost and its client only through a transport.
// Which topics it is subscribed to is the hub's index's (see index).
//
// Its fields are grouped by owner, each group headed by its rule. streamMu and tokenMu are each
// taken before the outbox's lock, never after it, and neither while holding the other.
type session struct {
	// Fixed: set by newSession and never reassigned (the outbox guards its own state).
	host sessionHost
	id   string
	user string
	out  outbox

	// Connection: set by connected, before the session is indexed or reads a message.
	t   transport
	ctx context.Context // for broker calls on the read loop (see Hub.ServeHTTP)

	// Lifecycle: owned by the goroutine that sets the session up and tears it down (ServeHTTP,
	// then serve, on which the transport's connect runs).
	held  held      // what the session holds outside itself, for teardown
	since *Position // the user stream's recovery position asked at connect
	// topicSince holds the recovery positions of server-made subscriptions asked at connect.
	topicSince map[string]*Position
	// ident is the current token's identity, for Config.Subscriptions, Config.Authorize and
	// the session hooks (a refresh replaces it, on this same goroutine); info is its
	// presence record, first whether it was the user's first session anywhere when it joined,
	// joinErr why joining presence failed.
	ident   Identity
	info    SessionInfo
	first   bool
	joinErr error
	// presubErr is the answer of the user stream's Subscribe when it was made before presence
	// was joined (subscribeUserFirst, with a broker other than the in-memory one), for
	// connected.
	presubErr error
	welcomed  bool // counted present; its end runs the end hooks

	// Read: owned by the transport's read loop.
	strikes int    // bad messages in a row
	limit   bucket // the message rate limit

	// Requests: the client's requests' handlers (see request.go), with a lock of their own.
	reqs sessionRequests

	// Streams: guarded by streamMu, which orders a stream's frames into the outbox as deliver
	// saw them.
	streamMu sync.Mutex
	// buffers holds a stream's live frames while the stream's history is read for recovery.
	buffers map[string][]buffered
	// userLast and topicLast are each stream's position last sent: a broker may deliver a
	// message the history already replayed (Redis pub/sub trails the history read), and it
	// must not go out twice. The user stream's is a field: every session has one.
	userLast  Position
	topicLast map[string]Position

	// Token: guarded by tokenMu.
	tokenMu sync.Mutex
	grants  []string
	expires time.Time
	iat     time.Time   // the current token's issue time, for the sweep of Hub.Disconnect
	timer   *time.Timer // the expiry warning, then the expiry close
	closed  bool        // set by close; schedule arms nothing after it
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
	// The hub's index of sessions (see index): the session itself, and its topics.
	indexAdd(s *session)
	indexRemove(s *session) (topics []string)
	indexSubscribe(s *session, topic string, byServer bool) bool
	indexUnsubscribe(s *session, topic string) bool
	indexSubscription(s *session, topic string) (subscribed bool, n int)
	indexClientTopics(s *session) []string
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
	// requests are the hub's request handlers and recent answers.
	requests() *requests
}

// transport carries one session's frames to its client. The session's outbox writes through
// it (as its sink: Write queues a frame without blocking, CloseWith queues the close with a
// code), the session writes its welcome through it, and Shutdown cuts it when its time is up.
// In the other direction the transport drives the session: it calls connected once it is up,
// received (and receivedBinary) for each client message on one goroutine, its read loop, and
// returns to the hub when the connection is over, which then tears the session down. The
// WebSocket transport is wsTransport, over melody; the server-sent events one is sseTransport.
type transport interface {
	sink
	// welcome writes the session's first frame at once, within timeout, before any other.
	welcome(frame []byte, timeout time.Duration) error
	// cut drops the connection now, without a close frame.
	cut()
	// kind says which transport it is, for the per-transport counters.
	kind() transportKind
}

// transportKind is a transport's index in the per-transport counters.
type transportKind uint8

// String is the transport's name in SessionInfo.Transport and the metrics' labels.
func (k transportKind) String() string {
	if k == transportSSE {
		return "sse"
	}
	return "websocket"
}

const (
	transportWebSocket transportKind = iota
	transportSSE
	numTransports
)

// held is what a session holds outside itself: a bit is set once the thing is taken, and
// teardown gives back what is set, each once, in the reverse order of the setup.
type held uint8

const (
	heldAdmission  held = 1 << iota // counted by the hub's admission
	heldPresence                    // recorded in presence
	heldUserStream                  // the user stream's Subscribe made
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
	s := &session{host: h, id: newSessionID(), user: id.UserID, since: since, grants: id.Grants, expires: id.Expires,
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
			replay, recovered = planReplay(pos, exceptHistory(s, msgs), since)
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
	return s.out.endRecovery(reserved, first, replay, live)
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
	s.out.endRecovery(reserved, nil, nil, nil)
}

// written runs on the transport's write loop after a frame of n bytes was written.
func (s *session) written(n int) {
	s.host.metrics().written(n)
	s.out.sent()
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

// keepsIdentity reports whether the session keeps its identity with the token's claims for its
// whole life: only when a hook needs it (Config.Authorize, Config.OnSessionEnd, the handlers of
// Config.Requests).
func (s *session) keepsIdentity() bool {
	cfg := s.host.settings()
	return cfg.Authorize != nil || cfg.OnSessionEnd != nil || len(cfg.Requests) > 0
}
