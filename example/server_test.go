package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// serveWith runs the app on newServer(e, t0) on a loopback port and returns its base URL. The
// server is closed before the hub is shut down, when the test ends.
func serveWith(t *testing.T, t0 timeouts) string {
	t.Helper()
	e, _ := newTestApp(t, options{Demo: true})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newServer(e, t0)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// A connection that sends part of a request header and then nothing (the half-open upgrade
// requests that exhausted the file limit) is closed by the server once ReadHeader has passed:
// without an answer, or with a 400 when the request line was cut (net/http's choice). The
// clients wait up to 5s, far longer than the 200ms under test and shorter than the 10s of
// defaultTimeouts: an EOF in time is the header timeout's doing.
func TestHalfOpenRequestClosedAfterHeaderTimeout(t *testing.T) {
	t.Parallel()
	const headerTimeout = 200 * time.Millisecond
	to := defaultTimeouts
	to.ReadHeader = headerTimeout
	base := serveWith(t, to)
	addr := strings.TrimPrefix(base, "http://")

	partial := map[string]string{
		"upgrade, header unfinished": "GET /notify/ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
		"request line unfinished":    "GET /notify/ws HTT",
		"nothing sent":               "",
	}
	const each = 10
	var wg sync.WaitGroup
	for name, req := range partial {
		for i := range each {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				conn, err := net.Dial("tcp", addr)
				if err != nil {
					t.Errorf("%s #%d: dial: %v", name, i, err)
					return
				}
				defer conn.Close()
				if _, err := io.WriteString(conn, req); err != nil {
					t.Errorf("%s #%d: write: %v", name, i, err)
					return
				}
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				got, err := io.ReadAll(conn) // until EOF, or the deadline above
				elapsed := time.Since(start)
				switch {
				case err != nil:
					t.Errorf("%s #%d: still open after %v (%v): the server does not time the header out", name, i, elapsed.Round(time.Millisecond), err)
				case strings.HasPrefix(string(got), "HTTP/1.1 1") || strings.HasPrefix(string(got), "HTTP/1.1 2"):
					t.Errorf("%s #%d: server answered %q to an unfinished request", name, i, got)
				case elapsed < headerTimeout:
					t.Errorf("%s #%d: closed after %v, before the header timeout (%v)", name, i, elapsed, headerTimeout)
				}
			}()
		}
	}
	wg.Wait()

	// The server still serves complete requests.
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	if status, body := do(t, c, "GET", base+"/demo/token?user=alice", "", ""); status != http.StatusOK {
		t.Fatalf("GET /demo/token after the half-open connections: %d %q", status, body)
	}
}

// Read and Write (the server's ReadTimeout and WriteTimeout) set deadlines on the connection
// when a request's header arrives; net/http clears them when a handler hijacks the connection,
// as the WebSocket upgrade does. With both at 300ms, a session still receives and answers after
// 900ms, when those deadlines, had they stayed, would have passed.
func TestWebSocketOutlivesReadAndWriteTimeouts(t *testing.T) {
	t.Parallel()
	const rw = 300 * time.Millisecond
	to := defaultTimeouts
	to.ReadHeader, to.Read, to.Write = rw, rw, rw
	base := serveWith(t, to)
	c := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()

	status, body := do(t, c, "GET", base+"/demo/token?user=alice", "", "")
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(body), &tok); status != http.StatusOK || err != nil {
		t.Fatalf("GET /demo/token: %d %q %v", status, body, err)
	}
	ws, _, err := dialWS(t, base, tok.Token, http.Header{"Origin": {base}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if m := readFrame(t, ws); m["op"] != "welcome" {
		t.Fatalf("first frame = %v, want the welcome", m)
	}

	time.Sleep(3 * rw) // past the deadlines the upgrade request's header set

	// Server to client: an event.
	if status, resp := do(t, c, "POST", base+"/demo/send", "application/json", `{"user":"alice","type":"late"}`); status != http.StatusAccepted {
		t.Fatalf("POST /demo/send: %d %q", status, resp)
	}
	if m := readFrame(t, ws); sentType(m) != "late" {
		t.Fatalf("frame = %v, want the event sent after the timeouts", m)
	}
	// Client to server and back: a subscription.
	if err := ws.WriteJSON(map[string]string{"op": "subscribe", "topic": "news"}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if m := readFrame(t, ws); m["op"] != "subscribed" || m["topic"] != "news" {
		t.Fatalf("subscribe answer = %v", m)
	}
}

// The server main runs has every limit set.
func TestDefaultServerLimits(t *testing.T) {
	srv := newServer(http.NotFoundHandler(), defaultTimeouts)
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 {
			t.Errorf("%s = %v, want a limit", name, d)
		}
	}
	if srv.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("ReadHeaderTimeout = %v, want at most 10s", srv.ReadHeaderTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes = %d, want a limit below net/http's 1 MB default", srv.MaxHeaderBytes)
	}
}

// -demo listens only where no other machine reaches it; run refuses the rest before it
// builds the app or listens.
func TestDemoNeedsLoopback(t *testing.T) {
	t.Parallel()
	refused := func(addr string) string {
		return `-demo serves login-free tokens for any user, so it listens only on a loopback address (127.0.0.1:8080, [::1]:8080, localhost:8080), not "` + addr + `": use such an -addr, or -demo=false with a real login`
	}
	tests := []struct {
		name, addr, want string
	}{
		{"IPv4 loopback", "127.0.0.1:8080", ""},
		{"other IPv4 loopback", "127.0.0.2:0", ""},
		{"IPv6 loopback", "[::1]:8080", ""},
		{"localhost", "localhost:8080", ""},
		{"every interface", ":8080", refused(":8080")},
		{"IPv4 unspecified", "0.0.0.0:8080", refused("0.0.0.0:8080")},
		{"IPv6 unspecified", "[::]:8080", refused("[::]:8080")},
		{"public address", "192.0.2.1:8080", refused("192.0.2.1:8080")},
		{"host name that does not resolve", "no-such-host.invalid:8080", refused("no-such-host.invalid:8080")},
		{"no port", "127.0.0.1", `-addr "127.0.0.1": address 127.0.0.1: missing port in address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := demoAddrAllowed(tt.addr)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("demoAddrAllowed(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestRunRefusesDemoOnEveryInterface(t *testing.T) {
	t.Parallel()
	err := run(":0", options{Demo: true, Secret: testSecret, Logger: testLogger(t)})
	if err == nil || !strings.HasPrefix(err.Error(), "-demo serves login-free tokens") {
		t.Fatalf("run(:0, demo) = %v, want the loopback refusal", err)
	}
}
