package webpush_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// BenchmarkNotifyPush sends notifications from 32 concurrent Notify calls to 32 users with
// no session, each with one subscription on the test's push service (which checks the JWT
// and decrypts every push, on the same machine), and reports pushes/s (from the first Notify
// to the last push received), the p99 of a Notify and the p99 from Notify to the push's
// arrival. Run it with, for example:
//
//	go test -run '^$' -bench NotifyPush -benchtime 5000x ./adapters/webpush/
func BenchmarkNotifyPush(b *testing.B) {
	for _, workers := range []int{webpush.DefaultWorkers, 32} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			benchNotifyPush(b, workers)
		})
	}
}

func benchNotifyPush(b *testing.B, workers int) {
	e := newEnv(b, options{sender: func(c *webpush.Config) { c.Workers, c.QueueSize = workers, 1<<16 }})
	const senders = 32
	endpoints := make([]string, senders)
	for i := range endpoints {
		endpoints[i] = e.subscribe(fmt.Sprint("user", i))
	}
	lat := make([][]time.Duration, senders)
	var sentAt sync.Map // notification ID -> time.Time
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := s; i < b.N; i += senders {
				id := fmt.Sprint("n", i)
				t0 := time.Now()
				sentAt.Store(id, t0)
				e.notify(fmt.Sprint("user", s), inbox.Notification{ID: id, Type: "bench"})
				lat[s] = append(lat[s], time.Since(t0))
			}
		})
	}
	wg.Wait()
	var arrivals []time.Duration
	wstest.WaitFor(b, "every push", func() bool {
		n := 0
		for _, ep := range endpoints {
			got, _ := e.ps.got(ep)
			n += len(got)
		}
		return n >= b.N
	})
	elapsed := time.Since(start)
	b.StopTimer()
	for _, ep := range endpoints {
		got, _ := e.ps.got(ep)
		for _, r := range got {
			t0, _ := sentAt.Load(r.payload["id"])
			arrivals = append(arrivals, r.at.Sub(t0.(time.Time)))
		}
	}
	all := slices.Concat(lat...)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pushes/s")
	b.ReportMetric(float64(p99(all).Microseconds()), "notify-p99-µs")
	b.ReportMetric(float64(p99(arrivals).Microseconds()), "delivery-p99-µs")
	b.ReportMetric(0, "ns/op")
	if st := e.sender.Stats(); st.Sent != int64(b.N) || st.Dropped != 0 {
		b.Errorf("stats %+v, want %d sent", st, b.N)
	}
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[len(d)*99/100]
}
