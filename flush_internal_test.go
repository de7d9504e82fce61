package notify

import "testing"

// TestCoalesce: the flusher yields only when many sessions wait with little each, at most
// maxYields times, and stops as soon as a yield brings no new deliveries.
func TestCoalesce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queued     int
		delivered  uint64 // since the last flush
		fanOut     uint64 // sessions the latest message reached
		perYield   uint64 // deliveries the senders add during each yield
		wantYields int
	}{
		{"idle: one session", 1, 1, 1, 1, 0},
		{"a few hundred short of busy", busyQueue - 1, busyQueue - 1, 1, 1, 0},
		{"busy, little each, senders keep going", busyQueue, busyQueue, 1, 1, maxYields},
		{"busy, little each, senders paused", busyQueue, busyQueue, 1, 0, 1},
		{"busy, enough each already", busyQueue, fullWrite * busyQueue, 1, 1, 0},
		{"busy, enough after one yield", busyQueue, busyQueue, 1, (fullWrite - 1) * busyQueue, 1},
		{"busy, little each, latest message a fan-out", 5000, 5000, 5000, 1, 0},
		{"busy, little each, latest message just short of a fan-out", busyQueue, busyQueue, fanOut - 1, 1, maxYields},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlusher()
			f.queued.Store(int64(tc.queued))
			const since = 500
			f.deliveries.Store(since + tc.delivered)
			f.lastFanOut.Store(tc.fanOut)
			yield := func() { f.deliveries.Add(tc.perYield) }
			if got := f.coalesce(since, yield); got != tc.wantYields {
				t.Errorf("%d yields, want %d", got, tc.wantYields)
			}
		})
	}
}

// TestPace: a sender of fan-outs yields to the flusher when the sessions waiting for it have
// maxWrite deliveries each, and once per large hand-out while its write loops have not run;
// otherwise, and after a per-user send, it does not yield.
func TestPace(t *testing.T) {
	for _, tc := range []struct {
		name            string
		perUser         bool // the latest message reached one session, not a fan-out
		queued          int64
		delivered       uint64 // since the flusher last took the queue
		rounds, yielded uint64
		waiting         int64
		handOut         bool // the first yield lets the flusher hand out yieldWaiting frames
		wantYields      int
		wantSeen        uint64
	}{
		{"idle", false, 1, 1, 0, 0, 0, false, 0, 0},
		{"many waiting, short of maxWrite each", false, busyQueue, (maxWrite - 1) * busyQueue, 0, 0, 0, false, 0, 0},
		{"many waiting, maxWrite each", false, busyQueue, maxWrite * busyQueue, 0, 0, 0, false, 1, 0},
		{"maxWrite each, but fewer than busyQueue waiting", false, busyQueue - 1, maxWrite * busyQueue, 0, 0, 0, false, 0, 0},
		{"a hand-out whose write loops have not run", false, 0, 0, 3, 2, yieldWaiting, false, 1, 3},
		{"a hand-out whose write loops have mostly run", false, 0, 0, 3, 2, yieldWaiting - 1, false, 0, 2},
		{"a hand-out already yielded to", false, 0, 0, 3, 3, 5000, false, 0, 3},
		{"maxWrite each, then the hand-out it caused", false, busyQueue, maxWrite * busyQueue, 0, 0, 0, true, 2, 1},
		{"per-user sends, maxWrite each and a hand-out waiting", true, busyQueue, maxWrite * busyQueue, 3, 2, 5000, false, 0, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFlusher()
			f.lastFanOut.Store(5000)
			if tc.perUser {
				f.lastFanOut.Store(1)
			}
			f.queued.Store(tc.queued)
			const at = 700
			f.handedAt.Store(at)
			f.deliveries.Store(at + tc.delivered)
			f.rounds.Store(tc.rounds)
			f.roundYielded.Store(tc.yielded)
			f.waiting.Store(tc.waiting)
			yields := 0
			f.pace(func() {
				yields++
				if tc.handOut && yields == 1 {
					f.queued.Store(0)
					f.handedAt.Store(f.deliveries.Load())
					f.rounds.Add(1)
					f.waiting.Store(int64(tc.queued))
				}
			})
			if yields != tc.wantYields {
				t.Errorf("%d yields, want %d", yields, tc.wantYields)
			}
			if got := f.roundYielded.Load(); got != tc.wantSeen {
				t.Errorf("roundYielded %d, want %d", got, tc.wantSeen)
			}
		})
	}
}
