package notify_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
)

func Example() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())

	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub) // GET /notify/ws and GET /notify/client.js
	// The app's own authenticated endpoint hands its user a short-lived notify token.
	mux.HandleFunc("GET /api/notify-token", func(w http.ResponseWriter, r *http.Request) {
		user := "alice" // from the app's session
		tok, err := hub.IssueToken(user, 10*time.Minute)
		if err != nil {
			http.Error(w, "cannot issue token", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "{\"token\":%q}", tok)
	})

	// Anywhere in the backend:
	if err := hub.Send("alice", notify.Event{Type: "order.shipped", Data: map[string]int{"order": 42}}); err != nil {
		log.Print(err)
	}
	// Output:
}

func ExampleHub_Publish() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	err := hub.Publish("news", notify.Event{Type: "headline", Data: "Hello"})
	fmt.Println(err)
	err = hub.Publish("no spaces allowed", notify.Event{Type: "headline"})
	fmt.Println(errors.Is(err, notify.ErrInvalidTopic))
	// Output:
	// <nil>
	// true
}

func ExampleSend() {
	// With no default hub, the package-level functions return an error; they never panic.
	fmt.Println(notify.Send("alice", notify.Event{Type: "hello"}))

	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())
	notify.SetDefault(hub)
	defer notify.SetDefault(nil)
	fmt.Println(notify.Send("alice", notify.Event{Type: "hello"}))
	// Output:
	// notify: no default hub (call notify.SetDefault)
	// <nil>
}

func ExampleNew_configError() {
	_, err := notify.New(notify.Config{}) // no key: every connection must be authenticated
	fmt.Println(err)
	fmt.Println(errors.Is(err, notify.ErrConfig))
	// Output:
	// notify: invalid config: set exactly one of Secret, PublicKey and Keyfunc
	// true
}

func ExampleHub_IssueToken() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	// A token for alice, valid 10 minutes, granting the topic "news" and every "orders.*" topic.
	tok, _ := hub.IssueToken("alice", 10*time.Minute, "news", "orders.*")
	id, err := hub.Verify(tok)
	fmt.Println(id.UserID, id.Topics, err)
	// Output:
	// alice [news orders.*] <nil>
}

func ExampleConfig_authorize() {
	hub, err := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		// Topics the token does not grant: users may follow their own team's topic.
		Authorize: func(ctx context.Context, userID, topic string) error {
			if topic == "team."+teamOf(userID) {
				return nil
			}
			return errors.New("not your team")
		},
		AllowedOrigins: []string{"https://app.example.com"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	fmt.Println(hub.Stats().Sessions)
	// Output:
	// 0
}

func teamOf(string) string { return "red" }
