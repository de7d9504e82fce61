package redisbroker_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// BenchmarkSendReportRedis compares Send and SendReport, one at a time, from a node on Redis
// to a user with a session on each of two nodes: ns/op and Redis round trips per call (a
// pipeline counts once).
func BenchmarkSendReportRedis(b *testing.B) {
	u := redisURL(b)
	for _, variant := range []string{"Send", "SendReport"} {
		b.Run(variant, func(b *testing.B) {
			p := prefix(b)
			calls := &callCounter{}
			a := newCountedNode(b, u, p, calls)
			other := newNode(b, u, p, nil)
			for _, n := range []*node{a, other} {
				drainSession(b, n, "target")
			}
			ev := notify.Event{Type: "bench", Data: map[string]any{"order": 42}}
			ctx := context.Background()
			before := calls.n.Load()
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if variant == "Send" {
					_, err = a.hub.Send(ctx, "target", ev)
				} else {
					_, err = a.hub.Send(ctx, "target", ev)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(calls.n.Load()-before)/float64(b.N), "redis-calls/op")
		})
	}
}

// BenchmarkConnectRedis opens and closes sessions one after the other on a node on Redis:
// ns/op per connect (upgrade to welcome) and the Redis round trips of a connect and of its
// disconnect (presence included).
func BenchmarkConnectRedis(b *testing.B) {
	u := redisURL(b)
	calls := &callCounter{}
	n := newCountedNode(b, u, prefix(b), calls)
	tok, _ := n.hub.IssueToken("target", time.Hour)
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	var connect time.Duration
	var connectCalls int64
	before := calls.n.Load()
	for b.Loop() {
		c0 := calls.n.Load()
		start := time.Now()
		ws, _, err := websocket.DefaultDialer.Dial(n.url, hdr)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil { // the welcome
			b.Fatal(err)
		}
		connect += time.Since(start)
		connectCalls += calls.n.Load() - c0
		ws.Close()
		for n.hub.Stats().Present != 0 { // until its disconnect is done
			time.Sleep(50 * time.Microsecond)
		}
	}
	b.ReportMetric(float64(connect.Nanoseconds())/float64(b.N), "ns/connect")
	b.ReportMetric(float64(connectCalls)/float64(b.N), "redis-calls/connect")
	b.ReportMetric(float64(calls.n.Load()-before-connectCalls)/float64(b.N), "redis-calls/disconnect")
}

// BenchmarkDisconnectUser disconnects a user with 10 sessions spread over 2 nodes on Redis:
// ns/op is the time from the Disconnect call until the last socket has seen its close frame.
func BenchmarkDisconnectUser(b *testing.B) {
	u := redisURL(b)
	p := prefix(b)
	nodes := []*node{newNode(b, u, p, nil), newNode(b, u, p, nil)}
	tok, _ := nodes[0].hub.IssueToken("target", time.Hour)
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		conns := make([]*websocket.Conn, 10)
		for i := range conns {
			ws, _, err := websocket.DefaultDialer.Dial(nodes[i%2].url, hdr)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ws.ReadMessage(); err != nil {
				b.Fatal(err)
			}
			conns[i] = ws
		}
		b.StartTimer()
		if err := nodes[0].hub.Disconnect(ctx, "target", notify.DisconnectOptions{}); err != nil {
			b.Fatal(err)
		}
		for _, ws := range conns {
			for {
				if _, _, err := ws.ReadMessage(); err != nil {
					break
				}
			}
			ws.Close()
		}
	}
}

// drainSession opens a session of user on n that reads and drops everything until cleanup.
func drainSession(b *testing.B, n *node, user string) {
	b.Helper()
	tok, _ := n.hub.IssueToken(user, time.Hour)
	ws, _, err := websocket.DefaultDialer.Dial(n.url, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { ws.Close(); <-done })
}
