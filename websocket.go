package notify

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
)

// The WebSocket transport: melody's sessions, configured and handed to the hub's sessions
// here, and the upgrade's plumbing that keeps a connection's memory small.

// newMelody configures melody for a hub's sessions.
func newMelody(cfg *Config, checkOrigin func(*http.Request) bool) *melody.Melody {
	m := melody.New()
	m.Config.MaxMessageSize = cfg.MaxMessageSize
	m.Config.PingPeriod = cfg.PingInterval
	m.Config.PongWait = 2*cfg.PingInterval + 10*time.Second
	m.Config.WriteWait = cfg.WriteTimeout
	// At most one data frame per session waits in melody (see outbox), plus close frames.
	m.Config.MessageBufferSize = 4
	m.Upgrader = &websocket.Upgrader{
		// Clients send little (subscriptions, token refreshes); larger messages are read in
		// several pieces. Writes use the small buffer detachedWriter.Hijack hands over (no
		// WriteBufferSize and no pool: a pooled buffer would cost an allocation per write,
		// and with it the writer's share of the collector's work while it runs).
		ReadBufferSize: 256,
		Subprotocols:   []string{Subprotocol},
		CheckOrigin:    checkOrigin,
	}
	m.HandleConnect(wsConnected)
	m.HandleMessage(wsReceived)
	m.HandleMessageBinary(wsReceivedBinary)
	m.HandleSentMessage(wsSent)
	m.HandleError(wsError)
	return m
}

// wsTransport is a session's WebSocket: a melody session.
type wsTransport struct{ s *melody.Session }

func (t wsTransport) Write(frame []byte) error { return t.s.Write(frame) }

func (t wsTransport) CloseWith(code CloseCode) error {
	return t.s.CloseWithMsg(melody.FormatCloseMessage(int(code), code.String()))
}

func (t wsTransport) cut() { _ = t.s.WebsocketConnection().Close() }

func (wsTransport) kind() transportKind { return transportWebSocket }

// welcome writes on the session's own goroutine in melody's connect handler, before melody
// starts the session's write loop: with no hand-off to another goroutine (on a busy server
// that saves a scheduling round trip per new connection), and nothing else can write
// meanwhile.
func (t wsTransport) welcome(frame []byte, timeout time.Duration) error {
	ws := t.s.WebsocketConnection()
	err := ws.SetWriteDeadline(time.Now().Add(timeout))
	if hc, ok := ws.UnderlyingConn().(*handshakeConn); ok && err == nil && len(frame) > writeBufferSize/2 {
		// A frame larger than the write buffer leaves with writev, which does not go through
		// handshakeConn.Write: the upgrade response goes first, on its own.
		err = hc.flush()
	}
	if err == nil {
		err = ws.WriteMessage(websocket.TextMessage, frame)
	}
	return err
}

// melody's handlers, which hand each event to the session that Hub.serve keyed the melody
// session with. melody's disconnect needs none: serve tears the session down once melody
// returns.

func wsConnected(ms *melody.Session) {
	// What a client that stops reading can leave unsent waits in its outbox, which cuts it
	// off, not in the kernel (see limitUnsent).
	limitUnsent(ms.WebsocketConnection().NetConn())
	// After the upgrade the session needs only the request's context: keep it and let the
	// request go (about 1.7 KB per session). melody itself never reads Request.
	ctx := ms.Request.Context()
	ms.Request = nil
	sessionOf(ms).connected(ctx, wsTransport{ms})
}

func wsReceived(ms *melody.Session, msg []byte)       { sessionOf(ms).received(msg) }
func wsReceivedBinary(ms *melody.Session, msg []byte) { sessionOf(ms).receivedBinary(msg) }
func wsSent(ms *melody.Session, msg []byte)           { sessionOf(ms).written(len(msg)) }

func wsError(ms *melody.Session, err error) {
	s := sessionOf(ms)
	log := s.host.settings().Logger
	if errors.Is(err, melody.ErrMessageBufferFull) {
		// Cannot happen by the outbox's construction; if it does, the session lost a frame.
		s.host.metrics().slow.Add(1)
		s.close(CloseSlowConsumer)
		log.Error("notify: melody buffer full", "err", err)
		return
	}
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		s.out.closedWith(CloseCode(ce.Code))
	}
	if errors.Is(err, melody.ErrWriteClosed) || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		return
	}
	log.Debug("notify: session error", "err", err)
}

// sessionOf returns the session of a melody session.
func sessionOf(ms *melody.Session) *session {
	v, _ := ms.Get(sessionKey)
	s, _ := v.(*session)
	return s
}

const sessionKey = "notify.session"

// writeBufferSize is a session's write buffer, kept for its life: the upgrader takes the
// hijacked writer's buffer as it is. A frame that does not fit leaves in the same system call
// (gorilla writes the rest from the frame itself, with writev).
const writeBufferSize = 512

// detachedWriter is the ResponseWriter the upgrader gets. Until the hijack it is the handler's;
// its Hijack hands the upgrader the connection with small buffers of its own, keeping
// net/http's to be freed when the handler returns.
type detachedWriter struct {
	http.ResponseWriter
	hijacked chan struct{}
}

func (d *detachedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(d.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if brw.Reader.Buffered() == 0 { // otherwise the upgrader refuses the connection anyway
		if tc, ok := nc.(*net.TCPConn); ok {
			nc = &handshakeConn{TCPConn: tc}
		}
		brw = bufio.NewReadWriter(bufio.NewReaderSize(nc, 16), bufio.NewWriterSize(nc, writeBufferSize))
	}
	d.ResponseWriter = nil // the upgrader is done with it; let net/http's state go
	close(d.hijacked)
	return nc, brw, nil
}

// handshakeConn holds back the upgrader's response (its first write) until the session's
// first frame, the welcome, so that both leave in one system call: the welcome follows at
// once (wsTransport.welcome), and a new connection costs one write instead of two. Later writes go
// straight to the TCP connection; embedding it keeps net.Buffers' writev for frames larger
// than the write buffer, which bypasses Write: wsTransport.welcome flushes the response first when the
// welcome is that large. Only the session's one writer at a time calls Write.
type handshakeConn struct {
	*net.TCPConn
	state int    // 0: the response is next; 1: held; 2: sent
	held  []byte // the response, copied: the upgrader reuses its buffer for frames
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	switch c.state {
	case 0:
		c.held, c.state = bytes.Clone(p), 1
		return len(p), nil
	case 1:
		bufs, h := net.Buffers{c.held, p}, len(c.held)
		c.held, c.state = nil, 2
		n, err := bufs.WriteTo(c.TCPConn)
		return max(0, int(n)-h), err
	}
	return c.TCPConn.Write(p)
}

// flush sends the held response now, on its own.
func (c *handshakeConn) flush() error {
	if c.state != 1 {
		return nil
	}
	held := c.held
	c.held, c.state = nil, 2
	_, err := c.TCPConn.Write(held)
	return err
}
