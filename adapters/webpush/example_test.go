package webpush_test

import (
	"context"
	"log"
	"net/http"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
)

// An inbox that pushes to the users with no open tab. The VAPID keys are generated here for
// the example; an application generates them once and keeps them with its secrets.
func Example() {
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		log.Fatal(err)
	}
	sender, err := webpush.New(webpush.Config{
		PublicKey: pub, PrivateKey: priv, Subject: "mailto:ops@example.com",
		Display: func(n inbox.Notification) webpush.Display {
			if n.Type == "order.shipped" {
				return webpush.Display{Title: "Your order shipped", URL: "/orders", Icon: "/icon-192.png"}
			}
			return webpush.DefaultDisplay(n)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer sender.Close(context.Background())
	hub, err := notify.New(notify.Config{Secret: []byte("a secret of at least 32 bytes....")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ib, err := inbox.New(hub, inbox.Config{Push: sender}) // the default PublicPath: /notify/inbox/
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()
	mux := http.NewServeMux()
	mux.Handle("/notify/ws", hub)
	mux.Handle("/notify/inbox/", ib.Handler()) // with push/key, push/subscriptions, push/ack...
	_ = mux
	// Output:
}
