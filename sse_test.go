package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/internal/wstest"
)

// transportCase is one of the hub's transports, for the tests that run over both.
type transportCase struct {
	name string
	url  func(*httptest.Server) string
	dial func(testing.TB, string, http.Header) (*client, *http.Response, error)
}

var transports = []transportCase{
	{"websocket", wsURL, dialURL},
	{"sse", sseURL, wstest.DialSSE},
}

func sseURL(srv *httptest.Server) string { return srv.URL + "/notify/sse" }

// resume dials as user recovering from the client c's last position: the query's epoch and
// offset on a WebSocket, Last-Event-ID on an event stream (as an EventSource does). The
// Last-Event-ID is the last id c read, which must be p's; a stream that read nothing but a
// recovered welcome (which has no id) sends the one it resumed from, as an EventSource keeps
// its last id across its reconnects.
func resume(t testing.TB, tc transportCase, srv *httptest.Server, h *notify.Hub, user string, c *client, p pos) (*client, map[string]any) {
	t.Helper()
	if tc.name == "websocket" {
		return reconnectVia(t, tc.dial, tc.url(srv), h, user, &p)
	}
	want := fmt.Sprintf("%d.%s", p.offset, p.epoch)
	id := c.LastEventID()
	if id == "" && c.Frames == 1 {
		id = want
	}
	if id != want {
		t.Fatalf("Last-Event-ID %q, want %q", id, want)
	}
	return sseWelcome(t, srv, http.Header{"Authorization": {"Bearer " + token(t, h, user, ">")}, "Last-Event-ID": {id}})
}

func sseWelcome(t testing.TB, srv *httptest.Server, hdr http.Header) (*client, map[string]any) {
	t.Helper()
	c, _, err := wstest.DialSSE(t, sseURL(srv), hdr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := c.Next()
	if w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c, w
}

func TestTransportRecovery(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			c, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil)
			p := posOf(t, w)
			for i := range 3 {
				h.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: fmt.Sprint("dm-", i)})
			}
			p = expectEvents(t, c, 3, "dm", p)
			// A topic's event has a position of its own: it must not become the stream's.
			c.Send(map[string]any{"op": "subscribe", "topic": "news"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "news"})
			h.Publish(context.Background(), "news", notify.Event{Type: "headline"})
			if m := c.NextNonPing(); m["type"] != "headline" {
				t.Fatalf("got %v, want the headline", m)
			}
			c.Close()
			waitFor(t, "alice offline", func() bool { return h.LocalSessions("alice") == 0 })
			for i := range 2 {
				h.Send(context.Background(), "alice", notify.Event{Type: "dm", Data: fmt.Sprint("dm-", i)})
			}
			c, w = resume(t, tc, srv, h, "alice", c, p)
			if w["recovered"] != true {
				t.Fatalf("welcome %v, want recovered", w)
			}
			if c.SSE() && c.LastEventID() != "" {
				// The welcome's id would be the head, past the replay still to come.
				t.Fatalf("a recovering welcome set the id %q", c.LastEventID())
			}
			end := expectEvents(t, c, 2, "dm", p)
			if c.SSE() && c.LastEventID() != fmt.Sprintf("%d.%s", end.offset, end.epoch) {
				t.Fatalf("id %q after the replay, want %d.%s", c.LastEventID(), end.offset, end.epoch)
			}
		})
	}
}

func TestTransportSlowConsumerThenRecovery(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.MaxQueueBytes = 64 << 10; c.HistorySize = 10_000 })
			srv := serve(t, h)
			slow, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil)
			p := posOf(t, w)
			payload := strings.Repeat("x", 2000)
			const n = 5000
			for i := range n {
				h.Send(context.Background(), "alice", notify.Event{Type: "big", Data: fmt.Sprint(i, payload)})
			}
			waitFor(t, "the slow consumer closed", func() bool { return h.Stats().SlowConsumers == 1 })
			got := 0
			for {
				m, err := slow.Read(5 * time.Second)
				if err != nil {
					if code := notify.CloseCode(slow.CloseCode()); code != notify.CloseSlowConsumer {
						t.Fatalf("close %d, want %d", code, notify.CloseSlowConsumer)
					}
					break
				}
				if m["type"] == "big" {
					if m["data"] != fmt.Sprint(got, payload) {
						t.Fatalf("event %d out of order", got)
					}
					p = posOf(t, m)
					got++
				}
			}
			if got == n {
				t.Fatal("the slow consumer got every event before its close: the test proves nothing")
			}
			t.Logf("%d events before the 4002 close, %d recovered", got, n-got)
			c, w := resume(t, tc, srv, h, "alice", slow, p)
			if w["recovered"] != true {
				t.Fatalf("welcome %v, want recovered", w)
			}
			for i := got; i < n; i++ {
				if m := c.NextNonPing(); m["data"] != fmt.Sprint(i, payload) {
					t.Fatalf("recovered event %v, want %d", m["data"], i)
				}
			}
		})
	}
}

func TestTransportRateLimitSustainedCloses(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.MessageRate, c.MessageBurst = 2, 3 })
			clock := newFakeClock()
			notify.SetClock(h, clock.Now)
			srv := serve(t, h)
			c, _ := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil)
			for range 3 + 4 { // the burst, then 4 refused: one past the burst closes
				c.Send(map[string]any{"op": "unsubscribe", "topic": "x"})
			}
			for range 3 {
				expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "x"})
			}
			for range 3 {
				expectFrame(t, c, map[string]any{"op": "error", "code": "rate_limited", "topic": "x"})
			}
			if code := notify.CloseCode(c.CloseCode()); code != notify.CloseRateLimited {
				t.Fatalf("close code %d, want %d", code, notify.CloseRateLimited)
			}
			waitFor(t, "the disconnect to be counted", func() bool {
				return h.Stats().Disconnects[notify.CloseRateLimited] == 1
			})
			if got := h.Stats().RateLimited; got != 4 {
				t.Fatalf("RateLimited = %d, want 4", got)
			}
		})
	}
}

func TestTransportControl(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.ReconnectSpread = 3 * time.Second })
			srv := serve(t, h)
			a, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", nil)
			b, _ := reconnectVia(t, tc.dial, tc.url(srv), h, "bob", nil)
			// Presence lists the session under the welcome's ID.
			ps, err := h.Presence(context.Background(), "alice")
			if err != nil || len(ps) != 1 || ps[0].ID != w["session"] {
				t.Fatalf("presence %v, %v; welcome %v", ps, err, w)
			}
			// A server-made subscription reaches the session.
			if err := h.Subscribe(context.Background(), "alice", "room"); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, a, map[string]any{"op": "subscribed", "topic": "room", "server": true})
			if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{}); err != nil {
				t.Fatal(err)
			}
			if code := a.CloseCode(); code != int(notify.CloseSignedOut) {
				t.Fatalf("close code %d, want %d", code, notify.CloseSignedOut)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			go h.Shutdown(ctx)
			expectFrame(t, b, map[string]any{"op": "goaway", "reconnect": float64(3)})
			if code := b.CloseCode(); code != int(notify.CloseGoingAway) {
				t.Fatalf("close code %d, want %d", code, notify.CloseGoingAway)
			}
		})
	}
}

// TestTransportExpiryWarning: on a synctest bubble's clock, a 10 minute token is warned
// exactly Config.ExpiryWarning (30 s) before its expiry, and closed with 4000 at it.
func TestTransportExpiryWarning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error)
		url  string
	}{
		{"websocket", (*wstest.PipeServer).Dial, "ws://pipe/notify/ws"},
		{"sse", (*wstest.PipeServer).DialSSE, "http://pipe/notify/sse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, func(c *notify.Config) { c.PingInterval = time.Hour })
				srv := servePipe(t, h)
				tok, _ := h.IssueToken("alice", 10*time.Minute)
				c, _, err := tc.dial(srv, t, tc.url, bearer(tok))
				if err != nil {
					t.Fatal(err)
				}
				if m := c.Next(); m["op"] != "welcome" {
					t.Fatalf("got %v", m)
				}
				nothingUntil := func(d time.Duration, what string) {
					t.Helper()
					time.Sleep(d - time.Nanosecond)
					synctest.Wait()
					if c.Ready() {
						t.Fatalf("a frame before %s", what)
					}
					time.Sleep(time.Nanosecond)
					synctest.Wait()
				}
				nothingUntil(9*time.Minute+30*time.Second, "the warning")
				if m := c.Next(); m["op"] != "expiring" {
					t.Fatalf("got %v, want expiring", m)
				}
				nothingUntil(30*time.Second, "the expiry")
				if code := c.CloseCode(); code != int(notify.CloseTokenExpired) {
					t.Fatalf("close %d, want %d", code, notify.CloseTokenExpired)
				}
			})
		})
	}
}

func TestSSEHeaders(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.SSEHeartbeat = 10 * time.Millisecond })
	srv := serve(t, h)
	c, resp, err := wstest.DialSSE(t, sseURL(srv), bearer(token(t, h, "alice")))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	w := c.Next()
	if c.LastEventID() != fmt.Sprintf("%d.%s", posOf(t, w).offset, posOf(t, w).epoch) {
		t.Fatalf("welcome's id %q, welcome %v", c.LastEventID(), w)
	}
	waitFor(t, "a heartbeat comment", func() bool { return c.CommentsSeen() > 0 })
	dial(t, srv, token(t, h, "bob")) // a WebSocket beside it
	if st := h.Stats(); st.Sessions != 2 || st.SSESessions != 1 {
		t.Fatalf("Sessions %d, SSESessions %d; want 2 and 1", st.Sessions, st.SSESessions)
	}
}

// TestStatsByTransport: connects and disconnects are counted by transport: Stats' SSE
// counters are the event streams' part of the totals, with every close code's entry.
func TestStatsByTransport(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	ws := dial(t, srv, token(t, h, "alice"))
	sse, _ := sseWelcome(t, srv, bearer(token(t, h, "alice")))
	if st := h.Stats(); st.Connects != 2 || st.SSEConnects != 1 {
		t.Fatalf("Connects %d, SSEConnects %d; want 2 and 1", st.Connects, st.SSEConnects)
	}
	if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*client{"websocket": ws, "sse": sse} {
		if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
			t.Fatalf("%s: close code %d, want %d", name, code, notify.CloseSignedOut)
		}
	}
	waitFor(t, "both sessions ended", func() bool { return h.Stats().Sessions == 0 })
	st := h.Stats()
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"Connects", st.Connects, 2},
		{"SSEConnects", st.SSEConnects, 1},
		{"Disconnects[4001]", st.Disconnects[notify.CloseSignedOut], 2},
		{"SSEDisconnects[4001]", st.SSEDisconnects[notify.CloseSignedOut], 1},
		{"SSEDisconnects[1000]", st.SSEDisconnects[notify.CloseNormal], 0},
	} {
		if c.got != c.want {
			t.Errorf("%s %d, want %d", c.name, c.got, c.want)
		}
	}
	if len(st.SSEDisconnects) != len(st.Disconnects) {
		t.Errorf("SSEDisconnects has %d codes, Disconnects %d: want the same keys", len(st.SSEDisconnects), len(st.Disconnects))
	}
	for code := range st.Disconnects {
		if _, ok := st.SSEDisconnects[code]; !ok {
			t.Errorf("SSEDisconnects has no entry for %d", code)
		}
	}
}

// TestSSEBadLastEventID: a Last-Event-ID that is garbage, ahead of the stream or of another
// epoch is served like a bad recovery position: a welcome with recovered false.
func TestSSEBadLastEventID(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	_, w := sseWelcome(t, srv, bearer(token(t, h, "alice")))
	p := posOf(t, w)
	for _, tt := range []struct{ name, id string }{
		{"garbage", "garbage"},
		{"no epoch", "12."},
		{"negative", "-1." + p.epoch},
		{"huge", strings.Repeat("9", 200) + "." + p.epoch},
		{"binary", "\xff\xfe.\xfd"},
		{"future", fmt.Sprintf("%d.%s", p.offset+100, p.epoch)},
		{"foreign", "3.someotherepoch"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, w := sseWelcome(t, srv, http.Header{"Authorization": {"Bearer " + token(t, h, "alice")}, "Last-Event-ID": {tt.id}})
			if w["recovered"] != false {
				t.Fatalf("welcome %v, want recovered false", w)
			}
			c.Close()
		})
	}
	// The hub still serves: the garbage did no harm.
	c, _ := sseWelcome(t, srv, bearer(token(t, h, "alice")))
	expectMarker(t, h, c, "alice")
}

func TestSSERefusals(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	get := func(hdr http.Header) int {
		_, resp, err := wstest.DialSSE(t, sseURL(srv), hdr)
		if err == nil {
			t.Fatal("stream opened")
		}
		return resp.StatusCode
	}
	if s := get(http.Header{"Authorization": {"Bearer " + token(t, h, "alice")}, "Origin": {"https://evil.example"}}); s != 403 {
		t.Fatalf("cross-origin: %d, want 403", s)
	}
	if s := get(nil); s != 401 {
		t.Fatalf("no token: %d, want 401", s)
	}
	if s := get(bearer("nonsense")); s != 401 {
		t.Fatalf("bad token: %d, want 401", s)
	}
}

// TestSSEPost: the client's messages as POSTs, and each bad one's answer.
func TestSSEPost(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.MaxMessageSize = 256 })
	srv := serve(t, h)
	alice, _ := sseWelcome(t, srv, bearer(token(t, h, "alice", "news")))
	bob, _ := sseWelcome(t, srv, bearer(token(t, h, "bob")))
	// Bob's token on alice's session: as an unknown session.
	req := func(u, tok, origin string, body string) int {
		r, _ := http.NewRequest("POST", u, strings.NewReader(body))
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	sub := `{"op":"subscribe","topic":"news"}`
	base := sseURL(srv) + "/"
	for _, tt := range []struct {
		name, session, tok, origin, body string
		want                             int
	}{
		{"another user's session", alice.Session(), token(t, h, "bob"), "", sub, 404},
		{"unknown session", "nosuchsession", token(t, h, "bob"), "", sub, 404},
		{"no token", alice.Session(), "", "", sub, 401},
		{"cross-origin", alice.Session(), token(t, h, "alice"), "https://evil.example", sub, 403},
		{"too big", alice.Session(), token(t, h, "alice"), "", `{"op":"subscribe","topic":"` + strings.Repeat("a", 300) + `"}`, 413},
		{"same origin", alice.Session(), token(t, h, "alice"), srv.URL, sub, 202},
	} {
		if got := req(base+url.PathEscape(tt.session), tt.tok, tt.origin, tt.body); got != tt.want {
			t.Errorf("%s: %d, want %d", tt.name, got, tt.want)
		}
	}
	expectFrame(t, alice, map[string]any{"op": "subscribed", "topic": "news"})
	// A bad body is a bad message, answered on the stream.
	if s := alice.PostRaw(base+alice.Session(), []byte("not json")); s != 202 {
		t.Fatalf("bad body: %d", s)
	}
	expectFrame(t, alice, map[string]any{"op": "error", "code": "bad_request"})
	expectMarker(t, h, bob, "bob") // bob's stream got nothing of it
}

// TestSSETickets: a ticket opens one stream as its token's user, once, within its life.
func TestSSETickets(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	clock := newFakeClock()
	clock.Advance(time.Duration(time.Now().UnixNano()))
	notify.SetTicketClock(h, clock.Now)
	srv := serve(t, h)
	ticket := func(tok string) string {
		r, _ := http.NewRequest("POST", sseURL(srv)+"/ticket", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("ticket: %d %v", resp.StatusCode, resp.Header)
		}
		var out struct {
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Ticket == "" || out.ExpiresIn > 60 {
			t.Fatalf("ticket %+v, %v", out, err)
		}
		return out.Ticket
	}
	open := func(tk string, hdr http.Header) (int, string) {
		c, resp, err := wstest.DialSSE(t, sseURL(srv)+"?ticket="+url.QueryEscape(tk), hdr)
		if err != nil {
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, strings.TrimSpace(string(b))
		}
		w := c.Next()
		return 200, fmt.Sprint(w["user"])
	}
	tk := ticket(token(t, h, "alice"))
	if s, user := open(tk, nil); s != 200 || user != "alice" {
		t.Fatalf("ticket: %d %s", s, user)
	}
	if s, body := open(tk, nil); s != 401 || body != "notify: unauthorized: unknown, used or expired ticket" {
		t.Fatalf("ticket used twice: %d %q", s, body)
	}
	expired := ticket(token(t, h, "alice"))
	clock.Advance(notify.TicketTTL)
	if s, body := open(expired, nil); s != 401 || body != "notify: unauthorized: unknown, used or expired ticket" {
		t.Fatalf("expired ticket: %d %q", s, body)
	}
	other := ticket(token(t, h, "alice"))
	if s, body := open(other, bearer(token(t, h, "bob"))); s != 401 || body != "notify: unauthorized: the ticket is for another user" {
		t.Fatalf("alice's ticket with bob's token: %d %q", s, body)
	}
	if s, _ := open("made-up", nil); s != 401 {
		t.Fatalf("made-up ticket: %d", s)
	}
	r, _ := http.NewRequest("POST", sseURL(srv)+"/ticket", nil)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("ticket without a token: %d", resp.StatusCode)
	}
}

// TestSSEOutlivesServerTimeouts: a server's ReadTimeout and WriteTimeout, which a WebSocket
// escapes by its hijack, do not end an event stream.
func TestSSEOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.SSEHeartbeat = 5 * time.Millisecond })
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 20*time.Millisecond, 20*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	c, _ := sseWelcome(t, srv, bearer(token(t, h, "alice")))
	// Twenty heartbeats take longer than either timeout.
	waitFor(t, "twenty heartbeats", func() bool { return c.CommentsSeen() >= 20 })
	expectMarker(t, h, c, "alice")
}

// TestTransportSessionCaps: the per-user cap counts the sessions of both transports together,
// and refuses either with 429.
func TestTransportSessionCaps(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.MaxUserSessions = 2 })
	srv := serve(t, h)
	hdr := bearer(token(t, h, "alice"))
	reconnectVia(t, transports[0].dial, transports[0].url(srv), h, "alice", nil)
	reconnectVia(t, transports[1].dial, transports[1].url(srv), h, "alice", nil)
	for _, tc := range transports {
		_, resp, err := tc.dial(t, tc.url(srv), hdr)
		assertRefused(t, resp, err, http.StatusTooManyRequests, "notify: too many sessions for this user (at most 2)")
	}
	if got := h.Stats().Refused["user_sessions"]; got != 2 {
		t.Fatalf("Refused[user_sessions] = %d, want 2", got)
	}
}

// TestSSEMethods: only GET opens a stream and only POST sends; HEAD opens no session.
func TestSSEMethods(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/notify/sse", h.SSE())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, m := range []string{"HEAD", "PUT", "DELETE"} {
		r, _ := http.NewRequest(m, srv.URL+"/notify/sse", nil)
		r.Header.Set("Authorization", "Bearer "+token(t, h, "alice"))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, POST" {
			t.Errorf("%s: %d %q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	if n := h.Stats().Sessions; n != 0 {
		t.Fatalf("%d sessions", n)
	}
}

// TestTransportRefresh: an in-band refresh (a POST on an event stream) replaces the token and
// revokes what the new one no longer grants; one for another user is a bad message.
func TestTransportRefresh(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			c, _, err := tc.dial(t, tc.url(srv), bearer(token(t, h, "alice", "secret.team")))
			if err != nil {
				t.Fatal(err)
			}
			c.Next()
			c.Send(map[string]any{"op": "subscribe", "topic": "secret.team"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "secret.team"})
			refresh(t, h, c, "bob", "secret.team")
			expectFrame(t, c, map[string]any{"op": "error", "code": "invalid_token", "reason": "unauthorized: token is for another user"})
			refresh(t, h, c, "alice", "news")
			expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "secret.team", "code": "forbidden", "reason": "topic not granted by token"})
			expectFrame(t, c, map[string]any{"op": "refreshed"})
		})
	}
}

// TestSSEOverHTTP2: the stream over HTTP/2 (what avoids HTTP/1.1's 6 connections per origin):
// several streams and their POSTs on one connection, events flushed, Shutdown's goaway.
func TestSSEOverHTTP2(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	hc := srv.Client()
	var streams []*client
	for range 8 { // more than HTTP/1.1 would allow a browser
		c, resp, err := wstest.DialSSEClient(t, hc, sseURL(srv), bearer(token(t, h, "alice", "news")))
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("protocol %s", resp.Proto)
		}
		if m := c.Next(); m["op"] != "welcome" {
			t.Fatalf("got %v", m)
		}
		streams = append(streams, c)
	}
	last := streams[len(streams)-1]
	last.Send(map[string]any{"op": "subscribe", "topic": "news"})
	expectFrame(t, last, map[string]any{"op": "subscribed", "topic": "news"})
	h.Send(context.Background(), "alice", notify.Event{Type: "dm"})
	for _, c := range streams {
		if m := c.NextNonPing(); m["type"] != "dm" {
			t.Fatalf("got %v", m)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go h.Shutdown(ctx)
	expectFrame(t, last, map[string]any{"op": "goaway"})
	if code := last.CloseCode(); code != int(notify.CloseGoingAway) {
		t.Fatalf("close %d", code)
	}
}

// TestSSEHeartbeatDefault: on a synctest bubble's clock, an idle stream gets its comment line
// 15 s after the welcome, and every 15 s after it.
func TestSSEHeartbeatDefault(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		// No in-band ping meanwhile: the test client reads data only when asked.
		h := newHub(t, func(c *notify.Config) { c.PingInterval = time.Hour })
		srv := servePipe(t, h)
		c, _, err := srv.DialSSE(t, "http://pipe/notify/sse", bearer(token(t, h, "alice")))
		if err != nil {
			t.Fatal(err)
		}
		if m := c.Next(); m["op"] != "welcome" {
			t.Fatalf("got %v", m)
		}
		for i, at := range []time.Duration{15 * time.Second, 30 * time.Second} {
			time.Sleep(at - time.Duration(i)*15*time.Second - time.Nanosecond)
			synctest.Wait()
			if n := c.CommentsSeen(); n != i {
				t.Fatalf("%d comments just before %v, want %d", n, at, i)
			}
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			if n := c.CommentsSeen(); n != i+1 {
				t.Fatalf("%d comments at %v, want %d", n, at, i+1)
			}
		}
	})
}
