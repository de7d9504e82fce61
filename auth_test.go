package notify_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
)

// sign makes a token with the given method, key and claims; exp defaults to a minute ahead.
func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	if _, ok := claims["exp"]; !ok {
		claims["exp"] = time.Now().Add(time.Minute).Unix()
	}
	for k, v := range claims {
		if v == nil {
			delete(claims, k)
		}
	}
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

// upgrade attempts a WebSocket upgrade with hdr and returns the status and body of a refusal.
func upgrade(t testing.TB, srv string, hdr http.Header) (int, string) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(srv, hdr)
	if err == nil {
		ws.Close()
		return http.StatusSwitchingProtocols, ""
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestBadTokensGet401(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	rsaPublicPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})

	hmacHub := newHub(t, func(c *notify.Config) { c.Issuer, c.Audience = "https://app.test", "notify" })
	rsaHub := newHub(t, func(c *notify.Config) { c.PublicKey = &rsaKey.PublicKey; c.Secret = nil })
	hmacURL, rsaURL := wsURL(serve(t, hmacHub)), wsURL(serve(t, rsaHub))

	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "alice", "iss": "https://app.test", "aud": "notify"}
	}
	with := func(k string, v any) jwt.MapClaims { c := good(); c[k] = v; return c }
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Minute).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		url    string
		token  string
		status int
		body   string
	}{
		{"no token", hmacURL, "", 401, "notify: unauthorized: no token"},
		{"malformed", hmacURL, "not.a-jwt", 401, "notify: unauthorized: malformed token"},
		{"alg none", hmacURL, none, 401, "notify: unauthorized: token signing method not allowed"},
		{"alg confusion: HS256 keyed with the RSA public key", rsaURL,
			sign(t, jwt.SigningMethodHS256, rsaPublicPEM, jwt.MapClaims{"sub": "alice"}), 401,
			"notify: unauthorized: token signing method not allowed"},
		{"wrong signature", hmacURL, sign(t, jwt.SigningMethodHS256, []byte("another secret, 32 bytes long..."), good()), 401,
			"notify: unauthorized: invalid token signature"},
		{"expired", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("exp", time.Now().Add(-time.Minute).Unix())), 401,
			"notify: unauthorized: token expired"},
		{"no exp", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("exp", nil)), 401,
			"notify: unauthorized: token lacks a required claim"},
		{"nbf in the future", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("nbf", time.Now().Add(time.Minute).Unix())), 401,
			"notify: unauthorized: token not valid yet"},
		{"wrong issuer", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("iss", "https://evil.test")), 401,
			"notify: unauthorized: wrong token issuer"},
		{"wrong audience", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("aud", "billing")), 401,
			"notify: unauthorized: wrong token audience"},
		{"missing sub", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("sub", nil)), 401,
			"notify: unauthorized: token has no sub claim"},
		{"over the size limit", hmacURL, sign(t, jwt.SigningMethodHS256, secret, with("pad", strings.Repeat("x", 4096))), 401,
			"notify: unauthorized: token too large"},
		{"valid HS256 (control)", hmacURL, sign(t, jwt.SigningMethodHS256, secret, good()), 101, ""},
		{"valid RS256 (control)", rsaURL, sign(t, jwt.SigningMethodRS256, rsaKey, jwt.MapClaims{"sub": "alice"}), 101, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.token != "" {
				hdr.Set("Authorization", "Bearer "+tt.token)
			}
			status, body := upgrade(t, tt.url, hdr)
			if status != tt.status || strings.TrimSpace(body) != tt.body {
				t.Fatalf("got %d %q, want %d %q", status, body, tt.status, tt.body)
			}
			if tt.token != "" && strings.Contains(body, tt.token) {
				t.Fatal("the refusal contains the token")
			}
		})
	}
}

func TestOtherKeyTypes(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name   string
		cfg    notify.Config
		method jwt.SigningMethod
		key    any
	}{
		{"ECDSA", notify.Config{PublicKey: &ecKey.PublicKey}, jwt.SigningMethodES256, ecKey},
		{"Ed25519", notify.Config{PublicKey: edPub}, jwt.SigningMethodEdDSA, edKey},
		{"Keyfunc with key rotation by kid", notify.Config{Methods: []string{"HS256"}, Keyfunc: func(tok *jwt.Token) (any, error) {
			if tok.Header["kid"] == "2026-11" {
				return secret, nil
			}
			return nil, errors.New("unknown kid")
		}}, jwt.SigningMethodHS256, secret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := notify.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Shutdown(context.Background()) })
			tok := jwt.NewWithClaims(tt.method, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Minute).Unix()})
			tok.Header["kid"] = "2026-11"
			s, err := tok.SignedString(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := verify(h, s); err != nil || id.UserID != "alice" {
				t.Fatalf("Verify: %v, %v", id, err)
			}
			// The same token on a hub of another family is refused as a disallowed method.
			other := newHub(t, nil)
			if _, err := verify(other, s); err == nil || err.Error() != "notify: unauthorized: token signing method not allowed" {
				if tt.method != jwt.SigningMethodHS256 {
					t.Fatalf("other family: %v", err)
				}
			}
		})
	}
}

func TestTokenTransports(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		adjust   func(*notify.Config)
		hdr      func(tok string) http.Header
		query    bool
		status   int
		protocol string // the Sec-WebSocket-Protocol the server answers
	}{
		{"Authorization header", nil, func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }, false, 101, ""},
		{"subprotocol", nil, func(tok string) http.Header {
			return http.Header{"Sec-Websocket-Protocol": {notify.Subprotocol + ", " + notify.BearerPrefix + tok}}
		}, false, 101, notify.Subprotocol},
		{"cookie when configured", func(c *notify.Config) { c.CookieName = "notify_token" },
			func(tok string) http.Header { return http.Header{"Cookie": {"notify_token=" + tok}} }, false, 101, ""},
		{"cookie when not configured", nil,
			func(tok string) http.Header { return http.Header{"Cookie": {"notify_token=" + tok}} }, false, 401, ""},
		{"query when enabled", func(c *notify.Config) { c.AllowQueryToken = true }, func(string) http.Header { return nil }, true, 101, ""},
		{"query by default", nil, func(string) http.Header { return nil }, true, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, tt.adjust)
			srv := serve(t, h)
			tok := token(t, h, "alice")
			u := wsURL(srv)
			if tt.query {
				u += "?token=" + url.QueryEscape(tok)
			}
			ws, resp, err := websocket.DefaultDialer.Dial(u, tt.hdr(tok))
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tt.status, err)
			}
			if got := resp.Header.Get("Sec-Websocket-Protocol"); got != tt.protocol {
				t.Fatalf("Sec-WebSocket-Protocol %q, want %q", got, tt.protocol)
			}
			if ws != nil {
				defer ws.Close()
				var w map[string]any
				ws.SetReadDeadline(time.Now().Add(5 * time.Second))
				if err := ws.ReadJSON(&w); err != nil || w["op"] != "welcome" || w["user"] != "alice" {
					t.Fatalf("welcome: %v %v", w, err)
				}
			}
		})
	}
}

func TestOrigin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		allowed []string
		origin  string // "self" is the server's own origin
		status  int
	}{
		{"same origin", nil, "self", 101},
		{"no Origin header (not a browser)", nil, "", 101},
		{"cross origin", nil, "https://evil.test", 403},
		{"cross origin, other port", nil, "http://127.0.0.1:1", 403},
		{"allowlisted", []string{"https://app.test"}, "https://app.test", 101},
		{"allowlist, other origin", []string{"https://app.test"}, "https://evil.test", 403},
		{"allowlist, scheme differs", []string{"https://app.test"}, "http://app.test", 403},
		{"wildcard", []string{"*"}, "https://anything.test", 101},
		{"garbage Origin", nil, "::", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(t, func(c *notify.Config) { c.AllowedOrigins = tt.allowed })
			srv := serve(t, h)
			hdr := http.Header{"Authorization": {"Bearer " + token(t, h, "alice")}}
			switch tt.origin {
			case "self":
				hdr.Set("Origin", srv.URL)
			case "":
			default:
				hdr.Set("Origin", tt.origin)
			}
			status, body := upgrade(t, wsURL(srv), hdr)
			if status != tt.status {
				t.Fatalf("status %d %q, want %d", status, body, tt.status)
			}
			if status == 403 && strings.TrimSpace(body) != "notify: origin not allowed" {
				t.Fatalf("body %q", body)
			}
			if status == 403 && h.Stats().Sessions != 0 {
				t.Fatal("a refused upgrade made a session")
			}
		})
	}
}

// TestRefreshAndExpiry, over both transports: ExpiryWarning before its token expires a session
// is told to refresh ("expiring"; an event stream's refresh is a POST); at the expiry the sessions without a valid refresh are closed with 4000, and a
// refreshed one lives on, warned again before its new token expires. It runs on a synctest
// bubble's clock: every frame comes at its exact time, and the tokens' whole-second exp is
// exact too (the bubble's clock starts at midnight).
func TestRefreshAndExpiry(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const life, warning = 2 * time.Minute, 45 * time.Second
				h := newHub(t, func(c *notify.Config) { c.ExpiryWarning = warning })
				srv := servePipe(t, h)
				start := time.Now()
				issue := func(user string, ttl time.Duration) string {
					t.Helper()
					tok, err := h.IssueToken(user, ttl)
					if err != nil {
						t.Fatal(err)
					}
					return tok
				}
				refresher := dialVia(t, tc.dial, srv, tc.url, issue("alice", life))
				expirer := dialVia(t, tc.dial, srv, tc.url, issue("alice", life))
				impostor := dialVia(t, tc.dial, srv, tc.url, issue("mallory", life))
				at := func(what string, want time.Duration) {
					t.Helper()
					if got := time.Since(start); got != want {
						t.Fatalf("%s after %v, want %v", what, got, want)
					}
				}

				exp := float64(start.Add(life).Unix())
				for _, c := range []*client{refresher, expirer, impostor} {
					if m := c.NextNonPing(); m["op"] != "expiring" || m["exp"] != exp {
						t.Fatalf("got %v, want expiring with exp %v", m, exp)
					}
					at("expiring", life-warning)
				}
				refreshedAt := time.Now()
				refresher.Send(map[string]string{"op": "refresh", "token": issue("alice", time.Hour)})
				newExp := float64(refreshedAt.Add(time.Hour).Unix())
				if m := refresher.NextNonPing(); m["op"] != "refreshed" || m["exp"] != newExp {
					t.Fatalf("got %v, want refreshed with exp %v", m, newExp)
				}
				impostor.Send(map[string]string{"op": "refresh", "token": issue("alice", time.Hour)})
				if got := fmt.Sprint(impostor.NextNonPing()); got != "map[code:invalid_token op:error reason:unauthorized: token is for another user]" {
					t.Fatalf("impostor got %s", got)
				}

				// At expiry the sessions without a valid refresh close with 4000; the refreshed one lives.
				for _, c := range []*client{expirer, impostor} {
					if code := notify.CloseCode(c.CloseCode()); code != notify.CloseTokenExpired {
						t.Fatalf("close code %d, want %d", code, notify.CloseTokenExpired)
					}
					at("close", life)
				}
				h.Send(context.Background(), "alice", notify.Event{Type: "after-expiry"})
				if m := refresher.NextNonPing(); m["type"] != "after-expiry" {
					t.Fatalf("refreshed session got %v", m)
				}
				// The refresh re-armed the warning for the new token.
				if m := refresher.NextNonPing(); m["op"] != "expiring" || m["exp"] != newExp {
					t.Fatalf("got %v, want expiring with exp %v", m, newExp)
				}
				at("the new token's expiring", refreshedAt.Sub(start)+time.Hour-warning)
			})
		})
	}
}

// TestExpiryWarningOfShortToken: a token whose life is shorter than ExpiryWarning is warned
// about halfway through its life, not at once (a client refreshing such tokens would
// otherwise refresh in a loop), and its session is closed at the expiry. Over both transports.
func TestExpiryWarningOfShortToken(t *testing.T) {
	t.Parallel()
	for _, tc := range pipeTransports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				const life, warning = 40 * time.Second, time.Minute
				h := newHub(t, func(c *notify.Config) { c.ExpiryWarning = warning })
				srv := servePipe(t, h)
				start := time.Now()
				tok, err := h.IssueToken("alice", life)
				if err != nil {
					t.Fatal(err)
				}
				c := dialVia(t, tc.dial, srv, tc.url, tok)
				if m := c.NextNonPing(); m["op"] != "expiring" {
					t.Fatalf("got %v, want expiring", m)
				}
				if got := time.Since(start); got != life/2 {
					t.Fatalf("expiring after %v, want %v", got, life/2)
				}
				if code := notify.CloseCode(c.CloseCode()); code != notify.CloseTokenExpired {
					t.Fatalf("close code %d, want %d", code, notify.CloseTokenExpired)
				}
				if got := time.Since(start); got != life {
					t.Fatalf("closed after %v, want %v", got, life)
				}
			})
		})
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 1024)
	keyfunc := func(*jwt.Token) (any, error) { return secret, nil }
	tests := []struct {
		name string
		cfg  notify.Config
		want string
	}{
		{"no key", notify.Config{}, "notify: invalid config: no key to verify tokens: set Secret to 32 or more random bytes (openssl rand -hex 32), PublicKey to verify the tokens of your identity provider, or Keyfunc for rotating keys (JWKS)"},
		{"two keys", notify.Config{Secret: secret, PublicKey: &rsaKey.PublicKey}, "notify: invalid config: set only one of Secret, PublicKey and Keyfunc"},
		{"any origin with a cookie", notify.Config{Secret: secret, CookieName: "tok", AllowedOrigins: []string{"*"}}, `notify: invalid config: AllowedOrigins "*" with CookieName would let any site act as the user with its cookie: list the origins, or send the token in a header`},
		{"Keyfunc without Methods", notify.Config{Keyfunc: keyfunc}, "notify: invalid config: Methods is required with Keyfunc"},
		{"method none", notify.Config{Keyfunc: keyfunc, Methods: []string{"none"}}, `notify: invalid config: signing method "none" not supported`},
		{"unknown method", notify.Config{Secret: secret, Methods: []string{"HS1024"}}, `notify: invalid config: signing method "HS1024" not supported`},
		{"private key as PublicKey", notify.Config{PublicKey: rsaKey}, "notify: invalid config: PublicKey of type *rsa.PrivateKey not supported"},
		{"bad origin", notify.Config{Secret: secret, AllowedOrigins: []string{"app.test"}}, `notify: invalid config: AllowedOrigins entry "app.test" is not scheme://host[:port]`},
		{"origin with a path", notify.Config{Secret: secret, AllowedOrigins: []string{"https://app.test/x"}}, `notify: invalid config: AllowedOrigins entry "https://app.test/x" is not scheme://host[:port]`},
		{"negative MaxTopics", notify.Config{Secret: secret, MaxTopics: -1}, "notify: invalid config: MaxTopics is negative"},
		{"negative PingInterval", notify.Config{Secret: secret, PingInterval: -time.Second}, "notify: invalid config: PingInterval is negative"},
		{"short secret", notify.Config{Secret: []byte("0123456789abcdef0123456789abcde")}, "notify: invalid config: Secret is 31 bytes, want at least 32 random bytes (e.g. openssl rand -hex 32)"},
		{"negative MessageRate", notify.Config{Secret: secret, MessageRate: -1}, "notify: invalid config: MessageRate is negative"},
		{"negative MaxUserSessions", notify.Config{Secret: secret, MaxUserSessions: -1}, "notify: invalid config: MaxUserSessions is negative"},
		{"negative MaxSessions", notify.Config{Secret: secret, MaxSessions: -1}, "notify: invalid config: MaxSessions is negative"},
		{"negative MessageBurst", notify.Config{Secret: secret, MessageBurst: -1}, "notify: invalid config: MessageBurst is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := notify.New(tt.cfg)
			if h != nil || err == nil || err.Error() != tt.want || !errors.Is(err, notify.ErrConfig) {
				t.Fatalf("got %v, %v; want %q wrapping ErrConfig", h, err, tt.want)
			}
		})
	}
}

func TestTokensNeverLogged(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	h := newHub(t, func(c *notify.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	srv := serve(t, h)
	expired := sign(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Hour).Unix()})
	forged := sign(t, jwt.SigningMethodHS256, []byte("not the secret"), jwt.MapClaims{"sub": "alice"})
	for _, tok := range []string{expired, forged} {
		if status, _ := upgrade(t, wsURL(srv), http.Header{"Authorization": {"Bearer " + tok}}); status != 401 {
			t.Fatalf("status %d", status)
		}
	}
	c := dial(t, srv, token(t, h, "alice"))
	c.Send(map[string]string{"op": "refresh", "token": forged})
	c.NextNonPing()
	h.Shutdown(context.Background())
	if !strings.Contains(logs.String(), "upgrade refused") {
		t.Fatalf("nothing logged: %q", logs.String())
	}
	for _, tok := range []string{expired, forged} {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs.String(), sig) {
			t.Fatalf("a token appears in the logs:\n%s", logs.String())
		}
	}
}

func TestIdentityFromClaims(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	tests := []struct {
		name   string
		claims jwt.Claims
		want   string
	}{
		{"map claims", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "topics": []any{"news", "orders.>"}}, "alice [news orders.>]"},
		{"no sub", jwt.MapClaims{"exp": exp.Unix()}, "notify: unauthorized: token has no sub claim"},
		{"malformed topics", jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "topics": 7}, "notify: unauthorized: token has a malformed topics claim"},
		{"registered claims", &jwt.RegisteredClaims{Subject: "alice"}, "notify: unauthorized: claims of type *jwt.RegisteredClaims not supported (use jwt.MapClaims)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := h.IdentityFromClaims(tt.claims)
			got := fmt.Sprint(id.UserID, " ", id.Grants)
			if err != nil {
				got = err.Error()
			} else if !id.Expires.Equal(exp) {
				t.Fatalf("Expires %v, want %v", id.Expires, exp)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
