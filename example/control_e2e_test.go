package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// alice has two tabs, one on each of two instances sharing Redis. "Sign out everywhere" in one
// of them disconnects both: each tab shows that it was signed out and does not connect again
// (its token function gets no fresh token, and the old one is never used again). The presence
// card saw both sessions before, and none is left after.
func TestE2ESignOutEverywhere(t *testing.T) {
	url := redisURL(t)
	alice := "alice-" + rand.Text()[:8] // other tests may share this Redis
	a := startServer(t, "127.0.0.1:0", options{Redis: url, Node: "A"})
	b := startServer(t, "127.0.0.1:0", options{Redis: url, Node: "B"})
	br := newBrowser(t)
	tabA := newPage(t, br, alice+"@A", chromedp.WithNewBrowserContext())
	tabA.login(a.URL, alice)
	tabB := newPage(t, tabA.ctx, alice+"@B") // the same browser: one login cookie for 127.0.0.1
	tabB.login(b.URL, alice)
	eventually(t, 2*time.Second, "a session on each node", func() bool {
		return a.Hub.LocalSessions(alice) == 1 && b.Hub.LocalSessions(alice) == 1
	})

	// The presence card, asked on A, counts both tabs on two servers.
	tabA.do("check presence",
		chromedp.SendKeys(chromedp.CSS(`#presence-form input[name=user]`), alice),
		chromedp.Click(chromedp.CSS(`#presence-form button[type=submit]`)),
	)
	tabA.waitJS(2*time.Second, "presence of both tabs", `document.querySelector("#presence").textContent === `+
		jsString(fmt.Sprintf("%s is online: 2 session(s) on 2 server(s).", alice)))

	wsBefore := len(a.rec.requests("/notify/ws")) + len(b.rec.requests("/notify/ws"))
	tabA.do("sign out everywhere", chromedp.Click(chromedp.CSS(`#signout-everywhere`)))
	for _, p := range []*page{tabA, tabB} {
		p.waitJS(5*time.Second, "the signed-out notice", `!document.querySelector("#login-view").hidden && `+
			`document.querySelector("#login-notice").textContent === "You were signed out."`)
		if got := p.state(); got != "signed out" {
			t.Errorf("%s: connection state %q, want %q", p.name, got, "signed out")
		}
	}
	eventually(t, 2*time.Second, "no session left", func() bool {
		return a.Hub.LocalSessions(alice) == 0 && b.Hub.LocalSessions(alice) == 0
	})
	// A session leaves presence after it left the node's index (once its connection ended).
	eventually(t, 2*time.Second, "presence empty after the sign out", func() bool {
		p, err := b.Hub.Presence(context.Background(), alice)
		return err == nil && len(p) == 0
	})
	// The client's state "closed" is final; and longer than its fastest reconnect, no tab
	// has tried again.
	time.Sleep(1500 * time.Millisecond)
	if n := len(a.rec.requests("/notify/ws")) + len(b.rec.requests("/notify/ws")); n != wsBefore {
		t.Errorf("%d WebSocket requests after the sign out, want none", n-wsBefore)
	}
	for _, s := range []*e2eServer{a, b} {
		if s.Hub.Stats().Disconnects[4001] != 1 {
			t.Errorf("node %s: %d sessions closed with 4001, want 1", s.Addr, s.Hub.Stats().Disconnects[4001])
		}
	}
}
