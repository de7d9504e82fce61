package notify

import (
	"context"
	"fmt"

	"github.com/gonotify/notify/internal/wire"
)

// A session's subscriptions to topics: which it may make, joining one with its recovery, and
// leaving one. Which topics it is subscribed to is the hub's index's.

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
	if err := authorize(ctx, s.ident, topic); err != nil {
		return err.Error(), false
	}
	return "", true
}

// revoke ends the subscriptions the session made itself that its current token (or, failing
// the token, Config.Authorize) no longer allows, each with an "unsubscribed" frame carrying
// the code "forbidden" and the reason. Subscriptions the server made stay. It runs on the
// session's read loop, as subscribes do: none can start meanwhile.
func (s *session) revoke(ctx context.Context) {
	for _, t := range s.host.indexClientTopics(s) {
		if why, ok := s.authorize(ctx, t); !ok {
			s.leave(ctx, t, wire.Control{Op: "unsubscribed", Topic: t, Code: wire.CodeForbidden, Reason: why})
		}
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
	s.bufferStream(stream, false)
	if !s.host.indexSubscribe(s, topic, byServer) {
		s.flushRecovered(stream, nil, nil, Position{})
		return false, nil
	}
	pos, replay, recovered, err := s.readStream(ctx, stream, since, s.host.subscribe(ctx, stream))
	if err != nil {
		s.host.unsubscribe(context.WithoutCancel(ctx), stream)
		s.host.indexUnsubscribe(s, topic)
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
	if !s.host.indexUnsubscribe(s, topic) {
		return false
	}
	stream := wire.TopicStream(topic)
	s.forget(stream)
	s.out.send(bye.Frame())
	s.host.unsubscribe(context.WithoutCancel(ctx), stream)
	return true
}
