package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
)

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
	if !originAllowed(&h.cfg, r) {
		http.Error(w, "notify: origin not allowed", http.StatusForbidden)
		return
	}
	id, err := h.Authenticate(r)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		} else {
			http.Error(w, "notify: broker unavailable", http.StatusServiceUnavailable)
		}
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
