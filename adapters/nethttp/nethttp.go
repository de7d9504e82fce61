// Package nethttp mounts a notify hub into a net/http ServeMux.
//
// The hub itself is an http.Handler for the WebSocket endpoint and [notify.ClientHandler]
// serves the browser client, so any router can mount them; Mount does it for a ServeMux with
// Go 1.22 method patterns. It is the twin of adapters/echonotify:
//
//	nethttp.Mount(mux, "/notify", hub)     // GET /notify/ws, /notify/sse, /notify/client.js and /notify/sw.js
//	nethttp.MountInbox(mux, "/notify", ib) // /notify/inbox/..., beside the socket
//	mux.Handle("GET /api/notify-token", nethttp.TokenHandler(hub, currentUser, 10*time.Minute))
package nethttp

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// Mount registers, on mux, "GET <prefix>/ws" (the WebSocket endpoint), "GET <prefix>/sse"
// and "POST <prefix>/sse/{session}" (the server-sent events transport, [notify.Hub.SSE], with
// its tickets at POST <prefix>/sse/ticket), "GET <prefix>/client.js" (the browser client) and
// "GET <prefix>/sw.js" (its service worker, for Web Push). prefix is a path such as "/notify";
// "" or "/" mounts at the root.
func Mount(mux *http.ServeMux, prefix string, hub *notify.Hub) {
	prefix = cleanPrefix(prefix)
	mux.Handle("GET "+prefix+"/ws", hub)
	sse := hub.SSE()
	mux.Handle("GET "+prefix+"/sse", sse)
	mux.Handle("POST "+prefix+"/sse/{session}", sse)
	mux.Handle("GET "+prefix+"/client.js", notify.ClientHandler())
	mux.Handle("GET "+prefix+"/sw.js", notify.ServiceWorkerHandler())
}

// MountInbox registers the inbox's HTTP endpoints ([inbox.Inbox.Handler]) on mux under
// "<prefix>/inbox/": GET <prefix>/inbox/ (the list), GET <prefix>/inbox/counts, POST
// <prefix>/inbox/read and the other changes (PROTOCOL.md, "Inbox over HTTP"). With the prefix
// of Mount, they are where the browser client's connection.inbox looks. Every method reaches
// the inbox, which answers 405 to the ones an endpoint does not take.
func MountInbox(mux *http.ServeMux, prefix string, ib *inbox.Inbox) {
	mux.Handle(cleanPrefix(prefix)+"/inbox/", ib.Handler())
}

func cleanPrefix(prefix string) string {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	return prefix
}

// DefaultTokenTTL is the lifetime of the tokens of [TokenHandler] when its ttl is 0 or less.
const DefaultTokenTTL = 10 * time.Minute

// TokenHandler returns the endpoint a page calls for a notify token (the browser client's
// token option), for an app that already knows the request's user (its session cookie, its
// own auth middleware). user returns the request's user ID and the topics or patterns the
// token grants.
//
// It answers 200 with JSON {"token": "...", "expires": "2026-01-02T15:04:05Z"} (RFC 3339, the
// token's exp); 401 {"error":"unauthorized","reason":"not logged in"} when user returns an
// empty ID and no error; 500 {"error":"internal"} when user or the hub fails (the error goes
// to slog.Default, not to the client). Every answer has Cache-Control: no-store. The tokens
// expire after ttl; DefaultTokenTTL when ttl is 0 or less. Mount the endpoint behind the app's
// own authentication: whoever reaches it gets a token for the user that user returns.
func TokenHandler(hub *notify.Hub, user func(r *http.Request) (userID string, grants []string, err error), ttl time.Duration) http.Handler {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		id, grants, err := user(r)
		if err == nil && id == "" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"unauthorized","reason":"not logged in"}` + "\n"))
			return
		}
		// Read before signing and cut to the second as exp is: never later than the token's.
		exp := time.Now().Add(ttl).Truncate(time.Second).UTC()
		var tok string
		if err == nil {
			tok, err = hub.IssueToken(id, ttl, grants...)
		}
		if err != nil {
			slog.Default().ErrorContext(r.Context(), "notify: token endpoint failed", "user", id, "err", err)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":"internal"}` + "\n"))
			return
		}
		_ = json.NewEncoder(w).Encode(struct {
			Token   string    `json:"token"`
			Expires time.Time `json:"expires"`
		}{tok, exp})
	})
}
