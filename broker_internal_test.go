package notify

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The in-memory history keeps the last HistorySize events of a stream, oldest first, with the
// offsets and payloads they were published with, across the ring's growth and wrap.
func TestMemoryHistoryRing(t *testing.T) {
	for _, tc := range []struct{ size, sent int }{
		{1, 1}, {1, 5}, {3, 2}, {3, 3}, {3, 7}, {100, 9}, {100, 33}, {100, 100}, {100, 250},
	} {
		t.Run(fmt.Sprintf("size=%d,sent=%d", tc.size, tc.sent), func(t *testing.T) {
			b := newMemoryBroker(tc.size, time.Minute)
			var got []Message
			if err := b.Start(context.Background(), func(m Message) { got = append(got, m) }); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			for i := 1; i <= tc.sent; i++ {
				if err := b.Publish(context.Background(), "u:a", []byte(fmt.Sprintf(`{"n":%d}`, i)), false); err != nil {
					t.Fatal(err)
				}
			}
			if len(got) != tc.sent {
				t.Fatalf("delivered %d, want %d", len(got), tc.sent)
			}
			pos, msgs, err := b.History(context.Background(), "u:a")
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
