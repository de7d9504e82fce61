package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func (p *page) waitBadge(within time.Duration, want string) {
	p.t.Helper()
	p.waitJS(within, "badge "+want, `document.querySelector("#badge").textContent === `+jsString(want))
}

// texts returns the texts of the notifications that match sel, newest first.
func (p *page) texts(sel string) []string {
	p.t.Helper()
	return eval[[]string](p, fmt.Sprintf(`[...document.querySelectorAll(%s)].map((li) => li.querySelector(".text").textContent)`, jsString(sel)))
}

// Two tabs of alice and one of bob: a notification to alice shows in both of her tabs and not
// in bob's; "mark all read" in one tab sets the other's badge to 0; archive in one tab takes it
// out of the other; a reload shows the same list, from the inbox.
func TestE2EInbox(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	b := newBrowser(t)
	tab1 := newPage(t, b, "alice-tab1", chromedp.WithNewBrowserContext())
	tab1.login(s.URL, "alice")
	tab2 := newPage(t, tab1.ctx, "alice-tab2")
	tab2.login(s.URL, "alice")
	bob := newPage(t, b, "bob", chromedp.WithNewBrowserContext())
	bob.login(s.URL, "bob")

	s.sendTo(t, "alice", "first for alice")
	s.sendTo(t, "alice", "second for alice")
	s.sendTo(t, "bob", "for bob")
	for _, p := range []*page{tab1, tab2} {
		p.waitShown(deliveryTime, "second for alice")
		p.waitBadge(deliveryTime, "2")
		if got := p.texts("#list li.notification.unread"); fmt.Sprint(got) != "[second for alice first for alice]" {
			t.Errorf("%s shows unread %q", p.name, got)
		}
	}
	bob.waitShown(deliveryTime, "for bob")
	if got := bob.texts("#list li.notification"); fmt.Sprint(got) != "[for bob]" {
		t.Errorf("bob's list: %q", got)
	}
	bob.waitBadge(deliveryTime, "1")

	// Mark all read in one tab: the other's badge goes to 0 at once, and its items are read.
	tab1.do("mark all read", chromedp.Click(chromedp.CSS(`#mark-all-read`)))
	tab2.waitBadge(deliveryTime, "0")
	tab2.waitJS(deliveryTime, "no unread item", `document.querySelectorAll("#list li.unread").length === 0`)
	if got := bob.badge(); got != "1" {
		t.Errorf("bob's badge after alice read all: %q, want 1", got)
	}

	// A new one: both tabs' badges 1; reading it in tab 2 clears tab 1's.
	s.sendTo(t, "alice", "third for alice")
	for _, p := range []*page{tab1, tab2} {
		p.waitBadge(deliveryTime, "1")
	}
	tab2.do("read the third", chromedp.Click(chromedp.CSS(`#list li.notification.unread .text`)))
	tab1.waitBadge(deliveryTime, "0")

	// Archive in tab 2: gone from tab 1 too.
	tab2.do("archive the first", chromedp.Click(chromedp.CSS(`#list li.notification:last-child button.archive`)))
	tab1.waitJS(deliveryTime, "the first archived", countExpr("first for alice")+" === 0")

	// A reload shows the same list, read states included.
	want := "[third for alice second for alice]"
	if got := tab1.texts("#list li.notification"); fmt.Sprint(got) != want {
		t.Fatalf("tab 1 before the reload: %q", got)
	}
	tab1.do("reload", chromedp.Reload())
	tab1.waitLoggedIn("alice")
	tab1.waitShown(deliveryTime, "second for alice")
	if got := tab1.texts("#list li.notification"); fmt.Sprint(got) != want {
		t.Errorf("after a reload: %q, want %s", got, want)
	}
	if got := tab1.texts("#list li.notification.unread"); len(got) != 0 {
		t.Errorf("after a reload, unread: %q", got)
	}
	tab1.waitBadge(deliveryTime, "0")

	// The archive holds the first; putting it back shows it in the other tab's list again.
	tab1.do("open the archive", chromedp.Click(chromedp.CSS(`#archive-box summary`)))
	tab1.waitJS(deliveryTime, "the first in the archive", `[...document.querySelectorAll("#archive li .text")].map((el) => el.textContent).join() === "first for alice"`)
	tab1.do("unarchive", chromedp.Click(chromedp.CSS(`#archive li button.unarchive`)))
	tab2.waitShown(deliveryTime, "first for alice")
	tab1.waitJS(deliveryTime, "the archive empty", `document.querySelectorAll("#archive li").length === 0`)
	if got := tab2.texts("#list li.notification"); fmt.Sprint(got) != "[third for alice second for alice first for alice]" {
		t.Errorf("tab 2 after unarchive: %q", got)
	}
}

// With -postgres the list and the badge survive a restart of the server: a reload after it
// shows them.
func TestE2EInboxSurvivesRestart(t *testing.T) {
	pg := postgresURL(t)
	opts := options{Postgres: pg, PostgresSchema: pgSchema(t, pg)}
	s1 := startServer(t, "127.0.0.1:0", opts)
	b := newBrowser(t)
	alice := newPage(t, b, "alice", chromedp.WithNewBrowserContext())
	alice.login(s1.URL, "alice")
	s1.sendTo(t, "alice", "kept one")
	s1.sendTo(t, "alice", "kept two")
	alice.waitShown(deliveryTime, "kept two")
	alice.do("read one", chromedp.Click(chromedp.CSS(`#list li.notification:last-child .text`)))
	alice.waitBadge(deliveryTime, "1")

	s1.stop(t)
	alice.waitState(5*time.Second, "reconnecting")
	startServer(t, s1.Addr, opts)
	alice.waitState(15*time.Second, "connected")
	alice.do("reload", chromedp.Reload())
	alice.waitLoggedIn("alice")
	alice.waitShown(deliveryTime, "kept one")
	if got := alice.texts("#list li.notification"); fmt.Sprint(got) != "[kept two kept one]" {
		t.Errorf("after the restart and a reload: %q", got)
	}
	if got := alice.texts("#list li.notification.unread"); fmt.Sprint(got) != "[kept two]" {
		t.Errorf("unread after the restart: %q", got)
	}
	alice.waitBadge(deliveryTime, "1")
}
