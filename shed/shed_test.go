package shed_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
	"github.com/gonotify/notify/shed"
)

// childEnv makes the test binary a server with a lowered file limit (see serveChild).
const childEnv = "NOTIFY_SHED_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := serveChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// childLimit is the child server's file limit; the parent opens more half-open connections.
const childLimit = 64

// serveChild is the child process: RLIMIT_NOFILE lowered to childLimit, a hub served through
// Shed (MaxHalfOpen from the environment: "default" the default, -1 none, "off" no shedding at all) by an
// http.Server without ReadHeaderTimeout, so that only shedding frees a descriptor. It prints
// its address and a token, and serves until its standard input closes.
func serveChild() error {
	lim := syscall.Rlimit{Cur: childLimit, Max: childLimit}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	hub, err := notify.New(notify.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		return err
	}
	tok, err := hub.IssueToken("alice", 0)
	if err != nil {
		return err
	}
	var ln net.Listener
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: hub}
	switch v := os.Getenv(childEnv); v {
	case "off":
	default:
		var o shed.Options
		if v != "default" {
			if o.MaxHalfOpen, err = strconv.Atoi(v); err != nil {
				return err
			}
		}
		sl := shed.New(ln, o)
		ln, srv.ConnState = sl, sl.ConnState
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Printf("%s %s\n", ln.Addr(), tok)
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	<-served
	return hub.Shutdown(context.Background())
}

// TestLegitimateUpgradeUnderFileLimit opens more half-open connections (no request, or part of
// a header) than a server's file limit allows, then a WebSocket upgrade: the Listener lets it in, both
// when its cap sheds the half-open connections before the descriptors run out and, with no
// cap, when accept fails with EMFILE. The server has no ReadHeaderTimeout: without it the
// upgrade would wait in the backlog until its handshake timed out (45 s).
func TestLegitimateUpgradeUnderFileLimit(t *testing.T) {
	for _, tc := range []struct{ name, maxHalfOpen string }{
		{"default cap", "default"},
		{"EMFILE only", "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, tok := startChild(t, tc.maxHalfOpen)
			halfOpen(t, addr, 2*childLimit)
			c, _ := wstest.Welcome(t, "ws://"+addr+"/", tok)
			_ = c
		})
	}
}

// startChild starts serveChild and returns its address and token; it stops at cleanup.
func startChild(t *testing.T, maxHalfOpen string) (addr, token string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+maxHalfOpen)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("child server: %v", err)
		}
	})
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &addr, &token); err != nil {
		t.Fatalf("child server's address: %v", err)
	}
	return addr, token
}

// halfOpen opens n connections to addr that never finish a request: every other one sends
// part of a header. They close at cleanup.
func halfOpen(t *testing.T, addr string, n int) []net.Conn { return dialIdle(t, addr, n, true) }

// dialIdle opens n connections to addr; with partial set every other one sends part of a
// header, the others nothing. They close at cleanup.
func dialIdle(t *testing.T, addr string, n int, partial bool) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if partial && i%2 == 1 {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n"); err != nil {
				t.Fatal(err)
			}
		}
		conns[i] = c
	}
	return conns
}

// serve serves a hub at / and a plain answer at /ok through New with o on loopback, with
// no ReadHeaderTimeout; it stops at cleanup. It returns the address, a token and the hub.
func serve(t *testing.T, o shed.Options) (addr, token string, hub *notify.Hub) {
	t.Helper()
	return serveHook(t, o, nil)
}

// serveHook is serve, calling hook after the Listener's ConnState.
func serveHook(t *testing.T, o shed.Options, hook func(net.Conn, http.ConnState)) (addr, token string, hub *notify.Hub) {
	t.Helper()
	hub, err := notify.New(notify.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	if token, err = hub.IssueToken("alice", 0); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", hub)
	mux.HandleFunc("/ok", func(http.ResponseWriter, *http.Request) {})
	sl := shed.New(ln, o)
	srv := &http.Server{Handler: mux, ConnState: func(c net.Conn, s http.ConnState) {
		sl.ConnState(c, s)
		if hook != nil {
			hook(c, s)
		}
	}}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(sl)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-served
		if err := hub.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String(), token, hub
}

// closed reports, on the returned channel, the index of each connection the server closes.
// The readers end at cleanup.
func closed(t *testing.T, conns []net.Conn) <-chan int {
	t.Helper()
	ch := make(chan int, len(conns))
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			if _, err := c.Read(make([]byte, 1)); err == io.EOF || errors.Is(err, syscall.ECONNRESET) {
				ch <- i
			}
		})
	}
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
		wg.Wait()
	})
	return ch
}

// wantClosed waits for the closes of the connections want on ch, in any order.
func wantClosed(t *testing.T, ch <-chan int, want ...int) {
	t.Helper()
	var got []int
	for range want {
		got = append(got, <-ch)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("closed %v, want %v", got, want)
	}
}

// span is the ints from a to b-1.
func span(a, b int) []int {
	var s []int
	for i := a; i < b; i++ {
		s = append(s, i)
	}
	return s
}

// TestShedsOldest: with a cap of 8, half-open connections are shed oldest first, a kept-alive
// connection waiting for its next request among them; an upgrade is served, shedding one
// more, and a WebSocket session is never shed.
func TestShedsOldest(t *testing.T) {
	const limit = 8
	idled := make(chan struct{}, 1)
	addr, tok, hub := serveHook(t, shed.Options{MaxHalfOpen: limit}, func(_ net.Conn, s http.ConnState) {
		if s == http.StateIdle {
			select {
			case idled <- struct{}{}:
			default:
			}
		}
	})
	// A whole request and its response: the connection waits idle for the next (half-open).
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(idle, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(idle), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	<-idled // the server has it as idle: the oldest half-open connection from now
	conns := append([]net.Conn{idle}, halfOpen(t, addr, 20)...)
	ch := closed(t, conns)
	wantClosed(t, ch, span(0, len(conns)-limit)...)
	ws, _ := wstest.Welcome(t, "ws://"+addr+"/", tok)
	wantClosed(t, ch, len(conns)-limit)
	// The session is past its header: more half-open connections shed one another, not it.
	more := halfOpen(t, addr, limit+4)
	wantClosed(t, closed(t, more), span(0, 4)...)
	if _, err := hub.Send(context.Background(), "alice", notify.Event{Type: "t", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if f := ws.NextNonPing(); f["type"] != "t" {
		t.Fatalf("got %v, want the event", f)
	}
}

// TestShedsPerHost: with a cap per address, one address's half-open connections shed each
// other, not another address's.
func TestShedsPerHost(t *testing.T) {
	const perHost = 4
	addr, _, _ := serve(t, shed.Options{MaxHalfOpen: -1, MaxHalfOpenPerHost: perHost})
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	conns := append([]net.Conn{other}, halfOpen(t, addr, perHost+6)...)
	ch := closed(t, conns)
	wantClosed(t, ch, span(1, 7)...)
	// The other address's connection was not shed; its own fifth sheds it.
	for range perHost {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	wantClosed(t, ch, 0)
}

// TestShedTLS: behind tls.NewListener the server reports *tls.Conn states; a WebSocket session
// over TLS is still known as hijacked and never shed.
func TestShedTLS(t *testing.T) {
	const limit = 2
	hub, err := notify.New(notify.Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := hub.IssueToken("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(hub)
	sl := shed.New(srv.Listener, shed.Options{MaxHalfOpen: limit})
	srv.Listener, srv.Config.ConnState = sl, sl.ConnState
	srv.StartTLS()
	t.Cleanup(func() {
		srv.Close()
		if err := hub.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	d := websocket.Dialer{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	ws, _, err := d.Dial("wss"+srv.URL[len("https"):], http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	next := func() map[string]any {
		t.Helper()
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				t.Fatal(err)
			}
			var f map[string]any
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			if f["op"] != "ping" {
				return f
			}
		}
	}
	if f := next(); f["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", f)
	}
	addr := srv.Listener.Addr().String()
	// Connections that send nothing: a part of a header would fail the TLS handshake.
	wantClosed(t, closed(t, dialIdle(t, addr, limit+3, false)), span(0, 3)...)
	if _, err := hub.Send(context.Background(), "alice", notify.Event{Type: "t", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if f := next(); f["type"] != "t" {
		t.Fatalf("got %v, want the event", f)
	}
}
