package notify_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/gonotify/notify/internal/wstest"
)

// TestBrowserClientUnit runs the browser client's own unit tests (backoff, dedup, frame
// parsing, the connection state machine) with Node's built-in test runner.
func TestBrowserClientUnit(t *testing.T) {
	node, err := exec.LookPath("node")
	wstest.RequireService(t, "Node.js (node)", err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--test", "client/test/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test client/test/: %v\n%s", err, out)
	}
	t.Logf("node --test client/test/:\n%s", out)
}

// TestServiceWorkerServed: Mount serves the service worker beside client.js, as a script that
// may control the site's root scope.
func TestServiceWorkerServed(t *testing.T) {
	t.Parallel()
	srv := serve(t, newHub(t, nil))
	resp, err := http.Get(srv.URL + "/notify/sw.js")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range []struct{ what, got, want string }{
		{"status", resp.Status, "200 OK"},
		{"Content-Type", resp.Header.Get("Content-Type"), "text/javascript; charset=utf-8"},
		{"Service-Worker-Allowed", resp.Header.Get("Service-Worker-Allowed"), "/"},
		{"Cache-Control", resp.Header.Get("Cache-Control"), "no-cache"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if !bytes.Contains(body, []byte(`addEventListener("push"`)) {
		t.Errorf("sw.js: %d bytes without a push handler", len(body))
	}
}
