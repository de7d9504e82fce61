package notify

import (
	"sync"
	"sync/atomic"
)

// Joined frames: under load a session's pending frames leave together, newline-separated, as
// one frame built in a pooled buffer (a batch); sessions with the same frames pending share
// one (see shared).

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

// retain adds a holder and returns the batch.
func (bp *batch) retain() *batch {
	bp.refs.Add(1)
	return bp
}

// release drops a hold; the last one returns the buffer to its pool.
func (bp *batch) recycle() {
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
	sh.parts, sh.bp = append(sh.parts[:0], parts...), bp.retain()
}

func (sh *shared) reset() {
	if sh.bp != nil {
		sh.bp.recycle()
		sh.bp = nil
	}
	clear(sh.parts)
	sh.parts = sh.parts[:0]
}
