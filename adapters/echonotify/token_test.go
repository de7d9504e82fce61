package echonotify_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
	"github.com/gonotify/notify/inbox"
)

// get does a request and returns its status, Cache-Control and body.
func get(t *testing.T, method, url, token, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Cache-Control"), string(b)
}

func TestTokenHandler(t *testing.T) {
	h := newHub(t)
	type user struct {
		id     string
		grants []string
		err    error
	}
	tests := []struct {
		name   string
		user   user
		ttl    time.Duration
		status int
		body   string        // the exact body of a refusal
		life   time.Duration // the token's lifetime, on success
	}{
		{"logged in, with grants", user{"alice", []string{"news", "orders.*"}, nil}, 2 * time.Minute, 200, "", 2 * time.Minute},
		{"logged in, no grants", user{"bob", nil, nil}, time.Hour, 200, "", time.Hour},
		{"ttl 0 is the default", user{"carol", nil, nil}, 0, 200, "", echonotify.DefaultTokenTTL},
		{"negative ttl is the default", user{"carol", nil, nil}, -time.Second, 200, "", echonotify.DefaultTokenTTL},
		{"no user", user{"", nil, nil}, time.Minute, 401, `{"message":"not logged in"}`, 0},
		{"the app's HTTP error", user{"", nil, echo.NewHTTPError(http.StatusForbidden, "banned")}, time.Minute, 403, `{"message":"banned"}`, 0},
		{"the app's other error", user{"dave", nil, errors.New("session store down")}, time.Minute, 500, `{"message":"Internal Server Error"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := app(t, h, func(e *echo.Echo) {
				echonotify.Mount(e.Group("/notify"), h, nil)
				e.GET("/api/notify-token", echonotify.TokenHandler(h, func(echo.Context) (string, []string, error) {
					return tt.user.id, tt.user.grants, tt.user.err
				}, tt.ttl))
			})
			before := time.Now().Truncate(time.Second)
			status, cache, body := get(t, "GET", base+"/api/notify-token", "", "")
			if status != tt.status || cache != "no-store" {
				t.Fatalf("status %d, Cache-Control %q (%s); want %d, no-store", status, cache, body, tt.status)
			}
			if tt.status != 200 {
				if strings.TrimSpace(body) != tt.body {
					t.Errorf("body %s, want %s", body, tt.body)
				}
				return
			}
			var got struct {
				Token   string    `json:"token"`
				Expires time.Time `json:"expires"`
			}
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if user, grants := claimsOf(t, got.Token); user != tt.user.id || strings.Join(grants, ",") != strings.Join(tt.user.grants, ",") {
				t.Fatalf("token for %s granting %v; want %s granting %v", user, grants, tt.user.id, tt.user.grants)
			}
			if life := got.Expires.Sub(before); got.Expires.Location() != time.UTC || life < tt.life || life > tt.life+2*time.Second {
				t.Errorf("expires %v: %v after the request, want %v", got.Expires, life, tt.life)
			}
			// The token opens a session of the user.
			ws, resp, err := dial(t, base, http.Header{"Authorization": {"Bearer " + got.Token}})
			if err != nil {
				t.Fatalf("dial: %v %v", err, resp)
			}
			if m := readJSON(t, ws); m["op"] != "welcome" || m["user"] != tt.user.id {
				t.Fatalf("welcome %v", m)
			}
		})
	}
}

// A hub that only verifies (a public key, no signing key) cannot issue tokens: 500.
func TestTokenHandlerHubCannotSign(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := notify.New(notify.Config{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	base := app(t, h, func(e *echo.Echo) {
		e.GET("/token", echonotify.TokenHandler(h, func(echo.Context) (string, []string, error) { return "alice", nil, nil }, time.Minute))
	})
	if status, cache, body := get(t, "GET", base+"/token", "", ""); status != 500 || cache != "no-store" || strings.TrimSpace(body) != `{"message":"Internal Server Error"}` {
		t.Errorf("got %d %q %s, want 500 no-store", status, cache, body)
	}
}

// The inbox's endpoints on the group of Mount, inside a real Echo app with its middleware,
// where the browser client looks for them.
func TestMountInbox(t *testing.T) {
	h := newHub(t)
	ib, err := inbox.New(h, inbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ib.Close() })
	base := app(t, h, func(e *echo.Echo) {
		g := e.Group("/notify")
		echonotify.Mount(g, h, nil)
		echonotify.MountInbox(g, ib)
	})
	ctx := context.Background()
	for _, id := range []string{"n1", "n2", "n3"} {
		if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{ID: id, Type: "order.shipped", Data: map[string]int{"order": 42}}); err != nil {
			t.Fatal(err)
		}
	}
	tok, _ := h.IssueToken("alice", time.Minute)
	var next string
	{
		status, _, body := get(t, "GET", base+"/notify/inbox/?limit=2", tok, "")
		var p inbox.Page
		if err := json.Unmarshal([]byte(body), &p); status != 200 || err != nil || len(p.Items) != 2 || p.Next == "" {
			t.Fatalf("list: %d %s (%v)", status, body, err)
		}
		next = p.Next
	}
	tests := []struct {
		name, method, path, token, body string
		status                          int
		want                            string // the body, or a part of it on success
	}{
		{"next page", "GET", "/notify/inbox/?cursor=" + next, tok, "", 200, `"id":"n1","type":"order.shipped","data":{"order":42}`},
		{"counts", "GET", "/notify/inbox/counts", tok, "", 200, `{"unread":3,"unseen":3,"total":3}`},
		{"read", "POST", "/notify/inbox/read", tok, `{"ids":["n1"]}`, 200, `{"counts":{"unread":2,"unseen":3,"total":3}}`},
		{"read-all", "POST", "/notify/inbox/read-all", tok, "", 200, `{"counts":{"unread":0,"unseen":3,"total":3}}`},
		{"another user's ID", "POST", "/notify/inbox/read", mustToken(t, h, "bob"), `{"ids":["n1"]}`, 404, `{"error":"not_found","reason":"no such notification"}`},
		{"forged cursor", "GET", "/notify/inbox/?cursor=MTIzLmE", tok, "", 400, `{"error":"bad_request","reason":"malformed cursor"}`},
		{"no token", "GET", "/notify/inbox/counts", "", "", 401, `{"error":"unauthorized","reason":"no token"}`},
		{"wrong method", "GET", "/notify/inbox/read", tok, "", 405, `{"error":"method_not_allowed","reason":"use POST"}`},
		{"unknown endpoint", "POST", "/notify/inbox/nope", tok, "", 404, `{"error":"not_found","reason":"no such endpoint"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, cache, body := get(t, tt.method, base+tt.path, tt.token, tt.body)
			ok := strings.TrimSpace(body) == tt.want || status == 200 && strings.Contains(body, tt.want)
			if status != tt.status || cache != "no-store" || !ok {
				t.Errorf("%s %s: %d %q %s; want %d no-store %s", tt.method, tt.path, status, cache, body, tt.status, tt.want)
			}
		})
	}
}

func mustToken(t *testing.T, h *notify.Hub, user string) string {
	t.Helper()
	tok, err := h.IssueToken(user, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// claimsOf verifies a token with the hub's secret and returns its user and grants (the
// "sub" and "topics" claims).
func claimsOf(t *testing.T, tok string) (string, []string) {
	t.Helper()
	var claims struct {
		jwt.RegisteredClaims
		Topics []string `json:"topics"`
	}
	_, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired()).
		ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return secret, nil })
	if err != nil {
		t.Fatalf("token %s: %v", tok, err)
	}
	return claims.Subject, claims.Topics
}
