package notify

import (
	"bytes"
	"sync"
)

// outbox is one session's queue of outgoing frames and the only writer to its sink.
//
// Frames never wait on the client: the sink (a transport) holds at most one data frame of
// the outbox at a time. Frames are collected in pending and leave together, newline-separated,
// as one frame: the flusher hands the sink the first (flush; outboxes with the same frames
// pending share one joined frame), and the sink's write loop the next once it reports the
// previous one written (sent). A lone frame goes out at once; under load everything pending
// goes out in one write. When pending passes limit bytes the outbox closes the session as a
// slow consumer.
//
// host, sink and limit are set before the outbox is used; mu guards the rest. The outbox knows
// nothing of the hub beyond outboxHost, and no method calls out with mu held but to the sink,
// whose Write never blocks.
type outbox struct {
	host  outboxHost
	sink  sink
	limit int

	mu           sync.Mutex
	pending      [][]byte
	pendingBytes int // pending's bytes and reserved
	reserved     int // bytes of frames held for the outbox elsewhere (see reserve)
	allowance    int // bytes of replayed history in pending, which limit does not count
	inflight     bool
	queued       bool // in the flusher's queue
	held         bool // every frame waits until release
	closing      bool
	// counted is set while the frame in flight was handed out by the flusher: it counts in the
	// host's handed-out frames until written or the outbox closes.
	counted bool
	batch   *batch    // the joined frame in flight, if it is one
	code    CloseCode // the code the session ended with (see endCode)
}

// sink is where an outbox writes: the session's transport. Write queues a frame for the
// transport's write loop without blocking; CloseWith queues the close with a code.
type sink interface {
	Write(msg []byte) error
	CloseWith(code CloseCode) error
}

// outboxHost is what an outbox needs from its owner.
type outboxHost interface {
	// queue hands the outbox to the flusher.
	queue(o *outbox)
	// handedOut adds n to the count of outboxes whose frame the flusher handed out and that
	// have not written it.
	handedOut(n int64)
	// slow reports that the outbox closed its session as a slow consumer with queued bytes.
	slow(o *outbox, queued int)
}

// send queues a frame and, when the outbox had nothing to do, hands it to the flusher.
func (o *outbox) send(frame []byte) {
	if o.enqueue(frame) {
		o.host.queue(o)
	}
}

// enqueue adds a frame to pending. It reports whether the caller must hand the outbox to the
// flusher (it has nothing in flight and is not queued yet).
func (o *outbox) enqueue(frame []byte) (wake bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.enqueueLocked(frame)
}

// enqueueLocked adds a frame to pending. A frame that takes pending past limit (plus the
// replay allowance) closes the session as a slow consumer, unless pending is empty: one frame
// alone is never too much.
func (o *outbox) enqueueLocked(frame []byte) (wake bool) {
	if o.closing {
		return false
	}
	if len(o.pending) > 0 && o.pendingBytes+len(frame) > o.limit+o.allowance {
		o.slowLocked()
		return false
	}
	o.pending = append(o.pending, frame)
	o.pendingBytes += len(frame)
	if o.inflight || o.held || o.queued {
		return false
	}
	o.queued = true
	return true
}

// reserve counts n bytes that wait for the outbox elsewhere (a stream's live frames buffered
// while its history is read) against the limit. It reports false, having closed the session
// as a slow consumer, when they do not fit, and false too when the outbox is closing.
func (o *outbox) reserve(n int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	o.pendingBytes += n
	o.reserved += n
	if o.pendingBytes > o.limit {
		o.slowLocked()
		return false
	}
	return true
}

// hold keeps every frame waiting until endRecovery.
func (o *outbox) hold() {
	o.mu.Lock()
	o.held = true
	o.mu.Unlock()
}

// endRecovery ends a recovery: it uncounts the reserved bytes, then queues first (the welcome or
// subscribed frame), the replayed history (within its own allowance: bounded by the history's
// size), the live frames kept meanwhile, and then whatever hold kept waiting. It reports
// whether the caller must hand the outbox to the flusher.
func (o *outbox) endRecovery(reserved int, first []byte, replay, live [][]byte) (wake bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closing {
		return false
	}
	o.pendingBytes -= reserved
	o.reserved -= reserved
	var waiting [][]byte
	if o.held {
		waiting, o.pending, o.held = o.pending, nil, false
		for _, f := range waiting {
			o.pendingBytes -= len(f)
		}
	}
	if first != nil {
		wake = o.enqueueLocked(first) || wake
	}
	for _, f := range replay {
		o.allowance += len(f)
		wake = o.enqueueLocked(f) || wake
	}
	for _, f := range live {
		wake = o.enqueueLocked(f) || wake
	}
	for _, f := range waiting {
		wake = o.enqueueLocked(f) || wake
	}
	return wake
}

// flush runs on the flusher: it hands the sink what is pending, unless a frame is in flight
// already (the sink's write loop takes the rest when it is written). sh is the flusher's last
// joined frame.
func (o *outbox) flush(sh *shared) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.queued = false
	if o.inflight || o.held || o.closing || len(o.pending) == 0 {
		return
	}
	o.inflight = true
	o.counted = true
	o.host.handedOut(1)
	o.write(o.nextFrame(sh))
}

// sent runs on the sink's write loop after a text frame was written.
func (o *outbox) sent() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.uncountLocked()
	if o.batch != nil { // the frame just written; the sink is done with it
		o.batch.recycle()
		o.batch = nil
	}
	if len(o.pending) == 0 || o.closing || o.held {
		o.inflight = false
		return
	}
	o.write(o.nextFrame(nil))
}

// nextFrame takes the pending frames, up to maxBatchBytes, off pending and returns them joined
// (newline-separated) as one frame; called with mu held. A joined frame's buffer is held in
// o.batch until written. With sh set (on the flusher), an outbox whose pending frames are the
// ones sh was joined from gets sh's frame, and a newly joined one is remembered in sh.
func (o *outbox) nextFrame(sh *shared) []byte {
	n, size := 1, len(o.pending[0])
	for n < len(o.pending) && size+1+len(o.pending[n]) <= maxBatchBytes {
		size += 1 + len(o.pending[n])
		n++
	}
	var frame []byte
	switch {
	case n == 1:
		frame = o.pending[0]
	case sh != nil && sh.match(o.pending[:n]):
		o.batch = sh.bp.retain()
		frame = o.batch.b
	default:
		bp := getBatch(size)
		b := bp.b
		for i, f := range o.pending[:n] {
			if i > 0 {
				b = append(b, '\n')
			}
			b = append(b, f...)
		}
		bp.b = b
		o.batch = bp
		frame = b
		if sh != nil {
			sh.set(o.pending[:n], bp)
		}
	}
	written := size - (n - 1)
	rest := copy(o.pending, o.pending[n:])
	clear(o.pending[rest:])
	o.pending = o.pending[:rest]
	o.pendingBytes -= written
	o.allowance = max(0, o.allowance-written)
	return frame
}

// uncountLocked takes the outbox out of the host's handed-out count.
func (o *outbox) uncountLocked() {
	if o.counted {
		o.counted = false
		o.host.handedOut(-1)
	}
}

// write passes a frame to the sink; called with mu held. The sink has room for it by
// construction (one data frame in flight), and its Write never blocks.
func (o *outbox) write(frame []byte) {
	if err := o.sink.Write(frame); err != nil {
		o.closing = true
	}
}

// broken marks an outbox whose connection failed before it was used: nothing more is queued.
func (o *outbox) broken() {
	o.mu.Lock()
	o.closing = true
	o.mu.Unlock()
}

func (o *outbox) slowLocked() {
	o.host.slow(o, o.pendingBytes)
	o.closeLocked(CloseSlowConsumer, false)
}

// close ends the session with a close code after the frames already pending (such as the error
// frame that led to the close); later frames are dropped.
func (o *outbox) close(code CloseCode) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeLocked(code, true)
}

// abort ends the session with a close code, dropping what is pending: nothing of it may reach
// a client that was not welcomed.
func (o *outbox) abort(code CloseCode) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closeLocked(code, false)
}

// closeLocked queues the close frame, after what is pending when flush is set. The sink has
// room: at most one data frame in flight, the flushed one and the close frame.
func (o *outbox) closeLocked(code CloseCode, flush bool) {
	o.uncountLocked() // a closing session's write loop is no reason for senders to yield
	if o.closing {
		return
	}
	o.closing = true
	if o.code == 0 {
		o.code = code
	}
	if flush && len(o.pending) > 0 {
		_ = o.sink.Write(bytes.Join(o.pending, []byte{'\n'}))
	}
	clear(o.pending)
	o.pending = nil
	o.pendingBytes, o.reserved = 0, 0
	_ = o.sink.CloseWith(code)
}

// closedWith records the close code the client sent, unless the session closed first.
func (o *outbox) closedWith(code CloseCode) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.code == 0 {
		o.code = code
	}
}

// endCode is the close code the session ended with; 1006 when there was none (the connection
// broke, or a write timed out).
func (o *outbox) endCode() CloseCode {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.code == 0 {
		return CloseAbnormal
	}
	return o.code
}
