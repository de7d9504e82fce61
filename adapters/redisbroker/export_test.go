package redisbroker

import (
	"context"

	"github.com/gonotify/notify"
)

// Names returns a stream's keys and channel, for the tests that check their cluster slots.
func (b *Broker) Names(stream string) (keys []string, channel string) {
	return b.pub.names.keys(stream), b.pub.names.channel(stream)
}

// PublishPosition is the publisher's publish, for the tests of what it returns.
func (b *Broker) PublishPosition(ctx context.Context, stream string, payload []byte, ephemeral bool) (notify.Position, int, error) {
	return b.pub.publish(ctx, stream, payload, ephemeral)
}
