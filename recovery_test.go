package notify_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// pos is a stream position as a client tracks it.
type pos struct {
	epoch  string
	offset uint64
}

func posOf(t testing.TB, m map[string]any) pos {
	t.Helper()
	e, _ := m["epoch"].(string)
	o, _ := m["offset"].(float64)
	if e == "" {
		t.Fatalf("no epoch in %v", m)
	}
	return pos{e, uint64(o)}
}

// reconnect dials as user asking to recover the user stream from p, and returns the client
// and its welcome.
func reconnect(t testing.TB, srv string, h *notify.Hub, user string, p *pos) (*client, map[string]any) {
	t.Helper()
	return reconnectVia(t, dialURL, srv, h, user, p)
}

// reconnectVia is reconnect with the given dial function: dialURL, or a PipeServer's Dial.
func reconnectVia(t testing.TB, dial func(testing.TB, string, http.Header) (*client, *http.Response, error),
	srv string, h *notify.Hub, user string, p *pos) (*client, map[string]any) {
	t.Helper()
	u := srv
	if p != nil {
		u += "?" + url.Values{"epoch": {p.epoch}, "offset": {fmt.Sprint(p.offset)}}.Encode()
	}
	c, _, err := dial(t, u, http.Header{"Authorization": {"Bearer " + token(t, h, user, ">")}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := c.Next()
	if w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c, w
}

// expectEvents reads n events and checks their types and that their offsets follow from p;
// it returns the position after them.
func expectEvents(t testing.TB, c *client, n int, typ string, p pos) pos {
	t.Helper()
	for i := range n {
		m := c.NextNonPing()
		want := fmt.Sprintf("%s-%d", typ, i)
		if m["type"] != typ || m["data"] != want {
			t.Fatalf("event %d: got %v, want %s %s", i, m, typ, want)
		}
		got := posOf(t, m)
		if got.epoch != p.epoch || got.offset != p.offset+1 {
			t.Fatalf("event %d at %v, want offset %d of epoch %s", i, got, p.offset+1, p.epoch)
		}
		p = got
	}
	return p
}

// TestRecoveryAfterReconnect, over both transports: the user stream recovers from the
// position in the query (an event stream's client may give it there too, as on a socket)
// and a topic from the subscribe message's, each with nothing lost or replayed twice.
func TestRecoveryAfterReconnect(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := tc.url(serve(t, h))

			c, w := reconnectVia(t, tc.dial, srv, h, "alice", nil)
			if _, asked := w["recovered"]; asked {
				t.Fatalf("welcome without a recovery request says recovered: %v", w)
			}
			userPos := posOf(t, w)
			c.Send(map[string]any{"op": "subscribe", "topic": "news"})
			sub := c.NextNonPing()
			newsPos := posOf(t, sub)
			c.Close()
			waitFor(t, "alice offline", func() bool { return h.LocalSessions("alice") == 0 })

			for i := range 50 {
				h.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: fmt.Sprintf("dm-%d", i)})
				h.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: fmt.Sprintf("headline-%d", i)})
			}

			c, w = reconnectVia(t, tc.dial, srv, h, "alice", &userPos)
			if w["recovered"] != true || posOf(t, w).offset != userPos.offset+50 {
				t.Fatalf("welcome %v, want recovered at offset %d", w, userPos.offset+50)
			}
			userPos = expectEvents(t, c, 50, "dm", userPos)
			c.Send(map[string]any{"op": "subscribe", "topic": "news", "epoch": newsPos.epoch, "offset": newsPos.offset})
			if m := c.NextNonPing(); m["op"] != "subscribed" || m["recovered"] != true {
				t.Fatalf("got %v, want subscribed and recovered", m)
			}
			newsPos = expectEvents(t, c, 50, "headline", newsPos)

			// Then live, with nothing replayed twice.
			h.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: "dm-0"})
			expectEvents(t, c, 1, "dm", userPos)
			h.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: "headline-0"})
			expectEvents(t, c, 1, "headline", newsPos)
			// A marker on each stream: anything replayed twice would come before them.
			h.Send(context.Background(), "alice", notify.Event{Type: "marker"})
			h.Publish(context.Background(), "news", notify.Event{Type: "marker"})
			for _, stream := range []string{"user", "news"} {
				if m := c.NextNonPing(); m["type"] != "marker" || (stream == "news") != (m["topic"] == "news") {
					t.Fatalf("got %v, want the %s stream's marker", m, stream)
				}
			}
		})
	}
}

// TestRecoveryRace, over both transports: events keep coming while a client disconnects and
// recovers again and again (an event stream from its Last-Event-ID); across all its
// connections it sees every event once, in order.
func TestRecoveryRace(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for round := range 20 {
				t.Run(fmt.Sprint(round), func(t *testing.T) { recoveryRace(t, tc) })
			}
		})
	}
}

func recoveryRace(t *testing.T, tc transportCase) {
	h := newHub(t, func(c *notify.Config) { c.HistorySize = 100_000 })
	srv := serve(t, h)
	const total = 2000
	c, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil) // the position before the first event
	p := posOf(t, w)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "seq", Data: i}); err != nil {
				t.Error(err)
				return
			}
			if rand.IntN(50) == 0 {
				select {
				case <-stop:
					return
				case <-time.After(time.Duration(rand.IntN(500)) * time.Microsecond):
				}
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	next, reconnects := 0, 0
	for {
		// Read a random number of events, then drop the connection.
		for n := rand.IntN(300); n > 0 && next < total; n-- {
			m := c.NextNonPing()
			got := posOf(t, m)
			if int(m["data"].(float64)) != next || got.offset != p.offset+1 {
				t.Fatalf("got event %v at %v, want %d at offset %d", m["data"], got, next, p.offset+1)
			}
			p = got
			next++
		}
		c.Close()
		if next == total {
			break
		}
		c, w = resume(t, tc, srv, h, "alice", c, p)
		if w["recovered"] != true {
			t.Fatalf("welcome %v, want recovered", w)
		}
		reconnects++
	}
	if reconnects < 3 {
		t.Fatalf("only %d reconnects", reconnects)
	}
}

// TestRecoveryImpossible, over both transports: a position the stream cannot recover from
// (given as Last-Event-ID on an event stream) gets a welcome with recovered false at the
// stream's real position, nothing replayed, and live events from there.
func TestRecoveryImpossible(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		adjust func(*notify.Config)
		missed int
		wait   time.Duration
		from   func(p pos) pos
	}{
		{"history overflow", func(c *notify.Config) { c.HistorySize = 10 }, 11, 0, func(p pos) pos { return p }},
		{"epoch changed", nil, 1, 0, func(p pos) pos { return pos{"0123456789abcdef", p.offset} }},
		{"offset ahead of the stream", nil, 0, 0, func(p pos) pos { return pos{p.epoch, p.offset + 5} }},
		{"history expired", func(c *notify.Config) { c.HistoryTTL = 5 * time.Minute }, 1, 5*time.Minute + time.Second, func(p pos) pos { return p }},
	}
	for _, tc := range pipeTransports {
		for _, tt := range tests {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				// In a synctest bubble: the wait is on its fake clock, exact and instant.
				synctest.Test(t, func(t *testing.T) {
					h := newHub(t, tt.adjust)
					ps := servePipe(t, h)
					c, w := welcomeVia(t, tc.dial, ps, tc.url, token(t, h, "alice"))
					p := posOf(t, w)
					c.Close()
					synctest.Wait() // the session has ended
					if h.LocalSessions("alice") > 0 {
						t.Fatal("alice still online")
					}
					for i := range tt.missed {
						h.Send(context.Background(), "alice", notify.Event{Type: "missed", Data: i})
					}
					time.Sleep(tt.wait)
					c, w = resumePipe(t, tc.dial, ps, tc.url, token(t, h, "alice"), tt.from(p))
					if w["recovered"] != false {
						t.Fatalf("welcome %v, want recovered false", w)
					}
					// Nothing is replayed; live events flow with the stream's real position.
					now := posOf(t, w)
					if now.epoch != p.epoch || now.offset != p.offset+uint64(tt.missed) {
						t.Fatalf("welcome position %v, want %s/%d", now, p.epoch, p.offset+uint64(tt.missed))
					}
					h.Send(context.Background(), "alice", notify.Event{Type: "live", Data: "live-0"})
					expectEvents(t, c, 1, "live", now)
				})
			})
		}
	}
}

// resumePipe opens a session with tok through a PipeServer's dial at u, recovering the user
// stream from p: in the query on a WebSocket, as Last-Event-ID on an event stream.
func resumePipe(t testing.TB, dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error),
	ps *wstest.PipeServer, u, tok string, p pos) (*client, map[string]any) {
	t.Helper()
	hdr := bearer(tok)
	if strings.HasPrefix(u, "ws") {
		u += "?" + url.Values{"epoch": {p.epoch}, "offset": {fmt.Sprint(p.offset)}}.Encode()
	} else {
		hdr.Set("Last-Event-ID", fmt.Sprintf("%d.%s", p.offset, p.epoch))
	}
	c, _, err := dial(ps, t, u, hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := c.Next()
	if w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c, w
}

// TestSlowConsumerThenRecovery runs over both transports: TestTransportSlowConsumerThenRecovery.

// TestEphemeralEvents, over both transports: an ephemeral event has no position (on an event
// stream, no id: the Last-Event-ID stays the last stored event's), and a recovery does not
// replay it.
func TestEphemeralEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			c, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil)
			p := posOf(t, w)
			h.Send(context.Background(), "alice", notify.Event{Type: "typing", Ephemeral: true})
			if m := c.NextNonPing(); m["type"] != "typing" || m["offset"] != nil {
				t.Fatalf("got %v, want an event without offset", m)
			}
			c.Close()
			waitFor(t, "alice offline", func() bool { return h.LocalSessions("alice") == 0 })
			h.Send(context.Background(), "alice", notify.Event{Type: "typing", Ephemeral: true})
			h.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: "dm-0"})
			c, w = resume(t, tc, srv, h, "alice", c, p)
			if w["recovered"] != true {
				t.Fatalf("welcome %v", w)
			}
			expectEvents(t, c, 1, "dm", p) // the typing indicator was not kept
		})
	}
}

// TestBadRecoveryOffset: a malformed offset in the query is refused with 400 before the
// upgrade, or before the stream starts, the same on both transports.
func TestBadRecoveryOffset(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			u := tc.url(srv) + "?epoch=abc&offset=-1"
			hdr := http.Header{"Authorization": {"Bearer " + token(t, h, "alice")}}
			var status int
			var body string
			if tc.name == "websocket" {
				status, body = upgrade(t, u, hdr)
			} else {
				status, body = get(t, u, hdr)
			}
			if status != 400 || strings.TrimSpace(body) != "notify: offset must be a non-negative integer" {
				t.Fatalf("got %d %q", status, body)
			}
		})
	}
}

// get answers a GET request with its status and body.
func get(t testing.TB, u string, hdr http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// failingBroker is an in-process broker that cannot hand anything over: Publish fails, and so
// do Subscribe or History for the streams the test says.
type failingBroker struct {
	deliver func(notify.Message)
	// subscribe and history fail for the streams with this prefix ("u:" users, "t:" topics).
	subscribe, history string
}

var errBrokerDown = errors.New("broker down")

func (b *failingBroker) Start(_ context.Context, d func(notify.Message)) error {
	b.deliver = d
	return nil
}
func (b *failingBroker) Publish(context.Context, string, []byte, bool) (notify.Report, error) {
	return notify.Report{}, errBrokerDown
}
func (b *failingBroker) Subscribe(_ context.Context, stream string) error {
	if b.subscribe != "" && strings.HasPrefix(stream, b.subscribe) {
		return errBrokerDown
	}
	return nil
}
func (b *failingBroker) Unsubscribe(context.Context, string) error { return nil }
func (b *failingBroker) History(_ context.Context, stream string, _ *notify.Position) (notify.Position, []notify.Message, error) {
	if b.history != "" && strings.HasPrefix(stream, b.history) {
		return notify.Position{}, nil, errBrokerDown
	}
	return notify.Position{Epoch: "0123456789abcdef", Offset: 3}, nil, nil
}
func (b *failingBroker) Close() error { return nil }

func TestBrokerFailure(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.Broker = &failingBroker{} })
	srv := wsURL(serve(t, h))
	p := pos{"0123456789abcdef", 3}
	c, w := reconnect(t, srv, h, "alice", &p)
	if w["recovered"] != true {
		t.Fatalf("welcome %v, want recovered", w)
	}
	_, err := h.Send(context.Background(), "alice", notify.Event{Type: "dm"})
	if !errors.Is(err, errBrokerDown) || err.Error() != "notify: broker: broker down" {
		t.Fatalf("Send: %v", err)
	}
	// The hub's own sessions still get it.
	if m := c.NextNonPing(); m["type"] != "dm" || m["offset"] != nil {
		t.Fatalf("got %v", m)
	}
}

// TestBrokerUnavailable, over both transports: a session whose stream the broker cannot subscribe, or whose position
// it cannot read, is not welcomed (it could lose events without knowing): it is closed with
// 1013 and comes back later. A topic subscribe the broker cannot serve is answered
// "unavailable", which is no bad message, and Hub.Subscribe says so.
func TestBrokerUnavailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, subscribe, history string }{
		{"subscribe fails", "u:", ""},
		{"history fails", "", "u:"},
	} {
		for _, tc := range transports {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				var hooks atomic.Int32
				h := newHub(t, func(c *notify.Config) {
					c.Broker = &failingBroker{subscribe: tt.subscribe, history: tt.history}
					c.OnSessionStart = func(notify.Identity, notify.SessionInfo) { hooks.Add(1) }
					c.OnSessionEnd = func(notify.Identity, notify.SessionInfo) { hooks.Add(1) }
				})
				srv := serve(t, h)
				c, _, err := tc.dial(t, tc.url(srv), bearer(token(t, h, "alice")))
				if err != nil {
					t.Fatal(err)
				}
				// An event stream's is its close event, before any welcome.
				if _, err := c.Read(5 * time.Second); !websocket.IsCloseError(err, 1013) {
					t.Fatalf("first read: %v, want close 1013 and no welcome", err)
				}
				waitFor(t, "the refused session counted", func() bool { return h.Stats().Disconnects[1013] == 1 })
				if st := h.Stats(); st.Connects != 0 || st.Sessions != 0 || hooks.Load() != 0 {
					t.Fatalf("connects %d, sessions %d, hooks %d: want none for a refused session", st.Connects, st.Sessions, hooks.Load())
				}
			})
		}
	}
	t.Run("topic", func(t *testing.T) {
		h := newHub(t, func(c *notify.Config) { c.Broker = &failingBroker{history: "t:"} })
		srv := serve(t, h)
		c := dial(t, srv, token(t, h, "alice", "news"))
		for range 12 { // more than the bad messages that close a session
			c.Send(map[string]any{"op": "subscribe", "topic": "news"})
			m := c.NextNonPing()
			if m["op"] != "error" || m["code"] != "unavailable" || m["topic"] != "news" {
				t.Fatalf("got %v, want error unavailable for news", m)
			}
		}
		if err := h.Subscribe(context.Background(), "alice", "news"); !errors.Is(err, errBrokerDown) {
			t.Fatalf("Hub.Subscribe: %v, want the broker's error", err)
		}
		if st := h.Stats(); st.Topics != 0 || st.Sessions != 1 {
			t.Fatalf("topics %d sessions %d, want 0 and 1", st.Topics, st.Sessions)
		}
	})
}

// TestRecoveryReauthorizes, over both transports: a subscribe that asks to recover is authorized exactly like a
// first one. Once the authorizer refuses the topic, the recovering subscribe gets "forbidden"
// and none of the history; allowed again, the same request recovers everything.
func TestRecoveryReauthorizes(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			revoked := false // guarded by mu
			h := newHub(t, func(c *notify.Config) {
				c.Authorize = func(_ context.Context, _ notify.Identity, topic string) error {
					mu.Lock()
					defer mu.Unlock()
					if revoked {
						return errors.New("membership revoked")
					}
					return nil
				}
			})
			srv := serve(t, h)
			c := welcomeOver(t, tc, srv, token(t, h, "alice")) // the token grants no topic: the authorizer decides
			c.Send(map[string]any{"op": "subscribe", "topic": "team"})
			sub := c.NextNonPing()
			if sub["op"] != "subscribed" {
				t.Fatalf("got %v, want subscribed", sub)
			}
			teamPos := posOf(t, sub)
			c.Close()
			waitFor(t, "alice offline", func() bool { return h.LocalSessions("alice") == 0 })
			for i := range 3 {
				h.Publish(context.Background(), "team", notify.Event{Type: "memo", Data: fmt.Sprintf("memo-%d", i)})
			}
			mu.Lock()
			revoked = true
			mu.Unlock()

			c = welcomeOver(t, tc, srv, token(t, h, "alice"))
			recoverTeam := map[string]any{"op": "subscribe", "topic": "team", "epoch": teamPos.epoch, "offset": teamPos.offset}
			c.Send(recoverTeam)
			want := map[string]any{"op": "error", "code": "forbidden", "topic": "team", "reason": "membership revoked"}
			if m := c.NextNonPing(); fmt.Sprint(m) != fmt.Sprint(want) {
				t.Fatalf("recovering subscribe after revocation: got %v, want %v", m, want)
			}
			// And nothing of the topic's history: the session's messages are served in order, so a
			// replay would come before the answer to the next one.
			c.Send(map[string]any{"op": "unsubscribe", "topic": "marker"})
			if m := c.NextNonPing(); m["op"] != "unsubscribed" || m["topic"] != "marker" {
				t.Fatalf("got %v, want unsubscribed from marker", m)
			}

			mu.Lock()
			revoked = false
			mu.Unlock()
			c.Send(recoverTeam)
			if m := c.NextNonPing(); m["op"] != "subscribed" || m["recovered"] != true {
				t.Fatalf("got %v, want subscribed and recovered", m)
			}
			expectEvents(t, c, 3, "memo", teamPos)
		})
	}
}
