package notify

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// Report is what [Hub.SendReport] knows of an event once the broker took it. It is a snapshot
// of that moment, not a promise that anyone saw the event: a session listed may be closing,
// and one opening a moment later recovers the event from the history.
type Report struct {
	// Position is the event's place in the user's stream; zero for an ephemeral event.
	Position Position
	// Stored reports whether the event is kept for recovery, and StoredUntil until when at
	// the latest (the history's TTL; a full history drops it sooner). StoredUntil is zero when
	// the broker does not say.
	Stored      bool
	StoredUntil time.Time
	// Sessions is how many sessions the user had across the cluster when the event was
	// published, as [Hub.Presence] counts them.
	Sessions int
	// Nodes is how many hubs received the event: those holding a session of the user. -1
	// when the broker cannot tell.
	Nodes int
}

// A Reporter is a [Broker] that can say, for a publish on a user's stream, where the event
// went: its position and the number of hubs that received it, and the user's sessions in its
// presence, read in the same step. adapters/redisbroker implements it.
type Reporter interface {
	PublishReport(ctx context.Context, stream string, payload []byte, ephemeral bool) (Report, error)
}

// SendReport is [Hub.SendContext] that also returns the event's [Report]. Use it where the
// answer matters, for example to fall back to e-mail when the user has no session anywhere;
// it costs about a Send plus a presence read (with adapters/redisbroker, the same single
// round trip as a Send, done outside the Send's pipeline), and the plain Send nothing.
func (h *Hub) SendReport(ctx context.Context, userID string, ev Event) (Report, error) {
	h.stats.sends.Add(1)
	if userID == "" {
		return Report{}, ErrInvalidUser
	}
	if err := ctx.Err(); err != nil {
		return Report{}, fmt.Errorf("notify: send: %w", err)
	}
	if h.closed.Load() {
		return Report{}, ErrClosed
	}
	start := time.Now()
	defer func() { h.stats.observeSend(time.Since(start)) }()
	if ev.Time.IsZero() {
		ev.Time = start.UTC()
	}
	e := getEncoder()
	defer e.release()
	payload, err := e.encode(ev, "")
	if err != nil {
		return Report{}, err
	}
	stream := wire.UserStream(userID)
	var r Report
	switch b := h.broker.(type) {
	case Reporter:
		r, err = b.PublishReport(ctx, stream, payload, ev.Ephemeral)
	case *memoryBroker:
		// One process: every session of the user is this hub's.
		r.Position, err = b.publish(stream, payload, ev.Ephemeral)
		s, _ := h.presence.Sessions(ctx, userID) // this hub's: cannot fail
		r.Sessions = len(s)
		r.Nodes = min(r.Sessions, 1)
		if !ev.Ephemeral {
			r.Stored, r.StoredUntil = b.size > 0, start.Add(b.ttl)
		}
	default:
		err = b.Publish(ctx, stream, payload, ev.Ephemeral)
		if err == nil {
			s, perr := h.presence.Sessions(ctx, userID)
			if perr != nil {
				h.stats.brokerErrors.Add(1)
				return Report{}, fmt.Errorf("notify: sent, but presence unknown: %w", perr)
			}
			r = Report{Stored: !ev.Ephemeral, Sessions: len(s), Nodes: -1}
		}
	}
	if err != nil {
		// As Send does: this hub's own sessions get the event still.
		h.stats.brokerErrors.Add(1)
		h.deliver(Message{Stream: stream, Payload: bytes.Clone(payload)})
		return Report{}, fmt.Errorf("notify: broker: %w", err)
	}
	return r, nil
}
