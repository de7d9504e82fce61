package main

import (
	"context"
	"log"
	"net/http"
	"sync/atomic"

	"github.com/centrifugal/centrifuge"
	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/adapters/redisbroker"

	"github.com/gonotify/notify/bench/internal/payload"
)

// History bounds of the Redis variants: notify's defaults (notify.DefaultHistorySize events
// for notify.DefaultHistoryTTL), which the per-user publications of centrifuge-redis,
// centrifuge-redis-full and centrifuge-history are given too.
var (
	historySize = notify.DefaultHistorySize
	historyTTL  = notify.DefaultHistoryTTL
)

// newNotifyRedis is notify as newNotify sets it up, with adapters/redisbroker on the Redis at
// url and the broker's default options (history: historySize events for historyTTL). The
// broker is given a client made from the URL exactly as redisbroker.New would make it, with a
// hook that counts the round trips and commands it sends (/bench/stats), as the adapter's own
// BenchmarkSendEndToEnd does.
func newNotifyRedis(url string) (*notifyVariant, *redisCounter) {
	o, err := redis.ParseURL(url)
	if err != nil {
		log.Fatal(err)
	}
	client := redis.NewClient(o)
	counter := &redisCounter{}
	client.AddHook(counter)
	broker, err := redisbroker.New(redisbroker.Config{Client: client})
	if err != nil {
		log.Fatal(err)
	}
	hub, err := notify.New(notify.Config{Secret: payload.Secret, Broker: broker, Presence: broker})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "", hub)
	return &notifyVariant{hub: hub, mux: mux}, counter
}

// redisCounter is a go-redis hook: a command alone is one round trip, a pipeline is one round
// trip for all its commands.
type redisCounter struct {
	trips, cmds atomic.Uint64
}

func (c *redisCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *redisCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(1)
		return next(ctx, cmd)
	}
}

func (c *redisCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.trips.Add(1)
		c.cmds.Add(uint64(len(cmds)))
		return next(ctx, cmds)
	}
}

// newCentrifugeRedis is centrifuge as newCentrifuge sets it up, with its RedisBroker (one
// RedisShard on url, default configuration: history in Redis streams) instead of the in-memory
// broker. The presence manager stays centrifuge's default in-memory one, which nothing uses: no
// channel has presence on. Per-user publications keep a history of historySize for historyTTL,
// as notify's sends do; broadcasts keep none, as notify's do not.
func newCentrifugeRedis(url string) *centrifugeVariant {
	return newCentrifugeRedisWith(url, false)
}

// newCentrifugeRedisFull (centrifuge-redis-full) is centrifuge-redis doing at connect the work
// notify-redis does: its RedisPresenceManager on the same shard (default configuration), and the
// personal channel subscribed with presence (EmitPresence: the session's entry written to Redis
// at subscribe and refreshed), positioning and recovery (the stream's position read from Redis
// at subscribe, publications' offsets tracked), as notify-redis's connect writes the session's
// presence and reads the stream's position.
func newCentrifugeRedisFull(url string) *centrifugeVariant {
	return newCentrifugeRedisWith(url, true)
}

func newCentrifugeRedisWith(url string, full bool) *centrifugeVariant {
	var personal centrifuge.SubscribeOptions
	if full {
		personal = centrifuge.SubscribeOptions{EmitPresence: true, EnablePositioning: true, EnableRecovery: true}
	}
	v := newCentrifugeWith(func(node *centrifuge.Node) {
		shard, err := centrifuge.NewRedisShard(node, centrifuge.RedisShardConfig{Address: url})
		if err != nil {
			log.Fatal(err)
		}
		shards := []*centrifuge.RedisShard{shard}
		broker, err := centrifuge.NewRedisBroker(node, centrifuge.RedisBrokerConfig{Shards: shards})
		if err != nil {
			log.Fatal(err)
		}
		node.SetBroker(broker)
		if full {
			pm, err := centrifuge.NewRedisPresenceManager(node, centrifuge.RedisPresenceManagerConfig{Shards: shards})
			if err != nil {
				log.Fatal(err)
			}
			node.SetPresenceManager(pm)
		}
	}, personal, centrifuge.WithHistory(historySize, historyTTL))
	v.onRedis = true
	return v
}
