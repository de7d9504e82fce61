package redisbroker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gonotify/notify"
)

// BenchmarkSendConcurrent sends per-user events of 200 B from 32 goroutines at once, as
// concurrent request handlers would, through one node on Redis: sends/s and Redis round trips
// per send (a pipeline counts once). The users have no session: this is the send path alone.
func BenchmarkSendConcurrent(b *testing.B) {
	u := redisURL(b)
	calls := &callCounter{}
	n := newCountedNode(b, u, prefix(b), calls)
	data := fmt.Sprintf("%0200d", 0)
	var next atomic.Int64
	b.SetParallelism(16) // 32 goroutines on 2 processors
	before := calls.n.Load()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := n.hub.Send(context.Background(), fmt.Sprint("user-", i%1000), notify.Event{Type: "t", Data: data}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sends/s")
	b.ReportMetric(float64(calls.n.Load()-before)/float64(b.N), "redis-calls/send")
}
