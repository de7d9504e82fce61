package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// sseTransport is a session's event stream. Its write loop is the handler's goroutine (run),
// the only one that writes the response; its read loop (read) hands the session the client's
// messages one at a time, and runs only while some wait: the write loop starts it when a POST
// has queued one (after the write under way, if any), and waits for it (readers) once the
// stream is over, so that an idle stream costs no goroutine of its own beside the handler's. mu guards frames, code, ended, inbox and
// reading; the outbox hands it at most one data frame at a time, plus the close.
type sseTransport struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // each write's
	s       *session

	mu      sync.Mutex
	frames  [][]byte
	code    CloseCode // the close queued, 0 until then
	ended   bool      // nothing more is written
	inbox   [][]byte  // the client's messages, for the read loop; at most sseInbox
	reading bool      // the read loop runs (started by run, which alone adds to readers)
	wake    chan struct{}

	readers  sync.WaitGroup // the read loop, waited for by the handler after run
	done     chan struct{}  // closed when the stream is over (end)
	doneOnce sync.Once
}

// sseInbox is how many client messages may wait for a session's read loop; a POST past it
// gets 429.
const sseInbox = 16

var errSSEClosed = errors.New("notify: event stream closed")

func newSSETransport(w http.ResponseWriter, s *session, timeout time.Duration) *sseTransport {
	return &sseTransport{w: w, rc: http.NewResponseController(w), timeout: timeout, s: s,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
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
	_ = t.rc.SetWriteDeadline(time.Now())
}

func (t *sseTransport) end() {
	t.doneOnce.Do(func() {
		t.mu.Lock()
		t.ended = true
		t.mu.Unlock()
		close(t.done)
	})
}

// welcome writes the response's header and the welcome, on the handler's goroutine before the
// write loop starts.
func (t *sseTransport) welcome(frame []byte, timeout time.Duration) error {
	_ = t.rc.SetWriteDeadline(time.Now().Add(timeout))
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
	b := appendSSEEvent(nil, frame, w.Offset, w.Epoch)
	if _, err := t.w.Write(b); err != nil {
		return err
	}
	return t.rc.Flush()
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
// with a close event (the WebSocket's close frame). It returns when the stream is over.
func (t *sseTransport) run(ctx context.Context, heartbeat time.Duration) {
	defer t.end()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		t.mu.Lock()
		frames, code := t.frames, t.code
		t.frames = nil
		if len(t.inbox) > 0 && !t.reading {
			t.reading = true
			t.readers.Add(1)
			go t.read()
		}
		t.mu.Unlock()
		if len(frames) > 0 {
			// The events are built in a pooled buffer, given back once written: an idle
			// stream keeps no buffer the size of its largest batch.
			size := 0
			for _, f := range frames {
				size += len(f) + sseEventOverhead
			}
			bp := getBatch(size)
			for _, f := range frames {
				bp.b = appendSSEFrames(bp.b, f)
			}
			ok := t.write(bp.b)
			bp.recycle()
			if !ok {
				return
			}
			for _, f := range frames {
				t.s.written(len(f))
			}
			continue // written may have handed over the next batch
		}
		if code != 0 {
			t.s.out.closedWith(code)
			t.write(appendSSEEvent(nil, closeFrame(code), 0, ""))
			return
		}
		select {
		case <-t.wake:
		case <-tick.C:
			if !t.write([]byte(":\n\n")) {
				return
			}
		case <-ctx.Done(): // the client went away
			return
		case <-t.done:
			return
		}
	}
}

// sseEventOverhead is room for an event's id line, "data: " and the blank line after it.
const sseEventOverhead = 64

// write writes b and flushes it, within the write timeout.
func (t *sseTransport) write(b []byte) bool {
	_ = t.rc.SetWriteDeadline(time.Now().Add(t.timeout))
	if _, err := t.w.Write(b); err != nil {
		return false
	}
	return t.rc.Flush() == nil
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
func appendSSEEvent(b, frame []byte, offset uint64, epoch string) []byte {
	if epoch != "" {
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
// topic's has a top-level "topic" member before its data, and a user stream's none.
func userPosition(frame []byte) (uint64, string) {
	rest, ok := bytes.CutPrefix(frame, []byte(`{"offset":`))
	if !ok {
		return 0, ""
	}
	num, rest, ok := bytes.Cut(rest, []byte(`,"epoch":"`))
	if !ok {
		return 0, ""
	}
	epoch, rest, ok := bytes.Cut(rest, []byte(`"`))
	if !ok {
		return 0, ""
	}
	off, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return 0, ""
	}
	topic := bytes.Index(rest, []byte(`,"topic":`))
	data := bytes.Index(rest, []byte(`,"data":`))
	if topic >= 0 && (data < 0 || topic < data) {
		return 0, ""
	}
	return off, string(epoch)
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

// serveSSE serves a session as server-sent events (GET; PROTOCOL.md, "Server-sent events"),
// admitted as an upgrade is: a cross-origin request gets 403, a missing or bad token 401 (the
// token is found where Authenticate finds it, or comes as a ticket from serveTicket), a
// user at Config.MaxUserSessions 429, a hub at Config.MaxSessions or shutting down 503. The
// user stream recovers from the Last-Event-ID header, else from the query as on /ws. It
// returns when the session ends.
func (h *Hub) serveSSE(w http.ResponseWriter, r *http.Request) {
	if ticket := r.URL.Query().Get("ticket"); ticket != "" {
		if !originAllowed(&h.cfg, r) { // before the ticket is taken
			h.refuseUpgrade(w, refusedOrigin, http.StatusForbidden, "notify: origin not allowed")
			return
		}
		id, err := h.redeemTicket(r, ticket)
		if err != nil {
			if !errors.Is(err, ErrUnauthorized) {
				w.Header().Set("Retry-After", retryAfter)
				http.Error(w, "notify: ticket store unavailable", http.StatusServiceUnavailable)
				return
			}
			h.cfg.Logger.Info("notify: stream refused", "remote", r.RemoteAddr, "err", err)
			h.refuseUpgrade(w, refusalLabel(err), http.StatusUnauthorized, err.Error())
			return
		}
		r = r.WithContext(WithIdentity(r.Context(), id))
	}
	s, ok := h.open(w, r, transportSSE, func() *Position {
		if id := r.Header.Get("Last-Event-ID"); id != "" {
			return eventIDPosition(id)
		}
		return nil
	})
	if !ok {
		return
	}
	defer h.handlers.Done()
	defer s.teardown()
	// The stream reads nothing after its request: the read deadline of the server's
	// ReadTimeout has no use on it (writes set their own deadline, see write).
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	ctx := context.Background()
	if h.cfg.Authorize != nil {
		ctx = context.WithoutCancel(r.Context())
	}
	t := newSSETransport(w, s, h.cfg.WriteTimeout)
	// Reachable by POSTs before the welcome goes out: a client may POST as soon as it has read
	// it. What arrives meanwhile waits in the transport's inbox, read once run starts.
	h.sse.add(s.id, t)
	defer h.sse.remove(s.id)
	s.connected(ctx, t)
	t.run(r.Context(), h.cfg.SSEHeartbeat)
	t.readers.Wait()
}

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
