package notify

import "runtime"

// Frames reach melody through one flusher goroutine per hub. A send appends its frame to each
// recipient's pending list and, when the session has nothing in flight, queues the session
// for the flusher; the flusher hands each queued session everything pending by then as one
// frame. The first frame of a burst therefore leaves when the flusher gets to run (on a busy
// core, once the sender pauses or is preempted) together with what the burst added meanwhile,
// instead of alone; an idle session's lone event still leaves at once. Later frames leave
// from melody's write loop (conn.sent), which takes whatever is pending when the previous
// frame is written. Sessions whose pending frames are the same (a burst of broadcasts or topic
// publishes) are handed one joined frame between them (see shared): the join is done once, not
// once per session.

// Under load the flusher may first let the senders run on. When many sessions wait at once
// and each has little to send (a burst of per-user sends spread over many users, where every
// write would carry an event or two), it yields, at most maxYields times and only while
// deliveries keep arriving, and then hands the sessions their frames flushChunk at a time with
// a yield after each chunk, so that each session's write carries what the senders add
// meanwhile. A write system call costs several times what a send does, so fewer, fuller writes
// deliver more events per second; the price is latency, and only in that case. Fan-outs
// (when the latest message reached fanOut sessions or more) fill every session's write by
// themselves and are not delayed, nor is a lone event. No timer is involved: a yield with
// nothing else to run returns at once.
//
// The senders, in turn, give way to the write loops (see pace): without that, on a busy core a
// sender of fan-outs runs on for whole scheduler slices while thousands of write loops wait,
// and every event waits for the largest write.
const (
	busyQueue = 1024 // sessions waiting at once that mean the hub is under load
	fullWrite = 4    // deliveries per waiting session that make writes worth their cost
	maxYields = 2
	fanOut    = 64 // deliveries per message that make a burst of fan-outs, not of per-user sends
)

// coalesce yields while coalescing pays (see above) and reports how many times it did; since
// is the delivery count at the previous flush. yield is runtime.Gosched but in tests.
func (h *Hub) coalesce(since uint64, yield func()) (yields int) {
	if h.lastFanOut.Load() >= fanOut {
		return 0 // the latest message was a fan-out
	}
	for range maxYields {
		n := uint64(h.queued.Load())
		before := h.deliveries.Load()
		if n < busyQueue || before-since >= fullWrite*n {
			return yields
		}
		yield()
		yields++
		if h.deliveries.Load() == before {
			return yields // the senders have paused
		}
	}
	return yields
}

// Pacing: a sender of fan-outs (whoever calls Hub.deliver: Publish and Broadcast with the
// in-memory broker, the broker's receiving goroutine otherwise) yields the processor after a
// delivery that reached fanOut sessions or more when the write loops have fallen behind:
//   - when the sessions waiting for the flusher have maxWrite deliveries each on average: a
//     fuller write saves little and costs latency, so the flusher should hand them out;
//   - once after each hand-out of yieldWaiting frames or more while most of those write loops
//     have not run: on a busy core the scheduler would otherwise give the sender its next
//     slice before them (it runs a preempted goroutine ahead of ones woken since), and every
//     event of that slice would wait for the following round of writes.
//
// Yielding is not waiting: with nothing else runnable it returns at once, and it never waits
// for a client (a write loop blocked on a full socket is not runnable).
const (
	maxWrite     = 32
	yieldWaiting = busyQueue / 2
)

// pace yields as described above; yield is runtime.Gosched but in tests.
func (h *Hub) pace(yield func()) {
	if h.lastFanOut.Load() < fanOut {
		return // per-user traffic: the flusher's coalescing decides (see above)
	}
	if q := h.queued.Load(); q >= busyQueue && h.deliveries.Load()-h.flushedAt.Load() >= maxWrite*uint64(q) {
		yield()
	}
	// Again while hand-outs made meanwhile wait: a yield puts the sender behind the write
	// loops woken so far, not behind those the flusher wakes while it yields.
	for p := h.passes.Load(); p != h.seen.Load() && h.waiting.Load() >= yieldWaiting; p = h.passes.Load() {
		h.seen.Store(p)
		yield()
	}
}

// flusher hands queued sessions' pending frames to melody until the hub stops.
func (h *Hub) flusher() {
	defer h.bg.Done()
	var q []*conn
	var sh shared
	for {
		select {
		case <-h.stop:
			return
		case <-h.flushWake:
		}
		small := h.coalesce(h.flushedAt.Load(), runtime.Gosched) > 0
		h.flushedAt.Store(h.deliveries.Load())
		handed := 0
		for {
			h.flushMu.Lock()
			n := len(h.flushQ)
			if small {
				n = min(n, flushChunk)
			}
			q = append(q[:0], h.flushQ[:n]...)
			rest := copy(h.flushQ, h.flushQ[n:])
			clear(h.flushQ[rest:])
			h.flushQ = h.flushQ[:rest]
			h.queued.Store(int64(rest))
			h.flushMu.Unlock()
			for i, c := range q {
				c.flush(&sh)
				q[i] = nil
			}
			handed += len(q)
			if rest == 0 || !small {
				break
			}
			runtime.Gosched()
		}
		sh.reset()
		if handed >= yieldWaiting {
			h.passes.Add(1)
		}
	}
}

// flushChunk is how many sessions the flusher hands their frames at a time when writes are
// small (see above).
const flushChunk = 256

// wakeList collects the sessions a delivery queued for the flusher, so that the flusher's
// lock is taken once per batch rather than once per session. It lives on the caller's stack.
type wakeList struct {
	n   int
	buf [32]*conn
}

func (w *wakeList) add(h *Hub, c *conn) {
	w.buf[w.n] = c
	w.n++
	if w.n == len(w.buf) {
		w.wake(h)
	}
}

// wake queues the collected sessions and wakes the flusher.
func (w *wakeList) wake(h *Hub) {
	if w.n == 0 {
		return
	}
	h.flushMu.Lock()
	h.flushQ = append(h.flushQ, w.buf[:w.n]...)
	h.queued.Store(int64(len(h.flushQ)))
	h.flushMu.Unlock()
	clear(w.buf[:w.n])
	w.n = 0
	select {
	case h.flushWake <- struct{}{}:
	default:
	}
}

// wakeOne queues one session for the flusher.
func (h *Hub) wakeOne(c *conn) {
	var w wakeList
	w.add(h, c)
	w.wake(h)
}
