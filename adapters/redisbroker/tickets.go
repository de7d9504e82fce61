package redisbroker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
)

// Tickets is a [notify.TicketStore] on Redis, shared by every node on it: a ticket one node
// hands out opens a stream on any other, once (GETDEL takes it in one step). Pass it in
// notify.Config.Tickets.
func (b *Broker) Tickets() notify.TicketStore { return tickets{b} }

type tickets struct{ b *Broker }

func (t tickets) key(k string) string { return t.b.pres.names.prefix + ":" + k }

func (t tickets) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := t.b.client.Set(ctx, t.key(key), value, ttl).Err(); err != nil {
		return fmt.Errorf("redisbroker: put ticket: %w", err)
	}
	return nil
}

func (t tickets) Take(ctx context.Context, key string) ([]byte, bool, error) {
	v, err := t.b.client.GetDel(ctx, t.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redisbroker: take ticket: %w", err)
	}
	return v, true, nil
}
