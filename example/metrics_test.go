package main

import (
	"strings"
	"testing"
)

// GET /metrics serves the hub's metrics, with the Go runtime's and the process's, in the
// Prometheus text format.
func TestMetrics(t *testing.T) {
	t.Parallel()
	srv, _ := serve(t, options{Demo: true})
	ws, _, err := dialWS(t, srv.URL, demoToken(t, srv, "alice"), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if m := readFrame(t, ws); m["op"] != "welcome" {
		t.Fatalf("first frame = %v, want a welcome", m)
	}
	if status, body := do(t, srv.Client(), "POST", srv.URL+"/demo/send", "application/json",
		`{"user":"alice","type":"message"}`); status != 202 {
		t.Fatalf("POST /demo/send: %d %q", status, body)
	}
	if m := readFrame(t, ws); sentType(m) != "message" {
		t.Fatalf("event = %v", m)
	}

	status, body := do(t, srv.Client(), "GET", srv.URL+"/metrics", "", "")
	if status != 200 {
		t.Fatalf("GET /metrics: %d %q", status, body)
	}
	lines := strings.Split(body, "\n")
	for _, want := range []string{
		"# TYPE notify_sessions gauge",
		"notify_sessions 1",
		`notify_connects_total{transport="websocket"} 1`,
		`notify_sends_total{kind="user"} 1`,
		"notify_send_duration_seconds_count 1",
		"# TYPE go_goroutines gauge",
	} {
		found := false
		for _, l := range lines {
			found = found || l == want
		}
		if !found {
			t.Errorf("GET /metrics has no line %q", want)
		}
	}
	if !strings.Contains(body, "process_") && !strings.Contains(body, "go_memstats_") {
		t.Errorf("GET /metrics has neither process_ nor go_memstats_ metrics")
	}
}
