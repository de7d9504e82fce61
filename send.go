package notify

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Send delivers ev to every session of the user: each tab and device, on every hub sharing the
// broker. The event is encoded once; on each hub the cost grows with the user's sessions there
// only. It never waits for a client: a session that cannot keep up is closed as a slow
// consumer. Sending to a user with no session is not an error: the event waits in the user's
// history for a session that reconnects, and the Report's Nodes is 0 (to fall back to e-mail,
// for example).
//
// When the broker fails, this hub's own sessions still get the event (without a position, so
// not recoverable) and the error is returned.
func (h *Hub) Send(ctx context.Context, userID string, ev Event) (Report, error) {
	h.stats.sends.Add(1)
	if userID == "" {
		return Report{}, ErrInvalidUser
	}
	return h.publish(ctx, UserStream(userID), ev, "", ev.Ephemeral)
}

// Publish delivers ev to every session subscribed to topic, on every hub sharing the broker;
// the event frame carries the topic. On each hub the cost grows with the topic's subscribers
// there only. Errors as [Hub.Send].
func (h *Hub) Publish(ctx context.Context, topic string, ev Event) (Report, error) {
	h.stats.publishes.Add(1)
	if err := validTopic(topic); err != nil {
		return Report{}, err
	}
	return h.publish(ctx, TopicStream(topic), ev, topic, ev.Ephemeral)
}

// Broadcast delivers ev to every session of every hub sharing the broker. Broadcasts have no
// history: a session that was offline does not get them on recovery. Errors as [Hub.Send].
func (h *Hub) Broadcast(ctx context.Context, ev Event) (Report, error) {
	h.stats.broadcasts.Add(1)
	return h.publish(ctx, BroadcastStream, ev, "", true)
}

// publish encodes ev and hands it to the broker: the one path of every send but
// SendSession's, which shares its start (begin).
func (h *Hub) publish(ctx context.Context, stream string, ev Event, topic string, ephemeral bool) (Report, error) {
	sn, payload, err := h.begin(ctx, ev, topic)
	if err != nil {
		return Report{}, err
	}
	defer sn.end()
	r, err := h.broker.Publish(ctx, stream, payload, ephemeral)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		h.deliver(Message{Stream: stream, Payload: bytes.Clone(payload)})
		return Report{}, fmt.Errorf("notify: broker: %w", err)
	}
	return r, nil
}

// sending is a send under way, from begin to end: the encoder that holds its payload and the
// time it started (a value: a send allocates nothing for it).
type sending struct {
	h     *Hub
	e     *encoder
	start time.Time
}

// begin starts a send: it checks ctx and the hub, gives the event its default time and encodes
// it, once for every recipient. The payload is valid until end, which records the send's
// duration and recycles the encoder; on an error there is nothing to end.
func (h *Hub) begin(ctx context.Context, ev Event, topic string) (sending, []byte, error) {
	if err := ctx.Err(); err != nil {
		return sending{}, nil, fmt.Errorf("notify: send: %w", err)
	}
	if h.closed.Load() {
		return sending{}, nil, ErrClosed
	}
	// The clock is read once for both the duration and the event's default time.
	sn := sending{h: h, e: getEncoder(), start: time.Now()}
	if ev.Time.IsZero() {
		ev.Time = sn.start.UTC()
	}
	payload, err := sn.e.encode(ev, topic)
	if err != nil {
		sn.end()
		return sending{}, nil, err
	}
	return sn, payload, nil
}

func (sn sending) end() {
	sn.h.stats.observeSend(time.Since(sn.start))
	sn.e.recycle()
}

var defaultHub atomic.Pointer[Hub]

// SetDefault makes h the hub of the package-level [Send], [Publish] and [Broadcast]. nil unsets
// it.
func SetDefault(h *Hub) { defaultHub.Store(h) }

// The package-level sends are the short forms of the default hub's: no context (they use
// context.Background) and no report. A caller that needs either calls the hub's method.

// Send delivers ev to every session of the user through the default hub ([SetDefault]), as
// [Hub.Send] does. It returns [ErrNoDefaultHub] when there is none.
func Send(userID string, ev Event) error {
	return withDefault(func(h *Hub) (Report, error) { return h.Send(context.Background(), userID, ev) })
}

// Publish delivers ev to the topic's subscribers through the default hub, as [Hub.Publish]
// does.
func Publish(topic string, ev Event) error {
	return withDefault(func(h *Hub) (Report, error) { return h.Publish(context.Background(), topic, ev) })
}

// Broadcast delivers ev to every session through the default hub, as [Hub.Broadcast] does.
func Broadcast(ev Event) error {
	return withDefault(func(h *Hub) (Report, error) { return h.Broadcast(context.Background(), ev) })
}

func withDefault(send func(*Hub) (Report, error)) error {
	h := defaultHub.Load()
	if h == nil {
		return ErrNoDefaultHub
	}
	_, err := send(h)
	return err
}
