package inbox_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// recorder is an inbox.Pusher that accepts every subscription and keeps the pushes.
type recorder struct {
	mu   sync.Mutex // guards sent
	sent []inbox.PushMessage
}

func (r *recorder) PublicKey() string                          { return "key" }
func (r *recorder) CheckSubscription(inbox.Subscription) error { return nil }
func (r *recorder) Push(m inbox.PushMessage) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, m)
	return nil
}

// FuzzAckBody: whatever a client posts to push/ack, with no token, the endpoint answers 400,
// 404 or 413, or 200 for the one ack the inbox handed out.
func FuzzAckBody(f *testing.F) {
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { hub.Shutdown(context.Background()) })
	rec := &recorder{}
	ib, err := inbox.New(hub, inbox.Config{Push: rec})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ib.Close() })
	ctx := context.Background()
	if _, _, err := ib.AddSubscription(ctx, "alice", inbox.Subscription{Endpoint: "https://push.test/a", P256dh: "p", Auth: "a"}); err != nil {
		f.Fatal(err)
	}
	if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{ID: "n1", Type: "t"}); err != nil {
		f.Fatal(err)
	}
	if len(rec.sent) != 1 {
		f.Fatalf("%d pushes, want 1", len(rec.sent))
	}
	ack := rec.sent[0].Ack
	h := ib.Handler()
	for _, s := range []string{`{"ack":"` + ack + `","op":"seen"}`, `{"ack":"` + ack[:len(ack)-1] + `","op":"read"}`,
		`{"ack":"","op":"read"}`, `{"ack":"` + ack + `","op":"delete"}`, `{`, `null`, `[]`, `{"ack":1}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/inbox/push/ack", strings.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var b struct{ Ack, Op string }
		valid := json.Unmarshal([]byte(body), &b) == nil && b.Ack == ack && (b.Op == "seen" || b.Op == "read")
		switch w.Code {
		case http.StatusOK:
			if !valid {
				t.Fatalf("body %q was accepted: %s", body, w.Body)
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
	})
}
