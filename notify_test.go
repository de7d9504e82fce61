package notify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/internal/wstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var secret = []byte("0123456789abcdef0123456789abcdef")

// newHub returns a hub with secret and the given adjustments, shut down at cleanup.
func newHub(t testing.TB, adjust func(*notify.Config)) *notify.Hub {
	t.Helper()
	cfg := notify.Config{Secret: secret}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := notify.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// verify checks a token as an HTTP endpoint beside the socket does (Hub.Authenticate).
func verify(h *notify.Hub, tok string) (notify.Identity, error) {
	r := httptest.NewRequest("GET", "/notify/ws", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return h.Authenticate(r)
}

// serve mounts h with the net/http adapter under /notify on an httptest server.
func serve(t testing.TB, h *notify.Hub) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func wsURL(srv *httptest.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/notify/ws"
}

func token(t testing.TB, h *notify.Hub, user string, topics ...string) string {
	t.Helper()
	tok, err := h.IssueToken(user, time.Minute, topics...)
	if err != nil {
		t.Fatalf("IssueToken: %v", err)
	}
	return tok
}

// client is the shared test client (internal/wstest).
type client = wstest.Client

func dialHeader(t testing.TB, srv *httptest.Server, hdr http.Header) (*client, *http.Response, error) {
	t.Helper()
	return wstest.Dial(t, wsURL(srv), hdr)
}

func dialURL(t testing.TB, u string, hdr http.Header) (*client, *http.Response, error) {
	t.Helper()
	return wstest.Dial(t, u, hdr)
}

// dial connects as the token's user and consumes the welcome frame.
func dial(t testing.TB, srv *httptest.Server, tok string) *client {
	t.Helper()
	c, _ := wstest.Welcome(t, wsURL(srv), tok)
	return c
}

// servePipe mounts h like serve, on a server over in-memory connections, for a test that runs
// inside a testing/synctest bubble (a goroutine blocked on a TCP socket would stop its fake
// clock). The hub, the server and the clients are all made inside the bubble.
func servePipe(t testing.TB, h *notify.Hub) *wstest.PipeServer {
	t.Helper()
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	return wstest.Pipe(t, mux)
}

func pipeURL(p *wstest.PipeServer) string { return p.URL + "/notify/ws" }

// dialPipe is dial on a PipeServer.
func dialPipe(t testing.TB, p *wstest.PipeServer, tok string) *client {
	t.Helper()
	c, _ := p.Welcome(t, pipeURL(p), tok)
	return c
}

// without returns m minus the given keys (the parts of a frame that vary from run to run).
func without(m map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	wstest.WaitFor(t, what, cond)
}

func TestSendReachesEverySessionOfTheUser(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	tabs := []*client{dial(t, srv, token(t, h, "alice")), dial(t, srv, token(t, h, "alice")), dial(t, srv, token(t, h, "alice"))}
	bob := dial(t, srv, token(t, h, "bob"))
	if got := h.LocalSessions("alice"); got != 3 {
		t.Fatalf("Sessions(alice) = %d, want 3", got)
	}
	if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "order.shipped", Data: map[string]int{"order": 42}, ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range tabs {
		m := c.NextNonPing()
		if m["type"] != "order.shipped" || m["id"] != "e1" || m["data"].(map[string]any)["order"] != 42.0 {
			t.Errorf("tab %d got %v", i, m)
		}
		if _, ok := m["topic"]; ok {
			t.Errorf("tab %d: user event carries a topic: %v", i, m)
		}
		if _, err := time.Parse(time.RFC3339Nano, m["time"].(string)); err != nil {
			t.Errorf("tab %d: time %v: %v", i, m["time"], err)
		}
	}
	// A session's events come in order through one queue: had alice's event reached bob, it
	// would come before this one.
	expectMarker(t, h, bob, "bob")
}

// expectMarker sends user a marker event and fails unless it is the next frame c gets (but for
// pings). Sent after an event c must not get, it shows that one did not come: a session's
// frames travel in order through its one queue, and with the in-memory broker a send has
// reached every outbox when it returns.
func expectMarker(t testing.TB, h *notify.Hub, c *client, user string) {
	t.Helper()
	if _, err := h.Send(context.Background(), user, notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if m := c.NextNonPing(); m["type"] != "marker" {
		t.Fatalf("got %v, want the marker", m)
	}
}

func TestEventIDAssignedWhenEmpty(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	c := dial(t, srv, token(t, h, "alice"))
	for range 2 {
		if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	a, b := c.NextNonPing(), c.NextNonPing()
	if a["id"] == "" || a["id"] == nil || a["id"] == b["id"] {
		t.Fatalf("ids %v and %v: want distinct non-empty", a["id"], b["id"])
	}
	if _, ok := a["data"]; ok {
		t.Fatalf("nil data encoded: %v", a)
	}
}

// TestIsolation sends many events to random users concurrently and checks that no session
// ever receives another user's event, and every session receives all of its user's.
func TestIsolation(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	const users, perUser, sends = 12, 3, 600
	type sess struct {
		user string
		c    *client
	}
	var all []sess
	for u := range users {
		name := fmt.Sprintf("user%d", u)
		for range perUser {
			all = append(all, sess{name, dial(t, srv, token(t, h, name))})
		}
	}
	want := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for range sends / 4 {
				name := fmt.Sprintf("user%d", r.IntN(users))
				if _, err := h.Send(context.Background(), name, notify.Event{Type: "t", Data: name}); err != nil {
					t.Error(err)
				}
				mu.Lock()
				want[name]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Then a marker to every user: a session gets its user's events, the marker, and nothing
	// in between.
	for u := range users {
		if _, err := h.Send(context.Background(), fmt.Sprintf("user%d", u), notify.Event{Type: "marker"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range all {
		for range want[s.user] {
			m := s.c.NextNonPing()
			if m["data"] != s.user {
				t.Fatalf("session of %s received %v", s.user, m)
			}
		}
		if m := s.c.NextNonPing(); m["type"] != "marker" {
			t.Fatalf("session of %s received %v, want the marker", s.user, m)
		}
	}
}

func TestTopics(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) {
		c.MaxTopics = 3
		c.Authorize = func(_ context.Context, id notify.Identity, topic string) error {
			if topic == "vip" && id.UserID == "alice" {
				return nil
			}
			return errors.New("vips only")
		}
	})
	srv := serve(t, h)
	alice := dial(t, srv, token(t, h, "alice", "news", "team.*", "org.>"))
	bob := dial(t, srv, token(t, h, "bob", "news"))

	tests := []struct {
		name  string
		c     *client
		topic string
		want  map[string]any
	}{
		{"granted exactly", alice, "news", map[string]any{"op": "subscribed", "topic": "news"}},
		{"granted by star", alice, "team.red", map[string]any{"op": "subscribed", "topic": "team.red"}},
		{"star is one segment", alice, "team.red.x", map[string]any{"op": "error", "code": "forbidden", "topic": "team.red.x", "reason": "vips only"}},
		{"granted by authorizer", alice, "vip", map[string]any{"op": "subscribed", "topic": "vip"}},
		{"resubscribe answers again", alice, "vip", map[string]any{"op": "subscribed", "topic": "vip"}},
		{"too many", alice, "org.a.b", map[string]any{"op": "error", "code": "too_many_topics", "topic": "org.a.b", "reason": "at most 3 topics per session"}},
		{"refused by authorizer", bob, "vip", map[string]any{"op": "error", "code": "forbidden", "topic": "vip", "reason": "vips only"}},
		{"bad name", bob, "no spaces", map[string]any{"op": "error", "code": "invalid_topic", "topic": "no spaces", "reason": "invalid topic: character ' ' not allowed"}},
		{"empty name", bob, "", map[string]any{"op": "error", "code": "invalid_topic", "reason": "invalid topic: name must be 1 to 128 bytes"}},
		{"leading dot", bob, ".x", map[string]any{"op": "error", "code": "invalid_topic", "topic": ".x", "reason": "invalid topic: name may not start or end with a dot"}},
		{"bob granted", bob, "news", map[string]any{"op": "subscribed", "topic": "news"}},
	}
	for _, tt := range tests {
		tt.c.Send(map[string]string{"op": "subscribe", "topic": tt.topic})
		got := tt.c.NextNonPing()
		if got["op"] == "subscribed" && got["epoch"] == nil && tt.name != "resubscribe answers again" {
			t.Errorf("%s: subscribed without the topic's epoch: %v", tt.name, got)
		}
		if fmt.Sprint(without(got, "epoch", "offset")) != fmt.Sprint(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if _, err := h.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: "hi"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client{alice, bob} {
		if m := c.NextNonPing(); m["type"] != "headline" || m["topic"] != "news" || m["data"] != "hi" {
			t.Errorf("got %v", m)
		}
	}
	// bob was refused "vip": a publish there reaches alice only, and bob's connection is up.
	h.Publish(context.Background(), "vip", notify.Event{Type: "v"})
	if m := alice.NextNonPing(); m["topic"] != "vip" {
		t.Errorf("alice got %v", m)
	}
	expectMarker(t, h, bob, "bob")

	alice.Send(map[string]string{"op": "unsubscribe", "topic": "news"})
	if m := alice.NextNonPing(); m["op"] != "unsubscribed" || m["topic"] != "news" {
		t.Fatalf("got %v", m)
	}
	h.Publish(context.Background(), "news", notify.Event{Type: "headline2"})
	if m := bob.NextNonPing(); m["type"] != "headline2" {
		t.Errorf("bob got %v", m)
	}
	expectMarker(t, h, alice, "alice")
}

// TestServerSideSubscribe, over both transports: Subscribe and Unsubscribe reach every session
// of the user; a bad topic or user is refused.
func TestServerSideSubscribe(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			a1, a2 := welcomeOver(t, tc, srv, token(t, h, "alice")), welcomeOver(t, tc, srv, token(t, h, "alice"))
			if err := h.Subscribe(context.Background(), "alice", "billing"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*client{a1, a2} {
				if m := c.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "billing" {
					t.Fatalf("got %v", m)
				}
			}
			h.Publish(context.Background(), "billing", notify.Event{Type: "invoice"})
			for _, c := range []*client{a1, a2} {
				if m := c.NextNonPing(); m["type"] != "invoice" {
					t.Fatalf("got %v", m)
				}
			}
			if err := h.Unsubscribe(context.Background(), "alice", "billing"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*client{a1, a2} {
				if m := c.NextNonPing(); m["op"] != "unsubscribed" {
					t.Fatalf("got %v", m)
				}
			}
			if err := h.Subscribe(context.Background(), "alice", "bad topic"); !errors.Is(err, notify.ErrInvalidTopic) {
				t.Fatalf("Subscribe(bad topic) = %v, want ErrInvalidTopic", err)
			}
			if err := h.Subscribe(context.Background(), "", "x"); !errors.Is(err, notify.ErrInvalidUser) {
				t.Fatalf("Subscribe(empty user) = %v", err)
			}
		})
	}
}

func TestBroadcast(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	cs := []*client{dial(t, srv, token(t, h, "a")), dial(t, srv, token(t, h, "b"))}
	if _, err := h.Broadcast(context.Background(), notify.Event{Type: "maintenance"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if m := c.NextNonPing(); m["type"] != "maintenance" {
			t.Fatalf("got %v", m)
		}
	}
}

func TestSendErrors(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	tests := []struct {
		name string
		err  error
		want error
		text string
	}{
		{"empty user", errOf(h.Send(context.Background(), "", notify.Event{Type: "x"})), notify.ErrInvalidUser, "notify: empty user ID"},
		{"empty type", errOf(h.Send(context.Background(), "a", notify.Event{})), notify.ErrInvalidEvent, "notify: invalid event: empty type"},
		{"unencodable data", errOf(h.Send(context.Background(), "a", notify.Event{Type: "x", Data: make(chan int)})), notify.ErrInvalidEvent, `notify: invalid event: data of "x": json: unsupported type: chan int`},
		{"bad topic", errOf(h.Publish(context.Background(), "a b", notify.Event{Type: "x"})), notify.ErrInvalidTopic, "notify: invalid topic: character ' ' not allowed"},
		{"canceled", errOf(h.Send(canceled(), "a", notify.Event{Type: "x"})), context.Canceled, "notify: send: context canceled"},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) || tt.err.Error() != tt.text {
			t.Errorf("%s: got %v, want %q", tt.name, tt.err, tt.text)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestDefaultHub(t *testing.T) {
	// Not parallel: it sets the package's default hub.
	notify.SetDefault(nil)
	ev := notify.Event{Type: "x"}
	for name, err := range map[string]error{
		"Send": notify.Send("a", ev), "Publish": notify.Publish("t", ev), "Broadcast": notify.Broadcast(ev),
	} {
		if !errors.Is(err, notify.ErrNoDefaultHub) {
			t.Errorf("%s without default hub = %v, want ErrNoDefaultHub", name, err)
		}
	}
	h := newHub(t, nil)
	srv := serve(t, h)
	c := dial(t, srv, token(t, h, "alice"))
	notify.SetDefault(h)
	t.Cleanup(func() { notify.SetDefault(nil) })
	if err := notify.Send("alice", notify.Event{Type: "via-default"}); err != nil {
		t.Fatal(err)
	}
	if m := c.NextNonPing(); m["type"] != "via-default" {
		t.Fatalf("got %v", m)
	}
}

func TestPresenceHooks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var log []string
	h := newHub(t, func(c *notify.Config) {
		c.OnSessionStart = func(id notify.Identity, _ notify.SessionInfo) {
			mu.Lock()
			log = append(log, "+"+id.UserID)
			mu.Unlock()
		}
		c.OnSessionEnd = func(id notify.Identity, _ notify.SessionInfo) {
			mu.Lock()
			log = append(log, "-"+id.UserID)
			mu.Unlock()
		}
	})
	srv := serve(t, h)
	if h.LocalSessions("alice") > 0 {
		t.Fatal("alice online before connecting")
	}
	c := dial(t, srv, token(t, h, "alice"))
	if n := h.LocalSessions("alice"); n != 1 {
		t.Fatalf("LocalSessions = %d after connect, want 1", n)
	}
	c.WS.Close()
	waitFor(t, "alice offline", func() bool { return h.LocalSessions("alice") == 0 })
	waitFor(t, "disconnect hook", func() bool { mu.Lock(); defer mu.Unlock(); return len(log) == 2 })
	if got := strings.Join(log, " "); got != "+alice -alice" {
		t.Fatalf("hooks called %q", got)
	}
	if s := h.Stats(); s.Sessions != 0 || s.Users != 0 {
		t.Fatalf("stats after disconnect: %+v", s)
	}
}

// TestMisbehavingClient, over both transports (an event stream's messages are POSTs): bad
// messages get error frames, ten in a row close the session with 4003, and none of it touches
// another session. A message over MaxMessageSize closes a WebSocket with 1009; a POST of one
// gets 413, and its stream goes on.
func TestMisbehavingClient(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.MaxMessageSize = 256 })
			srv := serve(t, h)
			bystander := welcomeOver(t, tc, srv, token(t, h, "bob"))
			c := welcomeOver(t, tc, srv, token(t, h, "alice"))
			// raw sends msg as the transport carries a client's message, and returns the POST's
			// status on an event stream (202 when taken), 0 on a WebSocket.
			raw := func(c *client, msg string) int {
				t.Helper()
				if c.SSE() {
					return c.PostRaw(tc.url(srv)+"/"+c.Session(), []byte(msg))
				}
				if err := c.WS.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
					t.Fatal(err)
				}
				return 0
			}
			taken := func(status int) {
				t.Helper()
				want := 0
				if c.SSE() {
					want = http.StatusAccepted
				}
				if status != want {
					t.Fatalf("status %d, want %d", status, want)
				}
			}
			tests := []struct {
				name string
				msg  string
				want string
			}{
				{"not JSON", `{nope`, `map[code:bad_request op:error reason:expected a JSON object with an op]`},
				{"no op", `{"topic":"x"}`, `map[code:bad_request op:error reason:expected a JSON object with an op]`},
				{"array", `[1,2]`, `map[code:bad_request op:error reason:expected a JSON object with an op]`},
				{"unknown op", `{"op":"explode"}`, `map[code:unknown_op op:error reason:unknown op]`},
				{"bad refresh", `{"op":"refresh","token":"x.y.z"}`, `map[code:invalid_token op:error reason:unauthorized: malformed token]`},
			}
			for _, tt := range tests {
				taken(raw(c, tt.msg))
				if got := fmt.Sprint(c.NextNonPing()); got != tt.want {
					t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
				}
			}
			// The connection is still up, and a good request resets the count of bad ones.
			c.Send(map[string]string{"op": "unsubscribe", "topic": "x"})
			if m := c.NextNonPing(); m["op"] != "unsubscribed" {
				t.Fatalf("got %v", m)
			}
			// Ten bad messages in a row close the session with 4003.
			for range 10 {
				taken(raw(c, `{nope`))
			}
			for range 10 {
				if m := c.NextNonPing(); m["code"] != "bad_request" {
					t.Fatalf("got %v", m)
				}
			}
			if code := notify.CloseCode(c.CloseCode()); code != notify.CloseProtocolAbuse {
				t.Fatalf("close code %d, want %d", code, notify.CloseProtocolAbuse)
			}

			big := welcomeOver(t, tc, srv, token(t, h, "carol"))
			status := raw(big, `{"op":"subscribe","topic":"`+strings.Repeat("a", 300)+`"}`)
			if big.SSE() {
				// The POST is refused; the stream goes on.
				if status != http.StatusRequestEntityTooLarge {
					t.Fatalf("status %d, want 413", status)
				}
				h.Send(context.Background(), "carol", notify.Event{Type: "after"})
				if m := big.NextNonPing(); m["type"] != "after" {
					t.Fatalf("after the refused POST: %v", m)
				}
			} else if code := big.CloseCode(); code != websocket.CloseMessageTooBig {
				t.Fatalf("close code %d, want 1009", code)
			}

			// None of it touched another session.
			h.Send(context.Background(), "bob", notify.Event{Type: "still-here"})
			if m := bystander.NextNonPing(); m["type"] != "still-here" {
				t.Fatalf("bystander got %v", m)
			}
		})
	}
}

// TestSlowConsumer: a client that stops reading is closed with 4002 once its queue passes
// MaxQueueBytes, and a reading client of the same user gets every event meanwhile.
func TestSlowConsumer(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.MaxQueueBytes = 64 << 10 })
	srv := serve(t, h)
	slow := dial(t, srv, token(t, h, "alice"))
	fast := dial(t, srv, token(t, h, "alice"))

	// The sender waits for the reading client after each burst, as a real app's sends are
	// spread in time: the reader's queue never nears the cap, the stalled one's passes it once
	// the loopback buffers are full.
	const bursts, burst = 250, 20
	payload := strings.Repeat("x", 2000) // 10 MB in all: more than loopback buffers hold
	start := time.Now()
	for i := range bursts {
		for j := range burst {
			if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "big", Data: payload, ID: fmt.Sprint(i*burst + j)}); err != nil {
				t.Fatal(err)
			}
		}
		for j := 0; j < burst; {
			if m := fast.NextNonPing(); m["type"] == "big" {
				if m["id"] != fmt.Sprint(i*burst+j) {
					t.Fatalf("fast client got event %v, want %d", m["id"], i*burst+j)
				}
				j++
			}
		}
	}
	t.Logf("%d sends delivered to the reading client in %v beside a stalled session", bursts*burst, time.Since(start))
	waitFor(t, "slow consumer counted", func() bool { return h.Stats().SlowConsumers == 1 })
	// The slow client, once it reads, finds the events it could take, then the 4002 close.
	if code := notify.CloseCode(slow.CloseCode()); code != notify.CloseSlowConsumer {
		t.Fatalf("slow client close code %d, want %d", code, notify.CloseSlowConsumer)
	}
}

// TestStuckWriteNotWaiting: a session closed as a slow consumer while its write is stuck on a
// full socket stops counting as a write loop that senders should yield to (it would never
// run again, and every send would yield from then on).
func TestStuckWriteNotWaiting(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.MaxQueueBytes = 64 << 10 })
	srv := serve(t, h)
	c := dial(t, srv, token(t, h, "bob"))
	// The client's reader takes this frame and then waits for the test, which never asks.
	if _, err := h.Send(context.Background(), "bob", notify.Event{Type: "first"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first frame written", func() bool { return notify.Waiting(h) == 0 })
	// More than the loopback buffers hold: its write blocks, so it stays handed out.
	if _, err := h.Send(context.Background(), "bob", notify.Event{Type: "big", Data: strings.Repeat("x", 16<<20)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the big frame handed out", func() bool { return notify.Waiting(h) == 1 })
	for range 3 {
		if _, err := h.Send(context.Background(), "bob", notify.Event{Type: "more", Data: strings.Repeat("y", 32<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "slow consumer closed", func() bool { return h.Stats().SlowConsumers == 1 })
	waitFor(t, "no write loop counted as waiting", func() bool { return notify.Waiting(h) == 0 })
	if code := notify.CloseCode(c.CloseCode()); code != notify.CloseSlowConsumer {
		t.Fatalf("close code %d, want %d", code, notify.CloseSlowConsumer)
	}
}

// TestBatching: events queued while a frame is in flight leave together in one frame, and a
// lone event on an idle session leaves at once in its own frame.
func TestBatching(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	c := dial(t, srv, token(t, h, "alice"))
	framesBefore := c.Frames
	h.Send(context.Background(), "alice", notify.Event{Type: "lone"})
	if m := c.NextNonPing(); m["type"] != "lone" || c.Frames != framesBefore+1 {
		t.Fatalf("lone event: %v in %d frames", m, c.Frames-framesBefore)
	}
	const n = 2000
	for i := range n {
		h.Send(context.Background(), "alice", notify.Event{Type: "burst", ID: fmt.Sprint(i)})
	}
	framesBefore = c.Frames
	for i := range n {
		if m := c.NextNonPing(); m["id"] != fmt.Sprint(i) {
			t.Fatalf("event %d: got %v (order lost)", i, m)
		}
	}
	frames := c.Frames - framesBefore
	t.Logf("%d events arrived in %d frames", n, frames)
	if frames >= n/2 {
		t.Fatalf("%d events took %d frames: batching did not happen", n, frames)
	}
}

// TestShutdown, over both transports: Shutdown closes every session with 1001 (an event
// stream's close event) and returns once they have ended, their disconnect hooks included;
// then it refuses sends and new sessions (503). In a synctest bubble, where it is seen not to
// wait for any timer either: it returns at the instant it was called.
func TestShutdown(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var disconnects atomic.Int32
				h, err := notify.New(notify.Config{Secret: secret, OnSessionEnd: func(notify.Identity, notify.SessionInfo) { disconnects.Add(1) }})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Shutdown(context.Background()) }) // should the test fail before its own
				srv := servePipe(t, h)
				cs := []*client{dialVia(t, tc.dial, srv, tc.url, token(t, h, "a")), dialVia(t, tc.dial, srv, tc.url, token(t, h, "b"))}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				start := time.Now()
				if err := h.Shutdown(ctx); err != nil {
					t.Fatalf("Shutdown: %v", err)
				}
				if d := time.Since(start); d != 0 {
					t.Fatalf("Shutdown took %v of the bubble's clock, want none", d)
				}
				for _, c := range cs {
					// First the window to spread the reconnect over (Config.ReconnectSpread), then 1001.
					if m := c.Next(); fmt.Sprint(m) != "map[op:goaway reconnect:10]" {
						t.Fatalf("got %v, want goaway with reconnect 10", m)
					}
					if code := c.CloseCode(); code != websocket.CloseGoingAway {
						t.Fatalf("close code %d, want 1001", code)
					}
				}
				if n := disconnects.Load(); n != 2 {
					t.Fatalf("%d disconnect hooks ran before Shutdown returned, want 2", n)
				}
				if err := h.Shutdown(ctx); err != nil {
					t.Fatalf("second Shutdown: %v", err)
				}
				if _, err := h.Send(context.Background(), "a", notify.Event{Type: "x"}); !errors.Is(err, notify.ErrClosed) {
					t.Fatalf("Send after Shutdown = %v, want ErrClosed", err)
				}
				_, resp, err := tc.dial(srv, t, tc.url, http.Header{"Authorization": {"Bearer " + token(t, h, "a")}})
				if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
					t.Fatalf("session after Shutdown: err %v, resp %v; want 503", err, resp)
				}
			})
		})
	}
}

// TestShutdownTimeout: when its context ends, Shutdown cuts what is left and returns at once,
// without waiting for the work still running (here a disconnect hook that blocks until the
// test releases it: a Shutdown that waited would never return); that work then ends on its
// own, which a second Shutdown waits for. On a synctest bubble's clock, "at once" is at the
// context's deadline exactly.
func TestShutdownTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		block := make(chan struct{})
		h, err := notify.New(notify.Config{Secret: secret, OnSessionEnd: func(notify.Identity, notify.SessionInfo) { <-block }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Shutdown(context.Background()) }) // should the test fail before its own
		srv := servePipe(t, h)
		c := dialPipe(t, srv, token(t, h, "a"))
		released := false
		release := func() {
			if !released {
				released = true
				close(block)
			}
		}
		defer release() // on a failure too, so that the hub's goroutines can end
		const timeout = 3 * time.Second
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		returned := make(chan error, 1)
		go func() { returned <- h.Shutdown(ctx) }()
		time.Sleep(timeout - time.Nanosecond)
		synctest.Wait()
		select {
		case err := <-returned:
			t.Fatalf("Shutdown returned %v before its deadline, with a disconnect hook still running", err)
		default:
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		select {
		case err := <-returned:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Shutdown = %v, want context.DeadlineExceeded", err)
			}
		default:
			t.Fatal("Shutdown has not returned at its deadline")
		}
		if m := c.Next(); m["op"] != "goaway" {
			t.Fatalf("got %v, want goaway", m)
		}
		if _, err := c.Read(5 * time.Second); err == nil || errors.Is(err, wstest.ErrTimeout) {
			t.Fatalf("the session's connection is still open after Shutdown: %v", err)
		}
		release()
		if err := h.Shutdown(context.Background()); err != nil {
			t.Fatalf("second Shutdown, once the hook returned: %v", err)
		}
	})
}

// TestPings: every PingInterval each session gets the in-band ping (a browser cannot see
// WebSocket pings), at its exact time on a synctest bubble's clock; the welcome gives the
// interval in seconds. The client answers the WebSocket pings, so its session outlives the
// pong wait many times over.
func TestPings(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Second
		h := newHub(t, func(c *notify.Config) { c.PingInterval = every })
		srv := servePipe(t, h)
		start := time.Now()
		tok, err := h.IssueToken("alice", time.Hour) // no expiry warning meanwhile
		if err != nil {
			t.Fatal(err)
		}
		c, w := srv.Welcome(t, pipeURL(srv), tok)
		if w["ping"] != 10.0 {
			t.Fatalf("welcome %v, want ping 10", w)
		}
		for i := 1; i <= 10; i++ {
			if m := c.Next(); m["op"] != "ping" {
				t.Fatalf("got %v, want a ping", m)
			}
			if got, want := time.Since(start), time.Duration(i)*every; got != want {
				t.Fatalf("ping %d after %v, want %v", i, got, want)
			}
		}
	})
}

// TestDeadClientDropped: a client that answers no WebSocket ping is dropped two intervals and
// ten seconds after its last sign of life, on a synctest bubble's clock.
func TestDeadClientDropped(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const every = 10 * time.Second
		h := newHub(t, func(c *notify.Config) { c.PingInterval = every })
		srv := servePipe(t, h)
		start := time.Now()
		ws, _, err := srv.Dialer.Dial(pipeURL(srv), http.Header{"Authorization": {"Bearer " + token(t, h, "alice")}})
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		ws.SetPingHandler(func(string) error { return nil }) // no pong
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break // the welcome and in-band pings come first
			}
		}
		if got, want := time.Since(start), 2*every+10*time.Second; got != want {
			t.Fatalf("dropped after %v, want %v", got, want)
		}
		synctest.Wait()
		if st := h.Stats(); st.Sessions != 0 {
			t.Fatalf("%d sessions after the drop, want 0", st.Sessions)
		}
	})
}

func TestClientScriptServed(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	resp, err := http.Get(srv.URL + "/notify/client.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || !bytes.Contains(body, []byte("export function connect")) {
		t.Fatalf("client.js: %d %q, %d bytes", resp.StatusCode, resp.Header.Get("Content-Type"), len(body))
	}
}

// TestWelcomeOfAnyLength: the upgrade response and the welcome leave together, in one write,
// and a welcome too large for a session's write buffer (a long user ID) still follows the
// response rather than overtaking it; an event stream's head and welcome likewise.
func TestWelcomeOfAnyLength(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			for _, n := range []int{1, 100, 400, 500, 2000} {
				user := strings.Repeat("u", n)
				c, w := reconnectVia(t, tc.dial, tc.url(srv), h, user, nil)
				if w["user"] != user {
					t.Errorf("user of %d bytes: welcome names %d bytes", n, len(fmt.Sprint(w["user"])))
				}
				if _, err := h.Send(context.Background(), user, notify.Event{Type: "after", ID: "x"}); err != nil {
					t.Fatal(err)
				}
				if m := c.NextNonPing(); m["type"] != "after" {
					t.Errorf("user of %d bytes: got %v after the welcome", n, m)
				}
			}
		})
	}
}

// errOf keeps the error of a send and drops its report.
func errOf(_ notify.Report, err error) error { return err }
