package pginbox_test

import (
	"context"
	"log"
	"os"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/inbox"
)

// The README's inbox in PostgreSQL: the store creates or migrates its tables on start.
func Example() {
	ctx := context.Background()
	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(ctx)

	store, err := pginbox.New(ctx, pginbox.Options{URL: os.Getenv("DATABASE_URL")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	ib, err := inbox.New(hub, inbox.Config{Store: store})
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()
}
