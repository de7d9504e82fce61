package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gonotify/notify/internal/wire"
)

// Requests from clients, with an answer (PROTOCOL.md, "Requests"): a client sends
// {"op":"request","id":...,"name":...,"data":...}; the handler of that name in
// Config.Requests runs on a goroutine of its own, owned by the session, and its answer goes
// back as a "reply" frame with the same id. Answers are kept for a minute by user and id, so a
// request the client sends again after a reconnect is answered, not run again.

// RequestHandler answers a client's request (see [Config].Requests). ctx carries the values of
// the session's context and ends when the session ends or after Config.RequestTimeout,
// whichever comes first. The returned value, encoded as JSON, is the client's answer; a
// returned error is the client's rejection: a [*RequestError] with its code and message, any
// other error as code "internal" without its text (which the hub logs). A panic is recovered,
// logged, and answered as "internal"; the session goes on. A handler must return soon after
// ctx ends: the session's end (and so [Hub.Shutdown]) waits for its handlers.
//
// A handler runs at most once per user and request ID while its answer is kept (one minute,
// on this node): a client that sends a request again after a reconnect gets the first run's
// answer, or waits for it. A run cut short by the end of its session (ctx ended, an error
// returned) is not kept: a retry runs the handler again.
type RequestHandler func(ctx context.Context, req Request) (any, error)

// Request is one client request, as its [RequestHandler] gets it.
type Request struct {
	// Identity is the session's: its user and grants and, with Config.Requests set, the
	// current token's claims.
	Identity Identity
	// Session is the ID of the session that sent it. A retry after a reconnect comes from
	// another session, with the same ID.
	Session string
	// Name is the name the handler is registered under.
	Name string
	// ID is the client's ID for the request, unique per user (1 to 64 bytes). The hub answers
	// a repeated ID from its cache; a handler may pass it on as an idempotency key.
	ID string
	// Data is the request's input as the client sent it, a JSON value; nil when it sent none.
	Data json.RawMessage
}

// RequestError is the error a [RequestHandler] returns to reject a request with a code and a
// message the client sees (the browser client's NotifyError code and reason). An empty Code
// is sent as "failed". Other errors reach the client as "internal", without their text.
type RequestError struct {
	// Code is the machine-readable reason, e.g. "not_found"; keep it clear of the codes the
	// protocol uses (PROTOCOL.md, "Requests").
	Code string
	// Message is the human-readable one. Never put secrets in it: the client reads it.
	Message string
}

func (e *RequestError) Error() string {
	if e.Message == "" {
		return "notify: request rejected: " + e.Code
	}
	return "notify: request rejected: " + e.Code + ": " + e.Message
}

// Limits of requests.
const (
	maxRequestName = 128 // bytes of a request's name
	maxRequestID   = 64  // bytes of a request's ID
	// An answer is kept this long after its handler returned, at most requestCacheEntries
	// answers and requestCacheBytes of their frames per hub, the oldest going first.
	requestCacheTTL     = time.Minute
	requestCacheEntries = 10_000
	requestCacheBytes   = 8 << 20
)

// errSessionEnded is the cause of a handler's context ending with its session.
var errSessionEnded = errors.New("notify: session ended")

// requests holds a hub's request handlers and the answers of recent requests, for every
// session of the hub. The handlers and limits are fixed by newRequests; mu guards running,
// done, order and bytes, and nothing is called with it held but appends and map operations.
type requests struct {
	handlers  map[string]RequestHandler
	timeout   time.Duration
	maxAnswer int // bytes of an answer's frame; a larger one is answered "internal"
	log       func(msg string, args ...any)

	mu      sync.Mutex
	running map[requestKey]*flight
	done    map[requestKey]*answered
	order   []*answered // done's, oldest first; an entry whose key was answered again is stale
	bytes   int         // the frames in order
}

// requestKey names a request: an ID is the client's, unique per user; the name is part of the
// key so that an ID reused for another handler does not get the first one's answer.
type requestKey struct{ user, name, id string }

// flight is a request whose handler runs. runner is the session it runs for, waiters the
// sessions that sent the same request meanwhile (a retry after a reconnect); both guarded by
// requests.mu, as is answered (the timeout answered them: the handler's result is dropped).
type flight struct {
	key      requestKey
	runner   *session
	waiters  []asker
	answered bool
}

// asker is a session waiting for a flight, with its identity as its read loop saw it when the
// request came (a session's identity is its read loop's: see session.ident).
type asker struct {
	s  *session
	id Identity
}

// answered is a request's answer, kept until expires.
type answered struct {
	key     requestKey
	frame   []byte
	expires time.Time
}

func newRequests(cfg *Config) *requests {
	return &requests{handlers: maps.Clone(cfg.Requests), timeout: cfg.RequestTimeout, maxAnswer: cfg.MaxQueueBytes / 4,
		log: cfg.Logger.Warn, running: make(map[requestKey]*flight), done: make(map[requestKey]*answered)}
}

// sessionRequests is a session's side of its requests: the context its handlers run in,
// their goroutines, and how many of its requests await an answer. mu guards ctx, cancel and
// closed; inFlight is atomic.
type sessionRequests struct {
	mu       sync.Mutex
	ctx      context.Context // made at the first request; ends at teardown (stop)
	cancel   context.CancelCauseFunc
	closed   bool
	wg       sync.WaitGroup // the handlers' goroutines, waited for by teardown (wait)
	inFlight atomic.Int32
}

// take counts a request awaiting its answer, unless max already are.
func (r *sessionRequests) take(limit int) bool {
	if r.inFlight.Add(1) > int32(limit) {
		r.inFlight.Add(-1)
		return false
	}
	return true
}

func (r *sessionRequests) release() { r.inFlight.Add(-1) }

// start runs fn on a goroutine of the session's with its requests' context, unless the
// session has ended.
func (r *sessionRequests) start(base context.Context, fn func(ctx context.Context)) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancelCause(context.WithoutCancel(base))
	}
	r.wg.Add(1)
	go func(ctx context.Context) {
		defer r.wg.Done()
		fn(ctx)
	}(r.ctx)
	return true
}

// stop ends the handlers' context, and no handler starts after it.
func (r *sessionRequests) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.cancel != nil {
		r.cancel(errSessionEnded)
	}
}

// wait waits for the handlers' goroutines, after stop.
func (r *sessionRequests) wait() { r.wg.Wait() }

// request serves a client's request frame, on the read loop. A frame without a usable ID
// cannot be answered as a request and is a bad message like any other; one without a usable
// name is answered with bad_request, as a bad message.
func (s *session) request(req *wire.Request) {
	if req.ID == "" || len(req.ID) > maxRequestID {
		s.rejectMessage(rejection{wire.CodeBadRequest, "", fmt.Sprintf("a request needs an id of 1 to %d bytes", maxRequestID)})
		return
	}
	if req.Name == "" || len(req.Name) > maxRequestName {
		s.rejectWith(wire.ReplyError(req.ID, wire.CodeBadRequest, fmt.Sprintf("a request needs a name of 1 to %d bytes", maxRequestName)))
		return
	}
	s.strikes = 0
	t := s.host.requests()
	h := t.handlers[req.Name]
	if h == nil {
		s.out.send(wire.ReplyError(req.ID, wire.CodeUnknownRequest, "no handler for this name"))
		return
	}
	cfg := s.host.settings()
	if !s.reqs.take(cfg.MaxRequestsInFlight) {
		s.out.send(wire.ReplyError(req.ID, wire.CodeTooManyRequests,
			fmt.Sprintf("at most %d requests in flight per session", cfg.MaxRequestsInFlight)))
		return
	}
	var data json.RawMessage
	if len(req.Data) > 0 && string(req.Data) != "null" {
		data = req.Data
	}
	t.ask(s, Request{Identity: s.ident, Session: s.id, Name: req.Name, ID: req.ID, Data: data}, h, s.host.clock())
}

// ask answers a request from the cache, joins the run of the same request under way, or runs
// its handler. The session has counted the request in flight; whatever answers it uncounts it.
func (t *requests) ask(s *session, req Request, h RequestHandler, now time.Time) {
	key := requestKey{s.user, req.Name, req.ID}
	t.mu.Lock()
	t.expireLocked(now)
	if a := t.done[key]; a != nil {
		t.mu.Unlock()
		s.reqs.release()
		s.out.send(a.frame)
		return
	}
	if f := t.running[key]; f != nil {
		f.waiters = append(f.waiters, asker{s, req.Identity})
		t.mu.Unlock()
		return
	}
	f := &flight{key: key, runner: s}
	t.running[key] = f
	t.mu.Unlock()
	t.launch(f, s, req, h)
}

// launch runs the flight's handler for s, or, when s has ended meanwhile, for the next of its
// waiters; with none left, the flight is dropped unanswered.
func (t *requests) launch(f *flight, s *session, req Request, h RequestHandler) {
	for {
		sess, req := s, req
		if sess.reqs.start(sess.ctx, func(ctx context.Context) { t.run(ctx, f, sess, req, h) }) {
			return
		}
		sess.reqs.release()
		next, ok := t.handOn(f)
		if !ok {
			return
		}
		s, req.Session, req.Identity = next.s, next.s.id, next.id
	}
}

// run runs a flight's handler for s in its session's context, within the timeout, and hands
// the outcome to finish.
func (t *requests) run(sessionCtx context.Context, f *flight, s *session, req Request, h RequestHandler) {
	ctx, cancel := context.WithTimeout(sessionCtx, t.timeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.timedOut(f, s.host.clock())
		}
	})
	frame, err := t.call(ctx, s, req, h)
	stop()
	if err != nil && sessionCtx.Err() != nil {
		// Cut short by the end of the session, which will not read the answer: a retry from
		// the client's next session runs the handler again, or a waiting one does now.
		t.abandon(f, s, req, h)
		return
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The handler gave up at its deadline, maybe before the AfterFunc answered: the answer
		// is the timeout, not the handler's error.
		t.timedOut(f, s.host.clock())
	}
	t.finish(f, s, frame, s.host.clock())
}

// call runs the handler and returns its answer's frame, and the handler's error if any.
func (t *requests) call(ctx context.Context, s *session, req Request, h RequestHandler) (frame []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			t.log("notify: request handler panicked", "name", req.Name, "user", s.user, "session", s.id,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			frame, err = wire.ReplyError(req.ID, wire.CodeInternal, "internal error"), errHandlerPanicked
		}
	}()
	v, err := h(ctx, req)
	if err != nil {
		if re, ok := errors.AsType[*RequestError](err); ok {
			code := re.Code
			if code == "" {
				code = "failed"
			}
			return wire.ReplyError(req.ID, code, re.Message), err
		}
		t.log("notify: request handler failed", "name", req.Name, "user", s.user, "session", s.id, "err", err)
		return wire.ReplyError(req.ID, wire.CodeInternal, "internal error"), err
	}
	b, err := json.Marshal(v)
	switch {
	case err != nil:
		t.log("notify: request answer cannot be encoded", "name", req.Name, "user", s.user, "err", err)
		return wire.ReplyError(req.ID, wire.CodeInternal, "internal error"), nil
	case len(b) > t.maxAnswer:
		t.log("notify: request answer too large", "name", req.Name, "user", s.user, "bytes", len(b), "max", t.maxAnswer)
		return wire.ReplyError(req.ID, wire.CodeInternal, "internal error"), nil
	case string(b) == "null":
		b = nil
	}
	return wire.Reply(req.ID, b), nil
}

var errHandlerPanicked = errors.New("notify: request handler panicked")

// timedOut answers a flight whose handler outlived the timeout: "timeout" to every session
// waiting, kept as its answer (a retry gets it too). The handler's own result is dropped.
func (t *requests) timedOut(f *flight, now time.Time) {
	frame := wire.ReplyError(f.key.id, wire.CodeTimeout, "the handler did not answer in time")
	t.answer(f, frame, now)
}

// finish answers a flight with its handler's frame, unless the timeout did already, and
// uncounts the runner's request: its goroutine is done.
func (t *requests) finish(f *flight, s *session, frame []byte, now time.Time) {
	t.answer(f, frame, now)
	s.reqs.release()
}

// answer sends frame to the flight's sessions and keeps it for retries, once.
func (t *requests) answer(f *flight, frame []byte, now time.Time) {
	t.mu.Lock()
	if f.answered {
		t.mu.Unlock()
		return
	}
	f.answered = true
	runner, waiters := f.runner, f.waiters
	f.waiters = nil
	delete(t.running, f.key)
	t.keepLocked(f.key, frame, now)
	t.mu.Unlock()
	runner.out.send(frame)
	for _, w := range waiters {
		w.s.reqs.release()
		w.s.out.send(frame)
	}
}

// abandon ends a run cut short by the end of s: the next waiting session runs the handler
// again, or the flight is dropped unanswered.
func (t *requests) abandon(f *flight, s *session, req Request, h RequestHandler) {
	s.reqs.release()
	next, ok := t.handOn(f)
	if !ok {
		return
	}
	req.Session, req.Identity = next.s.id, next.id
	t.launch(f, next.s, req, h)
}

// handOn makes the flight's next waiter its runner and returns it; with none waiting, or the
// flight answered already, it reports false, and an unanswered flight is dropped.
func (t *requests) handOn(f *flight) (asker, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f.answered || len(f.waiters) == 0 {
		if !f.answered {
			delete(t.running, f.key)
		}
		return asker{}, false
	}
	next := f.waiters[0]
	f.waiters = f.waiters[1:]
	f.runner = next.s
	return next, true
}

// keepLocked keeps an answer, dropping the oldest past the cache's bounds.
func (t *requests) keepLocked(key requestKey, frame []byte, now time.Time) {
	a := &answered{key: key, frame: frame, expires: now.Add(requestCacheTTL)}
	t.done[key] = a
	t.order = append(t.order, a)
	t.bytes += len(frame)
	for len(t.order) > 0 && (len(t.order) > requestCacheEntries || t.bytes > requestCacheBytes) {
		t.dropOldestLocked()
	}
}

// expireLocked drops the answers kept past their time.
func (t *requests) expireLocked(now time.Time) {
	for len(t.order) > 0 && !now.Before(t.order[0].expires) {
		t.dropOldestLocked()
	}
}

func (t *requests) dropOldestLocked() {
	a := t.order[0]
	t.order[0] = nil
	t.order = t.order[1:]
	t.bytes -= len(a.frame)
	if t.done[a.key] == a {
		delete(t.done, a.key)
	}
}

// kept returns how many answers the cache holds, for tests.
func (t *requests) kept() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.done)
}

func (x hubHost) requests() *requests { return x.h.reqs }
