package notify

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

//go:embed client/notify.js
var clientJS []byte

//go:embed client/sw.js
var serviceWorkerJS []byte

var clientModTime = time.Now()

// ClientHandler serves the dependency-free browser client, an ES module. Adapters mount it at
// "<prefix>/client.js". Its TypeScript declarations are client/notify.d.ts in the module.
func ClientHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "client.js", clientModTime, bytes.NewReader(clientJS))
	})
}

// ServiceWorkerHandler serves the browser client's service worker (client/sw.js, a classic
// script), which shows the notifications the server pushes (PROTOCOL.md, "Web Push").
// Adapters mount it at "<prefix>/sw.js", where connection.push.enable() registers it. It
// answers with "Service-Worker-Allowed: /", so that the worker may control the site's whole
// origin (the client's default scope, "/") although it is served under the prefix.
func ServiceWorkerHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Service-Worker-Allowed", "/")
		http.ServeContent(w, r, "sw.js", clientModTime, bytes.NewReader(serviceWorkerJS))
	})
}
