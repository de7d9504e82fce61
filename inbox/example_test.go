package inbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/inbox"
)

// The README's inbox: the hub, its inbox beside the socket, and a notification stored and
// delivered in one call.
func Example() {
	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	ib, err := inbox.New(hub, inbox.Config{}) // in memory; pginbox.New(...) for PostgreSQL
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()

	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)     // GET /notify/ws and GET /notify/client.js
	nethttp.MountInbox(mux, "/notify", ib) // /notify/inbox/...: the browser's client.inbox, same token
	// With Echo: echonotify.MountInbox(e.Group("/notify"), ib)

	// Stored in alice's inbox and delivered live to each of her tabs and devices. A retry with
	// the same ID stores and delivers nothing more.
	ctx := context.Background()
	_, _, err = ib.Notify(ctx, "alice", inbox.Notification{
		ID:   "order-42-shipped",
		Type: "order.shipped",
		Data: map[string]any{"order": 42}, // any value encoding/json marshals, as an Event's Data
	})
	if err != nil {
		log.Print(err) // errors.Is(err, inbox.ErrUnavailable): the store is down, nothing was delivered
	}

	srv := &http.Server{Addr: ":8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// Reading and changing an inbox from Go: every change reaches the user's sessions live, with
// the new counts.
func ExampleInbox_MarkRead() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ib, err := inbox.New(hub, inbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{ID: id, Type: "comment"}); err != nil {
			log.Fatal(err)
		}
	}

	counts, err := ib.MarkRead(ctx, "alice", "a", "b")
	fmt.Printf("%+v %v\n", counts, err)
	counts, err = ib.MarkRead(ctx, "alice", "a") // again: nothing changes
	fmt.Printf("%+v %v\n", counts, err)
	_, err = ib.MarkRead(ctx, "bob", "a") // not bob's
	fmt.Println(err)
	page, err := ib.List(ctx, "alice", inbox.Query{Unread: true})
	fmt.Println(len(page.Items), page.Items[0].ID, err)
	// Output:
	// {Unread:1 Unseen:3 Total:3} <nil>
	// {Unread:1 Unseen:3 Total:3} <nil>
	// notify: notification not found
	// 1 c <nil>
}

// A notification's Data goes in as any value and comes back, from List as from Notify, as the
// JSON it was stored as: unmarshal it into the type that went in.
func ExampleNotification_data() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ib, err := inbox.New(hub, inbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()
	type shipped struct {
		Order   int    `json:"order"`
		Carrier string `json:"carrier"`
	}
	ctx := context.Background()
	if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{Type: "order.shipped", Data: shipped{42, "UPS"}}); err != nil {
		log.Fatal(err)
	}

	page, err := ib.List(ctx, "alice", inbox.Query{})
	if err != nil {
		log.Fatal(err)
	}
	raw := page.Items[0].Data.(json.RawMessage)
	var got shipped
	err = json.Unmarshal(raw, &got)
	fmt.Printf("%s %+v %v\n", raw, got, err)
	// Output: {"order":42,"carrier":"UPS"} {Order:42 Carrier:UPS} <nil>
}
