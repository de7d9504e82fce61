package redisbroker_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/internal/wstest"
)

// sseURL is the node's event stream endpoint.
func (n *node) sseURL() string {
	return "http" + strings.TrimPrefix(strings.TrimSuffix(n.url, "/ws"), "ws") + "/sse"
}

// TestSSEPostAcrossNodes: a client's POST reaches its session on whichever node holds it, and
// a session of another user answers as an unknown one on every node.
func TestSSEPostAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	tok, err := a.hub.IssueToken("alice", time.Minute, ">")
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"Authorization": {"Bearer " + tok}}
	c, _, err := wstest.DialSSE(t, b.sseURL(), hdr) // the stream on node b
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Next(); w["op"] != "welcome" {
		t.Fatalf("got %v", w)
	}
	// The POST to node a.
	if s := c.PostRaw(a.sseURL()+"/"+url.PathEscape(c.Session()), []byte(`{"op":"subscribe","topic":"news"}`)); s != http.StatusAccepted {
		t.Fatalf("POST to node a: %d", s)
	}
	if m := c.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "news" {
		t.Fatalf("got %v, want subscribed", m)
	}
	bobTok, _ := a.hub.IssueToken("bob", time.Minute)
	for _, n := range []*node{a, b} {
		for _, session := range []string{c.Session(), "nosuchsession"} {
			r, _ := http.NewRequest("POST", n.sseURL()+"/"+session, strings.NewReader(`{"op":"subscribe","topic":"news"}`))
			r.Header.Set("Authorization", "Bearer "+bobTok)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("bob's POST for %s: %d, want 404", session, resp.StatusCode)
			}
		}
	}
	if _, err := a.hub.Publish(context.Background(), "news", notify.Event{Type: "headline"}); err != nil {
		t.Fatal(err)
	}
	expect(t, c, "headline", nil)
}

// TestSSETicketAcrossNodes: a ticket node a hands out opens a stream on node b, once.
func TestSSETicketAcrossNodes(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	shared := func(c *notify.Config) { c.Tickets = c.Broker.(*redisbroker.Broker).Tickets() }
	a, b := newNode(t, u, p, shared), newNode(t, u, p, shared)
	tok, _ := a.hub.IssueToken("alice", time.Minute)
	r, _ := http.NewRequest("POST", a.sseURL()+"/ticket", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ Ticket string }
	_ = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || out.Ticket == "" {
		t.Fatalf("ticket: %d", resp.StatusCode)
	}
	c, _, err := wstest.DialSSE(t, b.sseURL()+"?ticket="+out.Ticket, nil)
	if err != nil {
		t.Fatalf("node b: %v", err)
	}
	if w := c.Next(); w["op"] != "welcome" || w["user"] != "alice" {
		t.Fatalf("got %v", w)
	}
	if _, resp, err := wstest.DialSSE(t, a.sseURL()+"?ticket="+out.Ticket, nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("the ticket again, on node a: %v", err)
	}
}
