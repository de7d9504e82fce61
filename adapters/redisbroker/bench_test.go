package redisbroker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// callCounter counts the commands a Redis client sends, pipelines included.
type callCounter struct{ n atomic.Int64 }

func (c *callCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *callCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.n.Add(1); return next(ctx, cmd) }
}
func (c *callCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { c.n.Add(1); return next(ctx, cmds) }
}

// BenchmarkSendEndToEnd sends to one user and measures until a WebSocket client has read
// each event: on one node with the in-memory broker (the baseline), one node on Redis, and
// two nodes on Redis (sent on one, delivered by the other). Reported: events/s, end-to-end
// latency p50 and p99, and Redis round trips per Send.
func BenchmarkSendEndToEnd(b *testing.B) {
	u := redisURL(b)
	for _, variant := range []string{"memory-1node", "redis-1node", "redis-2nodes"} {
		b.Run(variant, func(b *testing.B) {
			var sender, receiver *notify.Hub
			var wsURL string
			calls := &callCounter{}
			switch variant {
			case "memory-1node":
				n := newMemNode(b)
				sender, receiver, wsURL = n.hub, n.hub, n.url
			default:
				p := prefix(b)
				a := newCountedNode(b, u, p, calls)
				sender, receiver, wsURL = a.hub, a.hub, a.url
				if variant == "redis-2nodes" {
					other := newNode(b, u, p, nil)
					receiver, wsURL = other.hub, other.url
				}
			}
			tok, _ := receiver.IssueToken("target", time.Hour)
			ws, _, err := websocket.DefaultDialer.Dial(wsURL, http.Header{"Authorization": {"Bearer " + tok}})
			if err != nil {
				b.Fatal(err)
			}
			defer ws.Close()
			ws.ReadMessage() // welcome

			lat := make([]time.Duration, 0, b.N)
			done := make(chan error, 1)
			go func() { done <- readLatencies(ws, b.N, &lat) }()
			before := calls.n.Load()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				ev := notify.Event{Type: "bench", Data: json.RawMessage(strconv.FormatInt(time.Now().UnixNano(), 10))}
				if _, err := sender.Send(context.Background(), "target", ev); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if variant != "memory-1node" {
				b.ReportMetric(float64(calls.n.Load()-before)/float64(b.N), "redis-calls/send")
			}
		})
	}
}

// readLatencies reads n events and records now minus the send time each carries.
func readLatencies(ws *websocket.Conn, n int, lat *[]time.Duration) error {
	ws.SetReadDeadline(time.Now().Add(2 * time.Minute))
	for len(*lat) < n {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		now := time.Now().UnixNano()
		for _, line := range bytes.Split(data, []byte{'\n'}) {
			var ev struct {
				Type string `json:"type"`
				Data int64  `json:"data"`
			}
			if json.Unmarshal(line, &ev) == nil && ev.Type == "bench" {
				*lat = append(*lat, time.Duration(now-ev.Data))
			}
		}
	}
	return nil
}

type memNode struct {
	hub *notify.Hub
	url string
}

func newMemNode(b *testing.B) *memNode {
	n := newNode(b, "", "", nil)
	return &memNode{hub: n.hub, url: n.url}
}

func newCountedNode(b *testing.B, u, p string, calls *callCounter) *node {
	o, err := redis.ParseURL(u)
	if err != nil {
		b.Fatal(err)
	}
	client := redis.NewClient(o)
	client.AddHook(calls)
	b.Cleanup(func() { client.Close() })
	return newNodeWithClient(b, client, p)
}

// BenchmarkHistoryMemory fills the history of 10,000 streams to its default bounds (100
// events each) with 200-byte events and reports the memory it takes: Go heap for the
// in-memory broker, Redis used_memory for the Redis broker.
func BenchmarkHistoryMemory(b *testing.B) {
	const streams, perStream = 10_000, notify.DefaultHistorySize
	data := strings.Repeat("x", 200)
	fill := func(b *testing.B, h *notify.Hub) {
		for i := range streams {
			for range perStream {
				if _, err := h.Send(context.Background(), fmt.Sprint("user-", i), notify.Event{Type: "t", Data: data}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("memory", func(b *testing.B) {
		for b.Loop() {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n := newNode(b, "", "", nil)
			fill(b, n.hub)
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB")
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/streams/perStream, "B/event")
			runtime.KeepAlive(n)
		}
	})
	b.Run("redis", func(b *testing.B) {
		u := redisURL(b)
		o, _ := redis.ParseURL(u)
		c := redis.NewClient(o)
		defer c.Close()
		for b.Loop() {
			p := prefix(b)
			before := usedMemory(b, c)
			n := newNode(b, u, p, nil)
			fill(b, n.hub)
			after := usedMemory(b, c)
			b.ReportMetric(float64(after-before)/(1<<20), "MiB")
			b.ReportMetric(float64(after-before)/streams/perStream, "B/event")
			// Leave the shared Redis as it was.
			iter := c.Scan(context.Background(), 0, p+":*", 1000).Iterator()
			for iter.Next(context.Background()) {
				c.Del(context.Background(), iter.Val())
			}
		}
	})
}

func usedMemory(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Fatal("no used_memory in INFO")
	return 0
}
