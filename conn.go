package notify

import (
	"context"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/gonotify/notify/internal/wire"
)

// conn is the hub's state for one melody session: who it is, what its token allows, its
// streams' recovery state, and its outbox.
//
// mu guards grants, expires, iat, timer, closed and the stream state (buffers and the last
// positions); it is taken before the outbox's lock, never after it, so that a stream's frames
// reach the outbox in the order mu saw them. strikes and limit belong to the session's read
// loop. The rest is set before the session starts. Which topics the session is subscribed to
// is the hub's index's (see index).
type conn struct {
	hub   *Hub
	s     *melody.Session
	id    string
	user  string
	ctx   context.Context // for broker calls (see Hub.ServeHTTP)
	since *Position       // the user stream's recovery position asked at connect
	// topicSince holds the recovery positions of server-made subscriptions asked at connect.
	topicSince map[string]*Position
	// ident is the session's identity, for Config.Subscriptions, Config.Authorize and the session hooks; info is its
	// presence record. present says Join recorded it, first that it was the user's first
	// session anywhere then, joinErr why Join failed. All are set before the session starts
	// and read on its own goroutine.
	ident   Identity
	info    SessionInfo
	present bool
	first   bool
	joinErr error
	// presub, with a broker other than the in-memory one, answers the user stream's Subscribe
	// that ServeHTTP starts while presence is joined; whoever takes the answer (connected, or
	// dropPresub on a path that ends the session before) waits for that goroutine.
	presub chan error
	out    outbox

	mu sync.Mutex
	// buffers holds a stream's live frames while the stream's history is read for recovery.
	buffers map[string][]buffered
	// userLast and topicLast are each stream's position last sent: a broker may deliver a
	// message the history already replayed (Redis pub/sub trails the history read), and it
	// must not go out twice. The user stream's is a field: every session has one.
	userLast  Position
	topicLast map[string]Position
	grants    []string
	expires   time.Time
	iat       time.Time   // the current token's issue time, for the sweep of Hub.Disconnect
	timer     *time.Timer // the expiry warning, then the expiry close
	closed    bool

	strikes  int    // bad messages in a row
	limit    bucket // the message rate limit
	welcomed bool   // set and read on the session's own goroutine (melody's connect, then disconnect)
}

type buffered struct {
	offset uint64
	epoch  string
	frame  []byte
}

func newConn(h *Hub, id Identity, since *Position) *conn {
	c := &conn{hub: h, id: newID(), user: id.UserID, since: since, grants: id.Grants, expires: id.Expires, ident: id, iat: id.IssuedAt}
	c.out.host, c.out.limit = c, h.cfg.MaxQueueBytes
	return c
}

// The conn is its outbox's host.
func (c *conn) queue(o *outbox)            { c.hub.fl.queueOne(o) }
func (c *conn) handedOut(n int64)          { c.hub.fl.waiting.Add(n) }
func (c *conn) slow(_ *outbox, queued int) { c.hub.slowConsumer(c, queued) }

// deliver hands the outbox a stream's frame, or buffers it while the stream is being
// recovered. A frame the session has had already is dropped. It reports whether the caller
// must queue the outbox for the flusher. Broadcasts do not come here: they have no position
// and no recovery, and go to the outbox directly (Hub.deliver).
func (c *conn) deliver(stream string, offset uint64, epoch string, frame []byte) (wake bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastOf(stream).Covers(offset, epoch) {
		return false
	}
	if buf, ok := c.buffers[stream]; ok {
		if c.out.reserve(len(frame)) {
			c.buffers[stream] = append(buf, buffered{offset, epoch, frame})
		}
		return false
	}
	if offset > 0 {
		c.setLast(stream, Position{Offset: offset, Epoch: epoch})
	}
	return c.out.enqueue(frame)
}

// lastOf returns the stream's position last sent (the zero Position, which covers nothing,
// when none was). The only user stream a session gets is its own.
func (c *conn) lastOf(stream string) Position {
	if wire.IsUserStream(stream) {
		return c.userLast
	}
	return c.topicLast[stream]
}

func (c *conn) setLast(stream string, p Position) {
	if wire.IsUserStream(stream) {
		c.userLast = p
		return
	}
	if c.topicLast == nil {
		c.topicLast = make(map[string]Position)
	}
	c.topicLast[stream] = p
}

// forget drops a topic stream's position when the session leaves it.
func (c *conn) forget(stream string) {
	c.mu.Lock()
	delete(c.topicLast, stream)
	c.mu.Unlock()
}

// buffer starts keeping the stream's live frames aside until release; with all set, every
// other frame waits too (until the welcome).
func (c *conn) buffer(stream string, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buffers == nil {
		c.buffers = make(map[string][]buffered)
	}
	c.buffers[stream] = nil
	if all {
		c.out.hold()
	}
}

// release ends a stream's recovery: first (the welcome or subscribed frame) goes out, then the
// replayed history, then the frames buffered meanwhile that the history did not hold, then
// whatever waited for the welcome. upTo is the position the replay reaches.
func (c *conn) release(stream string, first []byte, replay [][]byte, upTo Position) {
	c.mu.Lock()
	wake := c.releaseLocked(stream, first, replay, upTo)
	c.mu.Unlock()
	if wake {
		c.queue(&c.out)
	}
}

func (c *conn) releaseLocked(stream string, first []byte, replay [][]byte, upTo Position) (wake bool) {
	buf := c.buffers[stream]
	delete(c.buffers, stream)
	if len(c.buffers) == 0 {
		c.buffers = nil // most sessions recover rarely: do not keep the map
	}
	if upTo.Epoch != "" {
		c.setLast(stream, upTo)
	}
	reserved := 0
	live := make([][]byte, 0, len(buf))
	for _, b := range buf {
		reserved += len(b.frame)
		if c.lastOf(stream).Covers(b.offset, b.epoch) {
			continue // replayed already
		}
		if b.offset > 0 {
			c.setLast(stream, Position{Offset: b.offset, Epoch: b.epoch})
		}
		live = append(live, b.frame)
	}
	return c.out.release(reserved, first, replay, live)
}

// drop ends a stream's recovery that failed: the frames buffered meanwhile go.
func (c *conn) drop(stream string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reserved := 0
	for _, b := range c.buffers[stream] {
		reserved += len(b.frame)
	}
	delete(c.buffers, stream)
	if len(c.buffers) == 0 {
		c.buffers = nil
	}
	c.out.release(reserved, nil, nil, nil)
}

// start writes the welcome and then releases the user stream like release. It runs in
// melody's connect handler, before melody starts the session's write loop: the welcome is
// written on the session's own goroutine, with no hand-off to another (on a busy server that
// saves a scheduling round trip per new connection), and nothing else can write meanwhile,
// since every other frame waits for the release.
func (c *conn) start(stream string, welcome []byte, replay [][]byte, upTo Position) {
	ws := c.s.WebsocketConnection()
	err := ws.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
	if hc, ok := ws.UnderlyingConn().(*handshakeConn); ok && err == nil && len(welcome) > writeBufferSize/2 {
		// A frame larger than the write buffer leaves with writev, which does not go through
		// handshakeConn.Write: the upgrade response goes first, on its own.
		err = hc.flush()
	}
	if err == nil {
		err = ws.WriteMessage(websocket.TextMessage, welcome)
	}
	if err != nil {
		// The connection is broken: melody's read loop ends the session.
		c.out.broken()
		_ = ws.Close()
	} else {
		c.hub.stats.written(len(welcome))
	}
	c.release(stream, nil, replay, upTo)
}

// close ends the session with code after the frames already pending (such as the error frame
// that led to the close); later frames are dropped.
func (c *conn) close(code CloseCode) {
	c.mu.Lock()
	c.closed = true
	c.stopTimerLocked()
	c.mu.Unlock()
	c.out.close(code)
}

// schedule arms the expiry warning and the expiry close for the current token.
func (c *conn) schedule(grants []string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.stopTimerLocked()
	c.grants, c.expires = grants, expires
	if expires.IsZero() {
		return
	}
	left := time.Until(expires)
	// Warn ExpiryWarning before expiry, but never sooner than half the token's remaining
	// life: a token shorter than the warning must not cause a refresh storm.
	warnIn := max(left-c.hub.cfg.ExpiryWarning, left/2, 0)
	// One timer per session, not two: it warns, then is re-armed for the expiry.
	var t *time.Timer
	warned := false // guarded by mu
	t = time.AfterFunc(warnIn, func() {
		c.mu.Lock()
		if c.timer != t { // stopped or rescheduled meanwhile
			c.mu.Unlock()
			return
		}
		if !warned {
			warned = true
			wake := c.out.enqueue(wire.Control{Op: "expiring", Exp: expires.Unix()}.Frame())
			t.Reset(time.Until(expires))
			c.mu.Unlock()
			if wake {
				c.queue(&c.out)
			}
			return
		}
		c.mu.Unlock()
		c.close(CloseTokenExpired)
	})
	c.timer = t
}

func (c *conn) stopTimerLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// issuedAt returns the current token's issue time.
func (c *conn) issuedAt() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.iat
}

// setIssuedAt records a refreshed token's issue time.
func (c *conn) setIssuedAt(t time.Time) {
	c.mu.Lock()
	c.iat = t
	c.mu.Unlock()
}

func (c *conn) granted(topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return topicGranted(c.grants, topic)
}

// connOf returns the conn of a melody session.
func connOf(s *melody.Session) *conn {
	v, _ := s.Get(connKey)
	c, _ := v.(*conn)
	return c
}

const connKey = "notify.conn"

// keepsIdentity reports whether the session keeps its identity with the token's claims for its
// whole life: only when a hook needs it (Config.Authorize, Config.OnSessionEnd).
func (c *conn) keepsIdentity() bool {
	return c.hub.cfg.Authorize != nil || c.hub.cfg.OnSessionEnd != nil
}
