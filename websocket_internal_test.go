package notify

import (
	"io"
	"net"
	"testing"
	"time"
)

func TestBatchBuffers(t *testing.T) {
	for _, tc := range []struct{ size, class int }{
		{1, 0}, {1 << 10, 0}, {1<<10 + 1, 1}, {2 << 10, 1}, {16 << 10, 4}, {16<<10 + 1, 5},
		{64 << 10, 6}, {maxBatchBytes, 8},
	} {
		if got := batchClass(tc.size); got != tc.class {
			t.Errorf("batchClass(%d) = %d, want %d", tc.size, got, tc.class)
		}
		bp := getBatch(tc.size)
		if len(bp.b) != 0 || cap(bp.b) < tc.size {
			t.Fatalf("getBatch(%d): len %d cap %d", tc.size, len(bp.b), cap(bp.b))
		}
		bp.b = append(bp.b, make([]byte, tc.size)...)
		bp.recycle()
		// Whatever the pool hands back for this size is empty and large enough.
		if again := getBatch(tc.size); len(again.b) != 0 || cap(again.b) < tc.size {
			t.Fatalf("after release, getBatch(%d): len %d cap %d", tc.size, len(again.b), cap(again.b))
		}
	}
}

// TestHandshakeConn: the first write (the upgrade response) is held and leaves with the second
// (the welcome) in one write; later writes go straight through.
func TestHandshakeConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	hc := &handshakeConn{TCPConn: server.(*net.TCPConn)}
	t.Cleanup(func() { hc.Close() })

	// read reads exactly len(want) bytes and checks them. What the peer must not have got yet
	// is checked with a marker written straight to the TCP connection: TCP keeps the order,
	// so bytes written before the marker would be read before it.
	read := func(want string) {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len(want))
		if _, err := io.ReadFull(client, buf); err != nil {
			t.Fatalf("reading %q: %v (read %q)", want, err, buf)
		}
		if string(buf) != want {
			t.Fatalf("peer read %q, want %q", buf, want)
		}
	}
	nothingYet := func(when string) {
		t.Helper()
		if _, err := hc.TCPConn.Write([]byte("marker;")); err != nil {
			t.Fatal(err)
		}
		client.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, len("marker;"))
		if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "marker;" {
			t.Fatalf("%s the peer read %q (%v); want nothing before the marker", when, buf, err)
		}
	}
	response := []byte("response;")
	if n, err := hc.Write(response); n != len(response) || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	copy(response, "XXXXXXXXX") // the caller reuses its buffer
	nothingYet("after the first write")
	if n, err := hc.Write([]byte("welcome;")); n != len("welcome;") || err != nil {
		t.Fatalf("second write: %d, %v", n, err)
	}
	read("response;welcome;")
	if n, err := hc.Write([]byte("event")); n != len("event") || err != nil {
		t.Fatalf("third write: %d, %v", n, err)
	}
	read("event")
	if err := hc.flush(); err != nil {
		t.Fatalf("flush after the response was sent: %v", err)
	}
	nothingYet("after a flush with nothing held")

	// flush sends a held response on its own.
	hc2 := &handshakeConn{TCPConn: hc.TCPConn}
	hc2.Write([]byte("response2;"))
	if err := hc2.flush(); err != nil {
		t.Fatal(err)
	}
	read("response2;")
	hc2.Write([]byte("big frame"))
	read("big frame")
}

// TestSharedFrame: sessions with the same pending frames (the same memory, in the same order)
// are handed one joined frame, held once by each and once by the flusher's cache, which goes
// back to its pool only after the last release; sessions whose frames differ anywhere get
// their own. The first session's frame is written (joined and released) after the others took
// theirs, as on a busy server.
func TestSharedFrame(t *testing.T) {
	a, b, c := []byte(`{"n":1}`), []byte(`{"n":2}`), []byte(`{"n":3}`)
	other := []byte(`{"n":9}`) // as long as b, elsewhere in memory
	joined := `{"n":1}` + "\n" + `{"n":2}` + "\n" + `{"n":3}`
	for _, tc := range []struct {
		name   string
		second [][]byte
		shared bool
		want   string
	}{
		{"same frames", [][]byte{a, b, c}, true, joined},
		{"one differs in the middle", [][]byte{a, other, c}, false, `{"n":1}` + "\n" + `{"n":9}` + "\n" + `{"n":3}`},
		{"same bytes elsewhere in memory", [][]byte{a, append([]byte(nil), b...), c}, false, joined},
		{"one more", [][]byte{a, b, c, a}, false, joined + "\n" + `{"n":1}`},
		{"one fewer", [][]byte{a, b}, false, `{"n":1}` + "\n" + `{"n":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pend := func(frames [][]byte) *outbox {
				o := &outbox{pending: append([][]byte(nil), frames...)}
				for _, f := range frames {
					o.pendingBytes += len(f)
				}
				return o
			}
			var sh shared
			first, second := pend([][]byte{a, b, c}), pend(tc.second)
			f1 := first.nextFrame(&sh)
			f2 := second.nextFrame(&sh)
			if string(f1) != joined || string(f2) != tc.want {
				t.Fatalf("frames %q and %q, want %q and %q", f1, f2, joined, tc.want)
			}
			if same := &f1[0] == &f2[0]; same != tc.shared {
				t.Fatalf("one frame between them: %v, want %v", same, tc.shared)
			}
			if len(first.pending) != 0 || first.pendingBytes != 0 || len(second.pending) != 0 || second.pendingBytes != 0 {
				t.Fatalf("pending left: %d frames %d bytes, %d frames %d bytes",
					len(first.pending), first.pendingBytes, len(second.pending), second.pendingBytes)
			}
			// Held by each session and by the cache, which remembers the latest join.
			held := func(bp *batch, want int32, when string) {
				t.Helper()
				if got := bp.refs.Load(); got != want {
					t.Fatalf("%s: a frame held %d times, want %d", when, got, want)
				}
			}
			b1, b2 := first.batch, second.batch
			if tc.shared {
				held(b1, 3, "handed out")
			} else {
				held(b1, 1, "handed out")
				held(b2, 2, "handed out")
			}
			first.batch.recycle()
			sh.reset()
			if tc.shared {
				held(b1, 1, "after the first session and the cache released it")
			} else {
				held(b1, 0, "after the first session released it")
				held(b2, 1, "after the cache released it")
			}
			if string(f2) != tc.want {
				t.Fatalf("the second session's frame changed to %q", f2)
			}
			second.batch.recycle()
			held(b2, 0, "after every release")
		})
	}
}
