package redisbroker_test

import (
	"context"
	"log"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
)

// Each process of the application creates its hub on the same Redis.
func Example() {
	broker, err := redisbroker.New(redisbroker.Options{URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		log.Fatal(err)
	}
	hub, err := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		Broker: broker, // the hub starts it, and closes it on Shutdown
	})
	if err != nil {
		log.Fatal(err) // for example, Redis is unreachable
	}
	defer hub.Shutdown(context.Background())

	// Reaches alice's sessions on every process, and waits in her history for a session that
	// reconnects within the history's TTL.
	if err := hub.Send("alice", notify.Event{Type: "order.shipped", Data: map[string]int{"order": 42}}); err != nil {
		log.Print(err) // Redis is down: this process's own sessions still got it
	}
}
