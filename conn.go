package notify

import (
	"bytes"
	"sync"
	"time"

	"github.com/olahol/melody"
)

// conn is the hub's state for one melody session.
//
// Outbound frames never wait on the client: melody's queue holds at most one data frame of a
// session at a time. Frames arriving while one is in flight are collected in pending and leave
// together, newline-separated, as the next frame once melody reports the previous one written
// (HandleSentMessage). A lone frame goes out at once; under load everything pending goes out in
// one write. When pending exceeds Config.MaxQueueBytes the session is closed as a slow consumer.
type conn struct {
	hub  *Hub
	s    *melody.Session
	id   string
	user string

	// topics is guarded by hub.mu (the index lock), not by mu.
	topics map[string]struct{}
	gone   bool // guarded by hub.mu: removed from the index

	mu           sync.Mutex
	inflight     bool
	pending      [][]byte
	pendingBytes int
	closing      bool
	grants       []string
	expires      time.Time
	warnTimer    *time.Timer
	expireTimer  *time.Timer
	strikes      int // touched only by the session's read loop
}

// enqueue hands a frame to the session without blocking.
func (c *conn) enqueue(frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	if !c.inflight {
		c.inflight = true
		c.write(frame)
		return
	}
	if c.pendingBytes+len(frame) > c.hub.cfg.MaxQueueBytes {
		c.hub.slowConsumers.Add(1)
		c.hub.cfg.Logger.Warn("notify: closing slow consumer", "user", c.user, "session", c.id, "queued_bytes", c.pendingBytes)
		c.closeLocked(CloseSlowConsumer, "slow consumer", false)
		return
	}
	c.pending = append(c.pending, frame)
	c.pendingBytes += len(frame)
}

// sent runs on melody's write loop after a text frame was written.
func (c *conn) sent() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.pending) == 0 || c.closing {
		c.inflight = false
		return
	}
	var frame []byte
	if len(c.pending) == 1 {
		frame = c.pending[0]
	} else {
		frame = bytes.Join(c.pending, []byte{'\n'})
	}
	clear(c.pending)
	c.pending = c.pending[:0]
	c.pendingBytes = 0
	c.write(frame)
}

// write passes a frame to melody; called with mu held. melody's queue has room for it by
// construction, and melody's Write never blocks.
func (c *conn) write(frame []byte) {
	if err := c.s.Write(frame); err != nil {
		c.closing = true
	}
}

// close ends the session with a close code after the frames already pending (such as the error
// frame that led to the close); later frames are dropped.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, true)
}

// closeLocked queues the close frame, after what is pending when flush is set. melody's queue
// has room: at most one data frame in flight, the flushed one and the close frame.
func (c *conn) closeLocked(code int, reason string, flush bool) {
	if c.closing {
		return
	}
	c.closing = true
	if flush && len(c.pending) > 0 {
		_ = c.s.Write(bytes.Join(c.pending, []byte{'\n'}))
	}
	clear(c.pending)
	c.pending = nil
	c.pendingBytes = 0
	c.stopTimersLocked()
	_ = c.s.CloseWithMsg(melody.FormatCloseMessage(code, reason))
}

// schedule arms the expiry warning and the expiry close for the current token.
func (c *conn) schedule(grants []string, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return
	}
	c.stopTimersLocked()
	c.grants, c.expires = grants, expires
	if expires.IsZero() {
		return
	}
	left := time.Until(expires)
	warnIn := left - c.hub.cfg.ExpiryWarning
	if warnIn < 0 {
		warnIn = 0
	}
	exp := expires.Unix()
	c.warnTimer = time.AfterFunc(warnIn, func() {
		c.enqueue(control{Op: "expiring", Exp: exp}.frame())
	})
	c.expireTimer = time.AfterFunc(left, func() {
		c.close(CloseTokenExpired, "token expired")
	})
}

func (c *conn) stopTimersLocked() {
	if c.warnTimer != nil {
		c.warnTimer.Stop()
		c.expireTimer.Stop()
		c.warnTimer, c.expireTimer = nil, nil
	}
}

func (c *conn) granted(topic string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return topicGranted(c.grants, topic)
}
