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

// TestSSEPostForWebSocketSession: only an event stream takes messages by POST. The caller's
// own WebSocket session answers 404 on every node, the one holding it and another, as an
// unknown session does; presence says each session's transport on every node.
func TestSSEPostForWebSocketSession(t *testing.T) {
	t.Parallel()
	u, p := redisURL(t), prefix(t)
	a, b := newNode(t, u, p, nil), newNode(t, u, p, nil)
	ws, w := b.dial(t, "alice", nil) // the WebSocket on node b
	wsID, _ := w["session"].(string)
	tok, err := a.hub.IssueToken("alice", time.Minute, ">")
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := wstest.DialSSE(t, b.sseURL(), http.Header{"Authorization": {"Bearer " + tok}}) // a stream beside it
	if err != nil {
		t.Fatal(err)
	}
	if w := c.Next(); w["op"] != "welcome" {
		t.Fatalf("got %v", w)
	}
	for _, n := range []*node{a, b} {
		ps, err := n.hub.Presence(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, s := range ps {
			got[s.ID] = s.Transport
		}
		if len(got) != 2 || got[wsID] != "websocket" || got[c.Session()] != "sse" {
			t.Fatalf("presence %+v, want %s over websocket and %s over sse", ps, wsID, c.Session())
		}
	}
	for _, n := range []*node{a, b} {
		for _, session := range []string{wsID, "nosuchsession"} {
			r, _ := http.NewRequest("POST", n.sseURL()+"/"+url.PathEscape(session), strings.NewReader(`{"op":"subscribe","topic":"news"}`))
			r.Header.Set("Authorization", "Bearer "+tok)
			resp, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("alice's POST to a node for %s: %d, want 404", session, resp.StatusCode)
			}
		}
	}
	// The stream's own POST still works from either node.
	for _, n := range []*node{a, b} {
		if s := c.PostRaw(n.sseURL()+"/"+url.PathEscape(c.Session()), []byte(`{"op":"subscribe","topic":"news"}`)); s != http.StatusAccepted {
			t.Fatalf("POST for the stream: %d", s)
		}
		if m := c.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "news" {
			t.Fatalf("got %v, want subscribed", m)
		}
	}
	// The socket got none of the messages: its next frame is the event published now.
	if err := a.hub.Subscribe(context.Background(), "alice", "room"); err != nil {
		t.Fatal(err)
	}
	if m := ws.NextNonPing(); m["op"] != "subscribed" || m["topic"] != "room" || m["server"] != true {
		t.Fatalf("socket got %v, want only the server's subscription to room", m)
	}
}
