package notify_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/gonotify/notify/adapters/nethttp"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// nextOp returns the next frame that is not a ping.
func nextOp(t testing.TB, c *client) map[string]any {
	t.Helper()
	return c.NextNonPing()
}

// expectFrame fails unless the next non-ping frame has every field of want.
func expectFrame(t testing.TB, c *client, want map[string]any) map[string]any {
	t.Helper()
	got := nextOp(t, c)
	for k, v := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(v) {
			t.Fatalf("frame %v, want %v", got, want)
		}
	}
	return got
}

func refresh(t testing.TB, h *notify.Hub, c *client, user string, topics ...string) {
	t.Helper()
	c.Send(map[string]any{"op": "refresh", "token": token(t, h, user, topics...)})
}

// TestRefreshRevokesSubscriptions, over both transports: a refresh revokes the subscriptions
// the new token (or the authorizer) no longer allows, and nothing of them arrives after.
func TestRefreshRevokesSubscriptions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// authorize is Config.Authorize; nil leaves topics to the token.
		authorize func(ctx context.Context, id notify.Identity, topic string) error
		grants    []string // the refreshed token's
		revoked   bool
		reason    string
	}{
		{name: "grant dropped", grants: []string{"news"}, revoked: true, reason: "topic not granted by token"},
		{name: "grant kept", grants: []string{"secret.team"}},
		{name: "pattern still matches", grants: []string{"secret.>"}},
		{name: "authorizer allows what the token no longer grants",
			authorize: func(context.Context, notify.Identity, string) error { return nil }},
		{name: "authorizer refuses", revoked: true, reason: "left the team",
			authorize: func(context.Context, notify.Identity, string) error { return errors.New("left the team") }},
	} {
		for _, tc := range transports {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				h := newHub(t, func(c *notify.Config) { c.Authorize = tt.authorize })
				c := welcomeOver(t, tc, serve(t, h), token(t, h, "alice", "secret.team"))
				c.Send(map[string]any{"op": "subscribe", "topic": "secret.team"})
				expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "secret.team"})

				refresh(t, h, c, "alice", tt.grants...)
				if tt.revoked {
					expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "secret.team", "code": "forbidden", "reason": tt.reason})
				}
				expectFrame(t, c, map[string]any{"op": "refreshed"})
				if _, err := h.Publish(context.Background(), "secret.team", notify.Event{Type: "secret"}); err != nil {
					t.Fatal(err)
				}
				if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
					t.Fatal(err)
				}
				// Both events travel in order through the session's queue: the marker comes right
				// after the secret event, or alone when the subscription is gone.
				if !tt.revoked {
					expectFrame(t, c, map[string]any{"type": "secret", "topic": "secret.team"})
				}
				expectFrame(t, c, map[string]any{"type": "marker"})

				c.Send(map[string]any{"op": "subscribe", "topic": "secret.team"})
				if tt.revoked {
					expectFrame(t, c, map[string]any{"op": "error", "code": "forbidden", "topic": "secret.team", "reason": tt.reason})
				} else {
					expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "secret.team"})
				}
			})
		}
	}
}

// TestRefreshKeepsServerSubscriptions, over both transports: a refresh revokes the client's
// subscriptions its token no longer grants, never the server's.
func TestRefreshKeepsServerSubscriptions(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			c := welcomeOver(t, tc, serve(t, h), token(t, h, "alice", "mine"))
			if err := h.Subscribe(context.Background(), "alice", "billing"); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "billing"})
			c.Send(map[string]any{"op": "subscribe", "topic": "mine"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "mine"})

			refresh(t, h, c, "alice") // grants nothing
			expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "mine", "code": "forbidden"})
			expectFrame(t, c, map[string]any{"op": "refreshed"})
			if _, err := h.Publish(context.Background(), "billing", notify.Event{Type: "invoice"}); err != nil {
				t.Fatal(err)
			}
			expectFrame(t, c, map[string]any{"type": "invoice", "topic": "billing"})
		})
	}
}

// welcomeOver opens a session with tok over the transport and reads its welcome.
func welcomeOver(t testing.TB, tc transportCase, srv *httptest.Server, tok string) *client {
	t.Helper()
	c, _, err := tc.dial(t, tc.url(srv), bearer(tok))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if w := c.Next(); w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c
}

// TestRevocationRacesEvents, over both transports: an event published while the refresh
// revokes its topic either arrives before the "unsubscribed" frame or not at all.
func TestRevocationRacesEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// The publisher outruns the reader: a queue that never overflows.
			h := newHub(t, func(c *notify.Config) { c.MaxQueueBytes = 1 << 30 })
			c := welcomeOver(t, tc, serve(t, h), token(t, h, "alice", "secret.team"))
			c.Send(map[string]any{"op": "subscribe", "topic": "secret.team"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "secret.team"})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var published atomic.Int64
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, err := h.Publish(context.Background(), "secret.team", notify.Event{Type: "secret"}); err != nil {
						t.Error(err)
						return
					}
					published.Add(1)
				}
			})
			waitFor(t, "events in flight", func() bool { return published.Load() > 100 })
			refresh(t, h, c, "alice")
			for {
				m := nextOp(t, c)
				if m["op"] == "unsubscribed" {
					break
				}
				if m["type"] != "secret" {
					t.Fatalf("frame %v before the unsubscribed frame", m)
				}
			}
			// Publish on after the revocation for a while: none of it may arrive.
			before := published.Load()
			waitFor(t, "events after the revocation", func() bool { return published.Load() > before+100 })
			close(stop)
			wg.Wait()
			if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
				t.Fatal(err)
			}
			for {
				m := nextOp(t, c)
				if m["type"] == "marker" {
					break
				}
				if m["op"] != "refreshed" {
					t.Fatalf("frame %v after the unsubscribed frame", m)
				}
			}
		})
	}
}

// Subscribing to topics that never had an event leaves nothing behind once the subscriptions
// end: no stream record, and no heap to speak of.
func TestTopicsWithoutEventsCostNothing(t *testing.T) {
	const topics = 25000
	h := newHub(t, func(c *notify.Config) {
		c.Authorize = func(context.Context, notify.Identity, string) error { return nil }
		c.MessageRate, c.MessageBurst = 1e9, 1<<30
	})
	srv := serve(t, h)
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	churn := func(first, n int) {
		c := dial(t, srv, token(t, h, "alice"))
		var wg sync.WaitGroup
		wg.Go(func() {
			for i := first; i < first+n; i++ {
				topic := fmt.Sprintf("open.%d", i)
				c.Send(map[string]any{"op": "subscribe", "topic": topic})
				c.Send(map[string]any{"op": "unsubscribe", "topic": topic})
			}
		})
		for answered := 0; answered < 2*n; {
			m := nextOp(t, c)
			switch m["op"] {
			case "subscribed", "unsubscribed":
				answered++
			default:
				t.Fatalf("frame %v", m)
			}
		}
		wg.Wait()
		if n := notify.Streams(h); n != 0 {
			t.Fatalf("%d stream records after subscriptions to topics without events, want 0", n)
		}
		_ = c.WS.Close()
		waitFor(t, "the session to end", func() bool { return h.Stats().Sessions == 0 })
	}
	churn(0, 2000) // warms what a session and its traffic leave in pools and buffers
	before := heap()
	churn(2000, topics)
	after := heap()
	grown := int64(after) - int64(before)
	t.Logf("heap %d -> %d bytes (%+d) after %d topics", before, after, grown, topics)
	// Before, reading a position made a record: +3.9 MB for 25,000 topics (164 B a topic).
	if grown > 1<<20 {
		t.Fatalf("heap grew by %d bytes after %d subscriptions ended, want < 1 MiB", grown, topics)
	}
}

// TestUserSessionCap, over both transports: past MaxUserSessions a session is refused with 429,
// another user's is not, and one that ends frees its slot.
func TestUserSessionCap(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.MaxUserSessions = 3 })
			srv := serve(t, h)
			tok := token(t, h, "alice")
			var tabs []*client
			for range 3 {
				tabs = append(tabs, welcomeOver(t, tc, srv, tok))
			}
			_, resp, err := tc.dial(t, tc.url(srv), bearer(tok))
			assertRefused(t, resp, err, http.StatusTooManyRequests, "notify: too many sessions for this user (at most 3)")
			welcomeOver(t, tc, srv, token(t, h, "bob")) // another user is not affected

			tabs[0].Close()
			waitFor(t, "a fourth tab once one closed", func() bool {
				c, _, err := tc.dial(t, tc.url(srv), bearer(tok))
				if err == nil {
					c.Next()
				}
				return err == nil
			})
			if got := h.Stats().Refused["user_sessions"]; got < 1 {
				t.Fatalf("Refused[user_sessions] = %d, want >= 1", got)
			}
		})
	}
}

func assertRefused(t testing.TB, resp *http.Response, err error, status int, body string) {
	t.Helper()
	if err == nil {
		t.Fatalf("upgrade succeeded, want %d", status)
	}
	if resp == nil || resp.StatusCode != status {
		t.Fatalf("dial: %v (response %v), want status %d", err, resp, status)
	}
	b, _ := io.ReadAll(resp.Body)
	if got := strings.TrimSpace(string(b)); got != body {
		t.Fatalf("body %q, want %q", got, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "5" {
		t.Fatalf("Retry-After %q, want 5", got)
	}
}

// TestUserSessionCapConcurrent, over both transports: of many sessions opened at once by one
// user, exactly MaxUserSessions are admitted and the rest refused with 429.
func TestUserSessionCapConcurrent(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const limit, dials = 5, 40
			h := newHub(t, func(c *notify.Config) { c.MaxUserSessions = limit })
			srv := serve(t, h)
			tok := token(t, h, "alice")
			var ok, refused atomic.Int32
			// The admitted clients are kept (and closed) by their cleanup: one that became
			// unreachable would be closed by its finalizer at the next garbage collection,
			// freeing a slot of the cap.
			var wg sync.WaitGroup
			for range dials {
				wg.Go(func() {
					_, resp, err := tc.dial(t, tc.url(srv), bearer(tok))
					switch {
					case err == nil:
						ok.Add(1)
					case resp != nil && resp.StatusCode == http.StatusTooManyRequests:
						refused.Add(1)
					default:
						t.Errorf("dial: %v", err)
					}
				})
			}
			wg.Wait()
			if ok.Load() != limit || refused.Load() != dials-limit {
				t.Fatalf("%d admitted, %d refused; want %d and %d", ok.Load(), refused.Load(), limit, dials-limit)
			}
			waitFor(t, "the sessions to connect", func() bool { return h.LocalSessions("alice") == limit })
			if n := h.LocalSessions("alice"); n != limit {
				t.Fatalf("Sessions = %d, want %d", n, limit)
			}
		})
	}
}

func TestHubSessionCap(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.MaxSessions = 2 })
	srv := serve(t, h)
	dial(t, srv, token(t, h, "alice"))
	dial(t, srv, token(t, h, "bob"))
	_, resp, err := dialHeader(t, srv, http.Header{"Authorization": {"Bearer " + token(t, h, "carol")}})
	assertRefused(t, resp, err, http.StatusServiceUnavailable, "notify: too many sessions on this server")
	if got := h.Stats().Refused["hub_sessions"]; got != 1 {
		t.Fatalf("Refused[hub_sessions] = %d, want 1", got)
	}
}

// fakeClock is a clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestRateLimit, over both transports (an event stream's POSTs count as frames): past the
// burst a message is refused with rate_limited, and served again once the rate allows.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, func(c *notify.Config) { c.MessageRate, c.MessageBurst = 2, 3 })
			clock := newFakeClock()
			notify.SetClock(h, clock.Now)
			c := welcomeOver(t, tc, serve(t, h), token(t, h, "alice", "t.>"))
			sub := func(topic string) { c.Send(map[string]any{"op": "subscribe", "topic": topic}) }

			for i := range 3 { // the burst
				sub(fmt.Sprint("t.", i))
				expectFrame(t, c, map[string]any{"op": "subscribed", "topic": fmt.Sprint("t.", i)})
			}
			sub("t.3")
			expectFrame(t, c, map[string]any{"op": "error", "code": "rate_limited", "topic": "t.3", "reason": "too many messages, slow down"})
			clock.Advance(500 * time.Millisecond) // one token at 2/s: served again, not closed
			sub("t.3")
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "t.3"})
			clock.Advance(time.Second) // two tokens
			for i := 4; i < 6; i++ {
				sub(fmt.Sprint("t.", i))
				expectFrame(t, c, map[string]any{"op": "subscribed", "topic": fmt.Sprint("t.", i)})
			}
			if got := h.Stats().RateLimited; got != 1 {
				t.Fatalf("RateLimited = %d, want 1", got)
			}
		})
	}
}

// TestRateLimitSustainedCloses runs over both transports: TestTransportRateLimitSustainedCloses.

func TestBinaryFramesAreBadMessages(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	c := dial(t, srv, token(t, h, "alice"))
	for range 10 {
		if err := c.WS.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		expectFrame(t, c, map[string]any{"op": "error", "code": "bad_request", "reason": "binary frames are not part of the protocol"})
	}
	if code := notify.CloseCode(c.CloseCode()); code != notify.CloseProtocolAbuse {
		t.Fatalf("close code %d, want %d", code, notify.CloseProtocolAbuse)
	}
	waitFor(t, "the abuse close to be counted", func() bool {
		st := h.Stats()
		return st.AbuseCloses == 1 && st.Disconnects[notify.CloseProtocolAbuse] == 1
	})
}

// TestOriginSchemeAndHost, over both transports: the origin check compares the scheme and the
// host, trusts X-Forwarded-Proto only when configured, and takes the allowlist.
func TestOriginSchemeAndHost(t *testing.T) {
	t.Parallel()
	h := newHub(t, func(c *notify.Config) { c.AllowedOrigins = []string{"https://app.example.com"} })
	srv := serve(t, h)
	proxied := newHub(t, func(c *notify.Config) { c.TrustForwardedProto = true })
	behindProxy := serve(t, proxied)
	host := strings.TrimPrefix(srv.URL, "http://")
	proxyHost := strings.TrimPrefix(behindProxy.URL, "http://")
	for _, tt := range []struct {
		name   string
		proxy  bool // the hub trusts X-Forwarded-Proto
		origin string
		proto  string // X-Forwarded-Proto
		want   int    // http.StatusSwitchingProtocols: the session opens (200 on an event stream)
	}{
		{name: "no origin (not a browser)", want: http.StatusSwitchingProtocols},
		{name: "same origin", origin: "http://" + host, want: http.StatusSwitchingProtocols},
		{name: "same host, other scheme", origin: "https://" + host, want: http.StatusForbidden},
		{name: "X-Forwarded-Proto not trusted", origin: "https://" + host, proto: "https", want: http.StatusForbidden},
		{name: "X-Forwarded-Proto not trusted, http page", origin: "http://" + host, proto: "https", want: http.StatusSwitchingProtocols},
		{name: "https behind a trusted proxy", proxy: true, origin: "https://" + proxyHost, proto: "https", want: http.StatusSwitchingProtocols},
		{name: "http page, trusted proxy says https", proxy: true, origin: "http://" + proxyHost, proto: "https", want: http.StatusForbidden},
		{name: "other host", origin: "http://evil.example", want: http.StatusForbidden},
		{name: "allowlisted", origin: "https://app.example.com", want: http.StatusSwitchingProtocols},
		{name: "allowlisted host, other scheme", origin: "http://app.example.com", want: http.StatusForbidden},
		{name: "null", origin: "null", want: http.StatusForbidden},
	} {
		for _, tc := range transports {
			t.Run(tc.name+"/"+tt.name, func(t *testing.T) {
				hub, s := h, srv
				if tt.proxy {
					hub, s = proxied, behindProxy
				}
				hdr := http.Header{"Authorization": {"Bearer " + token(t, hub, "alice")}}
				if tt.origin != "" {
					hdr.Set("Origin", tt.origin)
				}
				if tt.proto != "" {
					hdr.Set("X-Forwarded-Proto", tt.proto)
				}
				c, resp, err := tc.dial(t, tc.url(s), hdr)
				if resp == nil {
					t.Fatalf("dial: %v", err)
				}
				want := tt.want
				if want == http.StatusSwitchingProtocols && tc.name == "sse" {
					want = http.StatusOK
				}
				if resp.StatusCode != want {
					t.Fatalf("status %d, want %d", resp.StatusCode, want)
				}
				if c != nil {
					c.Close()
				}
			})
		}
	}
}

// TestStatsCounters, over both transports: the refusals by reason, the sessions' connects and
// disconnects by code, the sends and deliveries, recoveries, frames and the send durations.
func TestStatsCounters(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			// Refusals, by reason.
			_, _, _ = tc.dial(t, tc.url(srv), nil)
			expired := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()})
			_, _, _ = tc.dial(t, tc.url(srv), http.Header{"Authorization": {"Bearer " + expired}})
			_, _, _ = tc.dial(t, tc.url(srv), http.Header{"Authorization": {"Bearer x.y.z"}})
			_, _, _ = tc.dial(t, tc.url(srv), http.Header{"Origin": {"http://evil.example"}})

			c := welcomeOver(t, tc, srv, token(t, h, "alice", "news"))
			c.Send(map[string]any{"op": "subscribe", "topic": "news", "epoch": "gone", "offset": 3})
			expectFrame(t, c, map[string]any{"op": "subscribed", "recovered": false})
			if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "a"}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Publish(context.Background(), "news", notify.Event{Type: "b"}); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Broadcast(context.Background(), notify.Event{Type: "c"}); err != nil {
				t.Fatal(err)
			}
			for _, typ := range []string{"a", "b", "c"} {
				expectFrame(t, c, map[string]any{"type": typ})
			}
			// A WebSocket client says goodbye with 1000; an event stream's can only drop the stream,
			// which counts as 1006.
			closed := uint64(websocket.CloseNormalClosure)
			if c.SSE() {
				closed = websocket.CloseAbnormalClosure
				c.Close()
			} else if err := c.WS.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the session to end", func() bool { return h.Stats().Sessions == 0 })

			st := h.Stats()
			want := map[string]uint64{"no_token": 1, "token_expired": 1, "token_invalid": 1, "origin": 1}
			for k, v := range want {
				if st.Refused[k] != v {
					t.Errorf("Refused[%s] = %d, want %d (all: %v)", k, st.Refused[k], v, st.Refused)
				}
			}
			for _, f := range []struct {
				name      string
				got, want uint64
			}{
				{"Connects", st.Connects, 1},
				{fmt.Sprintf("Disconnects[%d]", closed), st.Disconnects[notify.CloseCode(closed)], 1},
				{"Sends", st.Sends, 1},
				{"Publishes", st.Publishes, 1},
				{"Broadcasts", st.Broadcasts, 1},
				{"Deliveries", st.Deliveries, 3},
				{"NotRecovered", st.NotRecovered, 1},
				{"Recovered", st.Recovered, 0},
				{"SendDuration.Count", st.SendDuration.Count, 3},
			} {
				if f.got != f.want {
					t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
				}
			}
			// welcome, subscribed, and three events: at least 2 frames (the events may share one).
			if st.FramesWritten < 2 || st.BytesWritten < 100 {
				t.Errorf("FramesWritten %d, BytesWritten %d: too few", st.FramesWritten, st.BytesWritten)
			}
			if n := len(st.SendDuration.Counts); n != len(st.SendDuration.Bounds) || st.SendDuration.Counts[n-1] > 3 {
				t.Errorf("SendDuration %+v", st.SendDuration)
			}
		})
	}
}

// TestRecoverFromTopicWithoutEvents, over both transports: a position read from a topic
// without events (no record kept) still recovers the topic's first events after the client
// left and came back.
func TestRecoverFromTopicWithoutEvents(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			c := welcomeOver(t, tc, serve(t, h), token(t, h, "alice", "quiet"))
			c.Send(map[string]any{"op": "subscribe", "topic": "quiet"})
			sub := expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "quiet"})
			epoch, _ := sub["epoch"].(string)
			if epoch == "" || sub["offset"] != nil {
				t.Fatalf("subscribed %v, want an epoch and offset 0", sub)
			}
			c.Send(map[string]any{"op": "unsubscribe", "topic": "quiet"})
			expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "quiet"})
			if n := notify.Streams(h); n != 0 {
				t.Fatalf("%d stream records, want 0", n)
			}
			for _, typ := range []string{"one", "two"} {
				if _, err := h.Publish(context.Background(), "quiet", notify.Event{Type: typ}); err != nil {
					t.Fatal(err)
				}
			}
			c.Send(map[string]any{"op": "subscribe", "topic": "quiet", "epoch": epoch, "offset": 0})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "quiet", "epoch": epoch, "offset": 2, "recovered": true})
			expectFrame(t, c, map[string]any{"type": "one", "offset": 1, "epoch": epoch})
			expectFrame(t, c, map[string]any{"type": "two", "offset": 2, "epoch": epoch})
		})
	}
}

// TestAuthorizeGetsClaimsAndRequestValues, over both transports: Config.Authorize sees the
// token's claims and the values a middleware put in the upgrade's (or the stream's) request
// context; after a refresh, the new token's.
func TestAuthorizeGetsClaimsAndRequestValues(t *testing.T) {
	t.Parallel()
	type tenantKey struct{}
	h := newHub(t, func(c *notify.Config) {
		c.Authorize = func(ctx context.Context, id notify.Identity, topic string) error {
			tenant, _ := ctx.Value(tenantKey{}).(string)
			if topic != tenant+"."+fmt.Sprint(id.Claims["team"]) {
				return fmt.Errorf("tenant %q, team %v", tenant, id.Claims["team"])
			}
			return nil
		}
	})
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", h)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, "acme")))
	}))
	t.Cleanup(srv.Close)
	signed := func(team string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "team": team,
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := welcomeOver(t, tc, srv, signed("red"))
			c.Send(map[string]any{"op": "subscribe", "topic": "acme.red"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "acme.red"})
			c.Send(map[string]any{"op": "subscribe", "topic": "acme.blue"})
			expectFrame(t, c, map[string]any{"op": "error", "topic": "acme.blue", "reason": `tenant "acme", team red`})
			// Moved to team blue: the refresh revokes red, and blue is allowed.
			c.Send(map[string]any{"op": "refresh", "token": signed("blue")})
			expectFrame(t, c, map[string]any{"op": "unsubscribed", "topic": "acme.red", "code": "forbidden", "reason": `tenant "acme", team blue`})
			expectFrame(t, c, map[string]any{"op": "refreshed"})
			c.Send(map[string]any{"op": "subscribe", "topic": "acme.blue"})
			expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "acme.blue"})
		})
	}
}
