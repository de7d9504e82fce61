package inbox_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

var secret = []byte("inbox-test-secret-0123456789abcdef")

func newInbox(t *testing.T, hcfg notify.Config, cfg inbox.Config) (*notify.Hub, *inbox.Inbox, *httptest.Server) {
	t.Helper()
	if hcfg.Secret == nil {
		hcfg.Secret = secret
	}
	hub, err := notify.New(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hub.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	ib, err := inbox.New(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ib.Close() })
	mux := http.NewServeMux()
	mux.Handle("/inbox/", ib.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return hub, ib, srv
}

func TestHTTPRequests(t *testing.T) {
	hub, ib, srv := newInbox(t, notify.Config{CookieName: "tok", AllowedOrigins: []string{"https://app.example.com"}}, inbox.Config{})
	if _, _, err := ib.Notify(context.Background(), "alice", inbox.Notification{ID: "a1", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	alice, err := hub.IssueToken("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	expired, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	// carol signed out everywhere: her token from before it is refused here as at the socket.
	carolOld, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "carol", "iat": time.Now().Add(-time.Hour).Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := hub.Disconnect(context.Background(), "carol", notify.DisconnectOptions{RefuseBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	with := func(h map[string]string, k, v string) map[string]string {
		out := map[string]string{k: v}
		for a, b := range h {
			out[a] = b
		}
		return out
	}
	for _, tt := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		want                     string // the body, or its prefix when it ends in "*"
	}{
		{"list", "GET", "/inbox/", "", bearer(alice), 200, `{"items":[{"id":"a1","type":"t","createdAt":*`},
		{"counts", "GET", "/inbox/counts", "", bearer(alice), 200, `{"unread":1,"unseen":1,"total":1}` + "\n"},
		{"token in the hub's cookie", "GET", "/inbox/counts", "", map[string]string{"Cookie": "tok=" + alice}, 200, `{"unread":1,*`},
		{"no token", "GET", "/inbox/counts", "", nil, 401, `{"error":"unauthorized","reason":"no token"}` + "\n"},
		{"expired token", "GET", "/inbox/counts", "", bearer(expired), 401, `{"error":"unauthorized","reason":"token expired"}` + "\n"},
		{"bad token", "GET", "/inbox/counts", "", bearer("x.y.z"), 401, `{"error":"unauthorized","reason":"malformed token"}` + "\n"},
		{"token from before a sign-out", "GET", "/inbox/counts", "", bearer(carolOld), 401, `{"error":"unauthorized","reason":"token issued before the user was signed out"}` + "\n"},
		{"cross-origin change", "POST", "/inbox/read-all", "", with(bearer(alice), "Origin", "https://evil.example"), 403, `{"error":"forbidden","reason":"origin not allowed"}` + "\n"},
		{"cross-origin list", "GET", "/inbox/", "", with(bearer(alice), "Origin", "https://evil.example"), 403, `{"error":"forbidden",*`},
		{"allowed origin", "POST", "/inbox/read-all", "", with(bearer(alice), "Origin", "https://app.example.com"), 200, `{"counts":{"unread":0,*`},
		{"same origin", "GET", "/inbox/counts", "", with(bearer(alice), "Origin", srv.URL), 200, `{"unread":0,*`},
		{"GET a change", "GET", "/inbox/read", "", bearer(alice), 405, `{"error":"method_not_allowed","reason":"use POST"}` + "\n"},
		{"POST the list", "POST", "/inbox/", "", bearer(alice), 405, `{"error":"method_not_allowed","reason":"use GET"}` + "\n"},
		{"unknown endpoint", "GET", "/inbox/nope", "", bearer(alice), 404, `{"error":"not_found","reason":"no such endpoint"}` + "\n"},
		{"body not JSON", "POST", "/inbox/read", "{", bearer(alice), 400, `{"error":"bad_request","reason":"body must be {\"ids\":[\"...\"]}"}` + "\n"},
		{"ids not strings", "POST", "/inbox/read", `{"ids":[1]}`, bearer(alice), 400, `{"error":"bad_request",*`},
		{"two objects", "POST", "/inbox/read", `{"ids":["a1"]}{}`, bearer(alice), 400, `{"error":"bad_request","reason":"body must hold one JSON object"}` + "\n"},
		{"no ids", "POST", "/inbox/read", `{"ids":[]}`, bearer(alice), 400, `{"error":"bad_request","reason":"1 to 1000 IDs"}` + "\n"},
		{"body too large", "POST", "/inbox/read", `{"ids":["` + strings.Repeat("x", 70<<10) + `"]}`, bearer(alice), 413, `{"error":"too_large","reason":"request body too large"}` + "\n"},
		{"limit not a number", "GET", "/inbox/?limit=ten", "", bearer(alice), 400, `{"error":"bad_request","reason":"limit must be an integer"}` + "\n"},
		{"unread not a flag", "GET", "/inbox/?unread=maybe", "", bearer(alice), 400, `{"error":"bad_request","reason":"unread must be 0 or 1"}` + "\n"},
		{"archived not a flag", "GET", "/inbox/?archived=2", "", bearer(alice), 400, `{"error":"bad_request","reason":"archived must be 0 or 1"}` + "\n"},
		{"limit 10,000", "GET", "/inbox/?limit=10000&unread=0&archived=false", "", bearer(alice), 200, `{"items":[*`},
		{"limit negative", "GET", "/inbox/?limit=-5", "", bearer(alice), 200, `{"items":[*`},
		{"bob sees nothing of alice's", "GET", "/inbox/", "", bearer(mustToken(t, hub, "bob")), 200, `{"items":[]}` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			got := string(b)
			match := got == tt.want
			if prefix, ok := strings.CutSuffix(tt.want, "*"); ok {
				match = strings.HasPrefix(got, prefix)
			}
			if resp.StatusCode != tt.status || !match {
				t.Errorf("%s %s: %d %s\nwant %d %s", tt.method, tt.path, resp.StatusCode, got, tt.status, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q", cc)
			}
		})
	}
}

func mustToken(t *testing.T, hub *notify.Hub, user string) string {
	t.Helper()
	tok, err := hub.IssueToken(user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewConfigErrors(t *testing.T) {
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	for _, tt := range []struct {
		name string
		hub  *notify.Hub
		cfg  inbox.Config
		want string
	}{
		{"no hub", nil, inbox.Config{}, "notify: invalid config: inbox needs a hub"},
		{"negative MaxPerUser", hub, inbox.Config{MaxPerUser: -1}, "notify: invalid config: inbox MaxPerUser is negative"},
		{"negative MaxAge", hub, inbox.Config{MaxAge: -time.Second}, "notify: invalid config: inbox MaxAge is negative"},
		{"negative ExpireInterval", hub, inbox.Config{ExpireInterval: -1}, "notify: invalid config: inbox ExpireInterval is negative"},
		{"negative MaxDataSize", hub, inbox.Config{MaxDataSize: -1}, "notify: invalid config: inbox MaxDataSize is negative"},
		{"negative RequestTimeout", hub, inbox.Config{RequestTimeout: -1}, "notify: invalid config: inbox RequestTimeout is negative"},
		{"negative RequestBurst", hub, inbox.Config{RequestBurst: -1}, "notify: invalid config: inbox RequestBurst is negative"},
		{"negative RequestRate", hub, inbox.Config{RequestRate: -1}, "notify: invalid config: inbox RequestRate is -1, want a positive number of requests per second"},
		{"CursorKey too short", hub, inbox.Config{CursorKey: make([]byte, 31)}, "notify: invalid config: inbox CursorKey is 31 bytes, want at least 32 random bytes (or none: the store's key)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ib, err := inbox.New(tt.hub, tt.cfg)
			if ib != nil || !errors.Is(err, notify.ErrConfig) || err.Error() != tt.want {
				t.Errorf("New: %v, %v; want %q", ib, err, tt.want)
			}
		})
	}
}

// The expiry goroutine runs on its own and stops with Close.
func TestExpireRunsEveryInterval(t *testing.T) {
	_, ib, _ := newInbox(t, notify.Config{}, inbox.Config{MaxAge: time.Minute, ExpireInterval: 10 * time.Millisecond})
	ctx := context.Background()
	if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{Type: "t", CreatedAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := ib.Counts(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if c.Total == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired notification is still there after 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := ib.Close(); err != nil {
		t.Fatal(err)
	}
	ib.Close() // twice is fine
}

// A store that does not answer: the request is answered 503 once RequestTimeout has passed,
// and the failure is logged.
func TestHTTPRequestTimeout(t *testing.T) {
	var log strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &log, mu: &mu}, nil))
	hub, _, srv := newInbox(t, notify.Config{}, inbox.Config{Store: hangingStore{inbox.NewMemoryStore()}, RequestTimeout: 50 * time.Millisecond, Logger: logger})
	req, _ := http.NewRequest("GET", srv.URL+"/inbox/counts", nil)
	req.Header.Set("Authorization", "Bearer "+mustToken(t, hub, "alice"))
	start := time.Now()
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 503 || !strings.HasPrefix(string(b), `{"error":"unavailable"`) || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("%d %s", resp.StatusCode, b)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(log.String(), "notify: inbox request failed") || !strings.Contains(log.String(), "context deadline exceeded") {
		t.Errorf("log: %s", log.String())
	}
}

// hangingStore's Counts waits until its context ends.
type hangingStore struct{ inbox.Store }

func (hangingStore) Counts(ctx context.Context, _ string) (inbox.Counts, error) {
	<-ctx.Done()
	return inbox.Counts{}, ctx.Err()
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestHTTPRateLimited: past RequestBurst at once, a user's requests (any endpoint) get 429 rate_limited with Retry-After, and another user's are not affected.
func TestHTTPRateLimited(t *testing.T) {
	// One token per 1000 s: nothing refills during the test.
	hub, _, srv := newInbox(t, notify.Config{}, inbox.Config{RequestRate: 0.001, RequestBurst: 3})
	get := func(user, path string) (int, string, string) {
		t.Helper()
		tok, err := hub.IssueToken(user, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest("GET", srv.URL+"/inbox/"+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get("Retry-After")
	}
	for i, path := range []string{"", "counts", "counts"} {
		if code, body, _ := get("alice", path); code == 429 {
			t.Fatalf("request %d within the burst: 429 %s", i+1, body)
		}
	}
	code, body, retry := get("alice", "counts")
	if code != 429 || body != `{"error":"rate_limited","reason":"too many requests"}` || retry != "1000" {
		t.Fatalf("past the burst: %d %s Retry-After %q, want 429 rate_limited, Retry-After 1000", code, body, retry)
	}
	if code, body, _ := get("bob", "counts"); code != 200 {
		t.Fatalf("another user: %d %s, want 200", code, body)
	}
}
