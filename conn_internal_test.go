package notify

import (
	"errors"
	"net"
	"os"
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
		if len(*bp) != 0 || cap(*bp) < tc.size {
			t.Fatalf("getBatch(%d): len %d cap %d", tc.size, len(*bp), cap(*bp))
		}
		*bp = append(*bp, make([]byte, tc.size)...)
		putBatch(bp)
		// Whatever the pool hands back for this size is empty and large enough.
		if again := getBatch(tc.size); len(*again) != 0 || cap(*again) < tc.size {
			t.Fatalf("after put, getBatch(%d): len %d cap %d", tc.size, len(*again), cap(*again))
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

	read := func(wait time.Duration) string {
		t.Helper()
		client.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 64)
		n, err := client.Read(buf)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	response := []byte("response;")
	if n, err := hc.Write(response); n != len(response) || err != nil {
		t.Fatalf("first write: %d, %v", n, err)
	}
	copy(response, "XXXXXXXXX") // the caller reuses its buffer
	if got := read(50 * time.Millisecond); got != "" {
		t.Fatalf("after the first write the peer read %q; want nothing yet", got)
	}
	if n, err := hc.Write([]byte("welcome;")); n != len("welcome;") || err != nil {
		t.Fatalf("second write: %d, %v", n, err)
	}
	if got := read(time.Second); got != "response;welcome;" {
		t.Fatalf("peer read %q", got)
	}
	if n, err := hc.Write([]byte("event")); n != len("event") || err != nil {
		t.Fatalf("third write: %d, %v", n, err)
	}
	if got := read(time.Second); got != "event" {
		t.Fatalf("peer read %q", got)
	}
	if err := hc.flush(); err != nil || read(50*time.Millisecond) != "" {
		t.Fatalf("flush after the response was sent: %v, or it wrote something", err)
	}

	// flush sends a held response on its own.
	hc2 := &handshakeConn{TCPConn: hc.TCPConn}
	hc2.Write([]byte("response2;"))
	if err := hc2.flush(); err != nil {
		t.Fatal(err)
	}
	if got := read(time.Second); got != "response2;" {
		t.Fatalf("after flush the peer read %q", got)
	}
	hc2.Write([]byte("big frame"))
	if got := read(time.Second); got != "big frame" {
		t.Fatalf("after flush, a write: peer read %q", got)
	}
}
