package wstest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"
)

// sseConn is a Client's server-sent events stream, in place of a WebSocket: each event's data
// is one frame, the close event ends the stream as a close frame would, and Send POSTs.
type sseConn struct {
	hc   *http.Client
	resp *http.Response
	post string      // the stream's URL, to which /<session> is added
	hdr  http.Header // the stream request's, for the POSTs' authentication

	mu          sync.Mutex
	session     string
	lastEventID string
}

// DialSSE opens an event stream at u (http://.../sse?...) with hdr, as a Client whose frames
// are the stream's events. A response other than 200 is returned with an error.
func DialSSE(t testing.TB, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	return dialSSE(t, http.DefaultClient, u, hdr)
}

// DialSSEClient is DialSSE with hc for the stream and the POSTs (an HTTP/2 server's client).
func DialSSEClient(t testing.TB, hc *http.Client, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	return dialSSE(t, hc, u, hdr)
}

func dialSSE(t testing.TB, hc *http.Client, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil, resp, fmt.Errorf("event stream: %s", resp.Status)
	}
	base, _, _ := strings.Cut(u, "?")
	c := &Client{t: t, sse: &sseConn{hc: hc, resp: resp, post: base, hdr: hdr},
		in: make(chan inFrame), done: make(chan struct{}), exited: make(chan struct{})}
	t.Cleanup(func() {
		close(c.done)
		resp.Body.Close()
		started := true
		c.start.Do(func() { started = false })
		if started {
			<-c.exited
		}
	})
	return c, resp, nil
}

// SSE reports whether the client is an event stream.
func (c *Client) SSE() bool { return c.sse != nil }

// LastEventID is the id of the last event read (by Read) that had one: what an EventSource
// would send back.
func (c *Client) LastEventID() string {
	c.sse.mu.Lock()
	defer c.sse.mu.Unlock()
	return c.sse.lastEventID
}

// Session is the session the welcome named.
func (c *Client) Session() string {
	c.sse.mu.Lock()
	defer c.sse.mu.Unlock()
	return c.sse.session
}

// Post sends v to the stream's session as the transport's POST and returns the status.
func (c *Client) Post(v any) int {
	c.t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.PostRaw(c.sse.post+"/"+c.Session(), body)
}

// SetBearer makes the stream's POSTs from now on carry tok in their Authorization header, as
// a client's do once it has a fresh token. Call it from the goroutine that posts.
func (c *Client) SetBearer(tok string) {
	hdr := c.sse.hdr.Clone()
	if hdr == nil {
		hdr = http.Header{}
	}
	hdr.Set("Authorization", "Bearer "+tok)
	c.sse.hdr = hdr
}

// PostRaw posts body to u with the stream's headers and returns the status.
func (c *Client) PostRaw(u string, body []byte) int {
	c.t.Helper()
	req, err := http.NewRequest("POST", u, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range c.sse.hdr {
		if k != "Last-Event-Id" {
			req.Header[k] = v
		}
	}
	resp, err := c.sse.hc.Do(req)
	if err != nil {
		c.t.Fatalf("post: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Close ends the client's connection.
func (c *Client) Close() {
	if c.sse != nil {
		c.sse.resp.Body.Close()
		return
	}
	c.WS.Close()
}

// sseReader reads the stream's events. A comment (the heartbeat) is counted (CommentsSeen).
func (c *Client) sseReader() {
	defer close(c.exited)
	br := bufio.NewReader(c.sse.resp.Body)
	var data []byte
	var id string // the event's id line, if any
	send := func(f inFrame) bool {
		select {
		case c.in <- f:
			return true
		case <-c.done:
			return false
		}
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			send(inFrame{err: err})
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if data == nil {
				continue
			}
			f := inFrame{typ: websocket.TextMessage, data: data, id: id}
			data, id = nil, ""
			var ctl struct {
				Op      string `json:"op"`
				Code    int    `json:"code"`
				Reason  string `json:"reason"`
				Session string `json:"session"`
			}
			_ = json.Unmarshal(f.data, &ctl)
			switch ctl.Op {
			case "close":
				send(inFrame{err: &websocket.CloseError{Code: ctl.Code, Text: ctl.Reason}})
				return
			case "welcome":
				c.sse.mu.Lock()
				c.sse.session = ctl.Session
				c.sse.mu.Unlock()
			}
			if !send(f) {
				return
			}
		case strings.HasPrefix(line, ":"):
			c.sse.mu.Lock()
			c.comments++
			c.sse.mu.Unlock()
		case strings.HasPrefix(line, "id: "):
			id = line[4:]
		case strings.HasPrefix(line, "data: "):
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, line[6:]...)
		}
	}
}

// CommentsSeen is how many comment lines (heartbeats) the stream has had.
func (c *Client) CommentsSeen() int {
	c.sse.mu.Lock()
	defer c.sse.mu.Unlock()
	return c.comments
}
