package notify

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"

	"github.com/gonotify/notify/internal/wire"
)

// A session's life, as melody reports it: connected, then messages (see messages.go), then
// disconnected.

func (h *Hub) connected(s *melody.Session) {
	c := connOf(s)
	c.s = s
	c.out.sink = s
	// After the upgrade the session needs only the request's context: keep it and let the
	// request go (about 1.7 KB per session). melody itself never reads Request.
	ctx := s.Request.Context()
	c.ctx = ctx
	s.Request = nil
	if c.joinErr != nil {
		h.dropPresub(ctx, c)
		h.cfg.Logger.Warn("notify: session refused, presence unavailable", "user", c.user, "err", c.joinErr)
		c.out.abort(CloseTryAgain)
		return
	}
	var topics []string
	if h.cfg.Subscriptions != nil {
		var err error
		if topics, err = h.cfg.Subscriptions(ctx, c.ident); err != nil {
			h.dropPresub(ctx, c)
			h.cfg.Logger.Warn("notify: session refused, Config.Subscriptions failed", "user", c.user, "err", err)
			c.out.abort(CloseTryAgain)
			return
		}
	}
	stream := wire.UserStream(c.user)
	// Until the welcome is queued every frame waits, and the user stream's are buffered so
	// that the replay and the live events meet without a gap or a duplicate.
	c.buffer(stream, true)
	h.idx.add(c)
	var pos Position
	var replay [][]byte
	var recovered *bool
	var err error
	if c.presub != nil {
		subErr := <-c.presub
		c.presub = nil
		pos, replay, recovered, err = h.readStream(ctx, stream, c.since, subErr)
	} else {
		pos, replay, recovered, err = h.subscribeStream(ctx, stream, c.since)
	}
	if err != nil {
		// Without the stream's subscription and position, events the broker accepts from now
		// on could be lost without the client knowing: it reconnects later and recovers.
		h.cfg.Logger.Warn("notify: session refused, broker unavailable", "user", c.user, "err", err)
		c.out.abort(CloseTryAgain)
		return
	}
	c.welcomed = true
	h.stats.connects.Add(1)
	welcome := wire.Control{Op: "welcome", User: c.user, Session: c.id, Ping: int64(h.cfg.PingInterval / time.Second),
		Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered}
	if !c.expires.IsZero() {
		welcome.Exp = c.expires.Unix()
	}
	c.start(stream, welcome.Frame(), replay, pos)
	c.schedule(c.grants, c.expires)
	if h.closed.Load() {
		h.goAway(c)
	}
	// The application's subscriptions, before the client's first message is read.
	for _, t := range topics {
		if p := topicProblem(t); p != "" {
			h.cfg.Logger.Warn("notify: Config.Subscriptions returned an invalid topic", "topic", t, "problem", p)
			continue
		}
		if _, err := h.join(ctx, c, t, c.topicSince[t], true); err != nil {
			c.out.send(wire.Error(wire.CodeUnavailable, t, "broker unavailable, try again later"))
		}
	}
	c.topicSince = nil
	if h.cfg.Logger.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		h.cfg.Logger.Debug("notify: session connected", "user", c.user, "session", c.id)
	}
	h.stats.present.Add(1)
	if h.cfg.OnSessionStart != nil {
		h.cfg.OnSessionStart(c.ident, c.info)
	}
	if c.first {
		h.cameOnline(c.user)
	}
	if !c.keepsIdentity() {
		c.ident = Identity{UserID: c.user} // let the claims go
	}
}

// cameOnline counts and reports a user's first session anywhere.
func (h *Hub) cameOnline(user string) {
	h.stats.online.Add(1)
	if h.cfg.OnOnline != nil {
		h.cfg.OnOnline(user)
	}
}

// endSession removes an ended (or refused) session from presence and runs the hooks of its
// end: OnSessionEnd for a welcomed session, and OnOffline when it was the user's last one
// anywhere. It runs once per session, on its own goroutine (or the refusing handler's).
func (h *Hub) endSession(ctx context.Context, c *conn) {
	if !c.present {
		return
	}
	c.present = false
	n, removed, err := h.presence.Leave(ctx, c.info)
	if err != nil {
		// Its entry expires on its own: this node no longer keeps it alive.
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: presence leave failed", "user", c.user, "session", c.id, "err", err)
	}
	if !c.welcomed {
		// It was the user's first session anywhere, but failed before reporting the user
		// online; if others joined meanwhile, the user is online, and the report is due here.
		if err == nil && removed && c.first && n > 0 {
			h.cameOnline(c.user)
		}
		return
	}
	h.stats.present.Add(-1)
	if h.cfg.OnSessionEnd != nil {
		h.cfg.OnSessionEnd(c.ident, c.info)
	}
	if err == nil && removed && n == 0 {
		h.stats.offline.Add(1)
		if h.cfg.OnOffline != nil {
			h.cfg.OnOffline(c.user)
		}
	}
}

func (h *Hub) disconnected(s *melody.Session) {
	c := connOf(s)
	h.stats.disconnected(c.out.endCode())
	c.close(CloseNormal) // stops the timer; a no-op on the wire after a close
	topics := h.idx.remove(c)
	ctx := c.ctx
	for _, t := range topics {
		h.brokerUnsubscribe(ctx, wire.TopicStream(t))
	}
	if c.welcomed { // a refused session's subscription was undone already
		h.brokerUnsubscribe(ctx, wire.UserStream(c.user))
	}
	if h.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		h.cfg.Logger.Debug("notify: session disconnected", "user", c.user, "session", c.id)
	}
}

func (h *Hub) sessionError(s *melody.Session, err error) {
	c := connOf(s)
	if errors.Is(err, melody.ErrMessageBufferFull) {
		// Cannot happen by the outbox's construction; if it does, the session lost a frame.
		if c != nil {
			h.stats.slow.Add(1)
			c.close(CloseSlowConsumer)
		}
		h.cfg.Logger.Error("notify: melody buffer full", "err", err)
		return
	}
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok && c != nil {
		c.out.closedWith(CloseCode(ce.Code))
	}
	if errors.Is(err, melody.ErrWriteClosed) || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		return
	}
	h.cfg.Logger.Debug("notify: session error", "err", err)
}

// subscribeStream subscribes the hub to a session's stream and reads the stream's position
// and history, planning what a session asking to recover from since gets replayed (see
// planReplay). Both must succeed: a session that went on without the subscription, or
// without a position, could lose events the broker accepts from now on without being told.
// On an error the subscription is undone.
func (h *Hub) subscribeStream(ctx context.Context, stream string, since *Position) (pos Position, replay [][]byte, recovered *bool, err error) {
	return h.readStream(ctx, stream, since, h.broker.Subscribe(ctx, stream))
}

// readStream is subscribeStream once the broker's Subscribe has returned subErr.
func (h *Hub) readStream(ctx context.Context, stream string, since *Position, subErr error) (pos Position, replay [][]byte, recovered *bool, err error) {
	if err = subErr; err == nil {
		var msgs []Message
		if pos, msgs, err = h.broker.History(ctx, stream, since); err == nil {
			replay, recovered = planReplay(pos, msgs, since)
			h.stats.recovery(recovered)
			return pos, replay, recovered, nil
		}
	}
	h.stats.brokerErrors.Add(1)
	h.brokerUnsubscribe(context.WithoutCancel(ctx), stream)
	return Position{}, nil, nil, err
}

// dropPresub undoes the user stream's subscription that ServeHTTP started, for a session that
// ends before connected took it over; it waits for the Subscribe to return. A no-op otherwise.
func (h *Hub) dropPresub(ctx context.Context, c *conn) {
	if c.presub == nil {
		return
	}
	<-c.presub
	c.presub = nil
	// Counted whether it succeeded or not (see Broker.Subscribe), as subscribeStream does.
	h.brokerUnsubscribe(ctx, wire.UserStream(c.user))
}

func (h *Hub) brokerUnsubscribe(ctx context.Context, stream string) {
	if err := h.broker.Unsubscribe(ctx, stream); err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: broker unsubscribe failed", "stream", stream, "err", err)
	}
}
