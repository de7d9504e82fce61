package notify

import "testing"

// TestCoalesce: the flusher yields only when many sessions wait with little each, at most
// maxYields times, and stops as soon as a yield brings no new deliveries.
func TestCoalesce(t *testing.T) {
	for _, tc := range []struct {
		name       string
		queued     int
		delivered  uint64 // since the last flush
		perYield   uint64 // deliveries the senders add during each yield
		wantYields int
	}{
		{"idle: one session", 1, 1, 1, 0},
		{"a few hundred short of busy", busyQueue - 1, busyQueue - 1, 1, 0},
		{"busy, little each, senders keep going", busyQueue, busyQueue, 1, maxYields},
		{"busy, little each, senders paused", busyQueue, busyQueue, 0, 1},
		{"busy, enough each already", busyQueue, fullWrite * busyQueue, 1, 0},
		{"busy, enough after one yield", busyQueue, busyQueue, (fullWrite - 1) * busyQueue, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Hub{flushQ: make([]*conn, tc.queued)}
			const since = 500
			h.deliveries.Store(since + tc.delivered)
			yield := func() { h.deliveries.Add(tc.perYield) }
			if got := h.coalesce(since, yield); got != tc.wantYields {
				t.Errorf("%d yields, want %d", got, tc.wantYields)
			}
		})
	}
}
