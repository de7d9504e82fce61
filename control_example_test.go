package notify_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/gonotify/notify"
)

// sendEmail stands for the application's own e-mail sender.
func sendEmail(user, subject string) { fmt.Printf("e-mail to %s: %s\n", user, subject) }

// The README's delivery report: an event for a user who has no session anywhere in the
// cluster goes by e-mail as well (it also waits in the user's history for a reconnect).
func ExampleHub_Send_report() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())
	ctx := context.Background()

	r, err := hub.Send(ctx, "alice", notify.Event{Type: "order.shipped", Data: map[string]int{"order": 42}})
	if err != nil {
		log.Print(err) // the broker did not take it: retry, or fall back
	}
	if r.Nodes == 0 { // no node holds a session of alice
		sendEmail("alice", "Your order has shipped")
	}
	fmt.Println(r.Position.Offset, r.Stored, r.Nodes)
	// Output:
	// e-mail to alice: Your order has shipped
	// 1 true 0
}

// The README's presence: who is connected, on every node sharing the broker, and the hooks of
// a user's first and last session anywhere.
func ExampleHub_Presence() {
	hub, _ := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		// Once per user and cluster, on the node where it happened.
		OnOnline:  func(userID string) { log.Printf("%s came online", userID) },
		OnOffline: func(userID string) { log.Printf("%s went offline", userID) },
	})
	defer hub.Shutdown(context.Background())

	sessions, err := hub.Presence(context.Background(), "alice")
	if err != nil {
		log.Fatal(err) // Redis unreachable
	}
	for _, s := range sessions {
		fmt.Println(s.ID, s.Node, s.ConnectedAt.Format(time.RFC3339))
	}
	fmt.Println("alice online:", len(sessions) > 0)
	// Output:
	// alice online: false
}

// The README's "sign out everywhere": every session of the user closes with 4001 on every
// node, and the tokens issued until now are refused at connect and at refresh. A user with
// no session is not an error.
func ExampleHub_Disconnect() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/signout-everywhere", func(w http.ResponseWriter, r *http.Request) {
		err := hub.Disconnect(r.Context(), currentUser(r), notify.DisconnectOptions{RefuseBefore: time.Now()})
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable) // Redis unreachable
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})

	err := hub.Disconnect(context.Background(), "bob", notify.DisconnectOptions{RefuseBefore: time.Now()})
	fmt.Println(err)
	// Output:
	// <nil>
}

// The README's server-side subscriptions: topics the application grants on every connect,
// and a subscription of a user's live sessions on every node.
func ExampleConfig_subscriptions() {
	hub, _ := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		// Run on every connect: the user's teams, from the application's database.
		Subscriptions: func(ctx context.Context, id notify.Identity) ([]string, error) {
			return []string{"team." + teamOf(id.UserID)}, nil
		},
	})
	defer hub.Shutdown(context.Background())

	// alice joins the blue team: her open tabs follow it at once, on every node.
	fmt.Println(hub.Subscribe(context.Background(), "alice", "team.blue"))
	fmt.Println(hub.Subscribe(context.Background(), "alice", "no spaces allowed") != nil)
	// Output:
	// <nil>
	// true
}
