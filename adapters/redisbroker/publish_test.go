package redisbroker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
)

func TestNewRefusesNegatives(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  redisbroker.Config
		want string
	}{
		{"HistorySize", redisbroker.Config{URL: "redis://127.0.0.1:6379", HistorySize: -1},
			"notify: invalid config: redisbroker: HistorySize is negative"},
		{"HistoryTTL", redisbroker.Config{URL: "redis://127.0.0.1:6379", HistoryTTL: -time.Second},
			"notify: invalid config: redisbroker: HistoryTTL is negative"},
		{"PresenceTTL", redisbroker.Config{URL: "redis://127.0.0.1:6379", PresenceTTL: -time.Nanosecond},
			"notify: invalid config: redisbroker: PresenceTTL is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := redisbroker.New(tt.cfg)
			if b != nil || err == nil || err.Error() != tt.want || !errors.Is(err, notify.ErrConfig) {
				t.Fatalf("got %v, %v; want %q wrapping notify.ErrConfig", b, err, tt.want)
			}
		})
	}
}

func TestPublishAnswers(t *testing.T) {
	t.Parallel()
	u := redisURL(t)
	p := prefix(t)
	publishAnswers(t, newNode(t, u, p, nil), newNode(t, u, p, nil))
}

// publishAnswers: the publish path returns the event's position, which History reads next,
// and the number of nodes subscribed to the stream (PUBLISH's, or SPUBLISH's, answer), for a
// stored event and an ephemeral one.
func publishAnswers(t *testing.T, a, b *node) {
	t.Helper()
	ctx := context.Background()
	stream := notify.UserStream("alice")
	payload := []byte(`{"type":"x"}`)
	publish := func(ephemeral bool, wantOffset uint64, wantNodes int) notify.Position {
		t.Helper()
		pos, nodes, err := a.broker.PublishPosition(ctx, stream, payload, ephemeral)
		if err != nil || pos.Offset != wantOffset || (wantOffset > 0) == (pos.Epoch == "") || nodes != wantNodes {
			t.Fatalf("publish (ephemeral %v): %+v, %d nodes, %v; want offset %d, %d nodes",
				ephemeral, pos, nodes, err, wantOffset, wantNodes)
		}
		return pos
	}
	first := publish(false, 1, 0) // no node subscribed
	b.dial(t, "alice", nil)
	if p := publish(false, 2, 1); p.Epoch != first.Epoch {
		t.Fatalf("epoch %q, then %q", first.Epoch, p.Epoch)
	}
	a.dial(t, "alice", nil)
	last := publish(false, 3, 2)
	publish(true, 0, 2)
	if pos, _, err := a.broker.History(ctx, stream, nil); err != nil || pos != last {
		t.Fatalf("History: %+v, %v; want %+v", pos, err, last)
	}
}
