package inboxtest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify/inbox"
)

// pushRecorder is an [inbox.Pusher] that accepts https endpoints and records the pushes.
type pushRecorder struct {
	mu   sync.Mutex // guards sent
	sent []inbox.PushMessage
}

func (p *pushRecorder) PublicKey() string { return "test-key" }

func (p *pushRecorder) CheckSubscription(s inbox.Subscription) error {
	if !strings.HasPrefix(s.Endpoint, "https://") {
		return errors.New("endpoint must be https")
	}
	return nil
}

func (p *pushRecorder) Push(m inbox.PushMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, m)
	return nil
}

func (p *pushRecorder) pushed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.sent {
		out = append(out, m.Subscription.User+":"+m.Notification.ID+"@"+m.Subscription.Endpoint[len("https://push.test/"):])
	}
	return out
}

// pushEnv returns an env whose inbox pushes to a recorder, or skips when the store keeps no
// subscriptions.
func pushEnv(t *testing.T, store inbox.Store, cfg inbox.Config) (*env, *pushRecorder) {
	t.Helper()
	if _, ok := store.(inbox.SubscriptionStore); !ok {
		t.Skipf("%T does not implement inbox.SubscriptionStore", store)
	}
	rec := &pushRecorder{}
	cfg.Push = rec
	return newEnv(t, store, cfg), rec
}

func sub(endpoint string) inbox.Subscription {
	return inbox.Subscription{Endpoint: "https://push.test/" + endpoint, P256dh: "p-" + endpoint, Auth: "a-" + endpoint}
}

// Adding: the same endpoint twice is one subscription (its keys updated); past the cap a new
// one is refused; users' subscriptions are apart; removing another user's endpoint changes
// nothing.
func testSubscriptions(t *testing.T, h Harness) {
	e, _ := pushEnv(t, h.New(t), inbox.Config{MaxSubscriptions: 3})
	ctx := context.Background()
	add := func(user string, s inbox.Subscription) (inbox.Subscription, bool) {
		t.Helper()
		got, created, err := e.ib.AddSubscription(ctx, user, s)
		if err != nil {
			t.Fatalf("AddSubscription(%s, %s): %v", user, s.Endpoint, err)
		}
		return got, created
	}
	first, created := add("alice", sub("e1"))
	if !created || first.ID == "" || first.User != "alice" || first.CreatedAt.IsZero() {
		t.Errorf("first add: %+v, created %v", first, created)
	}
	renewed := sub("e1")
	renewed.P256dh, renewed.Auth = "p-new", "a-new"
	again, created := add("alice", renewed)
	if created || again.ID != first.ID || !again.CreatedAt.Equal(first.CreatedAt) || again.P256dh != "p-new" {
		t.Errorf("same endpoint again: %+v, created %v; want %s with the new keys", again, created, first.ID)
	}
	add("alice", sub("e2"))
	add("alice", sub("e3"))
	if _, _, err := e.ib.AddSubscription(ctx, "alice", sub("e4")); !errors.Is(err, inbox.ErrTooMany) {
		t.Errorf("past the cap: %v, want ErrTooMany", err)
	}
	if _, created := add("alice", sub("e3")); created {
		t.Errorf("a known endpoint at the cap was created again")
	}
	if _, created := add("bob", sub("e1")); !created {
		t.Errorf("bob's subscription of the same endpoint was not created")
	}
	subs, err := e.ib.Subscriptions(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range subs {
		got = append(got, s.Endpoint[len("https://push.test/"):]+":"+s.P256dh+":"+s.Auth+":"+s.User)
	}
	if fmt.Sprint(got) != "[e1:p-new:a-new:alice e2:p-e2:a-e2:alice e3:p-e3:a-e3:alice]" {
		t.Errorf("alice's subscriptions, oldest first: %v", got)
	}
	if !subs[0].CreatedAt.Equal(first.CreatedAt) || subs[0].ID != first.ID {
		t.Errorf("listed %+v, want as added %+v", subs[0], first)
	}
	// bob removes alice's e2 (he has none) and his own e1: alice keeps hers.
	for _, ep := range []string{"e2", "e1", "e1"} {
		if err := e.ib.RemoveSubscription(ctx, "bob", "https://push.test/"+ep); err != nil {
			t.Errorf("bob removes %s: %v", ep, err)
		}
	}
	if subs, _ := e.ib.Subscriptions(ctx, "alice"); len(subs) != 3 {
		t.Errorf("alice has %d subscriptions after bob's removals, want 3", len(subs))
	}
	if subs, _ := e.ib.Subscriptions(ctx, "bob"); len(subs) != 0 {
		t.Errorf("bob has %d subscriptions, want 0", len(subs))
	}
	if err := e.ib.RemoveSubscription(ctx, "alice", "https://push.test/e2"); err != nil {
		t.Fatal(err)
	}
	if _, created := add("alice", sub("e4")); !created {
		t.Errorf("after a removal, a new one was not added")
	}
	status, body := e.do("alice", "POST", "/inbox/push/subscriptions", `{"endpoint":"https://push.test/e5","keys":{"p256dh":"p","auth":"a"}}`)
	if want := `{"error":"too_many","reason":"too many push subscriptions"}` + "\n"; status != 409 || body != want {
		t.Errorf("POST past the cap: %d %s, want 409 %s", status, body, want)
	}
}

// Concurrent additions: the cap holds, and one endpoint is one subscription.
func testConcurrentSubscriptions(t *testing.T, h Harness) {
	e, _ := pushEnv(t, h.New(t), inbox.Config{MaxSubscriptions: 3})
	ctx := context.Background()
	var mu sync.Mutex
	results := map[string]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			_, created, err := e.ib.AddSubscription(ctx, "alice", sub(fmt.Sprint("d", i)))
			_, createdSame, errSame := e.ib.AddSubscription(ctx, "bob", sub("same"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, inbox.ErrTooMany):
				results["too many"]++
			case err != nil:
				t.Errorf("AddSubscription: %v", err)
			case created:
				results["created"]++
			}
			if errSame != nil {
				t.Errorf("AddSubscription of the same: %v", errSame)
			} else if createdSame {
				results["same created"]++
			}
		})
	}
	wg.Wait()
	if fmt.Sprint(results) != "map[created:3 same created:1 too many:5]" {
		t.Errorf("results %v, want 3 created, 5 too many; the same endpoint created once", results)
	}
	for user, want := range map[string]int{"alice": 3, "bob": 1} {
		if subs, err := e.ib.Subscriptions(ctx, user); err != nil || len(subs) != want {
			t.Errorf("%s has %d subscriptions (%v), want %d", user, len(subs), err, want)
		}
	}
}

// Muted types: set, read back sorted, per user, cleared; a muted type is not pushed, and a
// user with a session is not pushed to.
func testMutedAndPushed(t *testing.T, h Harness) {
	e, rec := pushEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	if m, err := e.ib.MutedTypes(ctx, "alice"); err != nil || m == nil || len(m) != 0 {
		t.Errorf("MutedTypes of a new user: %#v, %v; want empty", m, err)
	}
	if m, err := e.ib.SetMutedTypes(ctx, "alice", []string{"noisy", "chatty", "noisy"}); err != nil || fmt.Sprint(m) != "[chatty noisy]" {
		t.Errorf("SetMutedTypes: %v, %v", m, err)
	}
	if m, _ := e.ib.MutedTypes(ctx, "alice"); fmt.Sprint(m) != "[chatty noisy]" {
		t.Errorf("MutedTypes: %v", m)
	}
	if m, _ := e.ib.MutedTypes(ctx, "bob"); len(m) != 0 {
		t.Errorf("bob's MutedTypes: %v", m)
	}
	for _, u := range []string{"alice", "bob"} {
		if _, _, err := e.ib.AddSubscription(ctx, u, sub(u+"-1")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.ib.AddSubscription(ctx, u, sub(u+"-2")); err != nil {
			t.Fatal(err)
		}
	}
	e.notify("alice", "n1", 0)                                                                           // pushed twice
	if _, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{ID: "n2", Type: "noisy"}); err != nil { // muted
		t.Fatal(err)
	}
	s := e.session("bob")
	if _, rep, err := e.ib.Notify(ctx, "bob", inbox.Notification{ID: "b1", Type: "t"}); err != nil || rep.Nodes != 1 {
		t.Fatalf("Notify bob, with a session: %+v, %v", rep, err)
	}
	e.notify("alice", "n1", 0) // a retry: nothing delivered, nothing pushed
	if got := fmt.Sprint(rec.pushed()); got != "[alice:n1@alice-1 alice:n1@alice-2]" {
		t.Errorf("pushed %s, want n1 to alice's two subscriptions only", got)
	}
	_ = s
	rec.mu.Lock()
	m := rec.sent[0]
	rec.mu.Unlock()
	if m.Ack == "" || m.AckURL != "/notify/inbox/push/ack" || m.Gone == nil || !m.Expires.Equal(m.Notification.CreatedAt.Add(inbox.DefaultMaxAge)) {
		t.Errorf("push message %+v", m)
	}
	// The ack marks that notification, for that user.
	if c, err := e.ib.Ack(ctx, m.Ack, inbox.OpRead); err != nil || c.Unread != 1 {
		t.Errorf("Ack: %+v, %v; want alice's n1 read (n2 unread)", c, err)
	}
	if _, err := e.ib.Ack(ctx, m.Ack, inbox.OpDelete); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("Ack with delete: %v, want ErrInvalid", err)
	}
	if _, err := e.ib.Ack(ctx, m.Ack+"x", inbox.OpRead); !errors.Is(err, inbox.ErrBadAck) {
		t.Errorf("Ack forged: %v, want ErrBadAck", err)
	}
	// Gone deletes that subscription only.
	m.Gone(ctx)
	if subs, _ := e.ib.Subscriptions(ctx, "alice"); len(subs) != 1 || subs[0].Endpoint != "https://push.test/alice-2" {
		t.Errorf("after Gone, alice's subscriptions: %+v", subs)
	}
	if m, err := e.ib.SetMutedTypes(ctx, "alice", nil); err != nil || m == nil || len(m) != 0 {
		t.Errorf("clearing: %#v, %v", m, err)
	}
	if m, _ := e.ib.MutedTypes(ctx, "alice"); len(m) != 0 {
		t.Errorf("MutedTypes after clearing: %v", m)
	}
}

// With the store down, the push endpoints answer 503 and nothing is added.
func testPushOutage(t *testing.T, h Harness) {
	if h.Outage == nil {
		t.Skip("the harness has no outage")
	}
	store, down := h.Outage(t)
	e, _ := pushEnv(t, store, inbox.Config{})
	down()
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/inbox/push/subscriptions", `{"endpoint":"https://push.test/x","keys":{"p256dh":"p","auth":"a"}}`},
		{"GET", "/inbox/push/subscriptions", ""},
		{"DELETE", "/inbox/push/subscriptions", `{"endpoint":"https://push.test/x"}`},
		{"GET", "/inbox/push/preferences", ""},
		{"PUT", "/inbox/push/preferences", `{"muted":["t"]}`},
	} {
		status, body := e.do("alice", tt.method, tt.path, tt.body)
		if status != http.StatusServiceUnavailable || !strings.HasPrefix(body, `{"error":"unavailable"`) {
			t.Errorf("%s %s with the store down: %d %s, want 503 unavailable", tt.method, tt.path, status, body)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := e.ib.AddSubscription(ctx, "alice", sub("y")); !errors.Is(err, inbox.ErrUnavailable) {
		t.Errorf("AddSubscription with the store down: %v, want ErrUnavailable", err)
	}
}
