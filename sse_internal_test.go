package notify

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// FuzzEventIDPosition: no Last-Event-ID panics, and one that is a position reads back as it.
func FuzzEventIDPosition(f *testing.F) {
	for _, s := range []string{"", "3.E", "12.", ".E", "-1.E", "18446744073709551616.E", "1.a.b", "\xff.\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		p := eventIDPosition(id)
		if p == nil {
			t.Fatal("nil position")
		}
		if p.Epoch != badEpoch && fmt.Sprintf("%d.%s", p.Offset, p.Epoch) != id && len(id) <= 128 {
			// Leading zeros and a '+' parse too; the position must still be the id's.
			if q := eventIDPosition(fmt.Sprintf("%d.%s", p.Offset, p.Epoch)); *q != *p {
				t.Fatalf("%q read as %+v", id, p)
			}
		}
	})
}

// FuzzUserPosition: no frame panics userPosition, and the frame of a user stream's event gives
// its position back while a topic's gives none.
func FuzzUserPosition(f *testing.F) {
	f.Add([]byte(`{"offset":3,"epoch":"E","type":"t","id":"1","time":"x","data":{"topic":"y"}}`), uint64(3), "E", "")
	f.Add([]byte(`{"type":"t"}`), uint64(0), "", "news")
	f.Fuzz(func(t *testing.T, frame []byte, offset uint64, epoch, topic string) {
		_, _ = userPosition(frame)
		if offset == 0 || epoch == "" {
			return
		}
		enc := getEncoder()
		defer enc.recycle()
		payload, err := enc.encode(Event{Type: "t", Data: string(frame)}, topic)
		if err != nil {
			return
		}
		off, ep := userPosition(EncodeFrame(payload, Position{Offset: offset, Epoch: epoch}))
		switch {
		case topic == "" && (off != offset || string(ep) != epoch) && !containsQuote(epoch):
			t.Fatalf("user event at %d.%s read as %d.%s", offset, epoch, off, ep)
		case topic != "" && len(ep) > 0:
			t.Fatalf("topic event read as %d.%s", off, ep)
		}
	})
}

// containsQuote: an epoch with characters other than letters, digits, '-' and '_' is not one
// NewEpoch makes; JSON may escape them, and the id then carries the escaped form (a
// Last-Event-ID that recovers nothing, never a wrong position).
func containsQuote(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return true
		}
	}
	return false
}

// TestSSEDeliver: a session's messages wait in a bounded queue; past it a POST gets 429, and
// once the stream is over 404.
func TestSSEDeliver(t *testing.T) {
	tr := newSSETransport(nil, nil, 0)
	for i := range sseInbox {
		if got := tr.deliver([]byte("{}")); got != 202 {
			t.Fatalf("message %d: %d", i, got)
		}
	}
	if got := tr.deliver([]byte("{}")); got != 429 {
		t.Fatalf("past the queue: %d, want 429", got)
	}
	tr.end()
	if got := tr.deliver([]byte("{}")); got != 404 {
		t.Fatalf("after the end: %d, want 404", got)
	}
}

// TestSSEChunkWrite: an HTTP/1.x stream's batch leaves as one chunk in one write (its size line
// and CRLF around the events, in the batch's own buffer), and building and writing it
// allocates nothing, for a lone event as for a joined frame of many: during a garbage
// collection every allocation of thousands of write loops would make them assist it, which
// was what a paced stream's tail waited for.
func TestSSEChunkWrite(t *testing.T) {
	enc := getEncoder()
	defer enc.recycle()
	event := func(i int, topic string) ([]byte, string) {
		t.Helper()
		payload, err := enc.encode(Event{Type: "t", Data: strings.Repeat("x", i%300)}, topic)
		if err != nil {
			t.Fatal(err)
		}
		frame := EncodeFrame(payload, Position{Offset: uint64(i + 1), Epoch: "E1"})
		if topic != "" {
			return frame, "data: " + string(frame) + "\n\n"
		}
		return frame, fmt.Sprintf("id: %d.E1\ndata: %s\n\n", i+1, frame)
	}
	one, oneEvent := event(0, "")
	// A joined frame of user and topic events (with an id line and without), about 4 KiB.
	var joined []byte
	var joinedEvents string
	for i := 0; ; i++ {
		f, e := event(100, map[bool]string{true: "news"}[i%2 == 1])
		if sseRoom+2+len(joined)+1+len(f)+sseEventOverhead > 4<<10 {
			break
		}
		if joined != nil {
			joined = append(joined, '\n')
		}
		joined, joinedEvents = append(joined, f...), joinedEvents+e
	}
	for _, tc := range []struct {
		name   string
		frames [][]byte
		events string
	}{
		{"one event", [][]byte{one}, oneEvent},
		{"a joined frame", [][]byte{joined}, joinedEvents},
		{"two frames", [][]byte{one, one}, oneEvent + oneEvent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &recordConn{}
			c := &sseConn{Conn: w, headSent: true}
			write := func() {
				bp := sseBatch(tc.frames)
				if err := c.send(bp.b); err != nil {
					t.Fatal(err)
				}
				bp.recycle()
			}
			write()
			want := fmt.Sprintf("%x\r\n%s\r\n", len(tc.events), tc.events)
			if len(w.writes) != 1 || w.writes[0] != want {
				t.Fatalf("writes %q, want one: %q", w.writes, want)
			}
			w.discard = true
			if n := testing.AllocsPerRun(100, write); n != 0 {
				t.Fatalf("%v allocations per chunk, want 0", n)
			}
		})
	}
}

// recordConn is a connection that keeps what is written to it, or drops it once discard is set.
type recordConn struct {
	net.Conn
	writes  []string
	discard bool
}

func (r *recordConn) Write(p []byte) (int, error) {
	if !r.discard {
		r.writes = append(r.writes, string(p))
	}
	return len(p), nil
}
