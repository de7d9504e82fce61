package echonotify_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
	"github.com/gonotify/notify/internal/wstest"
)

// TestEchoSSE: the event stream and its POSTs through Echo's middleware (Gzip included).
func TestEchoSSE(t *testing.T) {
	h := newHub(t)
	base := app(t, h, func(e *echo.Echo) { echonotify.Mount(e.Group("/notify"), h, nil) })
	tok, _ := h.IssueToken("alice", time.Minute, "news")
	c, resp, err := wstest.DialSSE(t, base+"/notify/sse", http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	if m := c.Next(); m["op"] != "welcome" || m["user"] != "alice" {
		t.Fatalf("got %v", m)
	}
	c.Send(map[string]any{"op": "subscribe", "topic": "news"})
	if m := c.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "news" {
		t.Fatalf("got %v", m)
	}
	if _, err := h.Publish(context.Background(), "news", notify.Event{Type: "headline"}); err != nil {
		t.Fatal(err)
	}
	if m := c.NextNonPing(); m["type"] != "headline" {
		t.Fatalf("got %v", m)
	}
	if _, resp, err := wstest.DialSSE(t, base+"/notify/sse", nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("no token: %v", err)
	}
}
