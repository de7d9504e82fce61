package notify

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Frames reach melody through one flusher goroutine per hub. A send appends its frame to each
// recipient's outbox and, when the outbox has nothing in flight, queues the outbox for the
// flusher; the flusher hands each queued session everything pending by then as one
// frame. The first frame of a burst therefore leaves when the flusher gets to run (on a busy
// core, once the sender pauses or is preempted) together with what the burst added meanwhile,
// instead of alone; an idle session's lone event still leaves at once. Later frames leave
// from melody's write loop (outbox.sent), which takes whatever is pending when the previous
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

// flusher is the hub's hand-out of frames to melody: its queue of outboxes and the counters
// that decide when to coalesce and when senders yield. mu guards queue; the counters are
// atomics, each written where its event happens. run is its one goroutine.
type flusher struct {
	mu     sync.Mutex
	queue  []*outbox
	signal chan struct{} // capacity 1: the queue is not empty

	// deliveries counts frames handed to outboxes, lastFanOut is how many sessions the latest
	// message reached, queued is len(queue), handedAt the deliveries when the flusher last
	// took the queue, waiting the outboxes whose frame the flusher handed to melody and that
	// have not written it yet, rounds the hand-outs of yieldWaiting frames or more, and
	// roundYielded the rounds when a sender last yielded to one.
	deliveries, lastFanOut atomic.Uint64
	queued, waiting        atomic.Int64
	handedAt               atomic.Uint64
	rounds, roundYielded   atomic.Uint64
}

func newFlusher() *flusher { return &flusher{signal: make(chan struct{}, 1)} }

// delivered counts a message's delivery to n sessions.
func (f *flusher) delivered(n int) {
	f.deliveries.Add(uint64(n))
	if uint64(n) != f.lastFanOut.Load() {
		f.lastFanOut.Store(uint64(n))
	}
}

// coalesce yields while coalescing pays (see above) and reports how many times it did; since
// is the delivery count at the previous flush. yield is runtime.Gosched but in tests.
func (f *flusher) coalesce(since uint64, yield func()) (yields int) {
	if f.lastFanOut.Load() >= fanOut {
		return 0 // the latest message was a fan-out
	}
	for range maxYields {
		n := uint64(f.queued.Load())
		before := f.deliveries.Load()
		if n < busyQueue || before-since >= fullWrite*n {
			return yields
		}
		yield()
		yields++
		if f.deliveries.Load() == before {
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
func (f *flusher) pace(yield func()) {
	if f.lastFanOut.Load() < fanOut {
		return // per-user traffic: the flusher's coalescing decides (see above)
	}
	if q := f.queued.Load(); q >= busyQueue && f.deliveries.Load()-f.handedAt.Load() >= maxWrite*uint64(q) {
		yield()
	}
	// Again while hand-outs made meanwhile wait: a yield puts the sender behind the write
	// loops woken so far, not behind those the flusher wakes while it yields.
	for r := f.rounds.Load(); r != f.roundYielded.Load() && f.waiting.Load() >= yieldWaiting; r = f.rounds.Load() {
		f.roundYielded.Store(r)
		yield()
	}
}

// run hands queued outboxes' pending frames to melody until stop is closed.
func (f *flusher) run(stop <-chan struct{}) {
	var q []*outbox
	var sh shared
	for {
		select {
		case <-stop:
			return
		case <-f.signal:
		}
		small := f.coalesce(f.handedAt.Load(), runtime.Gosched) > 0
		f.handedAt.Store(f.deliveries.Load())
		handed := 0
		for {
			rest := f.take(&q, small)
			for i, o := range q {
				o.flush(&sh)
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
			f.rounds.Add(1)
		}
	}
}

// take moves the queue's head into q (flushChunk outboxes when small, all otherwise) and
// returns how many remain queued.
func (f *flusher) take(q *[]*outbox, small bool) (rest int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(f.queue)
	if small {
		n = min(n, flushChunk)
	}
	*q = append((*q)[:0], f.queue[:n]...)
	rest = copy(f.queue, f.queue[n:])
	clear(f.queue[rest:])
	f.queue = f.queue[:rest]
	f.queued.Store(int64(rest))
	return rest
}

// flushChunk is how many sessions the flusher hands their frames at a time when writes are
// small (see above).
const flushChunk = 256

// wakeList collects the outboxes a delivery queued for the flusher, so that the flusher's
// lock is taken once per batch rather than once per session. It lives on the caller's stack.
type wakeList struct {
	n   int
	buf [32]*outbox
}

func (w *wakeList) add(f *flusher, o *outbox) {
	w.buf[w.n] = o
	w.n++
	if w.n == len(w.buf) {
		w.wake(f)
	}
}

// wake queues the collected outboxes and wakes the flusher.
func (w *wakeList) wake(f *flusher) {
	if w.n == 0 {
		return
	}
	f.mu.Lock()
	f.queue = append(f.queue, w.buf[:w.n]...)
	f.queued.Store(int64(len(f.queue)))
	f.mu.Unlock()
	clear(w.buf[:w.n])
	w.n = 0
	select {
	case f.signal <- struct{}{}:
	default:
	}
}

// queueOne queues one outbox for the flusher.
func (f *flusher) queueOne(o *outbox) {
	var w wakeList
	w.add(f, o)
	w.wake(f)
}
