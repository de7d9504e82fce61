package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gonotify/notify/internal/wire"
)

// The client protocol (PROTOCOL.md): each message a client sends is handled on its session's
// read loop, one at a time.

// rejection is what a client is told when its message is rejected: an error frame's code and
// reason, and the topic when the message named one.
type rejection struct{ code, topic, reason string }

// received handles one client control frame; the transport calls it on its read loop.
func (s *session) received(msg []byte) {
	var req wire.Request
	err := json.Unmarshal(msg, &req)
	if !s.allow(req.Topic) {
		return
	}
	if err != nil || req.Op == "" {
		s.rejectMessage(rejection{wire.CodeBadRequest, "", "expected a JSON object with an op"})
		return
	}
	switch req.Op {
	case "subscribe":
		var since *Position
		if req.Epoch != "" {
			since = &Position{Epoch: req.Epoch, Offset: req.Offset}
		}
		s.clientSubscribe(s.ctx, req.Topic, since)
	case "unsubscribe":
		if p := topicProblem(req.Topic); p != "" {
			s.rejectMessage(rejection{wire.CodeInvalidTopic, req.Topic, topicReason(p)})
			return
		}
		s.strikes = 0
		bye := wire.Control{Op: "unsubscribed", Topic: req.Topic}
		if !s.leave(s.ctx, req.Topic, bye) {
			s.out.send(bye.Frame())
		}
	case "refresh":
		s.refresh(req.Token)
	default:
		s.rejectMessage(rejection{wire.CodeUnknownOp, "", "unknown op"})
	}
}

// receivedBinary rejects a binary frame, which the protocol has no use for; it counts toward
// the bad messages that close a session.
func (s *session) receivedBinary([]byte) {
	if s.allow("") {
		s.rejectMessage(rejection{wire.CodeBadRequest, "", "binary frames are not part of the protocol"})
	}
}

// allow applies the session's rate limit to one message. A message past it is answered with
// rate_limited (naming the message's topic, so that a client can tell which request to retry)
// and not served; a session that keeps on is closed with CloseRateLimited.
func (s *session) allow(topic string) bool {
	cfg := s.host.settings()
	ok, abuse := s.limit.allow(s.host.clock(), cfg.MessageRate, cfg.MessageBurst)
	if ok {
		return true
	}
	s.host.metrics().rateLimited.Add(1)
	if abuse {
		cfg.Logger.Warn("notify: closing session past its message rate", "user", s.user, "session", s.id)
		s.close(CloseRateLimited)
		return false
	}
	s.out.send(wire.Error(wire.CodeRateLimited, topic, "too many messages, slow down"))
	return false
}

// rejectMessage answers a bad message with an error frame and closes the session after
// maxStrikes bad messages in a row.
func (s *session) rejectMessage(r rejection) {
	s.out.send(wire.Error(r.code, r.topic, r.reason))
	s.strikes++
	if s.strikes >= maxStrikes {
		s.host.metrics().abuse.Add(1)
		s.host.settings().Logger.Warn("notify: closing abusive session", "user", s.user, "session", s.id)
		s.close(CloseProtocolAbuse)
	}
}

// refresh replaces the session's token: its grants and expiry, then the subscriptions the new
// token no longer allows (see revoke).
func (s *session) refresh(token string) {
	id, err := s.host.verify(token)
	if err == nil && id.UserID != s.user {
		err = unauthorized("token is for another user")
	}
	if err != nil {
		s.rejectMessage(rejection{wire.CodeInvalidToken, "", authReason(err)})
		return
	}
	if err := s.host.checkRefused(s.ctx, id); err != nil {
		if refusalLabel(err) == refusedSignedOut {
			// The user was signed out: the session ends, whatever token it brings next.
			s.out.send(wire.Error(wire.CodeInvalidToken, "", authReason(err)))
			s.close(CloseSignedOut)
			return
		}
		// Not the client's fault: its current token stays, and it may send the fresh one again.
		s.out.send(wire.Error(wire.CodeUnavailable, "", "broker unavailable, try again later"))
		return
	}
	s.strikes = 0
	s.setIssuedAt(id.IssuedAt)
	s.schedule(id.Topics, id.Expires)
	s.revoke(s.ctx)
	s.out.send(wire.Control{Op: "refreshed", Exp: id.Expires.Unix()}.Frame())
}

// authorize decides whether the session may subscribe to topic on its own: its token grants
// it, or else Config.Authorize allows it. It returns the reason when neither does.
func (s *session) authorize(ctx context.Context, topic string) (string, bool) {
	if s.granted(topic) {
		return "", true
	}
	authorize := s.host.settings().Authorize
	if authorize == nil {
		return "topic not granted by token", false
	}
	if err := authorize(ctx, s.user, topic); err != nil {
		return err.Error(), false
	}
	return "", true
}

// revoke ends the subscriptions the session made itself that its current token (or, failing
// the token, Config.Authorize) no longer allows, each with an "unsubscribed" frame carrying
// the code "forbidden" and the reason. Subscriptions the server made stay. It runs on the
// session's read loop, as subscribes do: none can start meanwhile.
func (s *session) revoke(ctx context.Context) {
	for _, t := range s.host.index().clientTopics(s) {
		if why, ok := s.authorize(ctx, t); !ok {
			s.leave(ctx, t, wire.Control{Op: "unsubscribed", Topic: t, Code: wire.CodeForbidden, Reason: why})
		}
	}
}

func (s *session) clientSubscribe(ctx context.Context, topic string, since *Position) {
	if p := topicProblem(topic); p != "" {
		s.rejectMessage(rejection{wire.CodeInvalidTopic, topic, topicReason(p)})
		return
	}
	already, n := s.host.index().subscription(s, topic)
	if !already {
		if most := s.host.settings().MaxTopics; n >= most {
			s.rejectMessage(rejection{wire.CodeTooManyTopics, topic, fmt.Sprintf("at most %d topics per session", most)})
			return
		}
		if why, ok := s.authorize(ctx, topic); !ok {
			s.rejectMessage(rejection{wire.CodeForbidden, topic, why})
			return
		}
	}
	s.strikes = 0
	if already {
		s.out.send(wire.Control{Op: "subscribed", Topic: topic}.Frame())
		return
	}
	switch joined, err := s.join(ctx, topic, since, false); {
	case err != nil:
		// Not a bad message: the client sends it again later.
		s.out.send(wire.Error(wire.CodeUnavailable, topic, "broker unavailable, try again later"))
	case !joined:
		s.out.send(wire.Control{Op: "subscribed", Topic: topic}.Frame())
	}
}

// join subscribes the session to a topic and sends it "subscribed" with the topic's position,
// then the events it missed since since (when set), then the live ones. byServer marks a
// subscription the application made (Hub.Subscribe), which a token's grants do not revoke.
// It reports false when the session was already subscribed or is gone, and sent nothing; an
// error when the broker could not subscribe or read the topic's position, and then nothing
// changed and nothing was sent.
func (s *session) join(ctx context.Context, topic string, since *Position, byServer bool) (bool, error) {
	stream := wire.TopicStream(topic)
	idx := s.host.index()
	s.bufferStream(stream, false)
	if !idx.subscribe(s, topic, byServer) {
		s.flushRecovered(stream, nil, nil, Position{})
		return false, nil
	}
	pos, replay, recovered, err := s.readStream(ctx, stream, since, s.host.subscribe(ctx, stream))
	if err != nil {
		s.host.unsubscribe(context.WithoutCancel(ctx), stream)
		idx.unsubscribe(s, topic)
		s.dropRecovered(stream)
		s.host.settings().Logger.Warn("notify: subscribe refused, broker unavailable", "topic", topic, "err", err)
		return false, fmt.Errorf("notify: subscribe to %q: %w", topic, err)
	}
	subscribed := wire.Control{Op: "subscribed", Topic: topic, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered, Server: byServer}
	s.flushRecovered(stream, subscribed.Frame(), replay, pos)
	return true, nil
}

// leave ends the session's subscription to a topic and tells it with bye; it reports false
// when there was none. Once the session is out of the topic's index no event of the topic
// reaches it, so none follows bye.
func (s *session) leave(ctx context.Context, topic string, bye wire.Control) bool {
	if !s.host.index().unsubscribe(s, topic) {
		return false
	}
	stream := wire.TopicStream(topic)
	s.forget(stream)
	s.out.send(bye.Frame())
	s.host.unsubscribe(context.WithoutCancel(ctx), stream)
	return true
}

// authReason is what a client is told of a token it sent that was refused: the reason, after
// the sentinel's text.
func authReason(err error) string {
	reason := "invalid token"
	if e, ok := errors.AsType[*authError](err); ok {
		reason = e.reason
	}
	return "unauthorized: " + reason
}

// topicReason is what a client is told of a topic name that breaks the rules.
func topicReason(problem string) string { return "invalid topic: " + problem }
