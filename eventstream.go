package notify

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The server-sent events transport: the same sessions as the WebSocket's, over a streamed
// HTTP response (PROTOCOL.md, "Server-sent events"). Each frame is one event's data; the user
// stream's events and the welcome carry their position as the event's id, offset.epoch, which
// a browser's EventSource sends back as Last-Event-ID when it reconnects. The client's
// messages arrive as POSTs (see post.go), on any node, and reach the session's read loop here.

// sseTransport is a session's event stream. Its write loop (run) is the only one that writes
// to dst: on HTTP/1.x the hijacked connection (sseConn), on a goroutine of the hub's after the
// handler has returned; on HTTP/2 net/http's response (sseResponse), on the handler's
// goroutine. Its read loop (read) hands the session the client's messages one at a time, and
// runs only while some wait: the write loop starts it when a POST has queued one (after the
// write under way, if any), and waits for it (readers) once the stream is over, so that an idle
// stream costs no goroutine of its own beside the write loop and, on HTTP/1.x, the
// connection's watch. mu guards frames, code, ended, inbox and reading; the outbox hands it at
// most one data frame at a time, plus the close.
//
// A paced event costs the write loop no allocation: frames and the write loop's spare are two
// buffers of the transport's own (slots) that trade places each round, the events are built in
// a pooled batch with room for the chunk's framing, and an event's id is read from its frame
// without a copy. Every allocation brings the next collection closer, and during a collection
// a goroutine's first allocation makes it help mark the heap before it goes on (an assist):
// thousands of write loops that allocated were what a paced stream's tail waited for
// (BenchmarkTransportDeliver counts a delivery's allocations).
type sseTransport struct {
	dst     sseTarget
	timeout time.Duration // each write's
	s       *session

	mu      sync.Mutex
	frames  [][]byte  // handed over by the outbox since the write loop last took them
	code    CloseCode // the close queued, 0 until then
	ended   bool      // nothing more is written
	inbox   [][]byte  // the client's messages, for the read loop; at most sseInbox
	reading bool      // the read loop runs (started by run, which alone adds to readers)
	wake    chan struct{}
	slots   [2][1][]byte // the backing arrays of frames and of the write loop's spare

	readers  sync.WaitGroup // the read loop, waited for after run
	done     chan struct{}  // closed when the stream is over (end)
	doneOnce sync.Once
}

// sseInbox is how many client messages may wait for a session's read loop; a POST past it
// gets 429.
const sseInbox = 16

var errSSEClosed = errors.New("notify: event stream closed")

func newSSETransport(dst sseTarget, s *session, timeout time.Duration) *sseTransport {
	t := &sseTransport{dst: dst, timeout: timeout, s: s,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	t.frames = t.slots[0][:0]
	return t
}

// sseTarget is where a stream's events are written.
type sseTarget interface {
	// send writes the events in b[sseRoom:] and flushes them. b's first sseRoom bytes, and
	// 2 bytes of capacity past its end, are the target's to frame them with; nothing else of b
	// is written to, and b is not kept.
	send(b []byte) error
	SetWriteDeadline(time.Time) error
}

// sseRoom is the room a write leaves before its events: an HTTP/1.x chunk's size line, 16 hex
// digits and CRLF at most.
const sseRoom = 18

// newSSEBuf returns an empty write: sseRoom bytes of room, and capacity for n bytes of events
// and the framing after them.
func newSSEBuf(n int) []byte { return make([]byte, sseRoom, sseRoom+n+2) }

// sseResponse is an HTTP/2 stream's target: net/http's response, which the handler's
// goroutine writes until the stream ends.
type sseResponse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func (r sseResponse) send(b []byte) error {
	if _, err := r.w.Write(b[sseRoom:]); err != nil {
		return err
	}
	return r.rc.Flush()
}

func (r sseResponse) SetWriteDeadline(t time.Time) error { return r.rc.SetWriteDeadline(t) }

// sseConn is an HTTP/1.x stream's target: the connection, hijacked from net/http once the
// request is admitted so that net/http's per-connection buffers and the handler's goroutine go.
// The body is chunked as net/http's was, one chunk per write, so that a client sees the same
// stream as before (bench/cmd/loadgen takes each chunk as a flush). The response's head goes
// out with the first write (the welcome, or a close event), each chunk with its framing, in one
// system call. There is no write buffer: every write of the write loop is a whole batch,
// heartbeat or close event followed by a flush, so a buffer would only copy it (and cost its
// size per idle stream); the chunk's size line and CRLF are written around the events in the
// write's own buffer (sseRoom), so that a chunk is one plain write of one buffer, as a
// WebSocket frame is, with no vector to build and allocate. The write loop's goroutine alone
// writes and reads the fields.
type sseConn struct {
	net.Conn
	headSent bool
	failed   bool // a write failed: the stream is not ended with the last chunk
}

// sseHead is an HTTP/1.x stream's response head.
var sseHead = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n") // X-Accel-Buffering: nginx must not buffer the stream

// send writes b's events as one chunk: its size line in b's room, its CRLF appended.
func (c *sseConn) send(b []byte) error {
	n := len(b) - sseRoom
	if n <= 0 {
		return nil // an empty chunk would end the body
	}
	var hex [16]byte
	size := strconv.AppendUint(hex[:0], uint64(n), 16)
	start := sseRoom - len(size) - 2
	copy(b[start:], size)
	b[sseRoom-2], b[sseRoom-1] = '\r', '\n'
	chunk := append(b[start:], '\r', '\n')
	var err error
	if c.headSent {
		_, err = c.Conn.Write(chunk)
	} else {
		c.headSent = true
		bufs := net.Buffers{sseHead, chunk} // once per stream
		_, err = bufs.WriteTo(c.Conn)
	}
	if err != nil {
		c.failed = true
	}
	return err
}

// watch reads the connection until it fails: the client went away (or the stream closed it).
// The client sends nothing after its request; whatever it does send is dropped. It closes
// gone when it returns.
func (c *sseConn) watch(gone chan<- struct{}) {
	defer close(gone)
	buf := make([]byte, 16)
	for {
		if _, err := c.Conn.Read(buf); err != nil {
			return
		}
	}
}

// close ends the response: its last chunk (within the last write's deadline, or at once when
// the stream was cut) unless a write failed, then the write side, so that the client reads the
// end of the body before the connection goes.
func (c *sseConn) close() {
	if c.headSent && !c.failed {
		_, _ = c.Conn.Write([]byte("0\r\n\r\n"))
	}
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = c.Conn.Close()
}

func (t *sseTransport) Write(frame []byte) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.code != 0 {
		return errSSEClosed
	}
	t.frames = append(t.frames, frame)
	t.signal()
	return nil
}

func (t *sseTransport) CloseWith(code CloseCode) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended || t.code != 0 {
		return errSSEClosed
	}
	t.code = code
	t.signal()
	return nil
}

func (*sseTransport) kind() transportKind { return transportSSE }

func (t *sseTransport) signal() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// cut ends the stream now: the write loop stops, and a write under way fails at once.
func (t *sseTransport) cut() {
	t.end()
	_ = t.dst.SetWriteDeadline(time.Now())
}

func (t *sseTransport) end() {
	t.doneOnce.Do(func() {
		t.mu.Lock()
		t.ended = true
		t.mu.Unlock()
		close(t.done)
	})
}

// welcome writes the welcome (on HTTP/1.x with the response's head), on the write loop's
// goroutine before the write loop starts.
func (t *sseTransport) welcome(frame []byte, timeout time.Duration) error {
	_ = t.dst.SetWriteDeadline(time.Now().Add(timeout))
	var w struct {
		Epoch     string `json:"epoch"`
		Offset    uint64 `json:"offset"`
		Recovered *bool  `json:"recovered"`
	}
	_ = json.Unmarshal(frame, &w)
	if w.Recovered != nil && *w.Recovered {
		// The replay follows, from the position the client asked for: the welcome's is the
		// stream's head, and as the stream's id it would skip the replay if the stream broke
		// before it. Without an id, the client's last one stays.
		w.Epoch = ""
	}
	return t.dst.send(appendSSEEvent(newSSEBuf(len(frame)+sseEventOverhead), frame, w.Offset, []byte(w.Epoch)))
}

// deliver queues a client message for the read loop without waiting (the write loop starts
// the read loop if it is not running), and returns the POST's status: 202, 429 when the
// session's inbox is full, 404 when the stream is over.
func (t *sseTransport) deliver(msg []byte) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.ended:
		return http.StatusNotFound
	case len(t.inbox) >= sseInbox:
		return http.StatusTooManyRequests
	}
	t.inbox = append(t.inbox, msg)
	t.signal()
	return http.StatusAccepted
}

// read is the session's read loop: the client's messages, one at a time, until none waits
// or the stream is over.
func (t *sseTransport) read() {
	defer t.readers.Done()
	for {
		t.mu.Lock()
		if t.ended || len(t.inbox) == 0 {
			t.reading = false
			t.inbox = nil
			t.mu.Unlock()
			return
		}
		msg := t.inbox[0]
		t.inbox = t.inbox[1:]
		t.mu.Unlock()
		t.s.received(msg)
	}
}

// run is the write loop: each batch the outbox hands over goes out as events and one flush,
// a comment every heartbeat keeps proxies from timing the stream out, and the close ends it
// with a close event (the WebSocket's close frame). It returns when the stream is over, or
// when gone is closed: the client went away.
func (t *sseTransport) run(gone <-chan struct{}, heartbeat time.Duration) {
	defer t.end()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	spare := t.slots[1][:0] // frames' other buffer: the outbox appends to one while run writes the other's
	for {
		t.mu.Lock()
		frames, code := t.frames, t.code
		t.frames = spare
		if len(t.inbox) > 0 && !t.reading {
			t.reading = true
			t.readers.Add(1)
			go t.read()
		}
		t.mu.Unlock()
		if len(frames) > 0 {
			bp := sseBatch(frames)
			ok := t.write(bp.b)
			bp.recycle()
			if !ok {
				return
			}
			for _, f := range frames {
				t.s.written(len(f))
			}
			clear(frames)
			spare = frames[:0]
			continue // written may have handed over the next batch
		}
		spare = frames
		if code != 0 {
			t.s.out.closedWith(code)
			f := closeFrame(code)
			t.write(appendSSEEvent(newSSEBuf(len(f)+sseEventOverhead), f, 0, nil))
			return
		}
		select {
		case <-t.wake:
		case <-tick.C:
			bp := getBatch(sseRoom + 5) // pooled, as a batch's: nothing to assist a collection with
			bp.b = append(bp.b[:sseRoom], ":\n\n"...)
			ok := t.write(bp.b)
			bp.recycle()
			if !ok {
				return
			}
		case <-gone: // the client went away
			return
		case <-t.done:
			return
		}
	}
}

// sseBatch builds the events of the frames the outbox handed over in a pooled buffer, after
// sseRoom bytes of room, for the caller to write and recycle: an idle stream keeps no buffer
// the size of its largest batch, and a busy one allocates none.
func sseBatch(frames [][]byte) *batch {
	size := sseRoom + 2
	for _, f := range frames {
		// A joined frame holds several events, one a line, each with lines of its own.
		size += len(f) + (1+bytes.Count(f, []byte{'\n'}))*sseEventOverhead
	}
	bp := getBatch(size)
	bp.b = bp.b[:sseRoom]
	for _, f := range frames {
		bp.b = appendSSEFrames(bp.b, f)
	}
	return bp
}

// sseEventOverhead is room for an event's id line, "data: " and the blank line after it.
const sseEventOverhead = 64

// write sends b (events after sseRoom bytes of room, see sseTarget) within the write timeout.
func (t *sseTransport) write(b []byte) bool {
	_ = t.dst.SetWriteDeadline(time.Now().Add(t.timeout))
	return t.dst.send(b) == nil
}

// closeFrame is the event that ends a stream, with what a WebSocket's close frame says.
func closeFrame(code CloseCode) []byte {
	b := append([]byte(`{"op":"close","code":`), strconv.Itoa(int(code))...)
	b = append(b, `,"reason":"`...)
	b = append(b, code.String()...) // plain ASCII, no escapes needed
	return append(b, `"}`...)
}

// appendSSEFrames appends the events of one outbox frame, which joins several with newlines.
func appendSSEFrames(b, frame []byte) []byte {
	for len(frame) > 0 {
		one := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			one, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		off, epoch := userPosition(one)
		b = appendSSEEvent(b, one, off, epoch)
	}
	return b
}

// appendSSEEvent appends one event: its id when it has a position, and its data (a frame has
// no newline: JSON escapes them in strings).
func appendSSEEvent(b, frame []byte, offset uint64, epoch []byte) []byte {
	if len(epoch) > 0 {
		b = append(b, "id: "...)
		b = strconv.AppendUint(b, offset, 10)
		b = append(append(b, '.'), epoch...)
		b = append(b, '\n')
	}
	b = append(b, "data: "...)
	b = append(b, frame...)
	return append(b, "\n\n"...)
}

// userPosition returns the position of a user stream's event frame, and no epoch for any
// other frame: a topic's events have positions of their own, which must not become the
// stream's Last-Event-ID. An event frame starts with its position (wire.WithPosition); a
// topic's has a top-level "topic" member before its data, and a user stream's none. The epoch
// is the frame's own bytes, not a copy.
func userPosition(frame []byte) (uint64, []byte) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"offset":`))
	if !ok {
		return 0, nil
	}
	num, rest, ok := bytes.Cut(rest, []byte(`,"epoch":"`))
	if !ok {
		return 0, nil
	}
	epoch, rest, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return 0, nil
	}
	off, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return 0, nil
	}
	topic := bytes.Index(rest, []byte(`,"topic":`))
	data := bytes.Index(rest, []byte(`,"data":`))
	if topic >= 0 && (data < 0 || topic < data) {
		return 0, nil
	}
	return off, epoch
}

// eventIDPosition reads a Last-Event-ID: offset.epoch. One that is not a position this hub
// could have sent (garbage, too long) asks for a recovery that cannot succeed, like a position
// of another epoch: the session starts with recovered false, never with a silent gap.
func eventIDPosition(id string) *Position {
	off, epoch, ok := strings.Cut(id, ".")
	o, err := strconv.ParseUint(off, 10, 64)
	if !ok || err != nil || epoch == "" || len(id) > 128 {
		return &Position{Epoch: badEpoch}
	}
	return &Position{Offset: o, Epoch: epoch}
}

// badEpoch is the epoch of a Last-Event-ID that is no position: no stream has it (epochs are
// NewEpoch's, without spaces).
const badEpoch = "invalid last event id"

// sseSessions are the hub's event streams by session ID, for the client's POSTs.
type sseSessions struct {
	mu sync.Mutex
	m  map[string]*sseTransport
}

func (x *sseSessions) add(id string, t *sseTransport) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.m == nil {
		x.m = make(map[string]*sseTransport)
	}
	x.m[id] = t
}

func (x *sseSessions) remove(id string) {
	x.mu.Lock()
	delete(x.m, id)
	x.mu.Unlock()
}

func (x *sseSessions) count() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.m)
}

// get returns the user's event stream with the ID, if it is on this hub.
func (x *sseSessions) get(user, id string) *sseTransport {
	x.mu.Lock()
	defer x.mu.Unlock()
	if t := x.m[id]; t != nil && t.s.user == user {
		return t
	}
	return nil
}
