package notify_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// BenchmarkTransportDeliver sends one per-user event of 200 B at a time and waits until the
// session's client has read it, over each transport: the idle path of the load test's S5,
// where each event leaves alone in one write. allocs/op and B/op are the whole process's per
// event (the clients read into a fixed buffer and allocate nothing), writes/event the write
// system calls (/proc/self/io), cpu-µs/event the process's CPU time: what a paced tail pays per
// event on a server with one core to share.
func BenchmarkTransportDeliver(b *testing.B) {
	for _, tc := range []string{"websocket", "sse"} {
		b.Run(tc, func(b *testing.B) {
			h := newHub(b, func(c *notify.Config) { c.PingInterval = time.Hour })
			srv := serve(b, h)
			nc := rawSession(b, tc, srv, h, "target")
			got := make(chan struct{}, 1)
			done := make(chan struct{})
			go func() {
				defer close(done)
				countMarkers(nc, []byte(`"pad":"`), got)
			}()
			b.Cleanup(func() {
				_ = nc.Close()
				<-done
			})
			data := json.RawMessage(`{"ts":1764540000000000000,"pad":"` + strings.Repeat("x", 160) + `"}`)
			ev := notify.Event{Type: "b", Data: data}
			late := time.NewTimer(time.Hour) // one timer, reset per event: the loop allocates nothing of its own
			defer late.Stop()
			w0, cpu0 := procWrites(b), procCPU()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.Send(context.Background(), "target", ev); err != nil {
					b.Fatal(err)
				}
				late.Reset(10 * time.Second)
				select {
				case <-got:
				case <-late.C:
					b.Fatal("the event did not arrive")
				}
			}
			b.ReportMetric(float64(procWrites(b)-w0)/float64(b.N), "writes/event")
			b.ReportMetric(float64(procCPU()-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/event")
		})
	}
}

// rawSession opens a session for user over the transport and returns its connection once the
// welcome was read, for a reader of its own.
func rawSession(b *testing.B, transport string, srv *httptest.Server, h *notify.Hub, user string) net.Conn {
	b.Helper()
	tok := token(b, h, user)
	if transport == "websocket" {
		ws, _, err := websocket.DefaultDialer.Dial(wsURL(srv), http.Header{"Authorization": {"Bearer " + tok}})
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := ws.ReadMessage(); err != nil { // the welcome, alone on the wire
			b.Fatal(err)
		}
		return ws.NetConn()
	}
	u, _ := url.Parse(sseURL(srv))
	nc, err := net.Dial("tcp", u.Host)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := nc.Write([]byte("GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAuthorization: Bearer " + tok + "\r\n\r\n")); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 1)
	for { // the head and the welcome, which leave together
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.Contains(line, `"op":"welcome"`) {
			break
		}
	}
	for { // to the welcome's chunk's end: "\n" ending the event, then the chunk's CRLF
		line, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if line == "\r\n" {
			return nc
		}
	}
}

// countMarkers reads nc until it fails and signals got for each read that completed a marker.
func countMarkers(nc net.Conn, marker []byte, got chan<- struct{}) {
	buf := make([]byte, 64<<10)
	carry := 0
	for {
		n, err := nc.Read(buf[carry:])
		if err != nil {
			return
		}
		b := buf[:carry+n]
		if k := bytes.Count(b, marker); k > 0 {
			for range k {
				got <- struct{}{}
			}
		}
		carry = copy(buf, b[max(0, len(b)-len(marker)+1):])
	}
}

// procWrites returns the process's write system calls so far (Linux; 0 elsewhere).
func procWrites(b *testing.B) int64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// procCPU returns the process's user and system CPU time so far.
func procCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
