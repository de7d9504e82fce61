package notify_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gonotify/notify"
)

// session dials as user over tc and returns the client and its session's ID.
func sessionOver(t testing.TB, tc transportCase, srv *httptest.Server, h *notify.Hub, user string) (*client, string, pos) {
	t.Helper()
	c, w := reconnectVia(t, tc.dial, tc.url(srv), h, user, nil)
	id, _ := w["session"].(string)
	if id == "" {
		t.Fatalf("welcome without a session: %v", w)
	}
	return c, id, posOf(t, w)
}

// expectSkip reads the next frame and fails unless it is the skip frame of event id at p.
func expectSkip(t testing.TB, c *client, id string, p pos, topic string) {
	t.Helper()
	m := c.NextNonPing()
	want := map[string]any{"op": "skip", "id": id, "offset": float64(p.offset), "epoch": p.epoch}
	if topic != "" {
		want["topic"] = topic
	}
	if fmt.Sprint(m) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", m, want)
	}
}

// expectEvent reads the next frame and fails unless it is event id of type typ, with no
// except, or with the except given.
func expectEvent(t testing.TB, c *client, typ, id, except string) map[string]any {
	t.Helper()
	m := c.NextNonPing()
	if m["type"] != typ || m["id"] != id {
		t.Fatalf("got %v, want event %s %s", m, typ, id)
	}
	if got, _ := m["except"].(string); got != except {
		t.Fatalf("event %v: except %q, want %q", m, got, except)
	}
	return m
}

// TestExceptSend, over both transports: the session left out gets the event's position and ID
// only, its next event follows at the next offset, every other session gets the event without
// the except, and a reconnect from before the event replays it in full (a new session has
// another ID: the client's dedup, which kept the skipped ID, drops it).
func TestExceptSend(t *testing.T) {
	t.Parallel()
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHub(t, nil)
			srv := serve(t, h)
			actor, id, p := sessionOver(t, tc, srv, h, "alice")
			other := dial(t, srv, token(t, h, "alice"))
			r, err := h.Send(context.Background(), "alice", notify.Event{Type: "done", ID: "e1", Except: id})
			if err != nil || r.Position.Offset != p.offset+1 || r.Nodes != 1 {
				t.Fatalf("Send = %+v, %v; want offset %d, 1 node", r, err, p.offset+1)
			}
			expectSkip(t, actor, "e1", pos{p.epoch, p.offset + 1}, "")
			if tc.name == "sse" && actor.LastEventID() != fmt.Sprintf("%d.%s", p.offset+1, p.epoch) {
				t.Fatalf("Last-Event-ID %q after the skip, want its position", actor.LastEventID())
			}
			expectEvent(t, other, "done", "e1", "")
			h.Send(context.Background(), "alice", notify.Event{Type: "next", ID: "e2"})
			if m := expectEvent(t, actor, "next", "e2", ""); posOf(t, m).offset != p.offset+2 {
				t.Fatalf("next event %v, want offset %d", m, p.offset+2)
			}
			expectEvent(t, other, "next", "e2", "")
			actor.Close()
			again, w := reconnectVia(t, tc.dial, tc.url(srv), h, "alice", &p)
			if w["recovered"] != true {
				t.Fatalf("welcome %v, want recovered", w)
			}
			expectEvent(t, again, "done", "e1", "")
			expectEvent(t, again, "next", "e2", "")
		})
	}
}

// TestExceptTab: an except naming a tab of a shared session sends that session the event with
// the tab to leave out; the others get it without.
func TestExceptTab(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	shared, id, p := sessionOver(t, transports[0], srv, h, "alice")
	other := dial(t, srv, token(t, h, "alice"))
	h.Send(context.Background(), "alice", notify.Event{Type: "done", ID: "e1", Except: id + ".tab-1_x"})
	m := expectEvent(t, shared, "done", "e1", "tab-1_x")
	if posOf(t, m) != (pos{p.epoch, p.offset + 1}) {
		t.Fatalf("tab event %v, want offset %d", m, p.offset+1)
	}
	expectEvent(t, other, "done", "e1", "")
}

// TestExceptBadInput: an except that names nobody of the stream, another user's session, or
// that is not an ID leaves nobody out, and nothing of it reaches anyone.
func TestExceptBadInput(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	a1, id1, _ := sessionOver(t, transports[0], srv, h, "alice")
	a2 := dial(t, srv, token(t, h, "alice"))
	bob, bobID, _ := sessionOver(t, transports[0], srv, h, "bob")
	for i, except := range []string{
		"0UNKNOWN1", // no such session
		bobID,       // another user's
		bobID + ".tab",
		id1 + "x",               // close to alice's, but not hers
		"a b",                   // not an ID
		id1 + ".",               // an empty tab
		"." + id1,               // an empty session
		id1 + `"`,               // a quote: nothing to escape, ever
		strings.Repeat("A", 65), // over-long
		id1 + "." + strings.Repeat("t", 65),
	} {
		eid := fmt.Sprint("e", i)
		if _, err := h.Send(context.Background(), "alice", notify.Event{Type: "done", ID: eid, Except: except}); err != nil {
			t.Fatalf("Send with except %q: %v", except, err)
		}
		expectEvent(t, a1, "done", eid, "")
		expectEvent(t, a2, "done", eid, "")
	}
	expectMarker(t, h, bob, "bob")
	// Publish and Broadcast with another user's session left out do leave it out: an except
	// names a session, whoever's; session IDs are unguessable (see notify.SessionFrom).
}

// TestExceptPublishBroadcastEphemeral: a topic's event skips with the topic's position; a
// broadcast and an ephemeral event, which have no position, leave the session nothing.
func TestExceptPublishBroadcastEphemeral(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	actor, id, _ := sessionOver(t, transports[0], srv, h, "alice")
	bob := dial(t, srv, token(t, h, "bob", "news"))
	for _, c := range []*client{actor, bob} {
		c.Send(map[string]any{"op": "subscribe", "topic": "news"})
		expectFrame(t, c, map[string]any{"op": "subscribed", "topic": "news"})
	}
	r, err := h.Publish(context.Background(), "news", notify.Event{Type: "headline", ID: "n1", Except: id})
	if err != nil {
		t.Fatal(err)
	}
	expectSkip(t, actor, "n1", pos{r.Position.Epoch, r.Position.Offset}, "news")
	if m := expectEvent(t, bob, "headline", "n1", ""); m["topic"] != "news" {
		t.Fatalf("topic event %v", m)
	}
	h.Broadcast(context.Background(), notify.Event{Type: "all", ID: "b1", Except: id})
	h.Send(context.Background(), "alice", notify.Event{Type: "typing", ID: "t1", Ephemeral: true, Except: id})
	expectEvent(t, bob, "all", "b1", "")
	// The tab form of a broadcast reaches the shared session, naming the tab.
	h.Broadcast(context.Background(), notify.Event{Type: "all", ID: "b2", Except: id + ".t1"})
	expectEvent(t, actor, "all", "b2", "t1")
	expectEvent(t, bob, "all", "b2", "")
}

// TestSessionFrom: only a value a client could have is taken; anything else is "".
func TestSessionFrom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, header, want string }{
		{"none", "", ""},
		{"session", "0ABCDEF1z", "0ABCDEF1z"},
		{"tab", "0ABCDEF1z.6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab", "0ABCDEF1z.6f1c2d3e-aaaa-4bbb-8ccc-0123456789ab"},
		{"space", "abc def", ""},
		{"two dots", "abc.d.e", ""},
		{"dash in session", "ab-c", ""},
		{"quote", `abc"`, ""},
		{"empty tab", "abc.", ""},
		{"empty session", ".abc", ""},
		{"long session", strings.Repeat("a", 65), ""},
		{"longest", strings.Repeat("a", 64) + "." + strings.Repeat("b", 64), strings.Repeat("a", 64) + "." + strings.Repeat("b", 64)},
		{"long tab", "a." + strings.Repeat("b", 65), ""},
		{"unicode", "abcé", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/done", nil)
			if tc.header != "" {
				r.Header.Set(notify.SessionHeader, tc.header)
			}
			if got := notify.SessionFrom(r); got != tc.want {
				t.Fatalf("SessionFrom(%q) = %q, want %q", tc.header, got, tc.want)
			}
		})
	}
}

// TestForgedSessionHeader: a request carrying another session's ID only ever leaves that
// session out of what the application sends for it; it grants nothing (the request's own
// authentication decides who the caller is).
func TestForgedSessionHeader(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	_, aliceID, _ := sessionOver(t, transports[0], srv, h, "alice")
	bob := dial(t, srv, token(t, h, "bob"))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /done", func(w http.ResponseWriter, r *http.Request) {
		id, err := h.Authenticate(r)
		if err != nil {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h.Send(r.Context(), id.UserID, notify.Event{Type: "done", ID: "d1", Except: notify.SessionFrom(r)})
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)
	post := func(tok, session string) int {
		req, _ := http.NewRequest("POST", app.URL+"/done", nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		req.Header.Set(notify.SessionHeader, session)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if got := post("", aliceID); got != http.StatusUnauthorized {
		t.Fatalf("alice's session ID without a token: %d, want 401", got)
	}
	// Bob naming alice's session: the event is bob's, and bob gets it.
	if got := post(token(t, h, "bob"), aliceID); got != http.StatusOK {
		t.Fatalf("status %d", got)
	}
	expectEvent(t, bob, "done", "d1", "")
}

// TestSendSession: one session gets the event, without a position; an unknown one, or
// another user's, reaches nobody; a malformed ID is an error.
func TestSendSession(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	target, id, _ := sessionOver(t, transports[1], srv, h, "alice")
	other := dial(t, srv, token(t, h, "alice"))
	_, bobID, _ := sessionOver(t, transports[0], srv, h, "bob")
	ctx := context.Background()
	for _, tc := range []struct {
		name, user, session string
		nodes               int
		err                 error
	}{
		{"session", "alice", id, 1, nil},
		{"tab form", "alice", id + ".t1", 1, nil},
		{"unknown", "alice", "0NOSUCH1", 0, nil},
		{"another user's", "alice", bobID, 0, nil},
		{"malformed", "alice", "a b", 0, notify.ErrInvalidSession},
		{"empty", "alice", "", 0, notify.ErrInvalidSession},
		{"no user", "", id, 0, notify.ErrInvalidUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := h.SendSession(ctx, tc.user, tc.session, notify.Event{Type: "refresh", ID: tc.name})
			if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) || r.Nodes != tc.nodes || r.Stored {
				t.Fatalf("SendSession = %+v, %v; want %d nodes, error %v", r, err, tc.nodes, tc.err)
			}
			if tc.nodes == 1 {
				m := expectEvent(t, target, "refresh", tc.name, "")
				if _, ok := m["offset"]; ok {
					t.Fatalf("event to one session %v has a position", m)
				}
			}
		})
	}
	expectMarker(t, h, target, "alice")
	expectMarker(t, h, other, "alice")
}

// TestExceptReplayToTheSameSession: a topic's history replayed to the session it left out (a
// resubscribe from an earlier position) brings the skip frame again, and to any other session
// the event without the except.
func TestExceptReplayToTheSameSession(t *testing.T) {
	t.Parallel()
	h := newHub(t, nil)
	srv := serve(t, h)
	actor, id, _ := sessionOver(t, transports[0], srv, h, "alice")
	actor.Send(map[string]any{"op": "subscribe", "topic": "news"})
	sub := expectFrame(t, actor, map[string]any{"op": "subscribed", "topic": "news"})
	start := posOf(t, sub)
	r, _ := h.Publish(context.Background(), "news", notify.Event{Type: "headline", ID: "n1", Except: id})
	expectSkip(t, actor, "n1", pos{r.Position.Epoch, r.Position.Offset}, "news")
	actor.Send(map[string]any{"op": "unsubscribe", "topic": "news"})
	expectFrame(t, actor, map[string]any{"op": "unsubscribed", "topic": "news"})
	actor.Send(map[string]any{"op": "subscribe", "topic": "news", "epoch": start.epoch, "offset": start.offset})
	expectFrame(t, actor, map[string]any{"op": "subscribed", "topic": "news", "recovered": true})
	expectSkip(t, actor, "n1", pos{r.Position.Epoch, r.Position.Offset}, "news")

	other, _, _ := sessionOver(t, transports[0], srv, h, "bob")
	other.Send(map[string]any{"op": "subscribe", "topic": "news", "epoch": start.epoch, "offset": start.offset})
	expectFrame(t, other, map[string]any{"op": "subscribed", "topic": "news", "recovered": true})
	if m := expectEvent(t, other, "headline", "n1", ""); m["topic"] != "news" {
		t.Fatalf("replayed %v", m)
	}
}
