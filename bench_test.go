package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// Sessions beyond what one process's file limit allows (each costs a descriptor on both ends)
// are opened by a child process: this test binary run with these variables set.
const (
	envIdleURL  = "NOTIFY_BENCH_IDLE_URL"
	envIdleN    = "NOTIFY_BENCH_IDLE_N"
	envIdleRead = "NOTIFY_BENCH_IDLE_READ" // "1": the sessions read and discard what they get
)

// TestBenchIdleClients is the child process of spawnIdle: it opens the sessions, says "ready"
// and holds them until its stdin closes. It skips in a normal test run.
func TestBenchIdleClients(t *testing.T) {
	u, n := os.Getenv(envIdleURL), os.Getenv(envIdleN)
	if u == "" {
		t.Skip("helper process of the benchmarks; runs only when spawned by them")
	}
	count, _ := strconv.Atoi(n)
	h := newHub(t, nil) // same secret as the parent: only used to mint tokens
	conns := make([]*websocket.Conn, 0, count)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range count {
		tok, err := h.IssueToken(fmt.Sprintf("idle-%d", i/2), time.Hour) // two sessions per user
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		if os.Getenv(envIdleRead) == "1" {
			go func() {
				for {
					_, r, err := c.NextReader()
					if err != nil {
						return
					}
					io.Copy(io.Discard, r)
				}
			}()
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

// spawnIdle opens n sessions of other users (idle-0, idle-1, ..., two sessions each) from a
// child process; with read set they read and discard what they get, otherwise nothing.
func spawnIdle(b *testing.B, srv string, n int, read bool) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBenchIdleClients$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envIdleURL+"="+srv, envIdleN+"="+strconv.Itoa(n))
	if read {
		cmd.Env = append(cmd.Env, envIdleRead+"=1")
	}
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("idle clients: %q %v", line, err)
	}
}

// drainer reads a session as fast as it can and counts the events it receives.
type drainer struct {
	events atomic.Int64
	frames atomic.Int64
}

func drain(b *testing.B, ws *websocket.Conn, wg *sync.WaitGroup) *drainer {
	d := &drainer{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var buf bytes.Buffer
		for {
			_, r, err := ws.NextReader()
			if err != nil {
				return
			}
			buf.Reset()
			buf.ReadFrom(r)
			d.frames.Add(1)
			d.events.Add(int64(bytes.Count(buf.Bytes(), []byte(`"type":"bench"`))))
		}
	}()
	return d
}

func waitEvents(b *testing.B, ds []*drainer, want int64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, d := range ds {
		for d.events.Load() < want {
			if time.Now().After(deadline) {
				b.Fatalf("delivered %d of %d", d.events.Load(), want)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
}

// dialRaw connects a user and skips the welcome frame.
func dialRaw(b *testing.B, u string, h *notify.Hub, user string) *websocket.Conn {
	b.Helper()
	tok, _ := h.IssueToken(user, time.Hour)
	ws, _, err := websocket.DefaultDialer.Dial(u, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := ws.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	return ws
}

// BenchmarkSend sends to one user among 100 and among 10,000 connected sessions: the cost
// must not grow with the sessions of other users. ns/op is the Send call; ns/delivered is
// the whole run until the user's session has read every event.
func BenchmarkSend(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			h := newHub(b, func(c *notify.Config) {
				c.PingInterval, c.MaxQueueBytes = time.Hour, 1<<30 /* a tight loop outruns any reader */
			})
			srv := serve(b, h)
			spawnIdle(b, wsURL(srv), n-1, false)
			if got := h.Stats().Sessions; got != n-1 {
				b.Fatalf("%d sessions, want %d", got, n-1)
			}
			var wg sync.WaitGroup
			ws := dialRaw(b, wsURL(srv), h, "target")
			d := drain(b, ws, &wg)
			ev := notify.Event{Type: "bench", Data: map[string]any{"order": 42, "status": "shipped"}}
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if _, err := h.Send(context.Background(), "target", ev); err != nil {
					b.Fatal(err)
				}
			}
			waitEvents(b, []*drainer{d}, int64(b.N))
			b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(b.N), "ns/delivered")
			b.ReportMetric(float64(d.frames.Load())/float64(b.N), "frames/event")
			ws.Close()
			wg.Wait()
		})
	}
}

// BenchmarkSendSpread sends per-user events of 200 B (compact JSON) round-robin over 1,000
// users with two reading sessions each, like the load test's S2: ns/op covers the send and,
// as the sessions' writes share the process, its share of the writing.
func BenchmarkSendSpread(b *testing.B) {
	const users = 1000
	h := newHub(b, func(c *notify.Config) { c.PingInterval = time.Hour })
	srv := serve(b, h)
	spawnIdle(b, wsURL(srv), 2*users, true)
	names := make([]string, users)
	for i := range names {
		names[i] = "idle-" + strconv.Itoa(i)
	}
	data := json.RawMessage(`{"ts":1764540000000000000,"pad":"` + strings.Repeat("x", 160) + `"}`)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := h.Send(context.Background(), names[i%users], notify.Event{Type: "bench", Data: data}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkPublish publishes to a topic with 10 and with 1,000 subscribers. Each event is
// encoded once: the allocations of the Publish call do not grow with the subscribers.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := newHub(b, func(c *notify.Config) {
				c.PingInterval, c.MaxQueueBytes = time.Hour, 1<<30 /* a tight loop outruns any reader */
			})
			srv := serve(b, h)
			var wg sync.WaitGroup
			ds := make([]*drainer, n)
			conns := make([]*websocket.Conn, n)
			for i := range n {
				user := fmt.Sprintf("sub-%d", i)
				conns[i] = dialRaw(b, wsURL(srv), h, user)
				if err := h.Subscribe(context.Background(), user, "news"); err != nil {
					b.Fatal(err)
				}
				conns[i].ReadMessage() // subscribed
				ds[i] = drain(b, conns[i], &wg)
			}
			ev := notify.Event{Type: "bench", Data: "a headline of a realistic length, about fifty bytes"}
			var allocs float64
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				if _, err := h.Publish(context.Background(), "news", ev); err != nil {
					b.Fatal(err)
				}
			}
			elapsed := time.Since(start)
			waitEvents(b, ds, int64(b.N))
			total := time.Since(start)
			b.StopTimer()
			allocs = testing.AllocsPerRun(100, func() { h.Publish(context.Background(), "nobody-listens", ev) })
			waitEvents(b, ds, int64(b.N))
			b.ReportMetric(allocs, "publish-allocs")
			b.ReportMetric(float64(b.N*n)/total.Seconds(), "deliveries/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N), "ns/publish-call")
			var frames int64
			for _, d := range ds {
				frames += d.frames.Load()
			}
			b.ReportMetric(float64(frames)/float64(b.N*n), "frames/delivery")
			for _, c := range conns {
				c.Close()
			}
			wg.Wait()
		})
	}
}
