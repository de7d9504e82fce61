package inbox

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/gonotify/notify"
)

// maxBody bounds a change request's body: MaxIDs IDs of up to 256 bytes fit several times
// over in typical use, and a larger body is refused before it is read.
const maxBody = 64 << 10

// Handler returns the HTTP endpoints of the inbox, for the browser client. Mount it on a
// prefix ending in a slash, beside the hub's WebSocket endpoint:
//
//	mux.Handle("/inbox/", ib.Handler())
//
// Requests carry the same token as the WebSocket (Authorization: Bearer, or the hub's cookie),
// verified with [notify.Hub.Authenticate]; a request with an Origin header must pass the hub's
// origin check. The endpoints, relative to the prefix (PROTOCOL.md, "Inbox over HTTP"):
//
//	GET  ?unread=1&archived=1&limit=20&cursor=...  {"items":[...],"next":"..."}
//	GET  counts                                    {"unread":1,"unseen":2,"total":3}
//	POST read, unread, seen, archive, unarchive, delete   {"ids":["..."]}  → {"counts":{...}}
//	POST read-all                                  → {"counts":{...}}
//
// With Config.Push set, the Web Push endpoints too (see the package doc, "Web Push"):
//
//	GET    push/key            → {"publicKey":"..."}
//	POST   push/subscriptions  PushSubscription.toJSON()  → 201 {"id":"..."}, or 200 when known
//	DELETE push/subscriptions  {"endpoint":"..."}  → 204
//	GET    push/subscriptions  → {"items":[{"id":"...","endpoint":"https://host/…tail","createdAt":"..."}]}
//	GET    push/preferences    → {"muted":["type",...]}
//	PUT    push/preferences    {"muted":["type",...]}  → {"muted":[...]}
//	POST   push/ack            {"ack":"...","op":"seen"|"read"}  → {"counts":{...}}, no token
//
// Without it they answer 404.
//
// Errors are JSON {"error": code, "reason": text}: 400 bad_request, 401 unauthorized, 403
// forbidden (origin), 404 not_found, 405 method_not_allowed, 409 too_many (push
// subscriptions), 413 too_large, 429 rate_limited (with Retry-After: past
// Config.RequestRate and RequestBurst, per user), 503 unavailable. Every answer has
// Cache-Control: no-store. A request that takes longer than Config.RequestTimeout is answered
// 503.
func (ib *Inbox) Handler() http.Handler { return http.HandlerFunc(ib.serveHTTP) }

func (ib *Inbox) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !ib.hub.OriginAllowed(r) {
		writeError(w, http.StatusForbidden, "forbidden", "origin not allowed")
		return
	}
	dir, op := path.Split(r.URL.Path)
	pushOp := isPushOp(dir, op)
	if pushOp && ib.cfg.Push == nil {
		writeError(w, http.StatusNotFound, "not_found", "push is not enabled")
		return
	}
	if pushOp && op == "ack" {
		// The service worker has no token: the ack capability is the authorization.
		ib.serveAck(w, r)
		return
	}
	id, err := ib.hub.Authenticate(r)
	if err != nil {
		if !errors.Is(err, notify.ErrUnauthorized) {
			// The broker could not say whether the user's tokens are refused.
			ib.cfg.Logger.Warn("notify: inbox: cannot authenticate", "err", err)
			writeError(w, http.StatusServiceUnavailable, "unavailable", "try again later")
			return
		}
		reason := "invalid token"
		if e, ok := errors.AsType[*notify.AuthError](err); ok {
			reason = e.Reason
		}
		writeError(w, http.StatusUnauthorized, "unauthorized", reason)
		return
	}
	user := id.UserID
	if ok, retry := ib.limit.allow(user); !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
		writeError(w, http.StatusTooManyRequests, "rate_limited", "too many requests")
		return
	}
	if pushOp {
		ib.servePush(w, r, user, op)
		return
	}
	// The caller's page changed its UI already: its session is left out of the live change.
	ctx, cancel := context.WithTimeout(withExcept(r.Context(), notify.SessionFrom(r)), ib.cfg.RequestTimeout)
	defer cancel()
	respond := func(w http.ResponseWriter, v any, err error) {
		if errors.Is(err, ErrUnavailable) {
			ib.cfg.Logger.Warn("notify: inbox request failed", "path", r.URL.Path, "user", user, "err", err)
		}
		respond(w, v, err)
	}
	switch op {
	case "", "counts":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
			return
		}
		if op == "counts" {
			c, err := ib.Counts(ctx, user)
			respond(w, c, err)
			return
		}
		q, err := queryOf(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", err.Error())
			return
		}
		p, err := ib.List(ctx, user, q)
		respond(w, p, err)
	case string(OpRead), string(OpUnread), string(OpSeen), string(OpArchive), string(OpUnarchive), string(OpDelete), string(OpReadAll):
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST")
			return
		}
		var c Counts
		if Op(op) == OpReadAll {
			c, err = ib.MarkAllRead(ctx, user)
		} else {
			var ids []string
			if ids, err = idsOf(w, r); err == nil {
				c, err = ib.Change(ctx, user, Op(op), ids...)
			}
		}
		respond(w, struct {
			Counts Counts `json:"counts"`
		}{c}, err)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// queryOf reads a list query: unread and archived are "1"/"true" or "0"/"false", limit an
// integer (clamped by List), cursor opaque.
func queryOf(r *http.Request) (Query, error) {
	v := r.URL.Query()
	var q Query
	var err error
	if q.Unread, err = flag(v.Get("unread")); err != nil {
		return q, errors.New("unread must be 0 or 1")
	}
	if q.Archived, err = flag(v.Get("archived")); err != nil {
		return q, errors.New("archived must be 0 or 1")
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return q, errors.New("limit must be an integer")
		}
		q.Limit = n
	}
	q.Cursor = v.Get("cursor")
	return q, nil
}

func flag(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

// idsOf reads a change's body, {"ids": [...]}.
func idsOf(w http.ResponseWriter, r *http.Request) ([]string, error) {
	var body struct {
		IDs []string `json:"ids"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	if err := dec.Decode(&body); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, ErrTooLarge
		}
		return nil, errors.Join(ErrInvalid, errors.New(`body must be {"ids":["..."]}`))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.Join(ErrInvalid, errors.New("body must hold one JSON object"))
	}
	return body.IDs, nil
}

// respond writes v as JSON, or the error's answer.
func respond(w http.ResponseWriter, v any, err error) {
	switch {
	case err == nil:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such notification")
	case errors.Is(err, ErrTooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", "request body too large")
	case errors.Is(err, ErrBadCursor):
		writeError(w, http.StatusBadRequest, "bad_request", "malformed cursor")
	case errors.Is(err, ErrBadAck):
		writeError(w, http.StatusBadRequest, "bad_request", "invalid or expired ack")
	case errors.Is(err, ErrTooMany):
		writeError(w, http.StatusConflict, "too_many", "too many push subscriptions")
	case errors.Is(err, ErrInvalid):
		writeError(w, http.StatusBadRequest, "bad_request", reasonOf(err))
	default:
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the inbox store is unavailable; try again")
	}
}

// reasonOf is the client's reason for an ErrInvalid: the detail after the prefix.
func reasonOf(err error) string {
	msg := err.Error()
	prefix := ErrInvalid.Error()
	return strings.TrimLeft(strings.TrimPrefix(msg, prefix), ": \n")
}

func writeError(w http.ResponseWriter, status int, code, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Error  string `json:"error"`
		Reason string `json:"reason,omitempty"`
	}{code, reason})
}
