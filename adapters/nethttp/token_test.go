package nethttp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/inbox"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func newHub(t *testing.T) *notify.Hub {
	t.Helper()
	h, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Shutdown(context.Background()) })
	return h
}

func do(t *testing.T, method, url, token, body string) (status int, cacheControl, respBody string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Cache-Control"), string(b)
}

func TestTokenHandler(t *testing.T) {
	h := newHub(t)
	tests := []struct {
		name   string
		id     string
		grants []string
		err    error
		ttl    time.Duration
		status int
		body   string // the exact body of a refusal
		life   time.Duration
	}{
		{"logged in, with grants", "alice", []string{"news"}, nil, 2 * time.Minute, 200, "", 2 * time.Minute},
		{"ttl 0 is the default", "bob", nil, nil, 0, 200, "", nethttp.DefaultTokenTTL},
		{"no user", "", nil, nil, time.Minute, 401, `{"error":"unauthorized","reason":"not logged in"}`, 0},
		{"the app fails", "", nil, errors.New("session store down"), time.Minute, 500, `{"error":"internal"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle("GET /api/notify-token", nethttp.TokenHandler(h, func(*http.Request) (string, []string, error) {
				return tt.id, tt.grants, tt.err
			}, tt.ttl))
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			before := time.Now().Truncate(time.Second)
			status, cache, body := do(t, "GET", srv.URL+"/api/notify-token", "", "")
			if status != tt.status || cache != "no-store" {
				t.Fatalf("%d %q %s; want %d no-store", status, cache, body, tt.status)
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
			if user, grants := claimsOf(t, got.Token); user != tt.id || strings.Join(grants, ",") != strings.Join(tt.grants, ",") {
				t.Fatalf("token for %s granting %v; want %s granting %v", user, grants, tt.id, tt.grants)
			}
			if life := got.Expires.Sub(before); life < tt.life || life > tt.life+2*time.Second {
				t.Errorf("expires %v after the request, want %v", life, tt.life)
			}
		})
	}
}

func TestMountInbox(t *testing.T) {
	h := newHub(t)
	tok, _ := h.IssueToken("alice", time.Minute)
	for _, prefix := range []string{"/notify", "notify/", ""} {
		t.Run(prefix, func(t *testing.T) {
			ib, err := inbox.New(h, inbox.Config{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ib.Close() })
			if _, _, err := ib.Notify(context.Background(), "alice", inbox.Notification{ID: "n1", Type: "t"}); err != nil {
				t.Fatal(err)
			}
			mux := http.NewServeMux()
			nethttp.Mount(mux, prefix, h)
			nethttp.MountInbox(mux, prefix, ib)
			srv := httptest.NewServer(mux)
			t.Cleanup(srv.Close)
			base := srv.URL + "/" + strings.Trim(prefix, "/")
			base = strings.TrimSuffix(base, "/")
			for _, tt := range []struct {
				method, path, body string
				status             int
				want               string
			}{
				{"GET", "/inbox/counts", "", 200, `{"unread":1,"unseen":1,"total":1}`},
				{"POST", "/inbox/seen", `{"ids":["n1"]}`, 200, `{"counts":{"unread":1,"unseen":0,"total":1}}`},
				{"GET", "/inbox/read", "", 405, `{"error":"method_not_allowed","reason":"use POST"}`},
			} {
				status, _, body := do(t, tt.method, base+tt.path, tok, tt.body)
				if status != tt.status || strings.TrimSpace(body) != tt.want {
					t.Errorf("%s %s: %d %s; want %d %s", tt.method, tt.path, status, body, tt.status, tt.want)
				}
			}
		})
	}
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
