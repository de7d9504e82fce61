package inbox_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// TestHTTPChangeExceptsTheCaller: a change made over HTTP with the page's session in the
// Notify-Session header reaches every other session of the user live, and the caller's
// session gets only the skip frame; without the header, or with one naming nobody, every
// session gets it. Notification.Except does the same for Notify, and is not stored.
func TestHTTPChangeExceptsTheCaller(t *testing.T) {
	hub, ib, _ := newInbox(t, notify.Config{}, inbox.Config{})
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.Handle("/inbox/", ib.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	ws := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	tok := mustToken(t, hub, "alice")
	actor, w := wstest.Welcome(t, ws, tok)
	other, _ := wstest.Welcome(t, ws, tok)
	actorID := w["session"].(string)
	ctx := context.Background()

	n, _, err := ib.Notify(ctx, "alice", inbox.Notification{ID: "n1", Type: "comment", Except: actorID})
	if err != nil || n.Except != "" {
		t.Fatalf("Notify = %+v, %v; want no except in what comes back", n, err)
	}
	expectSkip := func(c *wstest.Client) {
		t.Helper()
		if m := c.NextNonPing(); m["op"] != "skip" || m["id"] == "" {
			t.Fatalf("got %v, want a skip", m)
		}
	}
	expectChange := func(c *wstest.Client, op string) {
		t.Helper()
		m := c.NextNonPing()
		data, _ := m["data"].(map[string]any)
		if m["type"] != inbox.EventType || data["op"] != op || m["except"] != nil {
			t.Fatalf("got %v, want the %s change", m, op)
		}
	}
	expectSkip(actor)
	expectChange(other, "new")
	if page, err := ib.List(ctx, "alice", inbox.Query{}); err != nil || len(page.Items) != 1 || page.Items[0].Except != "" {
		t.Fatalf("List = %+v, %v; want n1 stored without an except", page, err)
	}

	post := func(op, session string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/inbox/"+op, strings.NewReader(`{"ids":["n1"]}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		if session != "" {
			req.Header.Set(notify.SessionHeader, session)
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d", op, res.StatusCode)
		}
	}
	post("read", actorID)
	expectSkip(actor)
	expectChange(other, "read")
	post("unread", "") // no header: every session
	expectChange(actor, "unread")
	expectChange(other, "unread")
	post("read", "not a session!") // a garbage header is ignored
	expectChange(actor, "read")
	expectChange(other, "read")
	post("archive", actorID+".tab1") // a tab of a shared session: the session gets it, naming the tab
	if m := actor.NextNonPing(); m["type"] != inbox.EventType || m["except"] != "tab1" {
		t.Fatalf("got %v, want the change naming tab1", m)
	}
	expectChange(other, "archive")
}
