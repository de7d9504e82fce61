package notify

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// The in-memory history keeps the last HistorySize events of a stream, oldest first, with the
// offsets and payloads they were published with, across the ring's growth and wrap.
func TestMemoryHistoryRing(t *testing.T) {
	for _, tc := range []struct{ size, sent int }{
		{1, 1}, {1, 5}, {3, 2}, {3, 3}, {3, 7}, {100, 9}, {100, 33}, {100, 100}, {100, 250},
	} {
		t.Run(fmt.Sprintf("size=%d,sent=%d", tc.size, tc.sent), func(t *testing.T) {
			b := newMemoryBroker(tc.size, time.Minute, func(string) bool { return false })
			var got []Message
			if err := b.Start(context.Background(), func(m Message) { got = append(got, m) }); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			for i := 1; i <= tc.sent; i++ {
				if _, err := b.Publish(context.Background(), "u:a", []byte(fmt.Sprintf(`{"n":%d}`, i)), false); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != tc.sent {
				t.Fatalf("delivered %d, want %d", len(got), tc.sent)
			}
			pos, msgs, err := b.History(context.Background(), "u:a", &Position{Epoch: got[0].Epoch})
			if err != nil {
				t.Fatal(err)
			}
			if pos.Offset != uint64(tc.sent) || pos.Epoch != got[0].Epoch {
				t.Fatalf("position %+v, want offset %d epoch %s", pos, tc.sent, got[0].Epoch)
			}
			want := min(tc.size, tc.sent)
			if len(msgs) != want {
				t.Fatalf("history holds %d, want %d", len(msgs), want)
			}
			for i, m := range msgs {
				n := tc.sent - want + 1 + i
				if m.Offset != uint64(n) || string(m.Payload) != fmt.Sprintf(`{"n":%d}`, n) {
					t.Fatalf("history[%d] = offset %d payload %s, want offset %d", i, m.Offset, m.Payload, n)
				}
				if string(m.Frame) != string(got[n-1].Frame) {
					t.Fatalf("history[%d] frame %s, delivered %s", i, m.Frame, got[n-1].Frame)
				}
			}
		})
	}
}

// TestMemoryHistoryExpiry, on a synctest bubble's clock: History holds an event for the TTL
// and not a moment longer; the sweep frees the history ring once the stream has been idle
// longer than the TTL but keeps its position, so a client that missed nothing recovers after
// a long idle time; StreamRetention after the last event the record goes, and the stream's
// next event starts a new epoch.
func TestMemoryHistoryExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const ttl, stream = 5 * time.Minute, "u:a"
		ctx := context.Background()
		b := newMemoryBroker(10, ttl, func(string) bool { return false })
		if err := b.Start(ctx, func(Message) {}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() }) // stops the sweep inside the bubble
		start := time.Now()
		sleepUntil := func(d time.Duration) {
			time.Sleep(start.Add(d).Sub(time.Now()))
			synctest.Wait() // and the sweep has done what it does at that time
		}
		publish := func(n int) {
			t.Helper()
			if _, err := b.Publish(ctx, stream, []byte(fmt.Sprintf(`{"n":%d}`, n)), false); err != nil {
				t.Fatal(err)
			}
		}
		history := func(when string, wantOffset uint64, wantEpoch string, want ...uint64) {
			t.Helper()
			pos, msgs, err := b.History(ctx, stream, &Position{Epoch: wantEpoch})
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for _, m := range msgs {
				got = append(got, m.Offset)
			}
			if pos.Offset != wantOffset || pos.Epoch != wantEpoch || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s: position %+v with offsets %v, want offset %d of epoch %s with %v",
					when, pos, got, wantOffset, wantEpoch, want)
			}
		}
		ring := func() []memEntry {
			b.mu.Lock()
			defer b.mu.Unlock()
			s := b.streams[stream]
			if s == nil {
				t.Fatal("the stream's record is gone")
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.ring
		}

		publish(1)
		epoch := b.epochAt(start)
		sleepUntil(time.Minute)
		publish(2)
		sleepUntil(ttl - time.Nanosecond)
		history("just within the TTL of the first event", 2, epoch, 1, 2)
		sleepUntil(ttl)
		history("the TTL after the first event", 2, epoch, 2)
		sleepUntil(time.Minute + ttl)
		history("the TTL after the last event", 2, epoch)
		if ring() == nil {
			t.Fatal("ring freed while the stream was idle for no longer than the TTL")
		}
		// The sweep runs every minute (at most the TTL): the first after the stream has been
		// idle longer than the TTL frees its ring.
		sleepUntil(time.Minute + ttl + time.Minute)
		if r := ring(); r != nil {
			t.Fatalf("ring of %d entries kept after the TTL", len(r))
		}
		history("after the ring was freed", 2, epoch)

		sleepUntil(time.Minute + StreamRetention)
		history("StreamRetention after the last event", 2, epoch)
		sleepUntil(time.Minute + StreamRetention + time.Minute)
		b.mu.Lock()
		n := len(b.streams)
		b.mu.Unlock()
		if n != 0 {
			t.Fatalf("%d stream records kept past StreamRetention, want 0", n)
		}
		next := b.epochAt(time.Now())
		if next == epoch {
			t.Fatalf("epoch %s again after the record went", epoch)
		}
		history("after the record went", 0, next)
		publish(3)
		history("the next event", 1, next, 1)
	})
}

// History reads only what follows the position it is given, and nothing without one.
func TestMemoryHistoryAfter(t *testing.T) {
	b := newMemoryBroker(5, time.Minute, func(string) bool { return false })
	ctx := context.Background()
	if err := b.Start(ctx, func(Message) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	for i := 1; i <= 8; i++ { // the ring holds 4 to 8
		if _, err := b.Publish(ctx, "u:a", []byte(fmt.Sprintf(`{"n":%d}`, i)), false); err != nil {
			t.Fatal(err)
		}
	}
	pos, _, _ := b.History(ctx, "u:a", nil)
	e := pos.Epoch
	for _, tc := range []struct {
		name  string
		after *Position
		want  string
	}{
		{"no position", nil, "[]"},
		{"from the start", &Position{Epoch: e}, "[4 5 6 7 8]"},
		{"before what the ring holds", &Position{Epoch: e, Offset: 3}, "[4 5 6 7 8]"},
		{"in the middle", &Position{Epoch: e, Offset: 5}, "[6 7 8]"},
		{"at the end", &Position{Epoch: e, Offset: 8}, "[]"},
		{"ahead", &Position{Epoch: e, Offset: 9}, "[]"},
		{"another epoch", &Position{Epoch: "old", Offset: 2}, "[]"},
	} {
		got, msgs, err := b.History(ctx, "u:a", tc.after)
		if err != nil || got != pos {
			t.Fatalf("%s: position %+v, %v", tc.name, got, err)
		}
		var offs []uint64
		for _, m := range msgs {
			offs = append(offs, m.Offset)
		}
		if fmt.Sprint(offs) != tc.want {
			t.Errorf("%s: offsets %v, want %s", tc.name, offs, tc.want)
		}
	}
}
