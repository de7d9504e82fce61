package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"

	"github.com/gonotify/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var testSecret = []byte("example-test-secret-0123456789abcdef")

// testLogger sends logs to t.Log until the test ends; later lines (a server goroutine still
// finishing) are dropped instead of panicking.
func testLogger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &tbWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, nil))
}

type tbWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tbWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// newTestApp builds the app with demo mode on and the test secret, unless opts says otherwise,
// and shuts its hub down when the test ends.
func newTestApp(t testing.TB, opts options) (*echo.Echo, *notify.Hub) {
	t.Helper()
	if opts.Secret == nil {
		opts.Secret = testSecret
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	e, hub, closeInbox, err := newApp(opts)
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	t.Cleanup(func() { shutdownHub(t, hub); closeInbox() })
	return e, hub
}

func shutdownHub(t testing.TB, hub *notify.Hub) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hub.Shutdown(ctx); err != nil {
		t.Errorf("hub.Shutdown: %v", err)
	}
}

// serve runs the app on an httptest server.
func serve(t testing.TB, opts options) (*httptest.Server, *notify.Hub) {
	t.Helper()
	e, hub := newTestApp(t, opts)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, hub
}

// do sends a request and returns the status and body.
func do(t testing.TB, c *http.Client, method, url, contentType, body string) (int, string) {
	t.Helper()
	return doAs(t, c, "", method, url, contentType, body)
}

// doAs is do with the page's user named in the X-User header (none when user is "").
func doAs(t testing.TB, c *http.Client, user, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" {
		req.Header.Set(userHeader, user)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func newClient(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Jar: jar, Transport: &http.Transport{}}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// login logs c in as user and returns the session cookie.
func login(t testing.TB, c *http.Client, base, user string) *http.Cookie {
	t.Helper()
	status, body := do(t, c, "POST", base+"/api/login", "application/json", `{"name":"`+user+`"}`)
	if status != http.StatusOK || body != `{"user":"`+user+`"}`+"\n" {
		t.Fatalf("login: %d %q", status, body)
	}
	u, _ := url.Parse(base)
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == cookieName(user) {
			return ck
		}
	}
	t.Fatal("login set no session cookie")
	return nil
}

func TestLogin(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{Demo: true})
	tests := []struct {
		name        string
		contentType string
		body        string
		wantStatus  int
		wantBody    string
	}{
		{"json", "application/json", `{"name":"alice"}`, 200, `{"user":"alice"}` + "\n"},
		{"form", "application/x-www-form-urlencoded", `name=bob_2`, 200, `{"user":"bob_2"}` + "\n"},
		{"empty name", "application/json", `{"name":""}`, 400, `{"message":"` + nameRule + `"}` + "\n"},
		{"bad characters", "application/json", `{"name":"a.b"}`, 400, `{"message":"` + nameRule + `"}` + "\n"},
		{"too long", "application/json", `{"name":"` + strings.Repeat("a", 33) + `"}`, 400, `{"message":"` + nameRule + `"}` + "\n"},
		{"bad json", "application/json", `{`, 400, `{"message":"` + nameRule + `"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", srv.URL+"/api/login", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.wantStatus || string(b) != tt.wantBody {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
			var session *http.Cookie
			for _, c := range resp.Cookies() {
				if strings.HasPrefix(c.Name, sessionCookie) {
					session = c
				}
			}
			if tt.wantStatus != 200 {
				if session != nil {
					t.Fatalf("failed login set a cookie: %v", session)
				}
				return
			}
			if session == nil || session.Name != cookieName(strings.Split(session.Value, ".")[0]) || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/" {
				t.Fatalf("session cookie = %+v, want session-<name>, HttpOnly, SameSite=Lax, Path=/", session)
			}
		})
	}
}

func TestAPIRequiresLogin(t *testing.T) {
	t.Parallel()
	srv, hub := serve(t, options{TokenTTL: time.Minute})
	c := newClient(t)
	const want401 = `{"message":"log in first"}` + "\n"
	for _, path := range []string{"/api/me", "/api/token"} {
		if status, body := do(t, c, "GET", srv.URL+path, "", ""); status != 401 || body != want401 {
			t.Errorf("GET %s without login: %d %q, want 401 %q", path, status, body, want401)
		}
	}
	if status, body := do(t, c, "POST", srv.URL+"/api/send", "application/json", `{"type":"x"}`); status != 401 || body != want401 {
		t.Errorf("POST /api/send without login: %d %q", status, body)
	}

	session := login(t, c, srv.URL, "alice")
	if status, body := do(t, c, "GET", srv.URL+"/api/me", "", ""); status != 200 || body != `{"user":"alice"}`+"\n" {
		t.Errorf("GET /api/me: %d %q", status, body)
	}
	status, body := do(t, c, "GET", srv.URL+"/api/token", "", "")
	if status != 200 {
		t.Fatalf("GET /api/token: %d %q", status, body)
	}
	id := verifyToken(t, hub, body)
	if id.UserID != "alice" || time.Until(id.Expires) > time.Minute || time.Until(id.Expires) < 58*time.Second {
		t.Errorf("token identity = %+v, want alice expiring in a minute", id)
	}

	// A forged or tampered cookie does not count as a login.
	for name, ck := range map[string]http.Cookie{
		"other name, same mac":   {Name: cookieName("admin"), Value: strings.Replace(session.Value, "alice", "admin", 1)},
		"expiry pushed forward":  {Name: cookieName("alice"), Value: strings.Replace(session.Value, ".1", ".9", 1)},
		"no mac":                 {Name: cookieName("alice"), Value: "alice"},
		"garbage":                {Name: cookieName("alice"), Value: "...."},
		"alice's, named admin's": {Name: cookieName("admin"), Value: session.Value},
		"the old single cookie":  {Name: sessionCookie, Value: session.Value},
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/token", nil)
		req.AddCookie(&ck)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}

	// Logging out clears the cookie.
	if status, _ := do(t, c, "POST", srv.URL+"/api/logout", "", ""); status != 204 {
		t.Fatalf("logout: %d", status)
	}
	if status, _ := do(t, c, "GET", srv.URL+"/api/token", "", ""); status != 401 {
		t.Errorf("GET /api/token after logout: %d, want 401", status)
	}
}

// Two users logged in in one browser (one cookie jar) each have their session; each page names
// its user, and a request that does not is answered only when there is no doubt.
func TestTwoUsersOneBrowser(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{})
	c := newClient(t)
	login(t, c, srv.URL, "alice")
	if status, body := do(t, c, "GET", srv.URL+"/api/me", "", ""); status != 200 || body != `{"user":"alice"}`+"\n" {
		t.Errorf("one user, no X-User: %d %q, want alice", status, body)
	}
	login(t, c, srv.URL, "bob")
	tests := []struct {
		name, as string
		status   int
		body     string
	}{
		{"alice's page", "alice", 200, `{"user":"alice"}` + "\n"},
		{"bob's page", "bob", 200, `{"user":"bob"}` + "\n"},
		{"two users, no X-User", "", 401, `{"message":"log in first"}` + "\n"},
		{"a user not logged in", "carol", 401, `{"message":"log in first"}` + "\n"},
		{"an invalid name", "../alice", 401, `{"message":"log in first"}` + "\n"},
	}
	for _, tt := range tests {
		if status, body := doAs(t, c, tt.as, "GET", srv.URL+"/api/me", "", ""); status != tt.status || body != tt.body {
			t.Errorf("%s: %d %q, want %d %q", tt.name, status, body, tt.status, tt.body)
		}
	}
	// bob logs out in his window; alice's stays logged in, and is again the only user.
	if status, _ := doAs(t, c, "bob", "POST", srv.URL+"/api/logout", "", ""); status != 204 {
		t.Fatalf("bob's logout: %d", status)
	}
	if status, _ := doAs(t, c, "bob", "GET", srv.URL+"/api/token", "", ""); status != 401 {
		t.Errorf("bob's token after his logout: %d, want 401", status)
	}
	for _, as := range []string{"alice", ""} {
		if status, body := doAs(t, c, as, "GET", srv.URL+"/api/me", "", ""); status != 200 || body != `{"user":"alice"}`+"\n" {
			t.Errorf("X-User %q after bob's logout: %d %q, want alice", as, status, body)
		}
	}
}

// A session cookie survives a restart: a new app with the same secret accepts it.
func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv1, _ := serve(t, options{})
	srv2, _ := serve(t, options{})
	srv3, _ := serve(t, options{Secret: []byte("another-secret-0123456789abcdefghij")})
	session := login(t, newClient(t), srv1.URL, "alice")
	for _, tt := range []struct {
		srv  *httptest.Server
		want int
	}{{srv2, 200}, {srv3, 401}} {
		req, _ := http.NewRequest("GET", tt.srv.URL+"/api/me", nil)
		req.AddCookie(session)
		resp, err := tt.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /api/me: %d, want %d", resp.StatusCode, tt.want)
		}
	}
}

func verifyToken(t testing.TB, hub *notify.Hub, body string) notify.Identity {
	t.Helper()
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(body), &resp); err != nil || resp.Token == "" {
		t.Fatalf("token response %q: %v", body, err)
	}
	r := httptest.NewRequest("GET", "/notify/ws", nil)
	r.Header.Set("Authorization", "Bearer "+resp.Token)
	id, err := hub.Authenticate(r)
	if err != nil {
		t.Fatalf("hub.Authenticate: %v", err)
	}
	return id
}

func TestDemoToken(t *testing.T) {
	t.Parallel()
	srv, hub := serve(t, options{Demo: true})
	c := srv.Client()
	status, body := do(t, c, "GET", srv.URL+"/demo/token?user=bob", "", "")
	if status != 200 {
		t.Fatalf("GET /demo/token: %d %q", status, body)
	}
	if id := verifyToken(t, hub, body); id.UserID != "bob" || time.Until(id.Expires) < 9*time.Minute {
		t.Errorf("identity = %+v, want bob with the default 10 minute TTL", id)
	}
	want := `{"message":"user: ` + nameRule + `"}` + "\n"
	for _, q := range []string{"", "?user=", "?user=a%20b"} {
		if status, body := do(t, c, "GET", srv.URL+"/demo/token"+q, "", ""); status != 400 || body != want {
			t.Errorf("GET /demo/token%s: %d %q, want 400 %q", q, status, body, want)
		}
	}
}

func TestDemoOff(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{Demo: false})
	// POST gets 405 rather than 404: the static files answer GET on every path.
	for _, r := range []struct {
		method, path string
		want         int
	}{{"GET", "/demo/token?user=bob", 404}, {"POST", "/demo/send", 405}} {
		if status, _ := do(t, srv.Client(), r.method, srv.URL+r.path, "application/json", `{"type":"x"}`); status != r.want {
			t.Errorf("%s %s with Demo off: %d, want %d", r.method, r.path, status, r.want)
		}
	}
}

func TestSendBadInput(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{Demo: true})
	tests := []struct {
		name, body string
		wantStatus int
		wantBody   string
	}{
		{"not json", `type=x`, 400, `{"message":"body must be a JSON object"}`},
		{"truncated", `{"type":`, 400, `{"message":"body must be a JSON object"}`},
		{"array", `[]`, 400, `{"message":"body must be a JSON object"}`},
		{"empty", ``, 400, `{"message":"body must be a JSON object"}`},
		{"no type", `{"user":"alice","data":{}}`, 400, `{"message":"type is required"}`},
		{"user and topic", `{"user":"alice","topic":"news","type":"x"}`, 400, `{"message":"set user or topic, not both"}`},
		{"bad topic", `{"topic":"no spaces","type":"x"}`, 400, `{"message":"notify: invalid topic: character ' ' not allowed"}`},
		{"user", `{"user":"alice","type":"x","data":{"text":"hi"}}`, 202, ``},
		{"topic", `{"topic":"news","type":"x"}`, 202, ``},
		{"everyone", `{"type":"x","data":"hello"}`, 202, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := do(t, srv.Client(), "POST", srv.URL+"/demo/send", "application/json", tt.body)
			if tt.wantBody != "" {
				tt.wantBody += "\n"
			}
			if status != tt.wantStatus || body != tt.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, tt.wantStatus, tt.wantBody)
			}
		})
	}
}

// dialWS opens a WebSocket to the app as a browser would, token in the subprotocol.
func dialWS(t testing.TB, base, token string, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{notify.Subprotocol, notify.BearerPrefix + token}, HandshakeTimeout: 5 * time.Second}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/notify/ws", hdr)
	if ws != nil {
		t.Cleanup(func() { ws.Close() })
	}
	return ws, resp, err
}

// readFrame reads one JSON object (frames may batch several, one per line: the tests here
// send one event at a time and read the welcome first).
func readFrame(t testing.TB, ws *websocket.Conn) map[string]any {
	t.Helper()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(bytes.SplitN(b, []byte("\n"), 2)[0], &m); err != nil {
		t.Fatalf("frame %q: %v", b, err)
	}
	return m
}

func demoToken(t testing.TB, srv *httptest.Server, user string) string {
	t.Helper()
	status, body := do(t, srv.Client(), "GET", srv.URL+"/demo/token?user="+user, "", "")
	var resp struct{ Token string }
	if err := json.Unmarshal([]byte(body), &resp); status != 200 || err != nil {
		t.Fatalf("demo token: %d %q %v", status, body, err)
	}
	return resp.Token
}

func TestDemoSendReachesWebSocket(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{Demo: true})
	ws, _, err := dialWS(t, srv.URL, demoToken(t, srv, "alice"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if m := readFrame(t, ws); m["op"] != "welcome" || m["user"] != "alice" {
		t.Fatalf("first frame = %v, want alice's welcome", m)
	}

	post := func(body string) {
		t.Helper()
		if status, resp := do(t, srv.Client(), "POST", srv.URL+"/demo/send", "application/json", body); status != 202 {
			t.Fatalf("POST /demo/send %s: %d %q", body, status, resp)
		}
	}
	// To a user: stored in the inbox and delivered as an inbox event.
	post(`{"user":"alice","type":"order.shipped","data":{"order":42}}`)
	m := readFrame(t, ws)
	if d, _ := m["data"].(map[string]any); m["type"] != "inbox" || d["op"] != "new" {
		t.Fatalf("event = %v, want an inbox event", m)
	}
	n := m["data"].(map[string]any)["notification"].(map[string]any)
	if n["type"] != "order.shipped" || n["data"].(map[string]any)["order"] != 42.0 || n["id"] == "" {
		t.Fatalf("notification = %v", n)
	}

	ws.WriteJSON(map[string]string{"op": "subscribe", "topic": "news"})
	if m := readFrame(t, ws); m["op"] != "subscribed" || m["topic"] != "news" {
		t.Fatalf("subscribe answer = %v (every topic is allowed)", m)
	}
	post(`{"topic":"news","type":"headline","data":"hello"}`)
	if m := readFrame(t, ws); m["type"] != "headline" || m["topic"] != "news" || m["data"] != "hello" {
		t.Fatalf("topic event = %v", m)
	}
	post(`{"type":"maintenance"}`)
	if m := readFrame(t, ws); m["type"] != "maintenance" {
		t.Fatalf("broadcast = %v", m)
	}
}

// A page on another origin must not open a session, even with a valid token (say a leaked one)
// and the user's cookie: the hub answers 403 before looking at either. Nor may it POST to the
// app's API with the user's cookie.
func TestCrossOrigin(t *testing.T) {
	t.Parallel()
	srv, hub := serve(t, options{Demo: true})
	c := newClient(t)
	session := login(t, c, srv.URL, "alice")
	token := demoToken(t, srv, "alice")

	hdr := http.Header{"Origin": {"http://evil.example"}}
	hdr.Set("Cookie", session.String())
	ws, resp, err := dialWS(t, srv.URL, token, hdr)
	if err == nil {
		ws.Close()
		t.Fatal("cross-origin WebSocket opened")
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || string(b) != "notify: origin not allowed\n" {
		t.Errorf("cross-origin upgrade: %d %q, want 403 %q", resp.StatusCode, b, "notify: origin not allowed\n")
	}
	if s := hub.Stats(); s.Sessions != 0 {
		t.Errorf("hub.Stats().Sessions = %d after a refused upgrade, want 0", s.Sessions)
	}

	// The same origin is fine.
	ws, _, err = dialWS(t, srv.URL, token, http.Header{"Origin": {srv.URL}})
	if err != nil {
		t.Fatalf("same-origin dial: %v", err)
	}
	readFrame(t, ws)
	if n := hub.LocalSessions("alice"); n != 1 {
		t.Errorf("hub.LocalSessions(alice) = %d, want 1", n)
	}

	for _, h := range []map[string]string{
		{"Origin": "http://evil.example"},
		{"Sec-Fetch-Site": "cross-site"},
		{"Sec-Fetch-Site": "same-site", "Origin": "http://127.0.0.1:1"},
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/api/send", strings.NewReader(`{"user":"bob","type":"x"}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("POST /api/send with %v: %d, want 403", h, resp.StatusCode)
		}
	}
	if status, body := do(t, c, "POST", srv.URL+"/api/send", "application/json", `{"user":"bob","type":"x"}`); status != 202 {
		t.Errorf("same-origin POST /api/send: %d %q", status, body)
	}
}

func TestDevSecretWarning(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		secret []byte
		warn   bool
	}{{"unset", nil, true}, {"set", testSecret, false}} {
		var buf bytes.Buffer
		_, hub, closeInbox, err := newApp(options{Secret: tt.secret, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
		if err != nil {
			t.Fatal(err)
		}
		shutdownHub(t, hub)
		closeInbox()
		if got := strings.Contains(buf.String(), "level=WARN msg=\"NOTIFY_SECRET is not set"); got != tt.warn {
			t.Errorf("%s: warning logged = %v, want %v; log:\n%s", tt.name, got, tt.warn, buf.String())
		}
	}
}

func TestTokenTTLLongerThanWarning(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts options
		ok   bool
	}{
		{"defaults", options{}, true},
		{"short TTL, default warning", options{TokenTTL: 20 * time.Second}, false},
		{"short TTL, shorter warning", options{TokenTTL: 3 * time.Second, ExpiryWarning: time.Second}, true},
		{"equal", options{TokenTTL: time.Minute, ExpiryWarning: time.Minute}, false},
	} {
		tt.opts.Secret = testSecret
		_, hub, closeInbox, err := newApp(tt.opts)
		if hub != nil {
			shutdownHub(t, hub)
			closeInbox()
		}
		if (err == nil) != tt.ok {
			t.Errorf("%s: newApp error = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}
