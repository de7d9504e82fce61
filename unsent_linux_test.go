package notify

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/gonotify/notify/internal/wstest"
)

// TestUnsentLimit: a session's TCP connection holds at most unsentLimit bytes unsent in the
// kernel (TCP_NOTSENT_LOWAT), so that a client that stops reading leaves its backlog in the
// outbox, where MaxQueueBytes bounds it, rather than in an autotuned send buffer.
func TestUnsentLimit(t *testing.T) {
	h, err := New(Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		if err := h.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	tok, err := h.IssueToken("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	wstest.Welcome(t, "ws"+strings.TrimPrefix(srv.URL, "http"), tok)
	var got []int
	h.idx.each(func(s *session) { // under the index's lock: no Fatal here
		ws, ok := s.t.(wsTransport)
		if !ok {
			t.Errorf("transport %T, want the WebSocket's", s.t)
			return
		}
		rc, err := ws.s.WebsocketConnection().NetConn().(syscall.Conn).SyscallConn()
		if err != nil {
			t.Errorf("SyscallConn: %v", err)
			return
		}
		v := -1
		if cerr := rc.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 25) }); cerr != nil || err != nil {
			t.Errorf("TCP_NOTSENT_LOWAT: %v %v", cerr, err)
		}
		got = append(got, v)
	})
	if len(got) != 1 || got[0] != unsentLimit {
		t.Fatalf("TCP_NOTSENT_LOWAT of the sessions: %v, want [%d]", got, unsentLimit)
	}
}

// TestUnsentLimitSSE: an HTTP/1.1 event stream's connection, hijacked from net/http, gets the
// same bound as a WebSocket's.
func TestUnsentLimitSSE(t *testing.T) {
	h, err := New(Config{Secret: []byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.SSE())
	t.Cleanup(func() {
		srv.Close()
		if err := h.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	tok, err := h.IssueToken("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest("GET", srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 1 {
		t.Fatalf("status %d, protocol %s", resp.StatusCode, resp.Proto)
	}
	// The welcome: the stream is registered by then.
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "id: ") && !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	h.sse.mu.Lock()
	var conns []net.Conn
	for _, tr := range h.sse.m {
		c, ok := tr.dst.(*sseConn)
		if !ok {
			t.Errorf("target %T, want the hijacked connection", tr.dst)
			continue
		}
		conns = append(conns, c.Conn)
	}
	h.sse.mu.Unlock()
	var got []int
	for _, nc := range conns {
		rc, err := nc.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatalf("SyscallConn: %v", err)
		}
		v := -1
		if cerr := rc.Control(func(fd uintptr) { v, err = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, 25) }); cerr != nil || err != nil {
			t.Fatalf("TCP_NOTSENT_LOWAT: %v %v", cerr, err)
		}
		got = append(got, v)
	}
	if len(got) != 1 || got[0] != unsentLimit {
		t.Fatalf("TCP_NOTSENT_LOWAT of the streams: %v, want [%d]", got, unsentLimit)
	}
}
