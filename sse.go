package notify

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
	"time"
)

// serveSSE serves a session as server-sent events (GET; PROTOCOL.md, "Server-sent events"),
// admitted as an upgrade is: a cross-origin request gets 403, a missing or bad token 401 (the
// token is found where Authenticate finds it, or comes as a ticket from serveTicket), a
// user at Config.MaxUserSessions 429, a hub at Config.MaxSessions or shutting down 503. The
// user stream recovers from the Last-Event-ID header, else from the query as on /ws. An
// HTTP/1.x stream's connection is hijacked once the request is admitted: the handler returns,
// and the session goes on in a goroutine of its own (streamConn), which Shutdown waits for. An
// HTTP/2 stream, which cannot be, is served on the handler's goroutine, which returns when the
// session ends.
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
	// The session gets a context of its own, as a WebSocket's does (see ServeHTTP).
	ctx := context.Background()
	if h.cfg.Authorize != nil {
		ctx = context.WithoutCancel(r.Context())
	}
	rc := http.NewResponseController(w)
	if r.ProtoMajor == 1 {
		// Whatever the client sent after its request (nothing, for a GET it waits the answer
		// of) stays in net/http's reader and is dropped with it.
		if nc, _, err := rc.Hijack(); err == nil {
			go h.streamConn(ctx, &sseConn{Conn: nc}, s)
			return
		}
		// A ResponseWriter that cannot be hijacked: net/http's response, as on HTTP/2.
	}
	defer h.handlers.Done()
	defer s.teardown()
	// The stream reads nothing after its request: the read deadline of the server's
	// ReadTimeout has no use on it (writes set their own deadline, see write).
	_ = rc.SetReadDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	h.stream(ctx, newSSETransport(sseResponse{w, rc}, s, h.cfg.WriteTimeout), r.Context().Done())
}

// streamConn serves an HTTP/1.x stream on its hijacked connection, then tears the session down.
// It is a method rather than a closure so that nothing keeps the request or net/http's writer
// alive. Its goroutine is the write loop; watch's is the only other one while the stream is idle.
func (h *Hub) streamConn(ctx context.Context, c *sseConn, s *session) {
	defer h.handlers.Done()
	defer s.teardown()
	// The connection is ours: no deadline of the server's applies (net/http's hijack clears
	// them; other servers' may not; writes set their own), and
	// what a client that stops reading leaves unsent waits in its outbox (see limitUnsent).
	_ = c.SetDeadline(time.Time{})
	limitUnsent(c.Conn)
	gone := make(chan struct{})
	go c.watch(gone)
	h.stream(ctx, newSSETransport(c, s, h.cfg.WriteTimeout), gone)
	c.close()
	<-gone
}

// stream runs a session's event stream on t until it is over or gone is closed.
func (h *Hub) stream(ctx context.Context, t *sseTransport, gone <-chan struct{}) {
	s := t.s
	// Reachable by POSTs before the welcome goes out: a client may POST as soon as it has read
	// it. What arrives meanwhile waits in the transport's inbox, read once run starts.
	h.sse.add(s.id, t)
	defer h.sse.remove(s.id)
	s.connected(ctx, t)
	t.run(gone, h.cfg.SSEHeartbeat)
	t.readers.Wait()
}

// The client's messages without a socket: POST <prefix>/sse/<session> with the frame a
// WebSocket client would send (PROTOCOL.md, "Server-sent events"). Any node takes the POST:
// a session on this hub gets the message at once, one on another node through a command on
// the user's own stream, which only the nodes holding the user's sessions receive.

// SSE returns the handler of the server-sent events transport (PROTOCOL.md, "Server-sent
// events"): GET opens a stream, a session admitted as an upgrade is (403 cross-origin, 401
// without a valid token or ticket, 429 at Config.MaxUserSessions, 503 at Config.MaxSessions or
// shutting down), which recovers from its Last-Event-ID; POST to <path>/ticket trades the
// request's token for a single-use ticket that opens one stream within [TicketTTL]; POST to
// <path>/<session> passes the body, one client message, to that session of the caller,
// wherever it is. Other methods get 405. adapters/nethttp and adapters/echonotify mount it at
// <prefix>/sse.
func (h *Hub) SSE() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet:
			h.serveSSE(w, r)
		case r.Method != http.MethodPost:
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		case path.Base(r.URL.Path) == "ticket":
			h.serveTicket(w, r)
		default:
			h.servePost(w, r, path.Base(r.URL.Path))
		}
	})
}

// servePost answers a client message POSTed for a session: 202 once it is on its way (the
// session's answer, if any, comes on its stream), 403 cross-origin, 401 without a valid token,
// 413 past Config.MaxMessageSize, 404 for a session that is not one of the caller's (whether
// it exists or not), 429 when the session's queue of messages is full, 503 when the broker
// cannot be reached. The session's rate limit applies to the message as to a frame.
func (h *Hub) servePost(w http.ResponseWriter, r *http.Request, sessionID string) {
	id, ok := h.admitCall(w, r)
	if !ok {
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxMessageSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "notify: message too big", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "notify: reading the message failed", http.StatusBadRequest)
		return
	}
	status := h.toSession(r.Context(), id.UserID, sessionID, body)
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
}

// toSession hands a client message to the user's session, on this node or another, and
// returns the POST's status.
func (h *Hub) toSession(ctx context.Context, user, sessionID string, msg []byte) int {
	if t := h.sse.get(user, sessionID); t != nil {
		status := t.deliver(msg)
		if status == http.StatusTooManyRequests {
			h.stats.rateLimited.Add(1)
		}
		return status
	}
	sessions, err := h.presence.Sessions(ctx, user)
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return http.StatusServiceUnavailable
	}
	// Only an event stream takes messages by POST: a WebSocket session's come on its socket.
	// The answer is the same on every node, decided by presence: the caller's WebSocket
	// session gets 404 here as on the node holding it, like another user's or an unknown one.
	if !slices.ContainsFunc(sessions, func(s SessionInfo) bool {
		return s.ID == sessionID && s.Node != h.node && s.Transport == transportSSE.String()
	}) {
		return http.StatusNotFound // not the caller's stream, or gone: the same answer
	}
	if err := h.command(ctx, user, command{Op: "message", Session: sessionID, Data: msg}); err != nil {
		return http.StatusServiceUnavailable
	}
	return http.StatusAccepted
}

// serveTicket answers POST <prefix>/sse/ticket: for a request authenticated as
// [Hub.Authenticate] does (the token in an Authorization header), 200 with
// {"ticket":"...","expires_in":30}; the ticket opens one event stream as the token's identity
// (GET <prefix>/sse?ticket=...) within [TicketTTL], once. 403 cross-origin, 401 without a
// valid token, 503 when the store or the broker cannot be reached. The answer is not cached;
// neither the token nor the ticket is logged.
func (h *Hub) serveTicket(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	id, ok := h.admitCall(w, r)
	if !ok {
		return
	}
	value, err := json.Marshal(id)
	if err != nil {
		http.Error(w, "notify: identity cannot be kept", http.StatusInternalServerError)
		return
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	ticket := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := h.tickets.Put(r.Context(), ticketKey(ticket), value, TicketTTL); err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: ticket store failed", "user", id.UserID, "err", err)
		http.Error(w, "notify: ticket store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}{ticket, int(TicketTTL / time.Second)})
}

// redeemTicket returns the identity of a stream request's ticket, taking the ticket. A request
// that also carries a token (a cookie, a header) must carry one of the ticket's user.
func (h *Hub) redeemTicket(r *http.Request, ticket string) (Identity, error) {
	value, ok, err := h.tickets.Take(r.Context(), ticketKey(ticket))
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return Identity{}, err
	}
	var id Identity
	if !ok || json.Unmarshal(value, &id) != nil || id.UserID == "" {
		return Identity{}, refused(refusedInvalid, "unknown, used or expired ticket")
	}
	if !id.Expires.IsZero() && time.Now().After(id.Expires.Add(h.cfg.Leeway)) {
		return Identity{}, refused(refusedInvalid, "the ticket's token has expired")
	}
	other, found := IdentityFromContext(r.Context())
	if tok := h.auth.tokenFrom(r); !found && tok != "" {
		other, err = h.auth.verify(tok)
		found = err == nil
	}
	if found && other.UserID != id.UserID {
		return Identity{}, refused(refusedInvalid, "the ticket is for another user")
	}
	return id, nil
}

// admitCall checks a client's HTTP call beside its stream (a POST, a ticket) as the inbox's
// are: 403 cross-origin, 401 without a valid token, 503 when the broker cannot say whether the
// user's tokens are refused. It answers a refused call itself.
func (h *Hub) admitCall(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	if !originAllowed(&h.cfg, r) {
		http.Error(w, "notify: origin not allowed", http.StatusForbidden)
		return Identity{}, false
	}
	id, err := h.Authenticate(r)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		} else {
			http.Error(w, "notify: broker unavailable", http.StatusServiceUnavailable)
		}
		return Identity{}, false
	}
	return id, true
}
