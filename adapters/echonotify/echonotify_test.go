package echonotify_test

import (
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("0123456789abcdef0123456789abcdef")

func newHub(t *testing.T) *notify.Hub {
	t.Helper()
	h, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
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

// app is a real Echo application with the middleware a production app has.
func app(t *testing.T, h *notify.Hub, mount func(e *echo.Echo)) string {
	t.Helper()
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Logger.SetOutput(io.Discard)
	e.Use(middleware.LoggerWithConfig(middleware.LoggerConfig{Output: io.Discard}))
	e.Use(middleware.Recover())
	e.Use(middleware.Gzip())
	e.GET("/hello", func(c echo.Context) error { return c.String(200, strings.Repeat("hello ", 100)) })
	mount(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv.URL
}

func dial(t *testing.T, base string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	hdr = hdr.Clone()
	hdr.Set("Accept-Encoding", "gzip") // the Gzip middleware is active for this request
	ws, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/notify/ws", hdr)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

func readJSON(t *testing.T, ws *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := ws.ReadJSON(&m); err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

func TestEchoGroupBehindMiddleware(t *testing.T) {
	h := newHub(t)
	base := app(t, h, func(e *echo.Echo) { echonotify.Mount(e.Group("/notify"), h, nil) })
	tok, _ := h.IssueToken("alice", time.Minute)

	ws, resp, err := dial(t, base, http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	if m := readJSON(t, ws); m["op"] != "welcome" || m["user"] != "alice" {
		t.Fatalf("got %v", m)
	}
	if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "hi", Data: 1}); err != nil {
		t.Fatal(err)
	}
	if m := readJSON(t, ws); m["type"] != "hi" {
		t.Fatalf("got %v", m)
	}

	// Refusals go through Echo's middleware as plain HTTP answers.
	_, resp, err = dial(t, base, http.Header{})
	if err == nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v %v", resp, err)
	}
	var rd io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" { // Echo's Gzip middleware at work
		if rd, err = gzip.NewReader(resp.Body); err != nil {
			t.Fatal(err)
		}
	}
	body, _ := io.ReadAll(rd)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != "notify: unauthorized: no token" {
		t.Fatalf("body %q", body)
	}

	// The client script is served, and the app's own gzip'd routes still work.
	for _, path := range []string{"/notify/client.js", "/notify/sw.js", "/hello"} {
		r, err := http.Get(base + path)
		if err != nil || r.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, r, err)
		}
		r.Body.Close()
	}
}

func TestEchoJWTMiddlewareIdentity(t *testing.T) {
	h := newHub(t)
	// The app's own JWT middleware verifies the request (with a key notify does not know);
	// the adapter takes the user from the token it left in the context.
	appKey := []byte("the app's own key, not notify's...")
	base := app(t, h, func(e *echo.Echo) {
		g := e.Group("/notify", echojwt.WithConfig(echojwt.Config{
			SigningKey:    appKey,
			NewClaimsFunc: func(echo.Context) jwt.Claims { return jwt.MapClaims{} },
		}))
		echonotify.Mount(g, h, &echonotify.Config{TokenContextKey: "user"})
	})
	sign := func(claims jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(appKey)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := time.Now().Add(time.Minute).Unix()
	tests := []struct {
		name   string
		token  string
		status int
		user   string
	}{
		{"app token", sign(jwt.MapClaims{"sub": "bob", "exp": exp}), 101, "bob"},
		{"app token without sub", sign(jwt.MapClaims{"exp": exp}), 401, ""},
		{"no token: echo-jwt refuses", "", 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.token != "" {
				hdr.Set("Authorization", "Bearer "+tt.token)
			}
			ws, resp, err := dial(t, base, hdr)
			if resp == nil {
				t.Fatalf("dial: %v", err)
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ws != nil {
				if m := readJSON(t, ws); m["user"] != tt.user {
					t.Fatalf("welcome %v, want user %s", m, tt.user)
				}
			}
		})
	}
}

func TestSkipper(t *testing.T) {
	h := newHub(t)
	base := app(t, h, func(e *echo.Echo) {
		echonotify.Mount(e.Group("/notify"), h, &echonotify.Config{Skipper: func(echo.Context) bool { return true }})
	})
	tok, _ := h.IssueToken("alice", time.Minute)
	if _, resp, err := dial(t, base, http.Header{"Authorization": {"Bearer " + tok}}); err == nil || resp.StatusCode != 404 {
		t.Fatalf("skipped handler: %v %v", resp, err)
	}
}
