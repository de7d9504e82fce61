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
	if !s.allow(&req) {
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
	case "request":
		s.request(&req)
	default:
		s.rejectMessage(rejection{wire.CodeUnknownOp, "", "unknown op"})
	}
}

// receivedBinary rejects a binary frame, which the protocol has no use for; it counts toward
// the bad messages that close a session.
func (s *session) receivedBinary([]byte) {
	if s.allow(nil) {
		s.rejectMessage(rejection{wire.CodeBadRequest, "", "binary frames are not part of the protocol"})
	}
}

// allow applies the session's rate limit to one message (req, nil for a binary frame). A
// message past it is answered with rate_limited (naming the message's topic, or answering the
// request's id, so that a client can tell which one to retry) and not served; a session that
// keeps on is closed with CloseRateLimited.
func (s *session) allow(req *wire.Request) bool {
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
	const reason = "too many messages, slow down"
	switch {
	case req == nil:
		s.out.send(wire.Error(wire.CodeRateLimited, "", reason))
	case req.Op == "request" && req.ID != "" && len(req.ID) <= maxRequestID:
		s.out.send(wire.ReplyError(req.ID, wire.CodeRateLimited, reason))
	default:
		s.out.send(wire.Error(wire.CodeRateLimited, req.Topic, reason))
	}
	return false
}

// rejectMessage answers a bad message with an error frame and closes the session after
// maxStrikes bad messages in a row.
func (s *session) rejectMessage(r rejection) {
	s.rejectWith(wire.Error(r.code, r.topic, r.reason))
}

// rejectWith answers a bad message with frame, as rejectMessage does.
func (s *session) rejectWith(frame []byte) {
	s.out.send(frame)
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
	s.schedule(id.Grants, id.Expires)
	if s.keepsIdentity() { // read loop only, as ident's readers (Authorize) are
		s.ident = id
	}
	s.revoke(s.ctx)
	s.out.send(wire.Control{Op: "refreshed", Exp: id.Expires.Unix()}.Frame())
}

func (s *session) clientSubscribe(ctx context.Context, topic string, since *Position) {
	if p := topicProblem(topic); p != "" {
		s.rejectMessage(rejection{wire.CodeInvalidTopic, topic, topicReason(p)})
		return
	}
	already, n := s.host.indexSubscription(s, topic)
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
