package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/olahol/melody"

	"github.com/gonotify/notify/internal/wire"
)

// The client protocol (PROTOCOL.md): each message a client sends is handled on its session's
// read loop, one at a time.

// refusal is what a client is told when the hub refuses its message: an error frame's code and
// reason, and the topic when the message named one.
type refusal struct{ code, topic, reason string }

// received handles one client control frame.
func (h *Hub) received(s *melody.Session, msg []byte) {
	c := connOf(s)
	var req wire.Request
	err := json.Unmarshal(msg, &req)
	if !h.allow(c, req.Topic) {
		return
	}
	if err != nil || req.Op == "" {
		h.refuse(c, refusal{wire.CodeBadRequest, "", "expected a JSON object with an op"})
		return
	}
	switch req.Op {
	case "subscribe":
		var since *Position
		if req.Epoch != "" {
			since = &Position{Epoch: req.Epoch, Offset: req.Offset}
		}
		h.clientSubscribe(c.ctx, c, req.Topic, since)
	case "unsubscribe":
		if p := topicProblem(req.Topic); p != "" {
			h.refuse(c, refusal{wire.CodeInvalidTopic, req.Topic, topicReason(p)})
			return
		}
		c.strikes = 0
		bye := wire.Control{Op: "unsubscribed", Topic: req.Topic}
		if !h.leave(c.ctx, c, req.Topic, bye) {
			c.out.send(bye.Frame())
		}
	case "refresh":
		h.refresh(c, req.Token)
	default:
		h.refuse(c, refusal{wire.CodeUnknownOp, "", "unknown op"})
	}
}

// receivedBinary refuses a binary frame, which the protocol has no use for; it counts toward
// the bad messages that close a session.
func (h *Hub) receivedBinary(s *melody.Session, _ []byte) {
	c := connOf(s)
	if h.allow(c, "") {
		h.refuse(c, refusal{wire.CodeBadRequest, "", "binary frames are not part of the protocol"})
	}
}

// allow applies the session's rate limit to one message. A message past it is answered with
// rate_limited (naming the message's topic, so that a client can tell which request to retry)
// and not served; a session that keeps on is closed with CloseRateLimited.
func (h *Hub) allow(c *conn, topic string) bool {
	ok, abuse := c.limit.allow(h.now(), h.cfg.MessageRate, h.cfg.MessageBurst)
	if ok {
		return true
	}
	h.stats.rateLimited.Add(1)
	if abuse {
		h.cfg.Logger.Warn("notify: closing session past its message rate", "user", c.user, "session", c.id)
		c.close(CloseRateLimited)
		return false
	}
	c.out.send(wire.Error(wire.CodeRateLimited, topic, "too many messages, slow down"))
	return false
}

// refuse answers a bad message with an error frame and closes the session after maxStrikes
// bad messages in a row.
func (h *Hub) refuse(c *conn, r refusal) {
	c.out.send(wire.Error(r.code, r.topic, r.reason))
	c.strikes++
	if c.strikes >= maxStrikes {
		h.stats.abuse.Add(1)
		h.cfg.Logger.Warn("notify: closing abusive session", "user", c.user, "session", c.id)
		c.close(CloseProtocolAbuse)
	}
}

// refresh replaces the session's token: its grants and expiry, then the subscriptions the new
// token no longer allows (see revoke).
func (h *Hub) refresh(c *conn, token string) {
	id, err := h.auth.verify(token)
	if err == nil && id.UserID != c.user {
		err = unauthorized("token is for another user")
	}
	if err != nil {
		h.refuse(c, refusal{wire.CodeInvalidToken, "", authReason(err)})
		return
	}
	if err := h.checkRefused(c.ctx, id); err != nil {
		if refusalLabel(err) == refusedSignedOut {
			// The user was signed out: the session ends, whatever token it brings next.
			c.out.send(wire.Error(wire.CodeInvalidToken, "", authReason(err)))
			c.close(CloseSignedOut)
			return
		}
		// Not the client's fault: its current token stays, and it may send the fresh one again.
		c.out.send(wire.Error(wire.CodeUnavailable, "", "broker unavailable, try again later"))
		return
	}
	c.strikes = 0
	c.setIssuedAt(id.IssuedAt)
	c.schedule(id.Grants, id.Expires)
	if c.keepsIdentity() {
		c.ident = id
	}
	h.revoke(c.ctx, c)
	c.out.send(wire.Control{Op: "refreshed", Exp: id.Expires.Unix()}.Frame())
}

// authorize decides whether c may subscribe to topic on its own: its token grants it, or else
// Config.Authorize allows it. It returns the refusal's reason.
func (h *Hub) authorize(ctx context.Context, c *conn, topic string) (string, bool) {
	if c.granted(topic) {
		return "", true
	}
	if h.cfg.Authorize == nil {
		return "topic not granted by token", false
	}
	if err := h.cfg.Authorize(ctx, c.ident, topic); err != nil {
		return err.Error(), false
	}
	return "", true
}

// revoke ends the subscriptions the session made itself that its current token (or, failing
// the token, Config.Authorize) no longer allows, each with an "unsubscribed" frame carrying
// the code "forbidden" and the reason. Subscriptions the server made stay. It runs on the
// session's read loop, as subscribes do: none can start meanwhile.
func (h *Hub) revoke(ctx context.Context, c *conn) {
	for _, t := range h.idx.clientTopics(c) {
		if why, ok := h.authorize(ctx, c, t); !ok {
			h.leave(ctx, c, t, wire.Control{Op: "unsubscribed", Topic: t, Code: wire.CodeForbidden, Reason: why})
		}
	}
}

func (h *Hub) clientSubscribe(ctx context.Context, c *conn, topic string, since *Position) {
	if p := topicProblem(topic); p != "" {
		h.refuse(c, refusal{wire.CodeInvalidTopic, topic, topicReason(p)})
		return
	}
	already, n := h.idx.subscription(c, topic)
	if !already {
		if n >= h.cfg.MaxTopics {
			h.refuse(c, refusal{wire.CodeTooManyTopics, topic, fmt.Sprintf("at most %d topics per session", h.cfg.MaxTopics)})
			return
		}
		if why, ok := h.authorize(ctx, c, topic); !ok {
			h.refuse(c, refusal{wire.CodeForbidden, topic, why})
			return
		}
	}
	c.strikes = 0
	if already {
		c.out.send(wire.Control{Op: "subscribed", Topic: topic}.Frame())
		return
	}
	switch joined, err := h.join(ctx, c, topic, since, false); {
	case err != nil:
		// Not a bad message: the client sends it again later.
		c.out.send(wire.Error(wire.CodeUnavailable, topic, "broker unavailable, try again later"))
	case !joined:
		c.out.send(wire.Control{Op: "subscribed", Topic: topic}.Frame())
	}
}

// join subscribes a session to a topic and sends it "subscribed" with the topic's position,
// then the events it missed since since (when set), then the live ones. byServer marks a
// subscription the application made (Hub.Subscribe), which a token's grants do not revoke.
// It reports false when the session was already subscribed or is gone, and sent nothing; an
// error when the broker could not subscribe or read the topic's position, and then nothing
// changed and nothing was sent.
func (h *Hub) join(ctx context.Context, c *conn, topic string, since *Position, byServer bool) (bool, error) {
	stream := wire.TopicStream(topic)
	c.buffer(stream, false)
	if !h.idx.subscribe(c, topic, byServer) {
		c.release(stream, nil, nil, Position{})
		return false, nil
	}
	pos, replay, recovered, err := h.subscribeStream(ctx, stream, since)
	if err != nil {
		h.idx.unsubscribe(c, topic)
		c.drop(stream)
		h.cfg.Logger.Warn("notify: subscribe refused, broker unavailable", "topic", topic, "err", err)
		return false, fmt.Errorf("notify: subscribe to %q: %w", topic, err)
	}
	subscribed := wire.Control{Op: "subscribed", Topic: topic, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered, Server: byServer}
	c.release(stream, subscribed.Frame(), replay, pos)
	return true, nil
}

// leave ends a session's subscription to a topic and tells it with bye; it reports false when
// there was none. Once the session is out of the topic's index no event of the topic reaches
// it, so none follows bye.
func (h *Hub) leave(ctx context.Context, c *conn, topic string, bye wire.Control) bool {
	if !h.idx.unsubscribe(c, topic) {
		return false
	}
	stream := wire.TopicStream(topic)
	c.forget(stream)
	c.out.send(bye.Frame())
	h.brokerUnsubscribe(context.WithoutCancel(ctx), stream)
	return true
}

// authReason is what a client is told of a token it sent that was refused: the reason, after
// the sentinel's text.
func authReason(err error) string {
	reason := "invalid token"
	if e, ok := errors.AsType[*AuthError](err); ok {
		reason = e.Reason
	}
	return "unauthorized: " + reason
}

// topicReason is what a client is told of a topic name that breaks the rules.
func topicReason(problem string) string { return "invalid topic: " + problem }
