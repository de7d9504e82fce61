package notify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify"
)

// BenchmarkSendReport compares Send and SendReport to one user with one session, on the
// in-memory broker: the report's cost is its own (a presence read), and Send's unchanged.
func BenchmarkSendReport(b *testing.B) {
	for _, variant := range []string{"Send", "SendReport"} {
		b.Run(variant, func(b *testing.B) {
			h := newHub(b, func(c *notify.Config) { c.PingInterval, c.MaxQueueBytes = time.Hour, 1<<30 })
			srv := serve(b, h)
			var wg sync.WaitGroup
			ws := dialRaw(b, wsURL(srv), h, "target")
			d := drain(b, ws, &wg)
			ev := notify.Event{Type: "bench", Data: map[string]any{"order": 42, "status": "shipped"}}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if variant == "Send" {
					err = h.SendContext(ctx, "target", ev)
				} else {
					_, err = h.SendReport(ctx, "target", ev)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			waitEvents(b, []*drainer{d}, int64(b.N))
			ws.Close()
			wg.Wait()
		})
	}
}
