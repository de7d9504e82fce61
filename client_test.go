package notify_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// requireService skips a test whose service is missing, or fails it when the environment
// requires every service (NOTIFY_REQUIRE_SERVICES=1, as .ci/run sets).
func requireService(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("NOTIFY_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is required (NOTIFY_REQUIRE_SERVICES=1): %v", what, err)
	}
	t.Skipf("%s not available, skipping: %v", what, err)
}

// TestBrowserClientUnit runs the browser client's own unit tests (backoff, dedup, frame
// parsing, the connection state machine) with Node's built-in test runner.
func TestBrowserClientUnit(t *testing.T) {
	node, err := exec.LookPath("node")
	requireService(t, "Node.js (node)", err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "--test", "client/test/").CombinedOutput()
	if err != nil {
		t.Fatalf("node --test client/test/: %v\n%s", err, out)
	}
	t.Logf("node --test client/test/:\n%s", out)
}
