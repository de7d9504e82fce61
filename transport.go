package notify

import (
	"errors"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
)

// transport carries one session's frames to its client. The session's outbox writes through
// it (as its sink: Write queues a frame without blocking, CloseWith queues the close with a
// code), the session writes its welcome through it, and Shutdown cuts it when its time is up.
// In the other direction the transport drives the session: it calls connected once it is up,
// received (and receivedBinary) for each client message on one goroutine, its read loop, and
// returns to the hub when the connection is over, which then tears the session down. The
// WebSocket transport is wsTransport, over melody.
type transport interface {
	sink
	// welcome writes the session's first frame at once, within timeout, before any other.
	welcome(frame []byte, timeout time.Duration) error
	// cut drops the connection now, without a close frame.
	cut()
}

// wsTransport is a session's WebSocket: a melody session.
type wsTransport struct{ s *melody.Session }

func (t wsTransport) Write(frame []byte) error { return t.s.Write(frame) }

func (t wsTransport) CloseWith(code CloseCode) error {
	return t.s.CloseWithMsg(melody.FormatCloseMessage(int(code), code.String()))
}

func (t wsTransport) cut() { _ = t.s.WebsocketConnection().Close() }

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
