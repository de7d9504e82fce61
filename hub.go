package notify

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/olahol/melody"
)

// Hub holds the WebSocket sessions of one process and delivers events to them. It is an
// http.Handler for the WebSocket endpoint. All methods are safe for concurrent use.
type Hub struct {
	cfg    Config
	auth   *verifier
	m      *melody.Melody
	broker Broker

	// mu guards the index: sessions by user and by topic, and every conn's topics. Every
	// session and each user's sessions are slices, not sets: a delivery iterates them, which
	// costs less than iterating a map (conn.pos makes removal from conns a swap).
	mu     sync.RWMutex
	conns  []*conn
	users  map[string][]*conn
	topics map[string]map[*conn]struct{}

	// life orders the setting of closed with the adding to handlers; closed is read without it
	// where that order does not matter (sends, a session's start).
	life     sync.Mutex
	closed   atomic.Bool
	handlers sync.WaitGroup // one per ServeHTTP in flight
	bg       sync.WaitGroup // the hub's own goroutines
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when Shutdown has finished its work

	// flushQ holds the sessions waiting for the flusher (see flush.go).
	flushMu   sync.Mutex
	flushQ    []*conn
	flushWake chan struct{} // capacity 1: the queue is not empty

	// admit counts sessions against MaxSessions and MaxUserSessions (see admission).
	admit admission
	// stats are the counters of Stats (see counters); now is the clock of rate limiting.
	stats counters
	now   func() time.Time

	slowConsumers atomic.Uint64
	// For the flusher and pacing (see flush.go): deliveries counts frames handed to sessions,
	// lastFanOut is how many sessions the latest message reached, queued is len(flushQ),
	// flushedAt the deliveries when the flusher last took the queue, waiting the sessions whose
	// frame the flusher handed to melody and that have not written it yet, passes the
	// flusher's hand-outs of yieldWaiting frames or more, and seen the passes when a sender
	// last yielded to one.
	deliveries, lastFanOut atomic.Uint64
	queued, waiting        atomic.Int64
	flushedAt              atomic.Uint64
	passes, seen           atomic.Uint64
}

// New returns a hub configured by cfg, or the configuration mistake it found.
func New(cfg Config) (*Hub, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	h := &Hub{
		cfg:    cfg,
		auth:   newVerifier(&cfg),
		m:      melody.New(),
		users:  make(map[string][]*conn),
		topics: make(map[string]map[*conn]struct{}),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),

		flushWake: make(chan struct{}, 1),
		admit:     admission{maxTotal: cfg.MaxSessions, maxUser: cfg.MaxUserSessions},
		now:       time.Now,
	}
	h.auth.cfg = &h.cfg
	h.m.Config.MaxMessageSize = cfg.MaxMessageSize
	h.m.Config.PingPeriod = cfg.PingInterval
	h.m.Config.PongWait = 2*cfg.PingInterval + 10*time.Second
	h.m.Config.WriteWait = cfg.WriteTimeout
	// At most one data frame per session waits in melody (see conn), plus close frames.
	h.m.Config.MessageBufferSize = 4
	h.m.Upgrader = &websocket.Upgrader{
		// Clients send little (subscriptions, token refreshes); larger messages are read in
		// several pieces. Writes use the small buffer detachedWriter.Hijack hands over (no
		// WriteBufferSize and no pool: a pooled buffer would cost an allocation per write,
		// and with it the writer's share of the collector's work while it runs).
		ReadBufferSize: 256,
		Subprotocols:   []string{Subprotocol},
		CheckOrigin:    h.originAllowed,
	}
	h.m.HandleConnect(h.connected)
	h.m.HandleDisconnect(h.disconnected)
	h.m.HandleMessage(h.received)
	h.m.HandleMessageBinary(h.receivedBinary)
	h.m.HandleSentMessage(func(s *melody.Session, msg []byte) {
		h.stats.frames.Add(1)
		h.stats.bytes.Add(uint64(len(msg)))
		if c := connOf(s); c != nil {
			c.sent()
		}
	})
	h.m.HandleError(h.sessionError)
	h.broker = cfg.Broker
	if h.broker == nil {
		h.broker = newMemoryBroker(cfg.HistorySize, cfg.HistoryTTL)
	}
	if err := h.broker.Start(h.deliver); err != nil {
		return nil, fmt.Errorf("notify: start broker: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.broker.Subscribe(ctx, broadcastStream); err != nil {
		h.broker.Close()
		return nil, fmt.Errorf("notify: subscribe broadcasts: %w", err)
	}
	h.bg.Add(2)
	go h.pinger()
	go h.flusher()
	return h, nil
}

// deliver hands a broker's message to this hub's sessions on its stream.
func (h *Hub) deliver(m Message) {
	frame := m.frame
	if frame == nil {
		frame = withPosition(m.Payload, m.Offset, m.Epoch)
	}
	h.mu.RLock()
	var w wakeList
	var n int
	switch {
	case m.Stream == broadcastStream:
		n = h.deliverTo(&w, h.conns, m, frame)
	case isUserStream(m.Stream):
		n = h.deliverTo(&w, h.users[m.Stream[len(userPrefix):]], m, frame)
	case strings.HasPrefix(m.Stream, topicPrefix):
		set := h.topics[m.Stream[len(topicPrefix):]]
		for c := range set {
			if c.deliver(m.Stream, m.Offset, m.Epoch, frame) {
				w.add(h, c)
			}
		}
		n = len(set)
	}
	h.deliveries.Add(uint64(n))
	if uint64(n) != h.lastFanOut.Load() {
		h.lastFanOut.Store(uint64(n))
	}
	w.wake(h)
	h.mu.RUnlock()
	// After the delivery, not before: an event whose delivery waited for a yield would carry
	// the time the writes of a whole round took.
	h.pace(runtime.Gosched)
}

// deliverTo hands the frame to each session; called with h.mu held.
func (h *Hub) deliverTo(w *wakeList, conns []*conn, m Message, frame []byte) int {
	for _, c := range conns {
		if c.deliver(m.Stream, m.Offset, m.Epoch, frame) {
			w.add(h, c)
		}
	}
	return len(conns)
}

// recover reads a stream's history and decides what a session asking to recover from since
// gets replayed. recovered is nil when since is nil (nothing was asked).
func (h *Hub) recover(ctx context.Context, stream string, since *Position) (pos Position, replay [][]byte, recovered *bool) {
	defer func() { h.stats.recovery(recovered) }()
	pos, msgs, err := h.broker.History(ctx, stream)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: history unavailable", "err", err)
		if since == nil {
			return Position{}, nil, nil
		}
		return Position{}, nil, new(false)
	}
	if since == nil {
		return pos, nil, nil
	}
	if since.Epoch != pos.Epoch || since.Offset > pos.Offset {
		return pos, nil, new(false)
	}
	next := since.Offset + 1
	for _, m := range msgs {
		switch {
		case m.Offset < next:
			continue
		case m.Offset > next: // the history no longer holds what the client missed
			return pos, nil, new(false)
		}
		f := m.frame
		if f == nil {
			f = withPosition(m.Payload, m.Offset, m.Epoch)
		}
		replay = append(replay, f)
		next++
	}
	if next != pos.Offset+1 {
		return pos, nil, new(false)
	}
	return pos, replay, new(true)
}

const connKey = "notify.conn"

func connOf(s *melody.Session) *conn {
	v, _ := s.Get(connKey)
	c, _ := v.(*conn)
	return c
}

// ServeHTTP upgrades an authenticated request to a WebSocket session. A cross-origin request
// gets 403, a missing or bad token 401, a shut-down hub 503. It returns once the connection is
// upgraded; the session goes on in its own goroutine, which Shutdown waits for.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.originAllowed(r) {
		h.stats.refuse(refusedOrigin)
		http.Error(w, "notify: origin not allowed", http.StatusForbidden)
		return
	}
	id, ok := IdentityFromContext(r.Context())
	if !ok {
		var err error
		id, err = h.auth.verify(h.auth.tokenFrom(r))
		if err != nil {
			h.stats.refuse(refusalLabel(err))
			h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "err", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
	}
	since, err := sinceFrom(r)
	if err != nil {
		h.stats.refuse(refusedBadRequest)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if label := h.admit.acquire(id.UserID); label != "" {
		h.stats.refuse(label)
		status, msg := h.admit.refusal(label)
		h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "reason", label)
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, msg, status)
		return
	}
	h.life.Lock()
	if h.closed.Load() {
		h.life.Unlock()
		h.admit.release(id.UserID)
		h.stats.refuse(refusedShutdown)
		w.Header().Set("Retry-After", retryAfter)
		http.Error(w, ErrClosed.Error(), http.StatusServiceUnavailable)
		return
	}
	h.handlers.Add(1)
	h.life.Unlock()

	c := &conn{hub: h, id: newID(), user: id.UserID, since: since}
	c.grants, c.expires = id.Topics, id.Expires
	// The session outlives this handler: returning once the connection is hijacked frees what
	// net/http keeps per connection while its handler runs (4 KB read and 4 KB write buffers,
	// the request, a deep stack). The session gets a context of its own: net/http's ends when
	// the handler returns, and keeping its values would keep net/http's per-connection
	// contexts (about 0.5 KB a session).
	ctx := context.Background()
	dw := &detachedWriter{ResponseWriter: w, hijacked: make(chan struct{})}
	ended := make(chan struct{})
	go h.serve(dw, r.WithContext(ctx), c, ended)
	select {
	case <-dw.hijacked:
	case <-ended: // refused before the hijack; the answer went through w
	}
}

// serve runs a session to its end. It is a method rather than a closure so that nothing keeps
// the request or net/http's writer alive after the upgrade.
func (h *Hub) serve(w *detachedWriter, r *http.Request, c *conn, ended chan struct{}) {
	defer h.handlers.Done()
	defer close(ended)
	defer h.admit.release(c.user)
	remote := r.RemoteAddr
	if err := h.m.HandleRequestWithKeys(w, r, map[string]any{connKey: c}); err != nil {
		h.cfg.Logger.Info("notify: upgrade failed", "remote", remote, "err", err)
	}
}

// retryAfter is the Retry-After of refused upgrades, in seconds: enough for a cap to free up,
// short enough that a client's own backoff stays in charge.
const retryAfter = "5"

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
// once (conn.start), and a new connection costs one write instead of two. Later writes go
// straight to the TCP connection; embedding it keeps net.Buffers' writev for frames larger
// than the write buffer, which bypasses Write: conn.start flushes the response first when the
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

// sinceFrom reads the user stream's recovery position from the upgrade's "epoch" and "offset"
// query parameters (PROTOCOL.md, Recovery).
func sinceFrom(r *http.Request) (*Position, error) {
	if r.URL.RawQuery == "" {
		return nil, nil
	}
	q := r.URL.Query()
	epoch := q.Get("epoch")
	if epoch == "" {
		return nil, nil
	}
	off, err := strconv.ParseUint(q.Get("offset"), 10, 64)
	if err != nil {
		return nil, errors.New("notify: offset must be a non-negative integer")
	}
	return &Position{Epoch: epoch, Offset: off}, nil
}

func (h *Hub) connected(s *melody.Session) {
	c := connOf(s)
	c.s = s
	// After the upgrade the session needs only the request's context: keep it and let the
	// request go (about 1.7 KB per session). melody itself never reads Request.
	ctx := s.Request.Context()
	c.ctx = ctx
	s.Request = nil
	stream := userStream(c.user)
	// Until the welcome is queued every frame waits, and the user stream's are buffered so
	// that the replay and the live events meet without a gap or a duplicate.
	c.hold(stream, true)
	h.brokerSubscribe(ctx, stream)
	h.mu.Lock()
	h.index(c)
	h.mu.Unlock()
	h.stats.connects.Add(1)

	pos, replay, recovered := h.recover(ctx, stream, c.since)
	welcome := control{Op: "welcome", User: c.user, Session: c.id, Ping: int64(h.cfg.PingInterval / time.Second),
		Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered}
	if !c.expires.IsZero() {
		welcome.Exp = c.expires.Unix()
	}
	c.start(stream, welcome.frame(), replay, pos)
	c.schedule(c.grants, c.expires)
	if h.closed.Load() {
		c.close(websocket.CloseGoingAway, "going away, reconnect")
	}
	if h.cfg.Logger.Enabled(ctx, slog.LevelDebug) { // the arguments cost allocations
		h.cfg.Logger.Debug("notify: session connected", "user", c.user, "session", c.id)
	}
	if h.cfg.OnConnect != nil {
		h.cfg.OnConnect(c.user)
	}
}

func (h *Hub) disconnected(s *melody.Session) {
	c := connOf(s)
	h.stats.disconnected(c.endCode())
	c.close(websocket.CloseNormalClosure, "") // stops timers; a no-op on the wire after close
	h.mu.Lock()
	c.gone = true
	h.unindex(c)
	topics := make([]string, 0, len(c.topics))
	for t := range c.topics {
		h.unindexTopic(c, t)
		topics = append(topics, t)
	}
	h.mu.Unlock()
	ctx := c.ctx
	for _, t := range topics {
		h.brokerUnsubscribe(ctx, topicStream(t))
	}
	h.brokerUnsubscribe(ctx, userStream(c.user))
	if h.cfg.Logger.Enabled(ctx, slog.LevelDebug) {
		h.cfg.Logger.Debug("notify: session disconnected", "user", c.user, "session", c.id)
	}
	if h.cfg.OnDisconnect != nil {
		h.cfg.OnDisconnect(c.user)
	}
}

func (h *Hub) sessionError(s *melody.Session, err error) {
	if errors.Is(err, melody.ErrMessageBufferFull) {
		// Cannot happen by conn's construction; if it does, the session lost a frame.
		if c := connOf(s); c != nil {
			h.slowConsumers.Add(1)
			c.close(CloseSlowConsumer, "slow consumer")
		}
		h.cfg.Logger.Error("notify: melody buffer full", "err", err)
		return
	}
	if ce, ok := errors.AsType[*websocket.CloseError](err); ok {
		if c := connOf(s); c != nil {
			c.closedWith(ce.Code)
		}
	}
	if errors.Is(err, melody.ErrWriteClosed) || websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) {
		return
	}
	h.cfg.Logger.Debug("notify: session error", "err", err)
}

// received handles one client control frame, on the session's read loop.
func (h *Hub) received(s *melody.Session, msg []byte) {
	c := connOf(s)
	var req request
	err := json.Unmarshal(msg, &req)
	if !h.allow(c, req.Topic) {
		return
	}
	if err != nil || req.Op == "" {
		h.refuse(c, control{Op: "error", Code: codeBadRequest, Reason: "expected a JSON object with an op"})
		return
	}
	switch req.Op {
	case "subscribe":
		var since *Position
		if req.Epoch != "" {
			since = &Position{Epoch: req.Epoch, Offset: req.Offset}
		}
		h.clientSubscribe(c.ctx, c, req.Topic, since)
	case "unsubscribe":
		if err := validTopic(req.Topic); err != nil {
			h.refuse(c, control{Op: "error", Code: codeInvalidTopic, Topic: req.Topic, Reason: reason(err)})
			return
		}
		c.strikes = 0
		if !h.leave(c.ctx, c, req.Topic, control{Op: "unsubscribed", Topic: req.Topic}) {
			c.enqueue(control{Op: "unsubscribed", Topic: req.Topic}.frame())
		}
	case "refresh":
		id, err := h.auth.verify(req.Token)
		if err == nil && id.UserID != c.user {
			err = unauthorized("token is for another user")
		}
		if err != nil {
			h.refuse(c, control{Op: "error", Code: codeInvalidToken, Reason: reason(err)})
			return
		}
		c.strikes = 0
		c.schedule(id.Topics, id.Expires)
		h.revoke(c.ctx, c)
		c.enqueue(control{Op: "refreshed", Exp: id.Expires.Unix()}.frame())
	default:
		h.refuse(c, control{Op: "error", Code: codeUnknownOp, Reason: "unknown op"})
	}
}

// receivedBinary refuses a binary frame, which the protocol has no use for; it counts toward
// the bad messages that close a session.
func (h *Hub) receivedBinary(s *melody.Session, _ []byte) {
	c := connOf(s)
	if h.allow(c, "") {
		h.refuse(c, control{Op: "error", Code: codeBadRequest, Reason: "binary frames are not part of the protocol"})
	}
}

// allow applies the session's rate limit to one message, on its read loop. A message past it
// is answered with rate_limited (naming the message's topic, so that a client can tell which
// request to retry) and not served; a session that keeps on is closed with CloseRateLimited.
func (h *Hub) allow(c *conn, topic string) bool {
	ok, abuse := c.limit.allow(h.now(), h.cfg.MessageRate, h.cfg.MessageBurst)
	if ok {
		return true
	}
	h.stats.rateLimited.Add(1)
	if abuse {
		h.cfg.Logger.Warn("notify: closing session past its message rate", "user", c.user, "session", c.id)
		c.close(CloseRateLimited, "rate limited")
		return false
	}
	c.enqueue(control{Op: "error", Code: codeRateLimited, Topic: topic,
		Reason: "too many messages, slow down"}.frame())
	return false
}

// authorize decides whether c may subscribe to topic on its own: its token grants it, or else
// Config.Authorize allows it. It returns the refusal's reason.
func (h *Hub) authorize(ctx context.Context, c *conn, topic string) (string, bool) {
	if c.granted(topic) {
		return "", true
	}
	if h.cfg.Authorize == nil {
		return "topic not granted by token", false
	}
	if err := h.cfg.Authorize(ctx, c.user, topic); err != nil {
		return reason(err), false
	}
	return "", true
}

// revoke ends the subscriptions the session made itself that its current token (or, failing
// the token, Config.Authorize) no longer allows, each with an "unsubscribed" frame carrying
// the code "forbidden" and the reason. Subscriptions the server made stay. It runs on the
// session's read loop, after a refresh, as subscribes do: none can start meanwhile.
func (h *Hub) revoke(ctx context.Context, c *conn) {
	h.mu.RLock()
	var own []string
	for t, byServer := range c.topics {
		if !byServer {
			own = append(own, t)
		}
	}
	h.mu.RUnlock()
	for _, t := range own {
		if why, ok := h.authorize(ctx, c, t); !ok {
			h.leave(ctx, c, t, control{Op: "unsubscribed", Topic: t, Code: codeForbidden, Reason: why})
		}
	}
}

func (h *Hub) clientSubscribe(ctx context.Context, c *conn, topic string, since *Position) {
	if err := validTopic(topic); err != nil {
		h.refuse(c, control{Op: "error", Code: codeInvalidTopic, Topic: topic, Reason: reason(err)})
		return
	}
	h.mu.RLock()
	_, already := c.topics[topic]
	n := len(c.topics)
	h.mu.RUnlock()
	if !already {
		if n >= h.cfg.MaxTopics {
			h.refuse(c, control{Op: "error", Code: codeTooManyTopics, Topic: topic,
				Reason: fmt.Sprintf("at most %d topics per session", h.cfg.MaxTopics)})
			return
		}
		if why, ok := h.authorize(ctx, c, topic); !ok {
			h.refuse(c, control{Op: "error", Code: codeForbidden, Topic: topic, Reason: why})
			return
		}
	}
	c.strikes = 0
	if already || !h.join(ctx, c, topic, since, false) {
		c.enqueue(control{Op: "subscribed", Topic: topic}.frame())
	}
}

// join subscribes a session to a topic and sends it "subscribed" with the topic's position,
// then the events it missed since since (when set), then the live ones. byServer marks a
// subscription the application made (Hub.Subscribe), which a token's grants do not revoke.
// It reports false when the session was already subscribed or is gone, and sent nothing.
func (h *Hub) join(ctx context.Context, c *conn, topic string, since *Position, byServer bool) bool {
	stream := topicStream(topic)
	h.brokerSubscribe(ctx, stream)
	c.hold(stream, false)
	h.mu.Lock()
	_, had := c.topics[topic]
	ok := !had && !c.gone
	if ok {
		h.indexTopic(c, topic, byServer)
	} else if had && byServer {
		c.topics[topic] = true // the application's now: a refresh no longer revokes it
	}
	h.mu.Unlock()
	if !ok {
		c.release(stream, nil, nil, Position{})
		h.brokerUnsubscribe(ctx, stream)
		return false
	}
	pos, replay, recovered := h.recover(ctx, stream, since)
	c.release(stream, control{Op: "subscribed", Topic: topic, Epoch: pos.Epoch, Offset: pos.Offset, Recovered: recovered}.frame(),
		replay, pos)
	return true
}

// leave ends a session's subscription to a topic and tells it with bye; it reports false when
// there was none. Once the session is out of the topic's index no event of the topic reaches
// it, so none follows bye.
func (h *Hub) leave(ctx context.Context, c *conn, topic string, bye control) bool {
	h.mu.Lock()
	_, had := c.topics[topic]
	if had {
		delete(c.topics, topic)
		h.unindexTopic(c, topic)
	}
	h.mu.Unlock()
	if !had {
		return false
	}
	c.mu.Lock()
	delete(c.topicLast, topicStream(topic))
	c.mu.Unlock()
	c.enqueue(bye.frame())
	h.brokerUnsubscribe(context.WithoutCancel(ctx), topicStream(topic))
	return true
}

func (h *Hub) brokerSubscribe(ctx context.Context, stream string) {
	if err := h.broker.Subscribe(ctx, stream); err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: broker subscribe failed", "stream", stream, "err", err)
	}
}

func (h *Hub) brokerUnsubscribe(ctx context.Context, stream string) {
	if err := h.broker.Unsubscribe(ctx, stream); err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: broker unsubscribe failed", "stream", stream, "err", err)
	}
}

// refuse answers a bad request with an error frame and closes the session after maxStrikes
// bad requests in a row.
func (h *Hub) refuse(c *conn, e control) {
	c.enqueue(e.frame())
	c.strikes++
	if c.strikes >= maxStrikes {
		h.stats.abuse.Add(1)
		h.cfg.Logger.Warn("notify: closing abusive session", "user", c.user, "session", c.id)
		c.close(CloseProtocolAbuse, "too many bad messages")
	}
}

// reason is an error's text without the package prefix, for error frames.
func reason(err error) string {
	return strings.ReplaceAll(err.Error(), "notify: ", "")
}

// index adds a session to conns and to its user's sessions; called with h.mu held for
// writing.
func (h *Hub) index(c *conn) {
	c.pos = len(h.conns)
	h.conns = append(h.conns, c)
	h.users[c.user] = append(h.users[c.user], c)
}

// unindex removes a session from conns and from its user's sessions; called with h.mu held
// for writing.
func (h *Hub) unindex(c *conn) {
	if c.pos < len(h.conns) && h.conns[c.pos] == c {
		last := len(h.conns) - 1
		h.conns[c.pos] = h.conns[last]
		h.conns[c.pos].pos = c.pos
		h.conns[last] = nil
		h.conns = h.conns[:last]
		if cap(h.conns) > 1024 && len(h.conns) < cap(h.conns)/4 { // let a past peak's memory go
			h.conns = slices.Clone(h.conns)
		}
	}
	set := h.users[c.user]
	if i := slices.Index(set, c); i >= 0 {
		last := len(set) - 1
		set[i] = set[last]
		set[last] = nil
		set = set[:last]
	}
	if len(set) == 0 {
		delete(h.users, c.user)
	} else {
		h.users[c.user] = set
	}
}

// indexTopic and unindexTopic are called with h.mu held for writing.
func (h *Hub) indexTopic(c *conn, topic string, byServer bool) {
	if c.gone {
		return
	}
	if c.topics == nil { // most sessions subscribe to no topic
		c.topics = make(map[string]bool)
	}
	c.topics[topic] = byServer
	set := h.topics[topic]
	if set == nil {
		set = make(map[*conn]struct{})
		h.topics[topic] = set
	}
	set[c] = struct{}{}
}

func (h *Hub) unindexTopic(c *conn, topic string) {
	if set := h.topics[topic]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(h.topics, topic)
		}
	}
}

// pinger sends the in-band ping that lets browsers detect a dead connection.
func (h *Hub) pinger() {
	defer h.bg.Done()
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			var w wakeList
			h.mu.RLock()
			for _, c := range h.conns {
				c.mu.Lock()
				wake := c.enqueueLocked(pingFrame)
				c.mu.Unlock()
				if wake {
					w.add(h, c)
				}
			}
			h.mu.RUnlock()
			w.wake(h)
		}
	}
}

// Shutdown stops accepting sessions, closes every session with code 1001 (going away,
// reconnect), and waits for the hub's goroutines. When ctx ends first it cuts the remaining
// connections and returns ctx.Err(). It is safe to call more than once.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.stopOnce.Do(func() {
		h.life.Lock()
		h.closed.Store(true)
		h.life.Unlock()
		close(h.stop)
		h.mu.RLock()
		for _, c := range h.conns {
			c.close(websocket.CloseGoingAway, "going away, reconnect")
		}
		h.mu.RUnlock()
		go func() {
			h.handlers.Wait()
			h.bg.Wait()
			_ = h.m.Close()
			if err := h.broker.Close(); err != nil {
				h.cfg.Logger.Warn("notify: closing broker", "err", err)
			}
			close(h.done)
		}()
	})
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.mu.RLock()
		for _, c := range h.conns {
			_ = c.s.WebsocketConnection().Close()
		}
		h.mu.RUnlock()
		<-h.done
		return ctx.Err()
	}
}

// Online reports whether the user has at least one session on this hub.
func (h *Hub) Online(userID string) bool { return h.Sessions(userID) > 0 }

// Sessions returns how many sessions the user has on this hub.
func (h *Hub) Sessions(userID string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[userID])
}

// Stats returns the hub's current state and counters.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	st := Stats{Sessions: len(h.conns), Users: len(h.users), Topics: len(h.topics)}
	h.mu.RUnlock()
	h.stats.fill(&st)
	st.Deliveries = h.deliveries.Load()
	st.SlowConsumers = h.slowConsumers.Load()
	if r, ok := h.broker.(interface{ Reconnects() uint64 }); ok {
		st.BrokerReconnects = r.Reconnects()
	}
	return st
}
