package redisbroker_test

import (
	"context"
	"log"
	"os"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
)

// The README's snippet for several nodes: each process of the application creates its hub on
// the same Redis, with the same secret. A Send on any of them reaches the user's sessions on
// all of them.
func Example() {
	broker, err := redisbroker.New(redisbroker.Config{URL: "redis://127.0.0.1:6379"})
	if err != nil {
		log.Fatal(err)
	}
	hub, err := notify.New(notify.Config{
		Secret:   []byte(os.Getenv("NOTIFY_SECRET")), // the same on every node
		Broker:   broker,                             // the hub starts it, and closes it on Shutdown
		Presence: broker,                             // sessions and sign-outs, for the cluster
	})
	if err != nil {
		log.Fatal(err) // for example, Redis is unreachable
	}
	defer hub.Shutdown(context.Background())
}

// The README's snippet for Redis Cluster: with a cluster client the broker uses sharded
// pub/sub (Redis 7 or later), and a send is one shard's work.
func Example_cluster() {
	broker, err := redisbroker.New(redisbroker.Config{
		Client: redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: []string{"10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"},
		}),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = broker // in notify.Config.Broker, as in Example
}
