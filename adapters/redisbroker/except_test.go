package redisbroker_test

import (
	"context"
	"testing"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// TestExceptAcrossNodes: the except travels inside what Redis carries, and each node leaves
// out its own session: the session left out, on the other node, gets the skip frame with the
// event's position and ID; every other session, on both nodes, gets the event without the
// except; the history keeps the event, and a replay to a new session brings it in full.
func TestExceptAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	actor, w := a.dial(t, "alice", nil)
	actorID, start := w["session"].(string), position(t, w)
	other, _ := b.dial(t, "alice", nil)
	shared, w2 := b.dial(t, "alice", nil)
	sharedID := w2["session"].(string)
	ctx := context.Background()

	r, err := b.hub.Send(ctx, "alice", notify.Event{Type: "done", ID: "e1", Except: actorID})
	if err != nil || r.Nodes != 2 {
		t.Fatalf("Send = %+v, %v; want 2 nodes", r, err)
	}
	if m := actor.NextNonPing(); m["op"] != "skip" || m["id"] != "e1" || position(t, m) != r.Position {
		t.Fatalf("actor got %v, want a skip at %v", m, r.Position)
	}
	for _, c := range []*wstest.Client{other, shared} {
		if m := expect(t, c, "done", nil); m["id"] != "e1" || m["except"] != nil {
			t.Fatalf("got %v, want e1 without except", m)
		}
	}
	// A tab of a session on node b, left out by a send on node a.
	a.hub.Send(ctx, "alice", notify.Event{Type: "done", ID: "e2", Except: sharedID + ".tab1"})
	if m := expect(t, shared, "done", nil); m["id"] != "e2" || m["except"] != "tab1" {
		t.Fatalf("shared session got %v, want e2 naming tab1", m)
	}
	for _, c := range []*wstest.Client{actor, other} {
		if m := expect(t, c, "done", nil); m["id"] != "e2" || m["except"] != nil {
			t.Fatalf("got %v, want e2 without except", m)
		}
	}
	// An except of another user's session, and of none, changes nothing.
	bob, wb := b.dial(t, "bob", nil)
	a.hub.Send(ctx, "alice", notify.Event{Type: "done", ID: "e3", Except: wb["session"].(string)})
	for _, c := range []*wstest.Client{actor, other, shared} {
		if m := expect(t, c, "done", nil); m["id"] != "e3" || m["except"] != nil {
			t.Fatalf("got %v, want e3", m)
		}
	}
	a.hub.Send(ctx, "bob", notify.Event{Type: "marker"})
	expect(t, bob, "marker", nil)

	// The history kept e1: a new session recovering from before it gets it in full.
	again, w3 := a.dial(t, "alice", &start)
	if w3["recovered"] != true {
		t.Fatalf("welcome %v, want recovered", w3)
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		if m := expect(t, again, "done", nil); m["id"] != id || m["except"] != nil {
			t.Fatalf("replay got %v, want %s without except", m, id)
		}
	}

	// A topic: the session left out is on node b, the send on node a.
	for _, c := range []*wstest.Client{actor, shared} {
		c.Send(map[string]any{"op": "subscribe", "topic": "news"})
		if m := c.NextNonPing(); m["op"] != "subscribed" {
			t.Fatalf("got %v", m)
		}
	}
	pr, err := a.hub.Publish(ctx, "news", notify.Event{Type: "headline", ID: "n1", Except: sharedID})
	if err != nil {
		t.Fatal(err)
	}
	if m := shared.NextNonPing(); m["op"] != "skip" || m["topic"] != "news" || position(t, m) != pr.Position {
		t.Fatalf("shared got %v, want a skip of news at %v", m, pr.Position)
	}
	if m := expect(t, actor, "headline", nil); m["id"] != "n1" || m["except"] != nil {
		t.Fatalf("actor got %v", m)
	}
}

// TestSendSessionAcrossNodes: a send to one session reaches it on the node holding it, and no
// other session; an unknown session reaches nobody.
func TestSendSessionAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	target, w := b.dial(t, "alice", nil)
	local, _ := a.dial(t, "alice", nil)
	sibling, _ := b.dial(t, "alice", nil)
	ctx := context.Background()
	r, err := a.hub.SendSession(ctx, "alice", w["session"].(string), notify.Event{Type: "refresh", ID: "r1"})
	if err != nil || r.Nodes != 1 {
		t.Fatalf("SendSession = %+v, %v; want 1 node", r, err)
	}
	if m := expect(t, target, "refresh", nil); m["id"] != "r1" || m["offset"] != nil {
		t.Fatalf("got %v, want r1 without a position", m)
	}
	for _, id := range []string{"0NOSUCH1", w["session"].(string) + "0"} {
		if r, err := a.hub.SendSession(ctx, "alice", id, notify.Event{Type: "refresh"}); err != nil || r.Nodes != 0 {
			t.Fatalf("SendSession(%q) = %+v, %v; want nobody reached", id, r, err)
		}
	}
	if r, err := a.hub.SendSession(ctx, "bob", w["session"].(string), notify.Event{Type: "refresh"}); err != nil || r.Nodes != 0 {
		t.Fatalf("SendSession to another user's session = %+v, %v; want nobody reached", r, err)
	}
	a.hub.Send(ctx, "alice", notify.Event{Type: "marker"})
	for _, c := range []*wstest.Client{target, local, sibling} {
		expect(t, c, "marker", nil)
	}
}
