package redisbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/internal/wstest"
)

// TestClusterControl: on Redis Cluster a user's presence and refusal keys are in the slot of
// the user's stream, and presence, Disconnect and the delivery report work across two nodes.
func TestClusterControl(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0, 0)
	ctx := context.Background()
	p := prefix(t)
	a, b := c.newNode(t, p, nil), c.newNode(t, p, nil)
	for _, user := range []string{"alice", "}", "a{b}c"} {
		_, ch := a.broker.Names(notify.UserStream(user))
		want := c.probe.ClusterKeySlot(ctx, ch).Val()
		for _, k := range a.broker.PresenceNames(user) {
			if got := c.probe.ClusterKeySlot(ctx, k).Val(); got != want {
				t.Errorf("user %q: key %q in slot %d, the stream's channel in %d", user, k, got, want)
			}
		}
	}

	c1, _ := a.dial(t, "alice", nil)
	c2, _ := b.dial(t, "alice", nil)
	for _, n := range []*node{a, b} {
		n.dial(t, "bob", nil) // users on other shards, most likely: one pipeline for all
		n.dial(t, "carol", nil)
		if err := n.broker.RefreshPresence(); err != nil {
			t.Fatalf("presence upkeep: %v", err)
		}
	}
	s, err := b.hub.Presence(ctx, "alice")
	if err != nil || len(s) != 2 {
		t.Fatalf("Presence = %+v, %v; want two sessions", s, err)
	}
	r, err := b.hub.Send(ctx, "alice", notify.Event{Type: "x"})
	if err != nil || r.Nodes != 2 || !r.Stored {
		t.Fatalf("report: %+v, %v", r, err)
	}
	expect(t, c1, "x", nil)
	expect(t, c2, "x", nil)
	if err := a.hub.Disconnect(ctx, "alice", notify.DisconnectOptions{RefuseBefore: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{c1, c2} {
		if code := c.CloseCode(); code != int(notify.CloseSignedOut) {
			t.Fatalf("close %d, want 4001", code)
		}
	}
	if before, err := b.hub.RefusedBefore(ctx, "alice"); err != nil || before.IsZero() {
		t.Fatalf("RefusedBefore on node b = %v, %v", before, err)
	}
}
