package main

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify/bench/internal/payload"
)

// phase collects the deliveries of one scenario.
type phase struct {
	expected atomic.Int64
	got      atomic.Int64 // events delivered to reading clients
	frames   atomic.Int64 // frames that carried at least one of them
	end      atomic.Int64 // unix ns when got reached expected
	done     chan struct{}
	once     sync.Once
}

func newPhase() *phase {
	p := &phase{done: make(chan struct{})}
	p.expected.Store(1 << 62)
	return p
}

func (p *phase) check() {
	if p.got.Load() >= p.expected.Load() {
		p.once.Do(func() {
			p.end.Store(time.Now().UnixNano())
			close(p.done)
		})
	}
}

var current atomic.Pointer[phase]

// frameConn is a client's connection: a *websocket.Conn, or an event stream (*sseConn).
type frameConn interface {
	WriteMessage(kind int, b []byte) error
	Close() error
}

// client is one connection of the load generator: a WebSocket, or notify-sse's event stream.
type client struct {
	ws     frameConn
	slow   atomic.Bool   // stop reading (S6)
	resume chan struct{} // closed to read again
	ready  chan struct{} // closed once the welcome (notify) or connect reply (centrifuge) was read
	ended  chan struct{} // closed when the read loop ended
	code   int           // close code, or -1 for another error; valid after ended
	pong   bool          // answer the server's empty pings (centrifuge)
	keepTS bool          // record each event's send time too (S9), before the read loop starts

	mu         sync.Mutex
	lat        []int64 // latencies (ns) of the current phase
	sentAt     []int64 // with keepTS: the send times (unix ns) of lat's events
	slowEvents int     // events read while marked slow
}

// dial connects with the token. The protocol is the variant's: notify sends a welcome frame
// first; a centrifuge client sends a connect command, reads its reply and answers the server's
// pings; the others need nothing.
func dial(url, token, variant string) (*client, error) { return dialTS(url, token, variant, false) }

// dialTS is dial, recording send times with keepTS.
func dialTS(url, token, variant string, keepTS bool) (*client, error) {
	if variant == "notify-sse" {
		sc, err := dialSSE(url, token)
		if err != nil {
			return nil, err
		}
		c := &client{ws: sc, resume: make(chan struct{}), ready: make(chan struct{}), ended: make(chan struct{}), keepTS: keepTS}
		go c.read(welcomeOp)
		return c, nil
	}
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 256}
	ws, resp, err := d.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		if resp != nil {
			return nil, errors.New(resp.Status + ": " + err.Error())
		}
		return nil, err
	}
	c := &client{ws: ws, resume: make(chan struct{}), ready: make(chan struct{}), ended: make(chan struct{}), keepTS: keepTS}
	var welcome []byte
	switch variant {
	case "notify":
		welcome = welcomeOp
	case "centrifuge":
		welcome, c.pong = connectReply, true
		if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"id":1,"connect":{}}`)); err != nil {
			ws.Close()
			return nil, err
		}
	default:
		close(c.ready)
	}
	go c.read(welcome)
	return c, nil
}

var (
	welcomeOp    = []byte(`"op":"welcome"`)
	connectReply = []byte(`"connect":{`)
	emptyPing    = []byte(`{}`)
)

// readBufs recycles the buffers frames are read into: the load generator shares one core among
// thousands of connections, and a buffer allocated (and cleared, and grown) per frame would
// make it, not the server, the limit sooner.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// readFrame reads the next message into a pooled buffer; the caller puts it back.
func (c *client) readFrame() (*[]byte, error) {
	ws, ok := c.ws.(*websocket.Conn)
	if !ok {
		return c.ws.(*sseConn).next()
	}
	_, r, err := ws.NextReader()
	if err != nil {
		return nil, err
	}
	bp := readBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			*bp = b
			return bp, nil
		}
		if err != nil {
			*bp = b
			readBufs.Put(bp)
			return nil, err
		}
	}
}

// read reads until the connection ends; welcome, when set, marks the first frame to wait for.
func (c *client) read(welcome []byte) {
	defer close(c.ended)
	for {
		bp, err := c.readFrame()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				c.code = ce.Code
			} else {
				c.code = -1
			}
			return
		}
		now := time.Now().UnixNano()
		msg := *bp
		if welcome != nil && bytes.Contains(msg, welcome) {
			welcome = nil
			close(c.ready)
		}
		slow := c.slow.Load()
		p := current.Load()
		n, pings := 0, 0
		c.mu.Lock()
		for len(msg) > 0 {
			line := msg
			if i := bytes.IndexByte(msg, '\n'); i >= 0 {
				line, msg = msg[:i], msg[i+1:]
			} else {
				msg = nil
			}
			// centrifuge's ping, alone in its frame or, when it was queued behind other
			// replies, one line of a frame that carries them too
			if c.pong && bytes.Equal(line, emptyPing) {
				pings++
				continue
			}
			ts, ok := payload.TS(line)
			if !ok {
				continue
			}
			if slow {
				c.slowEvents++
				continue
			}
			c.lat = append(c.lat, now-ts)
			if c.keepTS {
				c.sentAt = append(c.sentAt, ts)
			}
			n++
		}
		c.mu.Unlock()
		readBufs.Put(bp)
		for range pings { // the reader is the connection's only writer
			_ = c.ws.WriteMessage(websocket.TextMessage, emptyPing)
		}
		if n > 0 && p != nil {
			p.frames.Add(1)
			p.got.Add(int64(n))
			p.check()
		}
		if slow {
			select {
			case <-c.resume:
			case <-c.ended: // never: ended is ours
			}
		}
	}
}

// take returns and resets the latencies recorded so far.
func (c *client) take() []int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.lat
	c.lat, c.sentAt = nil, nil
	return l
}

// takeTS returns and resets the latencies and the send times recorded so far (keepTS).
func (c *client) takeTS() (lat, sentAt []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	lat, sentAt = c.lat, c.sentAt
	c.lat, c.sentAt = nil, nil
	return lat, sentAt
}
