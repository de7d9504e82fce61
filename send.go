package notify

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// Send delivers ev to every session of the user. See [Hub.SendContext].
func (h *Hub) Send(userID string, ev Event) error {
	return h.SendContext(context.Background(), userID, ev)
}

// SendContext delivers ev to every session of the user: each tab and device, on every hub
// sharing the broker. The event is encoded once; on each hub the cost grows with the user's
// sessions there only. It never waits for a client: a session that cannot keep up is closed
// as a slow consumer. Sending to a user with no session is not an error: the event waits in
// the user's history for a session that reconnects.
func (h *Hub) SendContext(ctx context.Context, userID string, ev Event) error {
	h.stats.sends.Add(1)
	if userID == "" {
		return ErrInvalidUser
	}
	return h.publish(ctx, wire.UserStream(userID), ev, "", ev.Ephemeral)
}

// Publish delivers ev to every session subscribed to topic. See [Hub.PublishContext].
func (h *Hub) Publish(topic string, ev Event) error {
	return h.PublishContext(context.Background(), topic, ev)
}

// PublishContext delivers ev to every session subscribed to topic, on every hub sharing the
// broker; the event frame carries the topic. On each hub the cost grows with the topic's
// subscribers there only.
func (h *Hub) PublishContext(ctx context.Context, topic string, ev Event) error {
	h.stats.publishes.Add(1)
	if err := validTopic(topic); err != nil {
		return err
	}
	return h.publish(ctx, wire.TopicStream(topic), ev, topic, ev.Ephemeral)
}

// Broadcast delivers ev to every session. See [Hub.BroadcastContext].
func (h *Hub) Broadcast(ev Event) error {
	return h.BroadcastContext(context.Background(), ev)
}

// BroadcastContext delivers ev to every session of every hub sharing the broker. Broadcasts
// have no history: a session that was offline does not get them on recovery.
func (h *Hub) BroadcastContext(ctx context.Context, ev Event) error {
	h.stats.broadcasts.Add(1)
	return h.publish(ctx, wire.Broadcast, ev, "", true)
}

// publish encodes ev and hands it to the broker. When the broker fails, the hub's own
// sessions still get the event (without a position) and the error is returned.
func (h *Hub) publish(ctx context.Context, stream string, ev Event, topic string, ephemeral bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("notify: send: %w", err)
	}
	if h.closed.Load() {
		return ErrClosed
	}
	// The clock is read once for both the duration and the event's default time.
	start := time.Now()
	defer func() { h.stats.observeSend(time.Since(start)) }()
	if ev.Time.IsZero() {
		ev.Time = start.UTC()
	}
	e := getEncoder()
	defer e.release()
	payload, err := e.encode(ev, topic)
	if err != nil {
		return err
	}
	if err := h.broker.Publish(ctx, stream, payload, ephemeral); err != nil {
		h.stats.brokerErrors.Add(1)
		h.deliver(Message{Stream: stream, Payload: bytes.Clone(payload)})
		return fmt.Errorf("notify: broker: %w", err)
	}
	return nil
}

var defaultHub atomic.Pointer[Hub]

// SetDefault makes h the hub of the package-level Send, Publish and Broadcast. nil unsets it.
func SetDefault(h *Hub) { defaultHub.Store(h) }

func getDefault() (*Hub, error) {
	h := defaultHub.Load()
	if h == nil {
		return nil, ErrNoDefaultHub
	}
	return h, nil
}

// Send delivers ev to every session of the user on the default hub ([SetDefault]). It returns
// [ErrNoDefaultHub] when there is none.
func Send(userID string, ev Event) error { return SendContext(context.Background(), userID, ev) }

// SendContext is [Send] with a context.
func SendContext(ctx context.Context, userID string, ev Event) error {
	h, err := getDefault()
	if err != nil {
		return err
	}
	return h.SendContext(ctx, userID, ev)
}

// Publish delivers ev to the topic's subscribers on the default hub.
func Publish(topic string, ev Event) error {
	return PublishContext(context.Background(), topic, ev)
}

// PublishContext is [Publish] with a context.
func PublishContext(ctx context.Context, topic string, ev Event) error {
	h, err := getDefault()
	if err != nil {
		return err
	}
	return h.PublishContext(ctx, topic, ev)
}

// Broadcast delivers ev to every session of the default hub.
func Broadcast(ev Event) error { return BroadcastContext(context.Background(), ev) }

// BroadcastContext is [Broadcast] with a context.
func BroadcastContext(ctx context.Context, ev Event) error {
	h, err := getDefault()
	if err != nil {
		return err
	}
	return h.BroadcastContext(ctx, ev)
}
