package notify

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Send delivers ev to every session of the user. See [Hub.SendContext].
func (h *Hub) Send(userID string, ev Event) error {
	return h.SendContext(context.Background(), userID, ev)
}

// SendContext delivers ev to every session of the user: each tab and device. The event is
// encoded once; the cost grows with the user's sessions only. It never waits for a client: a
// session that cannot keep up is closed as a slow consumer. Sending to a user with no session
// is not an error.
func (h *Hub) SendContext(ctx context.Context, userID string, ev Event) error {
	if userID == "" {
		return ErrInvalidUser
	}
	frame, err := h.prepare(ctx, ev, "")
	if err != nil {
		return err
	}
	h.mu.RLock()
	for c := range h.users[userID] {
		c.enqueue(frame)
	}
	h.mu.RUnlock()
	return nil
}

// Publish delivers ev to every session subscribed to topic. See [Hub.PublishContext].
func (h *Hub) Publish(topic string, ev Event) error {
	return h.PublishContext(context.Background(), topic, ev)
}

// PublishContext delivers ev to every session subscribed to topic; the event frame carries
// the topic. The cost grows with the topic's subscribers only.
func (h *Hub) PublishContext(ctx context.Context, topic string, ev Event) error {
	if err := validTopic(topic); err != nil {
		return err
	}
	frame, err := h.prepare(ctx, ev, topic)
	if err != nil {
		return err
	}
	h.mu.RLock()
	for c := range h.topics[topic] {
		c.enqueue(frame)
	}
	h.mu.RUnlock()
	return nil
}

// Broadcast delivers ev to every session. See [Hub.BroadcastContext].
func (h *Hub) Broadcast(ev Event) error {
	return h.BroadcastContext(context.Background(), ev)
}

// BroadcastContext delivers ev to every session of the hub.
func (h *Hub) BroadcastContext(ctx context.Context, ev Event) error {
	frame, err := h.prepare(ctx, ev, "")
	if err != nil {
		return err
	}
	h.mu.RLock()
	for c := range h.conns {
		c.enqueue(frame)
	}
	h.mu.RUnlock()
	return nil
}

func (h *Hub) prepare(ctx context.Context, ev Event, topic string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("notify: send: %w", err)
	}
	h.life.Lock()
	closed := h.closed
	h.life.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return encode(ev, topic)
}

// Subscribe subscribes every current session of the user to topic, without authorization
// checks: the server is trusted. Each session is told with a "subscribed" frame. Sessions the
// user opens later are not subscribed.
func (h *Hub) Subscribe(userID, topic string) error {
	return h.serverSubscription(userID, topic, true)
}

// Unsubscribe ends the user's current sessions' subscriptions to topic.
func (h *Hub) Unsubscribe(userID, topic string) error {
	return h.serverSubscription(userID, topic, false)
}

func (h *Hub) serverSubscription(userID, topic string, on bool) error {
	if userID == "" {
		return ErrInvalidUser
	}
	if err := validTopic(topic); err != nil {
		return err
	}
	op := "unsubscribed"
	if on {
		op = "subscribed"
	}
	frame := control{Op: op, Topic: topic}.frame()
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.users[userID] {
		_, had := c.topics[topic]
		switch {
		case on && !had:
			h.indexTopic(c, topic)
		case !on && had:
			delete(c.topics, topic)
			h.unindexTopic(c, topic)
		default:
			continue
		}
		c.enqueue(frame)
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
