package notify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify"
)

// requestHub returns a hub with the handlers and its test server.
func requestHub(t testing.TB, handlers map[string]notify.RequestHandler, adjust func(*notify.Config)) (*notify.Hub, *httptest.Server) {
	t.Helper()
	h := newHub(t, func(c *notify.Config) {
		c.Requests = handlers
		if adjust != nil {
			adjust(c)
		}
	})
	return h, serve(t, h)
}

// ask sends a request frame.
func ask(c *client, id, name string, data any) {
	c.Send(map[string]any{"op": "request", "id": id, "name": name, "data": data})
}

// expectReply reads the next frame and checks it is the reply to id with want's fields.
func expectReply(t testing.TB, c *client, id string, want map[string]any) map[string]any {
	t.Helper()
	w := map[string]any{"op": "reply", "id": id}
	for k, v := range want {
		w[k] = v
	}
	return expectFrame(t, c, w)
}

// gate is a handler that blocks until it is opened or its context ends, counting its runs.
type gate struct {
	runs    atomic.Int32
	started chan string // the session of each run, as it starts
	open    chan struct{}
	once    sync.Once
	ended   chan error // the context's cause when it ended first
}

func newGate() *gate {
	return &gate{started: make(chan string, 16), open: make(chan struct{}), ended: make(chan error, 16)}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) handle(ctx context.Context, req notify.Request) (any, error) {
	n := g.runs.Add(1)
	g.started <- req.Session
	select {
	case <-g.open:
		return map[string]any{"run": n, "data": req.Data}, nil
	case <-ctx.Done():
		g.ended <- context.Cause(ctx)
		return nil, ctx.Err()
	}
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// TestRequestAnswers: each outcome of a handler reaches the client with its code, over both
// transports, and the session goes on after a panic.
func TestRequestAnswers(t *testing.T) {
	t.Parallel()
	handlers := map[string]notify.RequestHandler{
		"echo": func(_ context.Context, req notify.Request) (any, error) {
			return map[string]any{"user": req.Identity.UserID, "session": req.Session, "id": req.ID,
				"data": req.Data, "role": req.Identity.Claims["role"]}, nil
		},
		"nothing": func(context.Context, notify.Request) (any, error) { return nil, nil },
		"refuse": func(context.Context, notify.Request) (any, error) {
			return nil, fmt.Errorf("wrapped: %w", &notify.RequestError{Code: "not_found", Message: "no such order"})
		},
		"fail":   func(context.Context, notify.Request) (any, error) { return nil, errors.New("db: password=hunter2") },
		"panic":  func(context.Context, notify.Request) (any, error) { panic("boom") },
		"badval": func(context.Context, notify.Request) (any, error) { return func() {}, nil },
	}
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, srv := requestHub(t, handlers, nil)
			tok := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "role": "admin",
				"exp": time.Now().Add(time.Minute).Unix()})
			c, _, err := tc.dial(t, tc.url(srv), http.Header{"Authorization": {"Bearer " + tok}})
			if err != nil {
				t.Fatal(err)
			}
			w := c.Next()
			for _, step := range []struct {
				name, handler string
				data          any
				want          map[string]any
			}{
				{"answer", "echo", map[string]any{"x": 1}, map[string]any{
					"data": map[string]any{"user": "alice", "session": w["session"], "id": "answer", "data": map[string]any{"x": 1}, "role": "admin"}}},
				{"no data", "echo", nil, map[string]any{"data": map[string]any{"user": "alice", "session": w["session"], "id": "no data", "data": nil, "role": "admin"}}},
				{"null answer", "nothing", nil, map[string]any{"data": nil, "code": nil}},
				{"handler error", "refuse", nil, map[string]any{"code": "not_found", "reason": "no such order"}},
				{"other error", "fail", nil, map[string]any{"code": "internal", "reason": "internal error"}},
				{"panic", "panic", nil, map[string]any{"code": "internal", "reason": "internal error"}},
				{"unencodable", "badval", nil, map[string]any{"code": "internal"}},
				{"unknown name", "nosuch", nil, map[string]any{"code": "unknown_request", "reason": "no handler for this name"}},
				{"after the panic", "echo", "still here", map[string]any{"data": map[string]any{"user": "alice", "session": w["session"], "id": "after the panic", "data": "still here", "role": "admin"}}},
			} {
				ask(c, step.name, step.handler, step.data)
				got := expectReply(t, c, step.name, step.want)
				if strings.Contains(fmt.Sprint(got), "hunter2") {
					t.Fatalf("%s: the error's text reached the client: %v", step.name, got)
				}
			}
		})
	}
}

// synced returns once c's session has read every message c sent before: the read loop answers
// them in order, and the last is a request to no handler.
func synced(t testing.TB, c *client) {
	t.Helper()
	ask(c, "sync", "no such handler", nil)
	expectReply(t, c, "sync", map[string]any{"code": "unknown_request"})
}

// counting returns an "echo" handler answering "ok" and the count of its runs.
func counting() (map[string]notify.RequestHandler, *atomic.Int32) {
	var runs atomic.Int32
	return map[string]notify.RequestHandler{"echo": func(context.Context, notify.Request) (any, error) {
		runs.Add(1)
		return "ok", nil
	}}, &runs
}

// dialAs connects over tc as user and returns the client and its welcome.
func dialAs(t testing.TB, tc transportCase, srv *httptest.Server, h *notify.Hub, user string) (*client, map[string]any) {
	t.Helper()
	return reconnectVia(t, tc.dial, tc.url(srv), h, user, nil)
}

// TestRequestMalformed: request frames the hub cannot serve are bad messages, answered as such
// (by a reply when they have a usable id) and counted towards the 4003 close.
func TestRequestMalformed(t *testing.T) {
	t.Parallel()
	echo := map[string]notify.RequestHandler{"echo": func(context.Context, notify.Request) (any, error) { return "ok", nil }}
	long := strings.Repeat("n", 129)
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h, srv := requestHub(t, echo, nil)
			c, _ := dialAs(t, tc, srv, h, "alice")
			for _, step := range []struct {
				name  string
				frame map[string]any
				want  map[string]any
			}{
				{"no id", map[string]any{"op": "request", "name": "echo"},
					map[string]any{"op": "error", "code": "bad_request", "reason": "a request needs an id of 1 to 64 bytes", "id": nil}},
				{"id too long", map[string]any{"op": "request", "id": strings.Repeat("i", 65), "name": "echo"},
					map[string]any{"op": "error", "code": "bad_request", "reason": "a request needs an id of 1 to 64 bytes", "id": nil}},
				{"id not a string", map[string]any{"op": "request", "id": 7, "name": "echo"},
					map[string]any{"op": "error", "code": "bad_request", "reason": "expected a JSON object with an op"}},
				{"no name", map[string]any{"op": "request", "id": "r1"},
					map[string]any{"op": "reply", "id": "r1", "code": "bad_request", "reason": "a request needs a name of 1 to 128 bytes"}},
				{"name too long", map[string]any{"op": "request", "id": "r2", "name": long},
					map[string]any{"op": "reply", "id": "r2", "code": "bad_request", "reason": "a request needs a name of 1 to 128 bytes"}},
			} {
				c.Send(step.frame)
				expectFrame(t, c, step.want)
			}
			// A good request resets the count; ten bad ones in a row close the session.
			ask(c, "ok", "echo", nil)
			expectReply(t, c, "ok", map[string]any{"data": "ok"})
			for i := range 10 {
				c.Send(map[string]any{"op": "request", "id": fmt.Sprint("bad", i)})
				expectReply(t, c, fmt.Sprint("bad", i), map[string]any{"code": "bad_request"})
			}
			if code := notify.CloseCode(c.CloseCode()); code != notify.CloseProtocolAbuse {
				t.Fatalf("close code %d, want %d", code, notify.CloseProtocolAbuse)
			}
		})
	}
}

// TestRequestTooLarge: a request past Config.MaxMessageSize is refused as any message is: the
// socket closes with 1009, the event stream's POST gets 413 and the stream goes on.
func TestRequestTooLarge(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			echo, runs := counting()
			h, srv := requestHub(t, echo, func(c *notify.Config) { c.MaxMessageSize = 512 })
			c, _ := dialAs(t, tc, srv, h, "alice")
			big := map[string]any{"op": "request", "id": "big", "name": "echo", "data": strings.Repeat("x", 512)}
			if c.SSE() {
				if status := c.Post(big); status != http.StatusRequestEntityTooLarge {
					t.Fatalf("POST %d, want 413", status)
				}
				ask(c, "small", "echo", nil)
				expectReply(t, c, "small", map[string]any{"data": "ok"})
				if n := runs.Load(); n != 1 {
					t.Fatalf("%d runs, want 1 (the small request's)", n)
				}
				return
			}
			c.Send(big)
			if code := c.CloseCode(); code != 1009 {
				t.Fatalf("close code %d, want 1009", code)
			}
			if n := runs.Load(); n != 0 {
				t.Fatalf("%d runs, want none", n)
			}
		})
	}
}

// TestRequestRateLimited: a request past the session's rate limit is answered rate_limited,
// with its id, and not run.
func TestRequestRateLimited(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			echo, runs := counting()
			h, srv := requestHub(t, echo, func(c *notify.Config) { c.MessageRate, c.MessageBurst = 2, 3 })
			clock := newFakeClock()
			notify.SetClock(h, clock.Now)
			c, _ := dialAs(t, tc, srv, h, fmt.Sprint("alice-", tc.name))
			for i := range 3 {
				ask(c, fmt.Sprint("r", i), "echo", nil)
				expectReply(t, c, fmt.Sprint("r", i), map[string]any{"data": "ok"})
			}
			ask(c, "r3", "echo", nil)
			expectReply(t, c, "r3", map[string]any{"code": "rate_limited", "reason": "too many messages, slow down"})
			if n := runs.Load(); n != 3 {
				t.Fatalf("%d runs, want 3", n)
			}
			clock.Advance(time.Second)
			ask(c, "r3", "echo", nil) // the retry is served
			expectReply(t, c, "r3", map[string]any{"data": "ok"})
		})
	}
}

// TestRequestNeverAnswers: a handler that does not return is answered "timeout" at
// Config.RequestTimeout, its context ending then; and a handler's context ends with its
// session.
func TestRequestNeverAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name+"/timeout", func(t *testing.T) {
			t.Parallel()
			g := newGate()
			h, srv := requestHub(t, map[string]notify.RequestHandler{"hang": g.handle},
				func(c *notify.Config) { c.RequestTimeout = 50 * time.Millisecond })
			c, _ := dialAs(t, tc, srv, h, "alice")
			ask(c, "r1", "hang", nil)
			expectReply(t, c, "r1", map[string]any{"code": "timeout", "reason": "the handler did not answer in time"})
			if err := recv(t, g.ended, "the handler's context to end"); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("cause %v, want the deadline", err)
			}
			// A retry of the same ID gets the same answer without a second run.
			ask(c, "r1", "hang", nil)
			expectReply(t, c, "r1", map[string]any{"code": "timeout"})
			if n := g.runs.Load(); n != 1 {
				t.Fatalf("%d runs, want 1", n)
			}
		})
		t.Run(tc.name+"/session end", func(t *testing.T) {
			t.Parallel()
			g := newGate()
			h, srv := requestHub(t, map[string]notify.RequestHandler{"hang": g.handle}, nil)
			c, _ := dialAs(t, tc, srv, h, "alice")
			ask(c, "r1", "hang", nil)
			recv(t, g.started, "the handler to start")
			c.Close()
			if err := recv(t, g.ended, "the handler's context to end"); err == nil || err.Error() != "notify: session ended" {
				t.Fatalf("cause %v, want the session's end", err)
			}
			waitFor(t, "the session to end", func() bool { return h.LocalSessions("alice") == 0 })
		})
	}
}

// TestRequestTooManyInFlight: past Config.MaxRequestsInFlight a request is answered at once
// with too_many_requests; the others are answered when their handlers return.
func TestRequestTooManyInFlight(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			h, srv := requestHub(t, map[string]notify.RequestHandler{"slow": g.handle},
				func(c *notify.Config) { c.MaxRequestsInFlight = 2 })
			c, _ := dialAs(t, tc, srv, h, "alice")
			ask(c, "a", "slow", nil)
			ask(c, "b", "slow", nil)
			recv(t, g.started, "a")
			recv(t, g.started, "b")
			ask(c, "c", "slow", nil)
			expectReply(t, c, "c", map[string]any{"code": "too_many_requests", "reason": "at most 2 requests in flight per session"})
			g.release()
			got := map[any]bool{}
			for range 2 {
				m := nextOp(t, c)
				if m["op"] != "reply" || m["code"] != nil {
					t.Fatalf("got %v, want an answer", m)
				}
				got[m["id"]] = true
			}
			if !got["a"] || !got["b"] {
				t.Fatalf("answers to %v, want a and b", got)
			}
			ask(c, "c", "slow", nil) // room again: the refused one was not kept
			expectReply(t, c, "c", map[string]any{"data": map[string]any{"run": 3, "data": nil}})
		})
	}
}

// TestRequestRepeatedID: a request sent again with its ID (as after a reconnect) while the
// first runs waits for the same answer, and one sent after gets the kept answer; the handler
// runs once. Another user's same ID is another request.
func TestRequestRepeatedID(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			h, srv := requestHub(t, map[string]notify.RequestHandler{"pay": g.handle}, nil)
			first, _ := dialAs(t, tc, srv, h, "alice")
			ask(first, "r1", "pay", 42)
			recv(t, g.started, "the first run")
			second, _ := dialAs(t, tc, srv, h, "alice")
			ask(second, "r1", "pay", 42)
			synced(t, second) // the repeat has arrived, and waits
			g.release()
			want := map[string]any{"data": map[string]any{"run": 1, "data": 42}}
			expectReply(t, first, "r1", want)
			expectReply(t, second, "r1", want)
			third, _ := dialAs(t, tc, srv, h, "alice")
			ask(third, "r1", "pay", 42)
			expectReply(t, third, "r1", want)
			if n := g.runs.Load(); n != 1 {
				t.Fatalf("%d runs, want 1", n)
			}
			bob, _ := dialAs(t, tc, srv, h, "bob")
			ask(bob, "r1", "pay", 7)
			expectReply(t, bob, "r1", map[string]any{"data": map[string]any{"run": 2, "data": 7}})
		})
	}
}

// TestRequestRetryAfterSessionEnd: a run cut short by its session's end is not an answer: the
// retry waiting for it runs the handler again, in its own session.
func TestRequestRetryAfterSessionEnd(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			h, srv := requestHub(t, map[string]notify.RequestHandler{"pay": g.handle}, nil)
			first, _ := dialAs(t, tc, srv, h, "alice")
			ask(first, "r1", "pay", nil)
			recv(t, g.started, "the first run")
			second, w := dialAs(t, tc, srv, h, "alice")
			ask(second, "r1", "pay", nil)
			synced(t, second)
			first.Close()
			recv(t, g.ended, "the first run's context to end")
			if s := recv(t, g.started, "the second run"); s != w["session"] {
				t.Fatalf("the second run is for session %q, want %q", s, w["session"])
			}
			g.release()
			expectReply(t, second, "r1", map[string]any{"data": map[string]any{"run": 2, "data": nil}})
		})
	}
}

// TestRequestAnswerExpires: an answer is kept for a minute; after it the same ID runs again.
func TestRequestAnswerExpires(t *testing.T) {
	t.Parallel()
	echo, runs := counting()
	h, srv := requestHub(t, echo, nil)
	clock := newFakeClock()
	notify.SetClock(h, clock.Now)
	c := dial(t, srv, token(t, h, "alice"))
	ask(c, "r1", "echo", nil)
	expectReply(t, c, "r1", map[string]any{"data": "ok"})
	clock.Advance(59 * time.Second)
	ask(c, "r1", "echo", nil)
	expectReply(t, c, "r1", map[string]any{"data": "ok"})
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d runs within the minute, want 1", n)
	}
	clock.Advance(time.Second)
	ask(c, "r1", "echo", nil)
	expectReply(t, c, "r1", map[string]any{"data": "ok"})
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d runs after the minute, want 2", n)
	}
}

func TestRequestConfig(t *testing.T) {
	t.Parallel()
	ok := func(context.Context, notify.Request) (any, error) { return nil, nil }
	for _, tt := range []struct {
		name   string
		adjust func(*notify.Config)
	}{
		{"empty name", func(c *notify.Config) { c.Requests = map[string]notify.RequestHandler{"": ok} }},
		{"long name", func(c *notify.Config) { c.Requests = map[string]notify.RequestHandler{strings.Repeat("n", 129): ok} }},
		{"nil handler", func(c *notify.Config) { c.Requests = map[string]notify.RequestHandler{"x": nil} }},
		{"negative timeout", func(c *notify.Config) { c.RequestTimeout = -1 }},
		{"negative in flight", func(c *notify.Config) { c.MaxRequestsInFlight = -1 }},
	} {
		cfg := notify.Config{Secret: secret}
		tt.adjust(&cfg)
		if _, err := notify.New(cfg); !errors.Is(err, notify.ErrConfig) {
			t.Errorf("%s: %v, want ErrConfig", tt.name, err)
		}
	}
}

// FuzzRequestFrames: whatever request frame a client sends, the hub answers it or closes the
// session, and the session's handlers end with it.
func FuzzRequestFrames(f *testing.F) {
	handlers := map[string]notify.RequestHandler{
		"echo":  func(_ context.Context, req notify.Request) (any, error) { return req.Data, nil },
		"panic": func(context.Context, notify.Request) (any, error) { panic("boom") },
	}
	h, srv := requestHub(f, handlers, func(c *notify.Config) { c.MaxMessageSize = 512 })
	for _, s := range []string{`{"op":"request","id":"a","name":"echo","data":{"x":[1,2]}}`,
		`{"op":"request","id":"a","name":"panic"}`, `{"op":"request","id":"","name":"echo"}`,
		`{"op":"request","id":"a"}`, `{"op":"request","id":["a"],"name":"echo"}`,
		`{"op":"request","id":"\u2028","name":"echo","data":"<&>"}`, `{"op":"request","id":"a","name":"echo","data":}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		c := dial(t, srv, token(t, h, "mallory"))
		c.WS.WriteMessage(1, []byte(msg))
		m, err := c.Read(5 * time.Second)
		for err == nil && m["op"] == "ping" {
			m, err = c.Read(5 * time.Second)
		}
		if err != nil && !strings.Contains(err.Error(), "close") {
			t.Fatalf("no answer and no close: %v", err)
		}
		if err == nil && m["op"] != "reply" && m["op"] != "error" {
			t.Fatalf("answered %v", m)
		}
	})
}
