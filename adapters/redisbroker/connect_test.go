package redisbroker_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// scriptLog records the reading scripts a Redis client runs (redisbroker.ScriptNames), those
// that Redis ran: a call refused with NOSCRIPT (a script's first use) is not counted.
type scriptLog struct {
	mu    sync.Mutex
	names []string
}

func (l *scriptLog) DialHook(next redis.DialHook) redis.DialHook { return next }
func (l *scriptLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		l.add(cmd)
		return err
	}
}
func (l *scriptLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			l.add(c)
		}
		return err
	}
}

func (l *scriptLog) add(cmd redis.Cmder) {
	if cmd.Err() != nil {
		return
	}
	l.mu.Lock()
	l.names = append(l.names, redisbroker.ScriptNames(cmd)...)
	l.mu.Unlock()
}

// take returns the scripts run since the last take, without "other".
func (l *scriptLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.DeleteFunc(l.names, func(n string) bool { return n == "other" })
	l.names = nil
	return out
}

// TestConnectReadsPositionInJoin: the hub subscribes a user's stream before it joins presence,
// so the join reads the stream's position in the same script call, and a session that asks
// for no recovery, or is up to date, starts without a history read; one that is behind
// recovers through one. Each session's position is the stream's: the next event follows it.
func TestConnectReadsPositionInJoin(t *testing.T) {
	t.Parallel()
	o, err := redis.ParseURL(redisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(o)
	log := &scriptLog{}
	client.AddHook(log)
	t.Cleanup(func() { client.Close() })
	n := newNodeWithClient(t, client, prefix(t))
	ctx := context.Background()

	first, w := n.dial(t, "ada", nil)
	pos := position(t, w)
	if got := log.take(); !slices.Equal(got, []string{"join+position"}) {
		t.Fatalf("a first session's scripts: %q, want only the join with the position", got)
	}
	for i := range 3 {
		if _, err := n.hub.Send(ctx, "ada", notify.Event{Type: "e", Data: i}); err != nil {
			t.Fatal(err)
		}
		m := expect(t, first, "e", i)
		if got := position(t, m); got != (notify.Position{Epoch: pos.Epoch, Offset: pos.Offset + uint64(i) + 1}) {
			t.Fatalf("event %d at %v after a welcome at %v", i, got, pos)
		}
	}
	now := notify.Position{Epoch: pos.Epoch, Offset: pos.Offset + 3}
	behind := notify.Position{Epoch: pos.Epoch, Offset: pos.Offset + 1}
	log.take()

	for _, tc := range []struct {
		name      string
		since     *notify.Position
		scripts   []string // the reading scripts of the connect
		recovered any      // the welcome's
		replay    []int    // the events the session gets again
	}{
		{name: "second tab", scripts: []string{"join"}, recovered: nil},
		{name: "up to date", since: &now, scripts: []string{"join"}, recovered: true},
		{name: "behind", since: &behind, scripts: []string{"join", "history"}, recovered: true, replay: []int{1, 2}},
		{name: "another epoch", since: &notify.Position{Epoch: "0123456789abcdef", Offset: 2},
			scripts: []string{"join", "history"}, recovered: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, w := n.dial(t, "ada", tc.since)
			if got := position(t, w); got != now {
				t.Fatalf("welcome at %v, want %v", got, now)
			}
			if w["recovered"] != tc.recovered {
				t.Fatalf("welcome %v, want recovered %v", w, tc.recovered)
			}
			if got := log.take(); !slices.Equal(got, tc.scripts) {
				t.Fatalf("scripts %q, want %q", got, tc.scripts)
			}
			for _, i := range tc.replay {
				expect(t, c, "e", i)
			}
			c.Close()
			wstest.WaitFor(t, "the session's leave", func() bool {
				s, err := n.hub.Presence(ctx, "ada")
				return err == nil && len(s) == 1
			})
			log.take()
		})
	}
}
