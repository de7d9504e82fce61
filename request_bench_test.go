package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// BenchmarkRequest measures a request's round trip over real WebSockets on loopback: a client
// sends {"op":"request"} and waits for its reply before sending the next, against a handler
// that echoes its data. It reports the round trip's p50 and p99 and the requests per second,
// on one session and spread over 1,000 sessions (of 1,000 users) each sending its own in turn.
// The rate limit is lifted: at the default (20 a second per session) it, not the request,
// would be measured. Every request has a fresh ID, so the answer cache fills and evicts as in
// use. It asserts nothing.
//
//	go test -run '^$' -bench BenchmarkRequest -benchtime 20000x .
func BenchmarkRequest(b *testing.B) {
	for _, sessions := range []int{1, 1000} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			h := newHub(b, func(c *notify.Config) {
				c.MessageRate, c.MessageBurst = 1e9, 1e9
				c.Requests = map[string]notify.RequestHandler{
					"echo": func(_ context.Context, req notify.Request) (any, error) { return req.Data, nil },
				}
			})
			srv := serve(b, h)
			conns := make([]*websocket.Conn, sessions)
			for i := range conns {
				c, _, err := websocket.DefaultDialer.Dial(wsURL(srv),
					http.Header{"Authorization": {"Bearer " + token(b, h, fmt.Sprint("user-", i))}})
				if err != nil {
					b.Fatalf("dial %d: %v", i, err)
				}
				b.Cleanup(func() { c.Close() })
				if _, _, err := c.ReadMessage(); err != nil { // the welcome
					b.Fatal(err)
				}
				conns[i] = c
			}
			rtts := make([][]time.Duration, sessions)
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for i, c := range conns {
				n := b.N / sessions
				if i < b.N%sessions {
					n++
				}
				wg.Go(func() { rtts[i] = roundTrips(b, c, i, n) })
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(rtts...)
			slices.Sort(all)
			if len(all) == 0 {
				return
			}
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
		})
	}
}

// roundTrips sends n requests on c, one at a time, and returns each one's round trip.
func roundTrips(b *testing.B, c *websocket.Conn, session, n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for k := range n {
		id := fmt.Sprintf("s%d-%d", session, k)
		frame, _ := json.Marshal(map[string]any{"op": "request", "id": id, "name": "echo", "data": map[string]int{"k": k}})
		want := []byte(`"id":"` + id + `"`)
		t0 := time.Now()
		if err := c.WriteMessage(websocket.TextMessage, frame); err != nil {
			b.Error(err)
			return out
		}
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				b.Error(err)
				return out
			}
			if bytes.Contains(msg, want) { // a frame may batch a ping with the reply
				break
			}
		}
		out = append(out, time.Since(t0))
	}
	return out
}
