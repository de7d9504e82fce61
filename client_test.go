package notify_test

import (
	"context"
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
