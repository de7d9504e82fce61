package notify_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// signed returns a token for user with the given iat (none when zero) and an expiry in a minute.
func signed(t testing.TB, user string, iat time.Time) string {
	t.Helper()
	claims := jwt.MapClaims{"sub": user, "exp": time.Now().Add(time.Minute).Unix()}
	if !iat.IsZero() {
		claims["iat"] = iat.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// refusedWith dials p with tok and returns the status and body of the refused upgrade.
func refusedWith(t testing.TB, p *wstest.PipeServer, tok string) (int, string) {
	t.Helper()
	return refusedVia(t, (*wstest.PipeServer).Dial, p, pipeURL(p), tok)
}

// refusedVia is refusedWith through dial at u: a WebSocket upgrade or an event stream.
func refusedVia(t testing.TB, dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error),
	p *wstest.PipeServer, u, tok string) (int, string) {
	t.Helper()
	c, resp, err := dial(p, t, u, bearer(tok))
	if err == nil {
		c.Close()
		t.Fatal("upgrade succeeded, want it refused")
	}
	if resp == nil {
		t.Fatalf("no response: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// The tests below that serve sessions run in testing/synctest bubbles, on servePipe: what
// they wait for (a session's end, a hook, the sweep) is waited for with synctest.Wait or
// comes at its exact time on the bubble's clock.

func TestPresenceBadInput(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	if _, err := h.Presence(context.Background(), ""); !errors.Is(err, notify.ErrInvalidUser) {
		t.Fatalf("Presence(\"\") = %v, want ErrInvalidUser", err)
	}
	p, err := h.Presence(context.Background(), "nobody")
	if err != nil || len(p) != 0 {
		t.Fatalf("Presence(unknown) = %v, %v; want empty, nil", p, err)
	}
	if err := h.Disconnect(context.Background(), "nobody", notify.DisconnectOptions{}); err != nil {
		t.Fatalf("Disconnect(no sessions) = %v", err)
	}
	if err := h.Disconnect(context.Background(), "", notify.DisconnectOptions{}); !errors.Is(err, notify.ErrInvalidUser) {
		t.Fatalf("Disconnect(\"\") = %v", err)
	}
	if s := h.Stats(); s.Sessions != 0 || s.Present != 0 || s.Online != 0 {
		t.Fatalf("stats after a Disconnect of nobody: %+v", s)
	}
}

// pipeTransports are the hub's two transports over a PipeServer, for the tests that run in
// synctest bubbles.
var pipeTransports = []struct {
	name string
	dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error)
	url  string // only its path and query matter to the PipeServer
}{
	{"websocket", (*wstest.PipeServer).Dial, "ws://pipe/notify/ws"},
	{"sse", (*wstest.PipeServer).DialSSE, "http://pipe/notify/sse"},
}

// dialVia is welcomeVia's client.
func dialVia(t testing.TB, dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error),
	p *wstest.PipeServer, u, tok string) *client {
	t.Helper()
	c, _ := welcomeVia(t, dial, p, u, tok)
	return c
}

// welcomeVia opens a session with tok through dial at u on p and reads its welcome.
func welcomeVia(t testing.TB, dial func(*wstest.PipeServer, testing.TB, string, http.Header) (*client, *http.Response, error),
	p *wstest.PipeServer, u, tok string) (*client, map[string]any) {
	t.Helper()
	c, _, err := dial(p, t, u, bearer(tok))
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	w := c.Next()
	if w["op"] != "welcome" {
		t.Fatalf("first frame %v, want welcome", w)
	}
	return c, w
}

// TestPresenceAndHooks, over both transports: presence lists the sessions with their IDs and
// transport; the session hooks get the identity, OnOnline and OnOffline fire once per
// transition, and Stats agree.
func TestPresenceAndHooks(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var log []string
				add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
				h := newHub(t, func(c *notify.Config) {
					c.OnSessionStart = func(id notify.Identity, s notify.SessionInfo) { add("start " + id.UserID + " " + s.ID) }
					c.OnSessionEnd = func(id notify.Identity, s notify.SessionInfo) { add("end " + id.UserID + " " + s.ID) }
					c.OnOnline = func(u string) { add("online " + u) }
					c.OnOffline = func(u string) { add("offline " + u) }
				})
				srv := servePipe(t, h)
				c1, w1 := welcomeVia(t, tc.dial, srv, tc.url, token(t, h, "alice"))
				c2, w2 := welcomeVia(t, tc.dial, srv, tc.url, token(t, h, "alice"))
				synctest.Wait() // the sessions' hooks have run (after their welcomes)
				p, err := h.Presence(context.Background(), "alice")
				if err != nil || len(p) != 2 || p[0].ID != w1["session"] || p[1].ID != w2["session"] || p[0].Node == "" {
					t.Fatalf("Presence = %+v, %v; want the two sessions %v, %v", p, err, w1["session"], w2["session"])
				}
				if p[0].Transport != tc.name || p[1].Transport != tc.name {
					t.Fatalf("Presence = %+v, want both over %s", p, tc.name)
				}
				if s := h.Stats(); s.Present != 2 || s.Online != 1 || s.Offline != 0 {
					t.Fatalf("stats with two sessions: Present %d Online %d Offline %d", s.Present, s.Online, s.Offline)
				}
				c1.Close()
				synctest.Wait() // the first session has ended
				if s := h.Stats(); s.Present != 1 {
					t.Fatalf("Present %d after the first session ended, want 1", s.Present)
				}
				c2.Close()
				synctest.Wait()
				if s := h.Stats(); s.Present != 0 {
					t.Fatalf("Present %d after the second session ended, want 0", s.Present)
				}
				s1, s2 := w1["session"].(string), w2["session"].(string)
				want := "start alice " + s1 + "|online alice|start alice " + s2 + "|end alice " + s1 + "|end alice " + s2 + "|offline alice"
				mu.Lock()
				got := strings.Join(log, "|")
				mu.Unlock()
				if got != want {
					t.Fatalf("hooks:\n got %s\nwant %s", got, want)
				}
				if s := h.Stats(); s.Online != 1 || s.Offline != 1 {
					t.Fatalf("stats: Online %d Offline %d, want 1 1", s.Online, s.Offline)
				}
				if p, _ := h.Presence(context.Background(), "alice"); len(p) != 0 {
					t.Fatalf("Presence after both left: %+v", p)
				}
			})
		})
	}
}

// TestDisconnect, over both transports: every session closes with 4001; with a refusal, the
// old token gets 401 with the reason at connect and, in a refresh, an error frame and close
// 4001; a token issued after it connects.
func TestDisconnect(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, nil)
				srv := servePipe(t, h)
				open := func(tok string) *client {
					t.Helper()
					c, _ := welcomeVia(t, tc.dial, srv, tc.url, tok)
					return c
				}
				refused := func(tok string) (int, string) {
					t.Helper()
					return refusedVia(t, tc.dial, srv, tc.url, tok)
				}
				old := signed(t, "alice", time.Now().Add(-time.Hour))
				a1, a2 := open(old), open(old)
				bob := open(token(t, h, "bob"))
				// Another session, whose refresh comes after the refusal.
				a3 := open(old)
				if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{}); err != nil {
					t.Fatal(err)
				}
				for _, c := range []*client{a1, a2, a3} {
					if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
						t.Fatalf("close code %d, want %d", code, notify.CloseSignedOut)
					}
				}
				// Without a refusal the old token still connects.
				a4 := open(old)
				if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: time.Now().Add(-time.Second)}); err != nil {
					t.Fatal(err)
				}
				if code := a4.CloseCode(); code != int(notify.CloseSignedOut) {
					t.Fatalf("close code %d, want %d", code, notify.CloseSignedOut)
				}
				status, body := refused(old)
				if status != http.StatusUnauthorized || body != "notify: unauthorized: token issued before the user was signed out" {
					t.Fatalf("old token at connect: %d %q", status, body)
				}
				status, body = refused(signed(t, "alice", time.Time{}))
				if status != http.StatusUnauthorized || !strings.Contains(body, "no iat") {
					t.Fatalf("token without iat at connect: %d %q", status, body)
				}
				if got := h.Stats().Refused["signed_out"]; got != 2 {
					t.Fatalf("Refused[signed_out] = %d, want 2", got)
				}
				// A fresh token connects; a refresh with the old one ends the session.
				fresh := open(signed(t, "alice", time.Now()))
				fresh.Send(map[string]any{"op": "refresh", "token": old})
				if m := fresh.NextNonPing(); m["op"] != "error" || m["code"] != "invalid_token" ||
					m["reason"] != "unauthorized: token issued before the user was signed out" {
					t.Fatalf("refresh with the old token: %v", m)
				}
				if code := fresh.CloseCode(); code != int(notify.CloseSignedOut) {
					t.Fatalf("close code %d after the refused refresh, want %d", code, notify.CloseSignedOut)
				}
				// bob was not touched.
				expectMarker(t, h, bob, "bob")
			})
		})
	}
}

// TestRefusalLeeway: tokens issued within Config.Leeway before the refusal time are accepted
// (another node's clock may be that far behind), older ones are not; over both transports.
func TestRefusalLeeway(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		iat  time.Duration // before the refusal
		ok   bool
	}{
		{"issued at the same second", 0, true}, // within the leeway
		{"issued by a clock 3s behind", 3 * time.Second, true},
		{"issued 10s before", 10 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, tr := range pipeTransports {
				t.Run(tr.name, func(t *testing.T) {
					t.Parallel()
					synctest.Test(t, func(t *testing.T) {
						h := newHub(t, func(c *notify.Config) { c.Leeway = 5 * time.Second })
						srv := servePipe(t, h)
						signout := time.Now()
						if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: signout}); err != nil {
							t.Fatal(err)
						}
						tok := signed(t, "alice", signout.Add(-tc.iat))
						if tc.ok {
							dialVia(t, tr.dial, srv, tr.url, tok).Close()
							return
						}
						if status, _ := refusedVia(t, tr.dial, srv, tr.url, tok); status != http.StatusUnauthorized {
							t.Fatalf("status %d, want 401", status)
						}
					})
				})
			}
		})
	}
}

// TestConfigSubscriptions, over both transports: the topics Config.Subscriptions returns are
// subscribed on every connect, marked as the server's, and recovered from the positions given
// in the connect URL (an event stream's too); a refresh does not revoke them; a failing
// Subscriptions turns the session away with 1013 (an event stream's close event).
func TestConfigSubscriptions(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, func(c *notify.Config) {
					c.Subscriptions = func(_ context.Context, id notify.Identity) ([]string, error) {
						if id.UserID == "mallory" {
							return nil, errors.New("no")
						}
						return []string{"team." + id.UserID}, nil
					}
				})
				srv := servePipe(t, h)
				c, _ := welcomeVia(t, tc.dial, srv, tc.url, token(t, h, "alice"))
				m := c.NextNonPing()
				if m["op"] != "subscribed" || m["topic"] != "team.alice" || m["server"] != true {
					t.Fatalf("after the welcome: %v, want subscribed team.alice by the server", m)
				}
				epoch, _ := m["epoch"].(string)
				off, _ := m["offset"].(float64) // absent at 0
				h.Publish(context.Background(), "team.alice", notify.Event{Type: "seen"})
				if m := c.NextNonPing(); m["type"] != "seen" {
					t.Fatalf("got %v", m)
				}
				c.Send(map[string]any{"op": "refresh", "token": token(t, h, "alice")}) // grants no topic
				if m := c.NextNonPing(); m["op"] != "refreshed" {
					t.Fatalf("refresh: %v (the server's subscription must stay)", m)
				}
				c.Close()
				synctest.Wait() // the session has ended
				h.Publish(context.Background(), "team.alice", notify.Event{Type: "missed"})
				q := url.Values{"t.team.alice": {strconv.Itoa(int(off)+1) + "." + epoch}}
				c, _ = welcomeVia(t, tc.dial, srv, tc.url+"?"+q.Encode(), token(t, h, "alice"))
				if m := c.NextNonPing(); m["op"] != "subscribed" || m["recovered"] != true {
					t.Fatalf("after the reconnect: %v, want recovered", m)
				}
				if m := c.NextNonPing(); m["type"] != "missed" {
					t.Fatalf("replay: %v", m)
				}
				bad, _, err := tc.dial(srv, t, tc.url, bearer(token(t, h, "mallory")))
				if err != nil {
					t.Fatal(err)
				}
				if code := bad.CloseCode(); code != 1013 {
					t.Fatalf("close %d, want 1013", code)
				}
			})
		})
	}
}

// TestSubscribeLaterSession, over both transports: Subscribe reaches a session opened before
// it, as a subscription of the server's; an invalid topic is refused.
func TestSubscribeLaterSession(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, nil)
				srv := servePipe(t, h)
				c := dialVia(t, tc.dial, srv, tc.url, token(t, h, "alice"))
				if err := h.Subscribe(context.Background(), "alice", "x y"); !errors.Is(err, notify.ErrInvalidTopic) {
					t.Fatalf("Subscribe(invalid) = %v", err)
				}
				if err := h.Subscribe(context.Background(), "alice", "billing"); err != nil {
					t.Fatal(err)
				}
				if m := c.NextNonPing(); m["op"] != "subscribed" || m["server"] != true {
					t.Fatalf("got %v", m)
				}
			})
		})
	}
}

// TestSendReport, over both transports: what Send, Publish and Broadcast report of a
// delivery (the nodes reached, whether and where it was stored).
func TestSendReport(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			ctx := context.Background()
			if _, err := h.Send(ctx, "", notify.Event{Type: "x"}); !errors.Is(err, notify.ErrInvalidUser) {
				t.Fatalf("Send(\"\") = %v", err)
			}
			r, err := h.Send(ctx, "carol", notify.Event{Type: "x"})
			if err != nil || r.Nodes != 0 || !r.Stored || r.Position.Offset != 1 || r.StoredUntil.Before(time.Now()) {
				t.Fatalf("report for a user offline: %+v, %v", r, err)
			}
			c := welcomeOver(t, tc, srv, token(t, h, "alice"))
			welcomeOver(t, tc, srv, token(t, h, "alice"))
			r, err = h.Send(ctx, "alice", notify.Event{Type: "x"})
			if err != nil || r.Nodes != 1 || r.Position.Offset != 1 {
				t.Fatalf("report for alice: %+v, %v", r, err)
			}
			if m := c.NextNonPing(); m["offset"] != float64(r.Position.Offset) || m["epoch"] != r.Position.Epoch {
				t.Fatalf("event %v, report %+v", m, r.Position)
			}
			r, err = h.Send(ctx, "alice", notify.Event{Type: "typing", Ephemeral: true})
			if err != nil || r.Stored || r.Position.Offset != 0 || r.Nodes != 1 {
				t.Fatalf("report of an ephemeral event: %+v, %v", r, err)
			}
			r, err = h.Publish(ctx, "news", notify.Event{Type: "x"})
			if err != nil || r.Nodes != 0 || !r.Stored || r.Position.Offset != 1 {
				t.Fatalf("report of a topic without subscribers: %+v, %v", r, err)
			}
			r, err = h.Broadcast(ctx, notify.Event{Type: "x"})
			if err != nil || r.Nodes != 1 || r.Stored || r.Position.Offset != 0 {
				t.Fatalf("report of a broadcast: %+v, %v", r, err)
			}
		})
	}
}

// TestRefusalSameSecond: without leeway, a token issued in the second of the refusal is
// refused (it may be the old token of a tab that logged out in that second); the next
// second's is not. Over both transports.
func TestRefusalSameSecond(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				h := newHub(t, nil)
				srv := servePipe(t, h)
				signout := time.Now().Add(-time.Second)
				if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: signout}); err != nil {
					t.Fatal(err)
				}
				if got, err := h.RefusedBefore(context.Background(), "alice"); err != nil || !got.Equal(signout) {
					t.Fatalf("RefusedBefore = %v, %v; want %v", got, err, signout)
				}
				if status, _ := refusedVia(t, tc.dial, srv, tc.url, signed(t, "alice", signout)); status != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", status)
				}
				dialVia(t, tc.dial, srv, tc.url, signed(t, "alice", signout.Add(time.Second))).Close()
			})
		})
	}
}

// TestDisconnectSweep: two seconds after a Disconnect with a refusal, its sweep closes the
// sessions that missed its first command and whose token the refusal refuses, and leaves
// those with a newer token, or with one a refresh brought up to date. The sessions that miss
// the command are the race the sweep is for: their connects passed the refusal check before
// the refusal was recorded (Config.Subscriptions holds them there), and reached the hub's index
// after the command. On a synctest bubble's clock the sweep comes at its exact time. Over both
// transports; an event stream's refresh is a POST, authenticated with the fresh token.
func TestDisconnectSweep(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				release := make(chan struct{})
				var hold atomic.Bool
				hold.Store(true)
				h := newHub(t, func(c *notify.Config) {
					c.Subscriptions = func(context.Context, notify.Identity) ([]string, error) {
						if hold.Load() {
							<-release
						}
						return nil, nil
					}
				})
				srv := servePipe(t, h)
				connect := func(tok string) <-chan *client {
					dialed := make(chan *client, 1)
					go func() {
						c, _, err := tc.dial(srv, t, tc.url, bearer(tok))
						if err != nil {
							t.Error(err)
						}
						dialed <- c
					}()
					return dialed
				}
				welcomed := func(dialed <-chan *client) *client {
					t.Helper()
					c := <-dialed
					if c == nil {
						t.FailNow()
					}
					if m := c.NextNonPing(); m["op"] != "welcome" {
						t.Fatalf("got %v, want the welcome", m)
					}
					return c
				}
				old := connect(signed(t, "alice", time.Now().Add(-time.Hour)))
				noIat := connect(signed(t, "alice", time.Time{}))
				refreshed := connect(signed(t, "alice", time.Now().Add(-time.Hour)))
				synctest.Wait() // the three connects wait in Config.Subscriptions

				start := time.Now()
				before := start.Add(-2 * time.Second)
				if err := h.Disconnect(context.Background(), "alice", notify.DisconnectOptions{RefuseBefore: before}); err != nil {
					t.Fatal(err)
				}
				hold.Store(false)
				close(release)
				missed := []*client{welcomed(old), welcomed(noIat)}
				r := welcomed(refreshed)
				fresh, _ := welcomeVia(t, tc.dial, srv, tc.url, signed(t, "alice", time.Now()))
				newer := signed(t, "alice", time.Now())
				if r.SSE() {
					r.SetBearer(newer) // the POST itself is authenticated: the stream's old token is refused
				}
				r.Send(map[string]any{"op": "refresh", "token": newer})
				if m := r.NextNonPing(); m["op"] != "refreshed" {
					t.Fatalf("refresh: %v", m)
				}
				for _, c := range missed {
					if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
						t.Fatalf("close %d, want 4001", code)
					}
					if at := time.Since(start); at != 2*time.Second {
						t.Fatalf("closed %v after the Disconnect, want 2s (the sweep)", at)
					}
				}
				expectMarker(t, h, fresh, "alice")
				expectMarker(t, h, r, "alice")
			})
		})
	}
}

// TestOnlineWhenFirstSessionFails: the user's first session fails before its welcome while a
// second one starts: OnOnline still fires once (when the first leaves), then OnOffline once.
// Over both transports: a stream turned away before its welcome ends with a 1013 close event.
func TestOnlineWhenFirstSessionFails(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex
				var log []string
				add := func(s string) { mu.Lock(); log = append(log, s); mu.Unlock() }
				release := make(chan struct{})
				var calls atomic.Int32
				h := newHub(t, func(c *notify.Config) {
					c.OnOnline = func(u string) { add("online " + u) }
					c.OnOffline = func(u string) { add("offline " + u) }
					c.Subscriptions = func(context.Context, notify.Identity) ([]string, error) {
						if calls.Add(1) == 1 {
							<-release // until the second session is welcomed
							return nil, errors.New("first session fails")
						}
						return nil, nil
					}
				})
				srv := servePipe(t, h)
				tok := token(t, h, "alice")
				dialed := make(chan *client, 1)
				go func() {
					c, _, err := tc.dial(srv, t, tc.url, bearer(tok))
					if err != nil {
						t.Error(err)
					}
					dialed <- c
				}()
				synctest.Wait()
				if n := calls.Load(); n != 1 {
					t.Fatalf("%d Topics calls, want the first session's", n)
				}
				second := dialVia(t, tc.dial, srv, tc.url, token(t, h, "alice"))
				close(release)
				first := <-dialed
				if first == nil {
					t.FailNow()
				}
				if code := first.CloseCode(); code != 1013 {
					t.Fatalf("first session closed with %d, want 1013", code)
				}
				synctest.Wait() // the first session has ended
				if s := h.Stats(); s.Online != 1 {
					t.Fatalf("Online %d after the first session ended, want 1", s.Online)
				}
				second.Close()
				synctest.Wait()
				if s := h.Stats(); s.Offline != 1 {
					t.Fatalf("Offline %d after the second session ended, want 1", s.Offline)
				}
				mu.Lock()
				defer mu.Unlock()
				if got := strings.Join(log, "|"); got != "online alice|offline alice" {
					t.Fatalf("hooks %q", got)
				}
			})
		})
	}
}
