// Package nethttp mounts a notify hub into a net/http ServeMux.
//
// The hub itself is an http.Handler for the WebSocket endpoint and [notify.ClientHandler]
// serves the browser client, so any router can mount them; Mount does it for a ServeMux with
// Go 1.22 method patterns.
package nethttp

import (
	"net/http"
	"strings"

	"github.com/gonotify/notify"
)

// Mount registers, on mux, "GET <prefix>/ws" (the WebSocket endpoint) and
// "GET <prefix>/client.js" (the browser client). prefix is a path such as "/notify"; "" or "/"
// mounts at the root.
func Mount(mux *http.ServeMux, prefix string, hub *notify.Hub) {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix != "" && !strings.HasPrefix(prefix, "/") {
		prefix = "/" + prefix
	}
	mux.Handle("GET "+prefix+"/ws", hub)
	mux.Handle("GET "+prefix+"/client.js", notify.ClientHandler())
}
