package notify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/gonotify/notify"
)

// A request of the page that marked an order done: the event goes to every session of the
// user but the page's own, which shows the change already. The browser client's
// connection.fetch put the page's session ID in the Notify-Session header.
func ExampleSessionFrom() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	done := func(w http.ResponseWriter, r *http.Request) {
		id, err := hub.Authenticate(r) // who asked: the header only ever leaves a session out
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		// ... mark the order done ...
		_, err = hub.Send(r.Context(), id.UserID, notify.Event{Type: "order.done", Data: map[string]int{"order": 42},
			Except: notify.SessionFrom(r)})
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
		}
	}

	tok, _ := hub.IssueToken("alice", 0)
	r := httptest.NewRequest("POST", "/orders/42/done", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set(notify.SessionHeader, "0F3K9Q2A1B7.tab-1")
	w := httptest.NewRecorder()
	done(w, r)
	fmt.Println(w.Code, notify.SessionFrom(r))
	// Output:
	// 200 0F3K9Q2A1B7.tab-1
}

// A support agent refreshes one of a user's devices: the event reaches that session only, on
// whichever node holds it.
func ExampleHub_SendSession() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())
	ctx := context.Background()

	sessions, _ := hub.Presence(ctx, "alice")
	for _, s := range sessions {
		if _, err := hub.SendSession(ctx, "alice", s.ID, notify.Event{Type: "app.reload"}); err != nil {
			fmt.Println(err)
		}
	}
	r, err := hub.SendSession(ctx, "alice", "0GONE1", notify.Event{Type: "app.reload"})
	fmt.Println(r.Nodes, err) // a session that ended is not an error
	// Output:
	// 0 <nil>
}
