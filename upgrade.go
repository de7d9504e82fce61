package notify

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// ServeHTTP upgrades an authenticated request to a WebSocket session. A cross-origin request
// gets 403, a missing or bad token 401, a user at Config.MaxUserSessions 429, a hub at
// Config.MaxSessions or shutting down 503. It returns once the connection is
// upgraded; the session goes on in its own goroutine, which Shutdown waits for.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, ok := h.open(w, r, transportWebSocket, nil)
	if !ok {
		return
	}
	// The session outlives this handler: returning once the connection is hijacked frees what
	// net/http keeps per connection while its handler runs (4 KB read and 4 KB write buffers,
	// the request, a deep stack). The session gets a context of its own: net/http's ends when
	// the handler returns, and keeping its values would keep net/http's per-connection
	// contexts (about 0.5 KB a session).
	ctx := context.Background()
	if h.cfg.Authorize != nil {
		ctx = context.WithoutCancel(r.Context()) // Authorize gets the request's values
	}
	dw := &detachedWriter{ResponseWriter: w, hijacked: make(chan struct{})}
	ended := make(chan struct{})
	go h.serve(dw, r.WithContext(ctx), s, ended)
	select {
	case <-dw.hijacked:
	case <-ended: // refused before the hijack; the answer went through w
	}
}

// open admits a request for a session of either transport, makes the session, joins it to
// presence and counts it in the hub's handlers, which the caller must mark done once the
// session is torn down. since, when not nil, replaces the recovery position of the request's
// query (SSE's Last-Event-ID). It answers a refused request itself.
func (h *Hub) open(w http.ResponseWriter, r *http.Request, kind transportKind, since func() *Position) (*session, bool) {
	id, pos, ok := h.admitRequest(w, r)
	if !ok {
		return nil, false
	}
	if since != nil {
		if p := since(); p != nil {
			pos = p
		}
	}
	s := newSession(hubHost{h}, id, pos)
	s.topicSince = topicSinceFrom(r)
	if h.cfg.Broker != nil { // not the in-memory broker, whose Subscribe has nothing to wait for
		s.subscribeUserFirst(r.Context())
	}
	// The user's token refusal is read in the same step as the join ([Hub.Disconnect]): a
	// refused token gets 401 with the reason.
	if before, n, joined := s.joinPresence(r.Context(), h.node, kind); joined {
		if err := h.refusedBy(id, before); err != nil {
			s.teardown()
			h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "err", err)
			h.refuseUpgrade(w, refusalLabel(err), http.StatusUnauthorized, err.Error())
			return nil, false
		}
		// The cap across the cluster: n counts the user's sessions on every node, this one
		// included, in the step that added it (see Config.MaxUserSessions).
		if n > h.cfg.MaxUserSessions {
			s.teardown()
			h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "reason", refusedUserSessions)
			status, msg := h.admit.answer(refusedUserSessions)
			h.refuseUpgrade(w, refusedUserSessions, status, msg)
			return nil, false
		}
	}
	h.acceptMu.Lock()
	if h.closed.Load() {
		h.acceptMu.Unlock()
		s.teardown()
		h.refuseUpgrade(w, refusedShutdown, http.StatusServiceUnavailable, ErrClosed.Error())
		return nil, false
	}
	h.handlers.Add(1)
	h.acceptMu.Unlock()
	return s, true
}

// admitRequest checks an upgrade request before the upgrade: its origin, its token (unless an
// adapter put a verified identity in its context), its recovery position and the session
// caps, which count the session from here on. It answers a refused request itself.
func (h *Hub) admitRequest(w http.ResponseWriter, r *http.Request) (Identity, *Position, bool) {
	if !originAllowed(&h.cfg, r) {
		h.refuseUpgrade(w, refusedOrigin, http.StatusForbidden, "notify: origin not allowed")
		return Identity{}, nil, false
	}
	id, ok := IdentityFromContext(r.Context())
	if !ok {
		var err error
		if id, err = h.auth.verify(h.auth.tokenFrom(r)); err != nil {
			h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "err", err)
			h.refuseUpgrade(w, refusalLabel(err), http.StatusUnauthorized, err.Error())
			return Identity{}, nil, false
		}
	}
	since, err := sinceFrom(r)
	if err != nil {
		h.refuseUpgrade(w, refusedBadRequest, http.StatusBadRequest, err.Error())
		return Identity{}, nil, false
	}
	if label := h.admit.enter(id.UserID); label != "" {
		h.cfg.Logger.Info("notify: upgrade refused", "remote", r.RemoteAddr, "reason", label)
		status, msg := h.admit.answer(label)
		h.refuseUpgrade(w, label, status, msg)
		return Identity{}, nil, false
	}
	return id, since, true
}

// refuseUpgrade answers an upgrade request that is refused, and counts it by label. 429 and 503 say
// when to retry.
func (h *Hub) refuseUpgrade(w http.ResponseWriter, label string, status int, msg string) {
	h.stats.refuse(label)
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfter)
	}
	http.Error(w, msg, status)
}

// serve runs a session to its end, then tears it down. It is a method rather than a closure
// so that nothing keeps the request or net/http's writer alive after the upgrade.
func (h *Hub) serve(w *detachedWriter, r *http.Request, s *session, ended chan struct{}) {
	defer h.handlers.Done()
	defer close(ended)
	// Once melody returns, the session has ended or never started.
	defer s.teardown()
	remote := r.RemoteAddr
	if err := h.m.HandleRequestWithKeys(w, r, map[string]any{sessionKey: s}); err != nil {
		h.cfg.Logger.Info("notify: upgrade failed", "remote", remote, "err", err)
	}
}

// topicSinceFrom reads the positions of server-made subscriptions the client asks to recover
// (PROTOCOL.md, Recovery): a "t.<topic>=<offset>.<epoch>" query parameter per topic.
// Malformed ones are ignored: the topic is then joined without recovery.
func topicSinceFrom(r *http.Request) map[string]*Position {
	if !strings.Contains(r.URL.RawQuery, "t.") {
		return nil
	}
	var out map[string]*Position
	for k, v := range r.URL.Query() {
		topic, ok := strings.CutPrefix(k, "t.")
		if !ok || len(v) == 0 || topicProblem(topic) != "" {
			continue
		}
		off, epoch, ok := strings.Cut(v[0], ".")
		o, err := strconv.ParseUint(off, 10, 64)
		if !ok || err != nil || epoch == "" {
			continue
		}
		if out == nil {
			out = map[string]*Position{}
		}
		out[topic] = &Position{Offset: o, Epoch: epoch}
	}
	return out
}

// retryAfter is the Retry-After of refused upgrades, in seconds: enough for a cap to free up,
// short enough that a client's own backoff stays in charge.
const retryAfter = "5"

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
