package main

// Browser tests of missed-event recovery: a TCP proxy between the page and the app cuts the
// page off (as a dropped Wi-Fi would), events are sent meanwhile, and the page must show exactly
// them when it is back, or say that it missed some. On Redis, the page comes back through
// another instance.

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// listTexts returns the texts of the notifications whose text starts with prefix, oldest
// first (the page shows the newest on top).
func (p *page) listTexts(prefix string) []string {
	p.t.Helper()
	return eval[[]string](p, fmt.Sprintf(`[...document.querySelectorAll("#list li.notification .text")]
		.map((el) => el.textContent).filter((s) => s.startsWith(%s)).reverse()`, jsString(prefix)))
}

func (p *page) missedBanner() bool {
	p.t.Helper()
	return !eval[bool](p, `document.querySelector("#refresh-needed").hidden`)
}

// goOffline cuts the page off and waits until the hub has let go of the user's session.
func goOffline(t testing.TB, px *wstest.Proxy, p *page, hub *notify.Hub, user string) {
	t.Helper()
	px.Outage()
	p.waitState(5*time.Second, "reconnecting")
	eventually(t, 5*time.Second, user+"'s session gone", func() bool { return hub.LocalSessions(user) == 0 })
}

func sendN(t testing.TB, s *e2eServer, user, prefix string, n int) []string {
	t.Helper()
	var texts []string
	for i := 1; i <= n; i++ {
		text := fmt.Sprintf("%s %d", prefix, i)
		s.sendTo(t, user, text)
		texts = append(texts, text)
	}
	return texts
}

func equal(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// A page that was offline gets exactly what was sent to it and its topic meanwhile, in order,
// once; when more was sent than the history holds, it says that it missed some.
func TestE2ERecovery(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	px := wstest.NewProxy(t, s.Addr)
	b := newBrowser(t)
	alice := newPage(t, b, "alice", chromedp.WithNewBrowserContext())
	alice.login(px.URL, "alice")
	alice.setMarker()
	alice.subscribe("news")
	alice.waitJS(2*time.Second, "subscribed to news", `document.querySelector('#topics li.subscribed[data-topic="news"]') !== null`)
	s.sendTo(t, "alice", "before")
	alice.waitShown(deliveryTime, "before")

	goOffline(t, px, alice, s.Hub, "alice")
	want := sendN(t, s, "alice", "missed", 3)
	for i := 1; i <= 2; i++ {
		text := fmt.Sprintf("missed news %d", i)
		s.send(t, fmt.Sprintf(`{"topic":"news","type":"headline","data":{"text":%q}}`, text))
	}
	px.Restore(s.Addr)
	alice.waitState(15*time.Second, "connected")
	alice.waitShown(deliveryTime, "missed news 2")
	alice.waitShown(deliveryTime, "missed 3")
	if got := alice.listTexts("missed "); !equal(got[:3], want) || len(got) != 5 {
		t.Errorf("after the outage the page shows %q, want %q then the two news", got, want)
	}
	if got := alice.listTexts("missed news"); !equal(got, []string{"missed news 1", "missed news 2"}) {
		t.Errorf("topic events after the outage: %q", got)
	}
	if alice.missedBanner() {
		t.Errorf("the page says it missed notifications, but every one was recovered")
	}
	if n := alice.count("before"); n != 1 {
		t.Errorf("the notification from before the outage shows %d times, want 1", n)
	}

	// More of the user's own than the history holds (100 events by default): nothing is
	// replayed, but they are in the inbox: the page shows its first page, the newest 20, and
	// offers the older ones. No banner.
	goOffline(t, px, alice, s.Hub, "alice")
	overflow := sendN(t, s, "alice", "overflow", notify.DefaultHistorySize+1)
	px.Restore(s.Addr)
	alice.waitState(15*time.Second, "connected")
	alice.waitShown(2*time.Second, overflow[len(overflow)-1])
	alice.waitJS(2*time.Second, "20 of them", fmt.Sprintf(`[...document.querySelectorAll("#list li.notification .text")].filter((el) => el.textContent.startsWith("overflow")).length === 20`))
	if got := alice.listTexts("overflow"); !equal(got, overflow[len(overflow)-20:]) {
		t.Errorf("after an overflowing outage the page shows %q, want the newest 20, in order", got)
	}
	if !eval[bool](alice, `!document.querySelector("#more").hidden`) {
		t.Errorf("no button for the older notifications")
	}
	if alice.missedBanner() {
		t.Errorf("the banner shows, but the user's own notifications are in the inbox")
	}
	// More of a topic than the history holds: nothing is replayed, and the page says so.
	goOffline(t, px, alice, s.Hub, "alice")
	for i := range notify.DefaultHistorySize + 1 {
		s.send(t, fmt.Sprintf(`{"topic":"news","type":"headline","data":{"text":"news overflow %d"}}`, i))
	}
	px.Restore(s.Addr)
	alice.waitState(15*time.Second, "connected")
	alice.waitJS(2*time.Second, "missed-notifications banner", `!document.querySelector("#refresh-needed").hidden`)
	if got := alice.listTexts("news overflow"); len(got) != 0 {
		t.Errorf("after an overflowing outage the page shows %d of the topic's events, want none (no partial replay)", len(got))
	}
	s.sendTo(t, "alice", "live again")
	alice.waitShown(deliveryTime, "live again")
	alice.do("dismiss the banner", chromedp.Click(chromedp.CSS(`#dismiss-missed`)))
	if alice.missedBanner() {
		t.Errorf("the banner stays after Dismiss")
	}
	alice.assertNotReloaded()
}

// A page that has had no notification yet is cut off, the in-memory server restarts, and a
// notification is sent to the user before the page is back. The new server cannot replay it
// (recovered: false), but the notification is in the new server's inbox: the page fetches it
// when it connects, and says nothing is missing.
func TestE2EServerRestartMissedWhileAway(t *testing.T) {
	s1 := startServer(t, "127.0.0.1:0", options{})
	px := wstest.NewProxy(t, s1.Addr)
	b := newBrowser(t)
	alice := newPage(t, b, "alice", chromedp.WithNewBrowserContext())
	alice.login(px.URL, "alice")
	alice.setMarker()

	goOffline(t, px, alice, s1.Hub, "alice")
	s1.stop(t)
	s2 := startServer(t, "127.0.0.1:0", options{})
	s2.sendTo(t, "alice", "while away")
	px.Restore(s2.Addr)
	alice.waitState(15*time.Second, "connected")
	alice.waitShown(deliveryTime, "while away")
	s2.sendTo(t, "alice", "after")
	alice.waitShown(deliveryTime, "after")
	if got := alice.listTexts(""); !equal(got, []string{"while away", "after"}) {
		t.Errorf("the page shows %q", got)
	}
	if alice.missedBanner() {
		t.Errorf("the banner shows, but the inbox brought what was sent while away")
	}
	alice.assertNotReloaded()
}

// redisURL is the Redis the multi-node tests share: NOTIFY_REDIS_URL or 127.0.0.1:6379.
func redisURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("NOTIFY_REDIS_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379"
	}
	o, err := redis.ParseURL(u)
	if err == nil {
		c := redis.NewClient(o)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = c.Ping(ctx).Err()
		cancel()
		c.Close()
	}
	wstest.RequireService(t, "Redis at "+u, err)
	return u
}

// Two instances on one Redis, as in the README: a user on each gets the same Send, whichever
// instance it went to; a page cut off from one instance comes back through the other and gets
// what it missed.
func TestE2ETwoNodes(t *testing.T) {
	url := redisURL(t)
	// Other tests may share this Redis: names no one else uses keep the streams apart.
	suffix := rand.Text()[:8]
	ann, ben, topic := "ann-"+suffix, "ben-"+suffix, "team-"+suffix
	a := startServer(t, "127.0.0.1:0", options{Redis: url, Node: "A"})
	nodeB := startServer(t, "127.0.0.1:0", options{Redis: url, Node: "B"})
	px := wstest.NewProxy(t, a.Addr)
	br := newBrowser(t)
	annPage := newPage(t, br, ann, chromedp.WithNewBrowserContext())
	benPage := newPage(t, br, ben, chromedp.WithNewBrowserContext())
	annPage.login(px.URL, ann)
	annPage.setMarker()
	benPage.login(nodeB.URL, ben)
	for _, tt := range []struct {
		p    *page
		node string
	}{{annPage, "node A"}, {benPage, "node B"}} {
		if got := eval[string](tt.p, `document.querySelector("#node").textContent`); got != tt.node {
			t.Errorf("%s's page names %q, want %q", tt.p.name, got, tt.node)
		}
		tt.p.subscribe(topic)
		tt.p.waitJS(2*time.Second, "subscribed", fmt.Sprintf(`document.querySelector('#topics li.subscribed[data-topic=%s]') !== null`, jsString(topic)))
	}

	// One publish, on B, reaches the topic's subscribers on both nodes; a Send on B reaches ann on A.
	nodeB.send(t, fmt.Sprintf(`{"topic":%q,"type":"headline","data":{"text":"to the team"}}`, topic))
	annPage.waitShown(deliveryTime, "to the team")
	benPage.waitShown(deliveryTime, "to the team")
	nodeB.sendTo(t, ann, "from B to ann on A")
	annPage.waitShown(deliveryTime, "from B to ann on A")

	// ann's instance becomes unreachable; her page comes back through B and gets what was
	// sent meanwhile, on either node.
	goOffline(t, px, annPage, a.Hub, ann)
	want := append(sendN(t, a, ann, "missed via A", 2), sendN(t, nodeB, ann, "missed via B", 2)...)
	px.Restore(nodeB.Addr)
	annPage.waitState(15*time.Second, "connected")
	annPage.waitShown(deliveryTime, "missed via B 2")
	if got := annPage.listTexts("missed via"); !equal(got, want) {
		t.Errorf("after coming back through B the page shows %q, want %q", got, want)
	}
	if annPage.missedBanner() {
		t.Errorf("the page says it missed notifications, but every one was recovered from Redis")
	}
	eventually(t, 2*time.Second, "ann's session on B", func() bool { return nodeB.Hub.LocalSessions(ann) == 1 })
	if n := a.Hub.LocalSessions(ann); n != 0 {
		t.Errorf("ann has %d sessions on A, want 0", n)
	}
	annPage.assertNotReloaded()
}

// Two windows of one browser (one cookie jar) logged in as two users stay those users, also
// when both reconnect and fetch fresh tokens.
func TestE2ETwoUsersOneBrowser(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{})
	px := wstest.NewProxy(t, s.Addr)
	b := newBrowser(t)
	alice := newPage(t, b, "alice", chromedp.WithNewBrowserContext())
	alice.login(px.URL, "alice")
	bob := newPage(t, alice.ctx, "bob") // the same browser context
	bob.login(px.URL, "bob")
	eventually(t, 2*time.Second, "one session each", func() bool { return s.Hub.LocalSessions("alice") == 1 && s.Hub.LocalSessions("bob") == 1 })

	check := func(when string) {
		t.Helper()
		s.sendTo(t, "alice", "for alice "+when)
		s.sendTo(t, "bob", "for bob "+when)
		alice.waitShown(deliveryTime, "for alice "+when)
		bob.waitShown(deliveryTime, "for bob "+when)
		if alice.count("for bob "+when) != 0 || bob.count("for alice "+when) != 0 {
			t.Errorf("%s: a window shows the other user's notification", when)
		}
	}
	check("at first")
	// Both windows lose the connection, fetch fresh tokens and reconnect.
	px.Outage()
	alice.waitState(5*time.Second, "reconnecting")
	bob.waitState(5*time.Second, "reconnecting")
	px.Restore(s.Addr)
	alice.waitState(15*time.Second, "connected")
	bob.waitState(15*time.Second, "connected")
	eventually(t, 2*time.Second, "one session each again", func() bool { return s.Hub.LocalSessions("alice") == 1 && s.Hub.LocalSessions("bob") == 1 })
	check("after reconnecting")
	for _, p := range []*page{alice, bob} {
		if got := eval[string](p, `document.querySelector("#user-name").textContent`); got != p.name {
			t.Errorf("%s's window shows user %q", p.name, got)
		}
	}
}
