package notify

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
)

// conn is the hub's state for one melody session.
//
// Outbound frames never wait on the client: melody's queue holds at most one data frame of a
// session at a time. Frames are collected in pending and leave together, newline-separated, as
// one frame: the hub's flusher hands melody the first (see flush.go; sessions with the same
// frames pending share one joined frame), and melody's write loop the next once it reports the
// previous one written (HandleSentMessage). A lone frame goes out at once; under load
// everything pending goes out in one write. When pending exceeds Config.MaxQueueBytes the
// session is closed as a slow consumer.
type conn struct {
	hub  *Hub
	s    *melody.Session
	id   string
	user string

	// topics and pos are guarded by hub.mu (the index lock), not by mu. A topic maps to true
	// when the application subscribed the session (Hub.Subscribe), false when the client did.
	topics map[string]bool
	pos    int // index in hub.conns
	// ctx is the session's context for broker calls (see Hub.ServeHTTP).
	ctx  context.Context
	gone bool // guarded by hub.mu: removed from the index

	mu       sync.Mutex
	inflight bool // a data frame is in melody's queue or being written
	queued   bool // in the hub's flusher queue
	// held keeps every frame in pending until the welcome has been queued (see release).
	held bool
	// buffers holds a stream's live frames while the stream's history is read for recovery.
	buffers map[string][]buffered
	// userLast and topicLast are each stream's position last sent: a broker may deliver a
	// message the history already replayed (Redis pub/sub trails the history read), and it
	// must not go out twice. The user stream's is a field: every session has one.
	userLast     Position
	topicLast    map[string]Position
	since        *Position // the user stream's recovery position asked at connect
	pending      [][]byte
	pendingBytes int
	allowance    int // bytes of replayed history in pending, which MaxQueueBytes does not count
	closing      bool
	grants       []string
	expires      time.Time
	timer        *time.Timer // the expiry warning, then the expiry close
	strikes      int         // touched only by the session's read loop
	limit        bucket      // likewise
	// code is the close code the session ended with: the hub's when it closed first, else the
	// client's (see endCode).
	code int
	// counted is set while the frame in flight was handed out by the flusher: it counts in
	// hub.waiting until written or the session closes.
	counted bool
	// batch holds the buffer of the joined frame in flight, if it is one.
	batch *batch
}

type buffered struct {
	offset uint64
	epoch  string
	frame  []byte
}

// enqueue hands a frame to the session without blocking.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	c.unlockWake(c.enqueueLocked(frame))
}

// unlockWake releases mu and, when wake is set, queues the session for the flusher (which
// takes mu itself, so not before).
func (c *conn) unlockWake(wake bool) {
	c.mu.Unlock()
	if wake {
		c.hub.wakeOne(c)
	}
}

// deliver enqueues a stream's frame, or buffers it while the stream is being recovered. A
// frame at or before the stream's last sent position is dropped. It reports whether the
// caller must queue the session for the flusher.
func (c *conn) deliver(stream string, offset uint64, epoch string, frame []byte) (wake bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if offset > 0 {
		if l, ok := c.lastOf(stream); ok && l.Epoch == epoch && offset <= l.Offset {
			return false
		}
	}
	if buf, ok := c.buffers[stream]; ok && !c.closing {
		c.buffers[stream] = append(buf, buffered{offset, epoch, frame})
		c.pendingBytes += len(frame)
		if c.pendingBytes > c.hub.cfg.MaxQueueBytes {
			c.slowLocked()
		}
		return false
	}
	if offset > 0 {
		c.setLast(stream, Position{Offset: offset, Epoch: epoch})
	}
	return c.enqueueLocked(frame)
}

// lastOf returns the stream's position last sent; ok is false when none was. The only user
// stream a session gets is its own.
func (c *conn) lastOf(stream string) (p Position, ok bool) {
	if isUserStream(stream) {
		return c.userLast, c.userLast.Epoch != ""
	}
	p, ok = c.topicLast[stream]
	return p, ok
}

func (c *conn) setLast(stream string, p Position) {
	if isUserStream(stream) {
		c.userLast = p
		return
	}
	if c.topicLast == nil {
		c.topicLast = make(map[string]Position)
	}
	c.topicLast[stream] = p
}

// hold starts buffering the stream's frames; with all set, every other frame waits too.
func (c *conn) hold(stream string, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buffers == nil {
		c.buffers = make(map[string][]buffered)
	}
	c.buffers[stream] = nil
	c.held = c.held || all
}

// release ends a stream's recovery: first (the welcome or subscribed frame) goes out, then the
// replayed history, then the frames buffered meanwhile that the history did not hold (offset
// above upTo, or no offset), then whatever hold kept waiting.
func (c *conn) release(stream string, first []byte, replay [][]byte, upTo Position) {
	c.mu.Lock()
	c.unlockWake(c.releaseLocked(stream, first, replay, upTo))
}

// start writes the welcome and then releases the user stream like release. It runs in
// melody's connect handler, before melody starts the session's write loop: the welcome is
// written on the session's own goroutine, with no hand-off to another (on a busy server that
// saves a scheduling round trip per new connection), and nothing else can write meanwhile,
// since every other frame is held until the release.
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
	if err == nil {
		c.hub.stats.frames.Add(1)
		c.hub.stats.bytes.Add(uint64(len(welcome)))
	}
	c.mu.Lock()
	if err != nil {
		// The connection is broken: melody's read loop ends the session.
		c.closing = true
		_ = ws.Close()
	}
	c.unlockWake(c.releaseLocked(stream, nil, replay, upTo))
}

func (c *conn) releaseLocked(stream string, first []byte, replay [][]byte, upTo Position) (wake bool) {
	buf := c.buffers[stream]
	delete(c.buffers, stream)
	if len(c.buffers) == 0 {
		c.buffers = nil // most sessions recover rarely: do not keep the map
	}
	for _, b := range buf {
		c.pendingBytes -= len(b.frame)
	}
	var waiting [][]byte
	if c.held {
		waiting, c.pending, c.held = c.pending, nil, false
		for _, f := range waiting {
			c.pendingBytes -= len(f)
		}
	}
	if first != nil {
		wake = c.enqueueLocked(first) || wake
	}
	for _, f := range replay {
		c.allowance += len(f) // bounded by the history's size, not by MaxQueueBytes
		wake = c.enqueueLocked(f) || wake
	}
	if upTo.Epoch != "" {
		c.setLast(stream, upTo)
	}
	for _, b := range buf {
		l, ok := c.lastOf(stream)
		switch {
		case b.offset == 0:
		case ok && l.Epoch == b.epoch && b.offset <= l.Offset:
			continue
		default:
			c.setLast(stream, Position{Offset: b.offset, Epoch: b.epoch})
		}
		wake = c.enqueueLocked(b.frame) || wake
	}
	for _, f := range waiting {
		wake = c.enqueueLocked(f) || wake
	}
	return wake
}

// enqueueLocked adds a frame to pending. It reports whether the session must be queued for
// the flusher: it has nothing in flight and is not queued yet. A frame that takes pending past
// MaxQueueBytes (plus the replay allowance) closes the session as a slow consumer, unless
// pending is empty: one frame alone is never too much.
func (c *conn) enqueueLocked(frame []byte) (wake bool) {
	if c.closing {
		return false
	}
	if len(c.pending) > 0 && c.pendingBytes+len(frame) > c.hub.cfg.MaxQueueBytes+c.allowance {
		c.slowLocked()
		return false
	}
	c.pending = append(c.pending, frame)
	c.pendingBytes += len(frame)
	if c.inflight || c.held || c.queued {
		return false
	}
	c.queued = true
	return true
}

// flush runs on the hub's flusher: it hands melody what is pending, unless a frame is in
// flight already (melody's write loop takes the rest when it is written). sh is the flusher's
// last joined frame (see shared).
func (c *conn) flush(sh *shared) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queued = false
	if c.inflight || c.held || c.closing || len(c.pending) == 0 {
		return
	}
	c.inflight = true
	c.counted = true
	c.hub.waiting.Add(1)
	c.write(c.nextFrame(sh))
}

func (c *conn) slowLocked() {
	c.hub.slowConsumers.Add(1)
	c.hub.cfg.Logger.Warn("notify: closing slow consumer", "user", c.user, "session", c.id, "queued_bytes", c.pendingBytes)
	c.closeLocked(CloseSlowConsumer, "slow consumer", false)
}

// maxBatchBytes bounds the frames that batching builds: a long backlog (a recovery replay)
// leaves in several frames rather than one huge one.
const maxBatchBytes = 256 << 10

// batchPools recycle the buffers of joined frames by size class (powers of two from 1 KiB to
// maxBatchBytes): under load every session builds one per write, and a buffer of the right
// size taken at once costs one allocation when the pool is empty (as after each collection),
// where growing a small one would cost several.
var batchPools [9]sync.Pool

func batchClass(size int) int {
	c := 0
	for 1<<(10+c) < size && c < len(batchPools)-1 {
		c++
	}
	return c
}

// batch is a joined frame in a pooled buffer. Sessions whose pending frames are the same (the
// events of a burst of broadcasts) share one (see shared); it goes back to its pool when the
// last holder releases it.
type batch struct {
	b    []byte
	refs atomic.Int32
}

// getBatch returns an empty buffer with room for size bytes, held once.
func getBatch(size int) *batch {
	c := batchClass(size)
	bp, _ := batchPools[c].Get().(*batch)
	if bp == nil || cap(bp.b) < size {
		bp = &batch{b: make([]byte, 0, max(size, 1<<(10+c)))}
	}
	bp.refs.Store(1)
	return bp
}

// hold adds a holder and returns the batch.
func (bp *batch) hold() *batch {
	bp.refs.Add(1)
	return bp
}

// release drops a hold; the last one returns the buffer to its pool.
func (bp *batch) release() {
	if bp.refs.Add(-1) != 0 {
		return
	}
	bp.b = bp.b[:0]
	// Filed under the largest class it can serve whole.
	c := batchClass(cap(bp.b))
	if 1<<(10+c) > cap(bp.b) && c > 0 {
		c--
	}
	batchPools[c].Put(bp)
}

// shared remembers the last frame the flusher joined, so that the next session with the same
// pending frames (the same encoded events, in the same order) is handed the same bytes: a
// burst of broadcasts is joined once, not once per session. It holds the batch once itself.
type shared struct {
	parts [][]byte
	bp    *batch
}

// match reports whether parts are the frames the last batch was joined from; frames are
// immutable once encoded, so the same memory means the same bytes.
func (sh *shared) match(parts [][]byte) bool {
	if sh.bp == nil || len(parts) != len(sh.parts) {
		return false
	}
	for i, p := range parts {
		q := sh.parts[i]
		if len(p) != len(q) || len(p) > 0 && &p[0] != &q[0] {
			return false
		}
	}
	return true
}

func (sh *shared) set(parts [][]byte, bp *batch) {
	sh.reset()
	sh.parts, sh.bp = append(sh.parts[:0], parts...), bp.hold()
}

func (sh *shared) reset() {
	if sh.bp != nil {
		sh.bp.release()
		sh.bp = nil
	}
	clear(sh.parts)
	sh.parts = sh.parts[:0]
}

// sent runs on melody's write loop after a text frame was written.
func (c *conn) sent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uncountLocked()
	if c.batch != nil { // the frame just written; melody is done with it
		c.batch.release()
		c.batch = nil
	}
	if len(c.pending) == 0 || c.closing || c.held {
		c.inflight = false
		return
	}
	c.write(c.nextFrame(nil))
}

// nextFrame takes the pending frames, up to maxBatchBytes, off pending and returns them joined
// (newline-separated) as one frame; called with mu held. A joined frame's buffer is held in
// c.batch until written. With sh set (on the flusher), a session whose pending frames are the
// ones sh was joined from gets sh's frame, and a newly joined one is remembered in sh.
func (c *conn) nextFrame(sh *shared) []byte {
	n, size := 1, len(c.pending[0])
	for n < len(c.pending) && size+1+len(c.pending[n]) <= maxBatchBytes {
		size += 1 + len(c.pending[n])
		n++
	}
	var frame []byte
	switch {
	case n == 1:
		frame = c.pending[0]
	case sh != nil && sh.match(c.pending[:n]):
		c.batch = sh.bp.hold()
		frame = c.batch.b
	default:
		bp := getBatch(size)
		b := bp.b
		for i, f := range c.pending[:n] {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, f...)
		}
		bp.b = b
		c.batch = bp
		frame = b
		if sh != nil {
			sh.set(c.pending[:n], bp)
		}
	}
	written := size - (n - 1)
	rest := copy(c.pending, c.pending[n:])
	clear(c.pending[rest:])
	c.pending = c.pending[:rest]
	c.pendingBytes -= written
	c.allowance = max(0, c.allowance-written)
	return frame
}

// uncountLocked takes the session out of hub.waiting.
func (c *conn) uncountLocked() {
	if c.counted {
		c.counted = false
		c.hub.waiting.Add(-1)
	}
}

// write passes a frame to melody; called with mu held. melody's queue has room for it by
// construction, and melody's Write never blocks.
func (c *conn) write(frame []byte) {
	if err := c.s.Write(frame); err != nil {
		c.closing = true
	}
}

// close ends the session with a close code after the frames already pending (such as the error
// frame that led to the close); later frames are dropped.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, true)
}

// closeLocked queues the close frame, after what is pending when flush is set. melody's queue
// has room: at most one data frame in flight, the flushed one and the close frame.
func (c *conn) closeLocked(code int, reason string, flush bool) {
	c.uncountLocked() // a closing session's write loop is no reason for senders to yield
	if c.closing {
		return
	}
	c.closing = true
	if c.code == 0 {
		c.code = code
	}
	if flush && len(c.pending) > 0 {
		_ = c.s.Write(bytes.Join(c.pending, []byte{'\n'}))
	}
	clear(c.pending)
	c.pending = nil
	c.pendingBytes = 0
	c.stopTimersLocked()
	_ = c.s.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}

// closedWith records the close code the client sent, unless the hub closed first.
func (c *conn) closedWith(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code == 0 {
		c.code = code
	}
}

// endCode is the close code the session ended with; 1006 when there was none (the connection
// broke, or a write timed out).
func (c *conn) endCode() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code == 0 {
		return 1006
	}
	return c.code
}

// schedule arms the expiry warning and the expiry close for the current token.
func (c *conn) schedule(grants []string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.stopTimersLocked()
	c.grants, c.expires = grants, expires
	if expires.IsZero() {
		return
	}
	left := time.Until(expires)
	// Warn ExpiryWarning before expiry, but never sooner than half the token's remaining
	// life: a token shorter than the warning must not cause a refresh storm.
	warnIn := max(left-c.hub.cfg.ExpiryWarning, left/2, 0)
	exp := expires.Unix()
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
			wake := c.enqueueLocked(control{Op: "expiring", Exp: exp}.frame())
			t.Reset(time.Until(expires))
			c.unlockWake(wake)
			return
		}
		c.mu.Unlock()
		c.close(CloseTokenExpired, "token expired")
	})
	c.timer = t
}

func (c *conn) stopTimersLocked() {
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

func (c *conn) granted(topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return topicGranted(c.grants, topic)
}
