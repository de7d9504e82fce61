package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"
)

// sharedPage is a bare page for the shared-connection tests: it connects as ?user= (shared
// unless ?shared=0) with a demo token and records, on window, what its handlers get.
const sharedPage = `<!doctype html><meta charset="utf-8"><title>shared</title>
<script type="module">
import { connect } from "/notify/client.js";
const q = new URLSearchParams(location.search);
const user = q.get("user");
window.got = []; window.inbox = []; window.states = []; window.tokens = 0;
window.n = connect("/notify/ws", {
  shared: q.get("shared") === "0" ? false : true,
  token: async () => {
    window.tokens++;
    if (window.signedOut) return null;
    const r = await fetch("/demo/token?user=" + encodeURIComponent(user));
    return (await r.json()).token;
  },
});
n.on("*", (ev) => got.push({ text: ev.data?.text, offset: ev.offset ?? 0, topic: ev.topic ?? "" }));
n.on("inbox", (ev) => inbox.push(ev.offset ?? 0));
n.onState((s, info) => states.push({ s, code: info?.code, session: n.session, at: Date.now() }));
</script>`

func serveSharedPage(e *echo.Echo) {
	e.GET("/shared.html", func(c echo.Context) error { return c.HTML(http.StatusOK, sharedPage) })
}

// openShared opens n tabs of one browser context on the shared page as user; with noWorker,
// on the Web Locks path.
func openShared(t *testing.T, b context.Context, base, user, query string, n int, noWorker bool) []*page {
	t.Helper()
	var tabs []*page
	for i := range n {
		var p *page
		if i == 0 {
			p = newPage(t, b, fmt.Sprintf("tab%d", i), chromedp.WithNewBrowserContext())
		} else {
			p = newPage(t, tabs[0].ctx, fmt.Sprintf("tab%d", i))
		}
		if noWorker {
			withoutSharedWorker(t, p)
		}
		p.open(base + "/shared.html?user=" + user + query)
		p.waitJS(5*time.Second, "connected", `window.n && n.state === "connected"`)
		tabs = append(tabs, p)
	}
	return tabs
}

// texts returns how often each text reached the page's "*" handlers.
func (p *page) gotCounts() map[string]int {
	p.t.Helper()
	var got []struct{ Text string }
	got = eval[[]struct{ Text string }](p, `got.map((g) => ({ Text: g.text ?? "" }))`)
	m := map[string]int{}
	for _, g := range got {
		m[g.Text]++
	}
	return m
}

func (p *page) waitGot(within time.Duration, text string) {
	p.t.Helper()
	p.waitJS(within, "event "+text, fmt.Sprintf(`got.some((g) => g.text === %s)`, jsString(text)))
}

// Three tabs of one browser make one server session, through the shared worker or a leader
// tab, and each shows every event once; subscriptions are the union over tabs, counted; a
// closing tab leaves the others connected.
func TestE2ESharedTabs(t *testing.T) {
	t.Run("SharedWorker", func(t *testing.T) { testSharedTabs(t, false) })
	t.Run("WebLocks", func(t *testing.T) { testSharedTabs(t, true) })
}

func testSharedTabs(t *testing.T, noWorker bool) {
	s := startServer(t, "127.0.0.1:0", options{}, serveSharedPage)
	b := newBrowser(t)
	tabs := openShared(t, b, s.URL, "ann", "", 3, noWorker)
	// Which path the tabs are on: a shared worker is a target of its own.
	workers := 0
	targets, err := chromedp.CallBrowser(tabs[0].ctx, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range targets.TargetInfos {
		if ti.Type == "shared_worker" {
			workers++
		}
	}
	if want := map[bool]int{false: 1, true: 0}[noWorker]; workers != want {
		t.Errorf("%d shared workers, want %d", workers, want)
	}
	eventually(t, 2*time.Second, "one session", func() bool { return s.Hub.LocalSessions("ann") == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := s.Hub.LocalSessions("ann"); n != 1 {
		t.Fatalf("%d sessions for three tabs, want 1", n)
	}
	session := eval[string](tabs[0], `n.session`)
	for _, p := range tabs[1:] {
		if got := eval[string](p, `n.session`); got != session {
			t.Errorf("%s: session %q, want %q", p.name, got, session)
		}
	}
	for i := range 5 {
		s.sendTo(t, "ann", fmt.Sprintf("m%d", i))
	}
	for _, p := range tabs {
		p.waitGot(deliveryTime, "m4")
		for i := range 5 {
			if c := p.gotCounts()[fmt.Sprintf("m%d", i)]; c != 1 {
				t.Errorf("%s: m%d delivered %d times, want 1", p.name, i, c)
			}
		}
	}

	// Counted union: tabs 0 and 1 subscribe news; 0 leaves it; 1 still gets it, 0 and 2 do not.
	for _, p := range tabs[:2] {
		eval[any](p, `n.subscribe("news").then(() => true)`)
	}
	eval[any](tabs[0], `n.unsubscribe("news")`)
	time.Sleep(100 * time.Millisecond)
	s.send(t, `{"topic":"news","type":"headline","data":{"text":"n1"}}`)
	tabs[1].waitGot(deliveryTime, "n1")
	s.sendTo(t, "ann", "after n1") // once a tab has this, it would have had n1
	for _, p := range tabs {
		p.waitGot(deliveryTime, "after n1")
	}
	for i, want := range []int{0, 1, 0} {
		if c := tabs[i].gotCounts()["n1"]; c != want {
			t.Errorf("%s: news event delivered %d times, want %d", tabs[i].name, c, want)
		}
	}
	// The last tab that wanted news leaves it: the server session no longer has it.
	eval[any](tabs[1], `n.unsubscribe("news")`)
	time.Sleep(100 * time.Millisecond)
	s.send(t, `{"topic":"news","type":"headline","data":{"text":"n2"}}`)
	s.sendTo(t, "ann", "after n2")
	tabs[1].waitGot(deliveryTime, "after n2")
	if c := tabs[1].gotCounts()["n2"]; c != 0 {
		t.Errorf("news after the last unsubscribe delivered %d times", c)
	}

	// The first tab (on the Web Locks path, the leader) closes: the others stay connected, on
	// the same session with the shared worker, on the next leader's without.
	closeTab(t, tabs[0])
	time.Sleep(300 * time.Millisecond)
	s.sendTo(t, "ann", "after close")
	for _, p := range tabs[1:] {
		p.waitGot(deliveryTime, "after close")
		if got := eval[string](p, `n.session`); got != session && !noWorker {
			t.Errorf("%s: session changed to %q after another tab closed", p.name, got)
		}
	}
	if n := s.Hub.LocalSessions("ann"); n != 1 {
		t.Errorf("%d sessions after a tab closed, want 1", n)
	}
}

func closeTab(t *testing.T, p *page) {
	t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, cdppage.Close, cdp.Empty{}); err != nil {
		t.Fatalf("%s: close: %v", p.name, err)
	}
}

// withoutSharedWorker makes the tab's pages lack SharedWorker, as Chrome on Android does.
func withoutSharedWorker(t *testing.T, p *page) {
	t.Helper()
	if _, err := chromedp.Call(p.ctx, cdppage.AddScriptToEvaluateOnNewDocument,
		cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: noSharedWorker}); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
}

// noSharedWorker makes the page's browser lack SharedWorker, as Chrome on Android does.
const noSharedWorker = `delete window.SharedWorker;`

// sender sends ann a numbered event every 50 ms until stopped, and returns how many it sent.
func startSender(t *testing.T, s *e2eServer, user string) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n int
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				n++
				s.sendTo(t, user, fmt.Sprintf("e%d", n))
			}
		}
	}()
	return func() int { close(done); wg.Wait(); return n }
}

// The Web Locks path (no SharedWorker): the first tab leads. Frozen (CDP
// Page.setWebLifecycleState), it hands over to another within a second; that one closes, and the
// next takes over within a second; that one hangs (a busy loop of 3 s: it neither answers nor
// releases its lock), and the last steals the lock within 1.5 s. Events come every 50 ms
// throughout: the last tab's handlers get every one, once, with consecutive offsets.
func TestE2ESharedLeaderHandover(t *testing.T) {
	s := startServer(t, "127.0.0.1:0", options{}, serveSharedPage)
	b := newBrowser(t)
	var tabs []*page
	for i := range 4 {
		var p *page
		if i == 0 {
			p = newPage(t, b, fmt.Sprintf("tab%d", i), chromedp.WithNewBrowserContext())
		} else {
			p = newPage(t, tabs[0].ctx, fmt.Sprintf("tab%d", i))
		}
		withoutSharedWorker(t, p)
		p.open(s.URL + "/shared.html?user=bo")
		p.waitJS(5*time.Second, "connected", `window.n && n.state === "connected" && typeof SharedWorker === "undefined"`)
		tabs = append(tabs, p)
	}
	eventually(t, 2*time.Second, "one session", func() bool { return s.Hub.LocalSessions("bo") == 1 })
	time.Sleep(200 * time.Millisecond)
	if n := s.Hub.LocalSessions("bo"); n != 1 {
		t.Fatalf("%d sessions for four tabs, want 1", n)
	}
	first := eval[string](tabs[3], `n.session`)
	stop := startSender(t, s, "bo")
	time.Sleep(500 * time.Millisecond)

	// handover waits until the tabs' session is another than old, within a second.
	handover := func(what string, old string, tabs []*page, within time.Duration) string {
		t.Helper()
		start := time.Now()
		for _, p := range tabs {
			p.waitJS(within, what+": a new leader connected", fmt.Sprintf(`n.state === "connected" && n.session !== %s`, jsString(old)))
		}
		t.Logf("%s: a new leader connected within %v", what, time.Since(start).Round(time.Millisecond))
		return eval[string](tabs[0], `n.session`)
	}
	if _, err := chromedp.Call(tabs[0].ctx, cdppage.SetWebLifecycleState,
		cdppage.SetWebLifecycleStateParams{State: cdppage.SetWebLifecycleStateStateFrozen}); err != nil {
		t.Fatalf("freeze: %v", err)
	}
	second := handover("frozen leader", first, tabs[1:], time.Second)
	time.Sleep(500 * time.Millisecond)
	closeTab(t, tabs[1])
	third := handover("closed leader", second, tabs[2:], time.Second)
	time.Sleep(500 * time.Millisecond)
	eval[any](tabs[2], `setTimeout(() => { const end = Date.now() + 3000; while (Date.now() < end); }, 0); true`)
	handover("hung leader", third, tabs[3:], 1500*time.Millisecond)
	time.Sleep(2500 * time.Millisecond) // the hung tab wakes up, and steps down
	sent := stop()
	last := tabs[3]
	last.waitGot(2*time.Second, fmt.Sprintf("e%d", sent))
	// The user's events are stored in the inbox: "*" gets each notification, "inbox" the
	// change with its offset on the user's stream.
	got := eval[[]string](last, `got.map((g) => g.text ?? "")`)
	offsets := eval[[]int](last, `inbox`)
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	for i := 1; i <= sent; i++ {
		if c := seen[fmt.Sprintf("e%d", i)]; c != 1 {
			t.Errorf("e%d delivered %d times, want 1", i, c)
		}
	}
	if len(offsets) != sent {
		t.Errorf("%d inbox changes for %d events", len(offsets), sent)
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] != offsets[i-1]+1 {
			t.Errorf("offset %d follows %d", offsets[i], offsets[i-1])
		}
	}
	// The frozen tab's socket stays open on the server until the tab resumes (or the server's
	// write timeout cuts it); the hung one closed its own once it woke up.
	if n := s.Hub.LocalSessions("bo"); n > 2 {
		t.Errorf("%d sessions after three handovers, want the leader's and the frozen tab's", n)
	}
	t.Logf("%d events sent every 50 ms, the last tab got %d with offsets %d..%d", sent, len(got), offsets[0], offsets[len(offsets)-1])
}

// Sign out everywhere ends every tab sharing the connection, on both paths: one tab's
// fetchToken learns the user is signed out, and every tab shows it.
func TestE2ESharedSignOut(t *testing.T) {
	t.Run("SharedWorker", func(t *testing.T) { testSharedSignOut(t, false) })
	t.Run("WebLocks", func(t *testing.T) { testSharedSignOut(t, true) })
}

func testSharedSignOut(t *testing.T, noWorker bool) {
	s := startServer(t, "127.0.0.1:0", options{})
	b := newBrowser(t)
	first := newPage(t, b, "tab0", chromedp.WithNewBrowserContext())
	tabs := []*page{first, newPage(t, first.ctx, "tab1"), newPage(t, first.ctx, "tab2")}
	for _, p := range tabs {
		if noWorker {
			withoutSharedWorker(t, p)
		}
		p.login(s.URL, "cy")
	}
	eventually(t, 2*time.Second, "one session", func() bool { return s.Hub.LocalSessions("cy") == 1 })
	tabs[1].do("sign out everywhere", chromedp.Click(chromedp.CSS(`#signout-everywhere`)))
	for _, p := range tabs {
		p.waitJS(5*time.Second, "the signed-out notice", `!document.querySelector("#login-view").hidden && `+
			`document.querySelector("#login-notice").textContent === "You were signed out."`)
		if got := p.state(); got != "signed out" {
			t.Errorf("%s: connection state %q, want %q", p.name, got, "signed out")
		}
	}
	eventually(t, 2*time.Second, "no session left", func() bool { return s.Hub.LocalSessions("cy") == 0 })
	if n := s.Hub.Stats().Disconnects[4001]; n != 1 {
		t.Errorf("%d sessions closed with 4001, want 1", n)
	}
}

// TestE2ESharedMeasure compares five tabs sharing one connection with five tabs on their own
// (shared: false): server sessions, the browser's open sockets (WebSocket requests the server
// holds open) and the server's heap. It runs with NOTIFY_MEASURE=1:
//
//	cd example && NOTIFY_MEASURE=1 go test -count=1 -run TestE2ESharedMeasure -v .
func TestE2ESharedMeasure(t *testing.T) {
	if os.Getenv("NOTIFY_MEASURE") != "1" {
		t.Skip("a measurement: NOTIFY_MEASURE=1 runs it")
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, mode := range []struct{ name, query string }{{"shared", ""}, {"shared: false", "&shared=0"}, {"shared, no SharedWorker", "&noworker=1"}} {
		s := startServer(t, "127.0.0.1:0", options{}, serveSharedPage)
		b := newBrowser(t)
		var tabs []*page
		for i := range 5 {
			var p *page
			if i == 0 {
				p = newPage(t, b, fmt.Sprintf("%s tab%d", mode.name, i), chromedp.WithNewBrowserContext())
			} else {
				p = newPage(t, tabs[0].ctx, fmt.Sprintf("%s tab%d", mode.name, i))
			}
			if mode.query == "&noworker=1" {
				withoutSharedWorker(t, p)
			}
			p.open(s.URL + "/notify/client.js") // the tab, the server's routes and the script warmed up
			tabs = append(tabs, p)
		}
		time.Sleep(500 * time.Millisecond)
		before := heap()
		for _, p := range tabs {
			p.open(s.URL + "/shared.html?user=dee" + mode.query)
			p.waitJS(5*time.Second, "connected", `window.n && n.state === "connected"`)
		}
		time.Sleep(time.Second)
		open := 0
		for _, r := range s.rec.requests("/notify/ws") {
			if r.Status == 0 {
				open++
			}
		}
		tokens := 0
		for _, p := range tabs {
			tokens += eval[int](p, `tokens`)
		}
		after := heap()
		t.Logf("five tabs, %s: %d server session(s), %d open WebSocket(s), %d token() call(s), server heap %+d KB",
			mode.name, s.Hub.LocalSessions("dee"), open, tokens, (int64(after)-int64(before))/1024)
		s.stop(t)
	}
}
