package notify

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

//go:embed client/notify.js
var clientJS []byte

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
