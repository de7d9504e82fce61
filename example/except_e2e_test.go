package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/labstack/echo/v4"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// exceptPage connects as ?user= (shared by the browser's tabs) and records what its handlers
// get: texts in got, inbox changes ("op:ids") in changes. act(text) asks the app, through
// connection.fetch, to send text to the user leaving out the page that asked.
const exceptPage = `<!doctype html><meta charset="utf-8"><title>except</title>
<script type="module">
import { connect } from "/notify/client.js";
const q = new URLSearchParams(location.search);
const user = q.get("user");
window.got = []; window.changes = [];
window.n = connect("/notify/ws", {
  token: async () => {
    const r = await fetch("/demo/token?user=" + encodeURIComponent(user));
    return (await r.json()).token;
  },
});
n.on("*", (ev) => got.push(ev.data?.text ?? ev.type));
n.on("inbox", (ev) => changes.push(ev.data.op + ":" + (ev.data.ids ?? [ev.data.notification?.id]).join()));
window.act = (text) => n.fetch("/test/act?text=" + encodeURIComponent(text), { method: "POST" }).then((r) => r.status);
window.gotCount = (text) => got.filter((g) => g === text).length;
</script>`

// serveExceptPage adds the page and the app's request that sends with the caller left out:
// POST /test/act?text= sends a message to user, except the session in Notify-Session.
func serveExceptPage(hub **notify.Hub, user string) func(*echo.Echo) {
	return func(e *echo.Echo) {
		e.GET("/except.html", func(c echo.Context) error { return c.HTML(http.StatusOK, exceptPage) })
		e.POST("/test/act", func(c echo.Context) error {
			r := c.Request()
			_, err := (*hub).Send(r.Context(), user, notify.Event{Type: "message",
				Data: map[string]string{"text": c.QueryParam("text")}, Except: notify.SessionFrom(r)})
			if err != nil {
				return err
			}
			return c.NoContent(http.StatusNoContent)
		})
	}
}

// Two tabs sharing the browser's connection: the acting tab marks an inbox message read and
// asks the app for a send, and gets no echo of either; the other tab gets both; they agree
// after a forced reconnect (a new session: the page's session ID changes) and after a reload.
func TestE2EExcept(t *testing.T) {
	t.Run("SharedWorker", func(t *testing.T) { testExcept(t, false) })
	t.Run("WebLocks", func(t *testing.T) { testExcept(t, true) })
}

func testExcept(t *testing.T, noWorker bool) {
	var hub *notify.Hub
	s := startServer(t, "127.0.0.1:0", options{}, serveExceptPage(&hub, "ann"))
	hub = s.Hub
	px := wstest.NewProxy(t, s.Addr)
	b := newBrowser(t)
	var tabs []*page
	for i := range 2 {
		var p *page
		if i == 0 {
			p = newPage(t, b, "actor", chromedp.WithNewBrowserContext())
		} else {
			p = newPage(t, tabs[0].ctx, "other")
		}
		if noWorker {
			withoutSharedWorker(t, p)
		}
		p.open(px.URL + "/except.html?user=ann")
		p.waitJS(5*time.Second, "connected", `window.n && n.state === "connected"`)
		tabs = append(tabs, p)
	}
	actor, other := tabs[0], tabs[1]
	eventually(t, 2*time.Second, "one session", func() bool { return s.Hub.LocalSessions("ann") == 1 })
	session := eval[string](actor, `n.session`)
	if got := eval[string](actor, `n.sessionId`); got == session || got[:len(session)+1] != session+"." {
		t.Fatalf("actor's sessionId %q, want the session %q and the tab", got, session)
	}
	if eval[string](actor, `n.sessionId`) == eval[string](other, `n.sessionId`) {
		t.Fatal("two tabs with one sessionId")
	}

	// A stored message: both tabs get it.
	s.sendTo(t, "ann", "m1")
	for _, p := range tabs {
		p.waitJS(deliveryTime, "m1", `gotCount("m1") === 1`)
	}
	id := eval[string](actor, `n.inbox.list().then((p) => p.items[0].id)`)

	// The actor marks it read: the other tab gets the change, the actor only its answer.
	eval[any](actor, fmt.Sprintf(`n.inbox.markRead(%s).then(() => true)`, jsString(id)))
	other.waitJS(deliveryTime, "the read change", fmt.Sprintf(`changes.includes(%s)`, jsString("read:"+id)))
	for _, p := range tabs {
		p.waitJS(deliveryTime, "unread 0", `n.inbox.unread === 0`)
	}
	// The actor's next event comes after where the echo would have been.
	s.sendTo(t, "ann", "m2")
	actor.waitJS(deliveryTime, "m2", `gotCount("m2") === 1`)
	if eval[bool](actor, fmt.Sprintf(`changes.includes(%s)`, jsString("read:"+id))) {
		t.Fatal("the acting tab got the echo of its own change")
	}

	// An app request through connection.fetch: the other tab gets the event, the actor not.
	act := func(text string) {
		t.Helper()
		if st := eval[int](actor, fmt.Sprintf(`act(%s)`, jsString(text))); st != http.StatusNoContent {
			t.Fatalf("act %s: %d", text, st)
		}
		other.waitJS(deliveryTime, text, fmt.Sprintf(`gotCount(%s) === 1`, jsString(text)))
		s.sendTo(t, "ann", "after "+text)
		actor.waitJS(deliveryTime, "after "+text, fmt.Sprintf(`gotCount(%s) === 1`, jsString("after "+text)))
		if c := eval[int](actor, fmt.Sprintf(`gotCount(%s)`, jsString(text))); c != 0 {
			t.Fatalf("the acting tab got %s %d times", text, c)
		}
	}
	act("d1")

	// A forced reconnect: a new session, a new sessionId; what was sent meanwhile comes once to
	// both, and neither sees anything again.
	before := eval[string](actor, `n.sessionId`)
	px.Outage()
	for _, p := range tabs {
		p.waitJS(5*time.Second, "reconnecting", `n.state === "reconnecting"`)
	}
	eventually(t, 5*time.Second, "the session gone", func() bool { return s.Hub.LocalSessions("ann") == 0 })
	s.sendTo(t, "ann", "while away")
	px.Restore(s.Addr)
	for _, p := range tabs {
		p.waitJS(15*time.Second, "connected", `n.state === "connected"`)
		p.waitJS(deliveryTime, "while away", `gotCount("while away") === 1`)
	}
	if after := eval[string](actor, `n.sessionId`); after == before {
		t.Fatalf("sessionId %q unchanged by a reconnect", after)
	}
	act("d2") // with the new session's ID
	for _, text := range []string{"m1", "m2", "after d1", "while away", "d2"} {
		if c := eval[int](other, fmt.Sprintf(`gotCount(%s)`, jsString(text))); c != 1 {
			t.Errorf("other tab: %s %d times, want 1", text, c)
		}
	}
	for text, want := range map[string]int{"m1": 1, "m2": 1, "d1": 0, "d2": 0, "after d2": 1, "while away": 1} {
		if c := eval[int](actor, fmt.Sprintf(`gotCount(%s)`, jsString(text))); c != want {
			t.Errorf("actor: %s %d times, want %d", text, c, want)
		}
	}

	// A reload of each: both show the same inbox, m1 read, m2 not.
	state := `n.inbox.list().then((p) => p.items.map((i) => i.data.text + (i.readAt ? ":read" : "")).join())`
	for _, p := range tabs {
		p.do("reload", chromedp.Reload())
		p.waitJS(5*time.Second, "connected", `window.n && n.state === "connected"`)
		p.waitJS(deliveryTime, "counts", `n.inbox.current !== null`)
	}
	a, o := eval[string](actor, state), eval[string](other, state)
	t.Logf("inbox after the reload: %s", a)
	if a != o {
		t.Errorf("after a reload the tabs disagree: %q and %q", a, o)
	}
	if ua, uo := eval[int](actor, `n.inbox.unread`), eval[int](other, `n.inbox.unread`); ua != uo {
		t.Errorf("unread after a reload: %d and %d", ua, uo)
	}
	if eval[bool](actor, `n.inbox.list().then((p) => !p.items.find((i) => i.data.text === "m1").readAt)`) {
		t.Error("m1 not read after a reload")
	}
}
