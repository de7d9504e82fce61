// Package wstest is the WebSocket test client of notify's tests: it splits multi-object
// frames, reads with timeouts without breaking the connection, and cleans up after the test.
package wstest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Client is a test WebSocket client. Its reader goroutine starts on the first read, so a
// client that never reads stays a slow consumer.
type Client struct {
	t testing.TB
	// WS is the underlying connection, for raw writes.
	WS *websocket.Conn
	// Frames counts the frames read so far.
	Frames int
	// Wait is how long Next and CloseCode wait for a frame; 0 means 5 s for Next and 10 s for
	// CloseCode. A PipeServer's clients wait longer, on a synctest bubble's fake clock.
	Wait time.Duration

	// comments counts an event stream's comment lines (heartbeats); guarded by sse.mu.
	comments int

	sse     *sseConn // set for an event stream, in place of WS
	stash   *inFrame // a frame Ready took, for the next Read
	pending []map[string]any
	start   sync.Once
	in      chan inFrame
	done    chan struct{}
	exited  chan struct{}
	err     error // sticky: the read error that ended the connection
}

type inFrame struct {
	typ  int
	data []byte
	err  error
	id   string // an event stream's event id
}

// ErrTimeout is what Read returns when nothing arrived in time; the connection stays usable.
var ErrTimeout = errors.New("wstest: read timeout")

// Dial connects to u; the connection is closed and its reader waited for at cleanup.
func Dial(t testing.TB, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	return dial(t, websocket.DefaultDialer, u, hdr)
}

func dial(t testing.TB, d *websocket.Dialer, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	ws, resp, err := d.Dial(u, hdr)
	if err != nil {
		return nil, resp, err
	}
	c := &Client{t: t, WS: ws, in: make(chan inFrame), done: make(chan struct{}), exited: make(chan struct{})}
	t.Cleanup(func() {
		close(c.done)
		ws.Close()
		started := true
		c.start.Do(func() { started = false })
		if started {
			<-c.exited
		}
	})
	return c, resp, nil
}

// Welcome dials u with a bearer token and returns the client and its welcome frame.
func Welcome(t testing.TB, u, token string) (*Client, map[string]any) {
	t.Helper()
	c, _, err := Dial(t, u, http.Header{"Authorization": {"Bearer " + token}})
	return welcome(t, c, err)
}

func welcome(t testing.TB, c *Client, err error) (*Client, map[string]any) {
	t.Helper()
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := c.Next()
	if w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c, w
}

func (c *Client) reader() {
	defer close(c.exited)
	for {
		typ, data, err := c.WS.ReadMessage()
		select {
		case c.in <- inFrame{typ: typ, data: data, err: err}:
		case <-c.done:
			return
		}
		if err != nil {
			return
		}
	}
}

// Next returns the next JSON object, failing the test after Wait (default 5 s).
func (c *Client) Next() map[string]any {
	c.t.Helper()
	m, err := c.Read(c.wait(5 * time.Second))
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// Read returns the next JSON object, reading a frame when none is pending.
func (c *Client) Read(timeout time.Duration) (map[string]any, error) {
	c.start.Do(func() {
		if c.sse != nil {
			go c.sseReader()
		} else {
			go c.reader()
		}
	})
	for len(c.pending) == 0 {
		if c.err != nil {
			return nil, c.err
		}
		var f inFrame
		if c.stash != nil {
			f, c.stash = *c.stash, nil
		} else {
			select {
			case f = <-c.in:
			case <-time.After(timeout):
				return nil, ErrTimeout
			}
		}
		if f.err != nil {
			c.err = f.err
			return nil, f.err
		}
		if f.typ != websocket.TextMessage {
			return nil, fmt.Errorf("frame type %d", f.typ)
		}
		c.Frames++
		if f.id != "" {
			c.sse.mu.Lock()
			c.sse.lastEventID = f.id
			c.sse.mu.Unlock()
		}
		for _, line := range bytes.Split(f.data, []byte{'\n'}) {
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				return nil, fmt.Errorf("bad JSON %q: %w", line, err)
			}
			c.pending = append(c.pending, m)
		}
	}
	m := c.pending[0]
	c.pending = c.pending[1:]
	return m, nil
}

// Ready reports, without waiting, whether a frame (or the connection's end) has arrived and
// not been read. In a synctest bubble, after synctest.Wait, it tells exactly whether the
// server has written by now. The client must have read once (its reader runs).
func (c *Client) Ready() bool {
	if len(c.pending) > 0 || c.stash != nil || c.err != nil {
		return true
	}
	select {
	case f := <-c.in:
		c.stash = &f
		return true
	default:
		return false
	}
}

func (c *Client) wait(def time.Duration) time.Duration {
	if c.Wait > 0 {
		return c.Wait
	}
	return def
}

// NextNonPing skips pings and returns the next object.
func (c *Client) NextNonPing() map[string]any {
	c.t.Helper()
	for {
		if m := c.Next(); m["op"] != "ping" {
			return m
		}
	}
}

// Send writes v as one JSON frame; an event stream POSTs it, expecting 202.
func (c *Client) Send(v any) {
	c.t.Helper()
	if c.sse != nil {
		if status := c.Post(v); status != http.StatusAccepted {
			c.t.Fatalf("post: %d", status)
		}
		return
	}
	if err := c.WS.WriteJSON(v); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// CloseCode reads until the connection closes and returns the close code.
func (c *Client) CloseCode() int {
	c.t.Helper()
	for {
		_, err := c.Read(c.wait(10 * time.Second))
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		c.t.Fatalf("read ended without a close frame: %v", err)
	}
}

// WaitFor polls cond for up to 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RequireService skips a test whose service is missing (err != nil), or fails it when the
// environment requires every service (NOTIFY_REQUIRE_SERVICES=1, as .ci/run sets).
func RequireService(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("NOTIFY_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is required (NOTIFY_REQUIRE_SERVICES=1): %v", what, err)
	}
	t.Skipf("%s not available, skipping: %v", what, err)
}
