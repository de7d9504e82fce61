package main

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// rawVariant is the raw limit: gorilla/websocket and nothing else. A map from user to
// connections; each event encoded once (by the caller); one writer goroutine per connection
// that, when woken, takes everything queued for it and sends it as one frame, newline-joined,
// in one write. No timer: a lone event leaves at once. Like notify it verifies the JWT and
// closes a connection whose queue passes 1 MiB with 4002.
type rawVariant struct {
	up websocket.Upgrader

	mu    sync.RWMutex
	all   map[*rawConn]struct{}
	users map[string]map[*rawConn]struct{}

	slowN atomic.Uint64
}

const (
	rawMaxQueue     = 1 << 20
	rawWriteTimeout = 10 * time.Second
)

type rawConn struct {
	v    *rawVariant
	ws   *websocket.Conn
	user string
	wake chan struct{} // capacity 1: "something to do"

	mu     sync.Mutex
	queue  [][]byte
	queued int
	close  int // close code to send once closing; 0: not closing
}

var joinPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func newRaw() *rawVariant {
	return &rawVariant{
		up:  websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024, WriteBufferPool: &sync.Pool{}},
		all: make(map[*rawConn]struct{}), users: make(map[string]map[*rawConn]struct{}),
	}
}

func (v *rawVariant) ws() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, err := userFromToken(r)
		if err != nil {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		ws, err := v.up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		c := &rawConn{v: v, ws: ws, user: user, wake: make(chan struct{}, 1)}
		v.mu.Lock()
		v.all[c] = struct{}{}
		set := v.users[user]
		if set == nil {
			set = make(map[*rawConn]struct{})
			v.users[user] = set
		}
		set[c] = struct{}{}
		v.mu.Unlock()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.writer()
		}()
		ws.SetReadLimit(8192)
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				break
			}
		}
		v.mu.Lock()
		delete(v.all, c)
		delete(set, c)
		if len(set) == 0 {
			delete(v.users, user)
		}
		v.mu.Unlock()
		c.shut(websocket.CloseNormalClosure)
		<-done
	})
}

// push queues msg without blocking; a queue past rawMaxQueue closes the connection with 4002.
func (c *rawConn) push(msg []byte) {
	c.mu.Lock()
	if c.close != 0 {
		c.mu.Unlock()
		return
	}
	if c.queued+len(msg) > rawMaxQueue {
		c.mu.Unlock()
		c.v.slowN.Add(1)
		c.shut(4002)
		return
	}
	c.queue = append(c.queue, msg)
	c.queued += len(msg)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *rawConn) shut(code int) {
	c.mu.Lock()
	if c.close == 0 {
		c.close = code
		clear(c.queue)
		c.queue, c.queued = nil, 0
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *rawConn) writer() {
	defer c.ws.Close()
	var spare [][]byte
	for range c.wake {
		c.mu.Lock()
		q, code := c.queue, c.close
		c.queue, c.queued = spare[:0], 0
		c.mu.Unlock()
		if code != 0 {
			msg := websocket.FormatCloseMessage(code, "")
			_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(rawWriteTimeout))
			return
		}
		if len(q) == 0 {
			spare = q
			continue
		}
		_ = c.ws.SetWriteDeadline(time.Now().Add(rawWriteTimeout))
		var err error
		if len(q) == 1 {
			err = c.ws.WriteMessage(websocket.TextMessage, q[0])
		} else {
			bp := joinPool.Get().(*[]byte)
			b := (*bp)[:0]
			for i, m := range q {
				if i > 0 {
					b = append(b, '\n')
				}
				b = append(b, m...)
			}
			err = c.ws.WriteMessage(websocket.TextMessage, b)
			*bp = b[:0]
			joinPool.Put(bp)
		}
		clear(q)
		spare = q
		if err != nil {
			return
		}
	}
}

func (v *rawVariant) sendUser(user string, msg []byte, _ bool) {
	v.mu.RLock()
	for c := range v.users[user] {
		c.push(msg)
	}
	v.mu.RUnlock()
}

func (v *rawVariant) broadcast(msg []byte) {
	v.mu.RLock()
	for c := range v.all {
		c.push(msg)
	}
	v.mu.RUnlock()
}

func (v *rawVariant) conns() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.all)
}

func (v *rawVariant) slow() uint64    { return v.slowN.Load() }
func (v *rawVariant) dropped() uint64 { return 0 }
