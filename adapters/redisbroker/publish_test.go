package redisbroker_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
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

// publishAnswers: the publish path returns the event's position, which History then reads,
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
	// A node subscribed to the stream answers History from the messages it received, which
	// reach it just after Publish returns.
	wstest.WaitFor(t, "History at the last event", func() bool {
		pos, _, err := a.broker.History(ctx, stream, nil)
		return err == nil && pos == last
	})
}

// TestPublishFailsAlone: a send whose stream's keys Redis refuses (its position is not a hash)
// fails with Redis's error, and the sends beside it, in the same script call or not, are
// stored and numbered as usual.
func TestPublishFailsAlone(t *testing.T) {
	t.Parallel()
	u := redisURL(t)
	n := newNode(t, u, prefix(t), nil)
	o, err := redis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	ctx := context.Background()
	bad := notify.UserStream("bad")
	keys, _ := n.broker.Names(bad)
	if err := c.Set(ctx, keys[0], "not a hash", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	streams := []string{bad}
	for i := range 20 {
		streams = append(streams, notify.UserStream(fmt.Sprint("good", i)))
	}
	errs := make([]error, len(streams))
	pos := make([]notify.Position, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() { pos[i], _, errs[i] = n.broker.PublishPosition(ctx, s, []byte(`{"type":"x"}`), false) })
	}
	wg.Wait()
	if errs[0] == nil || !strings.Contains(errs[0].Error(), "WRONGTYPE") || !strings.HasPrefix(errs[0].Error(), "redisbroker: publish: ") {
		t.Fatalf("the bad stream's send: %v, want Redis's WRONGTYPE", errs[0])
	}
	for i := 1; i < len(streams); i++ {
		if errs[i] != nil || pos[i].Offset != 1 || pos[i].Epoch == "" {
			t.Fatalf("send to %s: %+v, %v; want offset 1 of an epoch", streams[i], pos[i], errs[i])
		}
	}
}
