package main

// The browser client behind a network that refuses WebSocket: an HTTP proxy in the test passes
// every request to the app but answers an upgrade with 502, as a proxy that strips Upgrade
// does. The page must fall back to server-sent events with nothing else changed: live events,
// topics, a server restart, sign out everywhere.

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// noUpgradeProxy serves target over HTTP and refuses every WebSocket upgrade; refused counts
// them.
func noUpgradeProxy(t testing.TB, target string) (string, *atomic.Int64) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			refused.Add(1)
			http.Error(w, "upgrades are not allowed here", http.StatusBadGateway)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &refused
}

func TestE2ESSEFallback(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	proxy, refused := noUpgradeProxy(t, s.URL)
	b := newBrowser(t)
	alice := newPage(t, b, "alice", chromedp.WithNewBrowserContext())
	alice.login(proxy, "alice")
	if refused.Load() == 0 {
		t.Fatal("the page never tried WebSocket")
	}
	if n := len(s.rec.requests("/notify/sse")); n == 0 {
		t.Fatal("no event stream reached the app")
	}
	if got := eval[string](alice, `document.querySelector("#conn-state").dataset.transport`); got != "sse" {
		t.Fatalf("transport %q, want sse", got)
	}
	// Live events, a topic subscription (its request is a POST), and the topic's events.
	alice.setMarker()
	s.sendTo(t, "alice", "over the stream")
	alice.waitShown(deliveryTime, "over the stream")
	alice.subscribe("news")
	alice.waitJS(2*time.Second, "subscribed to news", `document.querySelector('#topics li.subscribed[data-topic="news"]') !== null`)
	s.send(t, `{"topic":"news","type":"headline","data":{"text":"news over the stream"}}`)
	alice.waitShown(deliveryTime, "news over the stream")
	if alice.count("over the stream") != 1 {
		t.Errorf("the event shown %d times", alice.count("over the stream"))
	}
	// A restart of the server (the stream ends with its goaway) is survived over the stream.
	s.stop(t)
	alice.waitState(5*time.Second, "reconnecting")
	s2 := startServer(t, s.Addr, options{}) // the proxy's target again
	alice.waitState(15*time.Second, "connected")
	eventually(t, 2*time.Second, "alice's stream on the new server", func() bool { return s2.Hub.Stats().SSESessions == 1 })
	s2.sendTo(t, "alice", "after the restart")
	alice.waitShown(deliveryTime, "after the restart")
	alice.assertNotReloaded()
	// Sign out everywhere closes the stream for good, as it does a socket.
	alice.do("sign out everywhere", chromedp.Click(chromedp.CSS(`#signout-everywhere`)))
	alice.waitJS(5*time.Second, "the signed-out notice", `!document.querySelector("#login-view").hidden && `+
		`document.querySelector("#login-notice").textContent === "You were signed out."`)
	eventually(t, 2*time.Second, "no session left", func() bool { return s2.Hub.LocalSessions("alice") == 0 })
}

func TestRedactURI(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"/notify/sse?ticket=abc&epoch=E&offset=3", "/notify/sse?epoch=E&offset=3&ticket=REDACTED"},
		{"/notify/ws?token=jwt", "/notify/ws?token=REDACTED"},
		{"/api/presence?user=alice", "/api/presence?user=alice"},
		{"/x?%zz", "/x?REDACTED"},
		{"/plain", "/plain"},
	} {
		if got := redactURI(tt.in); got != tt.want {
			t.Errorf("redactURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
