package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/gorilla/websocket"
)

// sseConn is a notify-sse client: one HTTP/1.1 connection reading notify's event stream
// (GET /sse, PROTOCOL.md "Server-sent events"), as a browser's EventSource would, and sending
// nothing. Its frames are the chunks of the response: each holds the events of one flush
// (notify writes a batch and flushes it; a chunk that ends inside an event is joined with the
// next). The read loop takes them as a WebSocket frame's lines: the data: lines carry the
// events, the id: lines and the blank lines between events carry no send time.
type sseConn struct {
	nc    net.Conn
	br    *bufio.Reader
	rest  []byte // the start of an event a chunk ended in
	close int    // the code of the stream's close event, 0 until one was read
}

var errStreamEnded = errors.New("event stream ended without a close event")

// dialSSE opens the stream with the token in an Authorization header.
func dialSSE(rawURL, token string) (*sseConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nAuthorization: Bearer " + token +
		"\r\nAccept: text/event-stream\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(nc, 4096)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != 200 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		nc.Close()
		return nil, fmt.Errorf("%s, transfer encoding %v: not an event stream", resp.Status, resp.TransferEncoding)
	}
	// The body is read here, chunk by chunk, not through resp.Body: br is at its start.
	_ = nc.SetDeadline(time.Time{})
	return &sseConn{nc: nc, br: br}, nil
}

func (c *sseConn) Close() error { return c.nc.Close() }

// WriteMessage is never called: only centrifuge's clients answer pings.
func (c *sseConn) WriteMessage(int, []byte) error { return errors.New("an event stream sends nothing") }

var (
	eventEnd = []byte("\n\n")
	closeOp  = []byte(`"op":"close","code":`)
)

// next reads chunks until they end with a whole event, and returns the whole events in a
// pooled buffer (readBufs) that the caller puts back. When the stream ends, it returns a
// *websocket.CloseError with the close event's code, or errStreamEnded without one.
func (c *sseConn) next() (*[]byte, error) {
	bp := readBufs.Get().(*[]byte)
	b := append((*bp)[:0], c.rest...)
	c.rest = c.rest[:0]
	fail := func(err error) (*[]byte, error) {
		*bp = b
		readBufs.Put(bp)
		if c.close != 0 { // the stream's end after its close event, however it came
			return nil, &websocket.CloseError{Code: c.close}
		}
		return nil, err
	}
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return fail(err)
		}
		hex := bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(hex, ';'); i >= 0 {
			hex = hex[:i]
		}
		size, err := strconv.ParseUint(string(hex), 16, 32)
		if err != nil {
			return fail(fmt.Errorf("chunk size %q: %v", hex, err))
		}
		if size == 0 {
			return fail(errStreamEnded)
		}
		n := len(b)
		b = slices.Grow(b, int(size))[:n+int(size)]
		if _, err := io.ReadFull(c.br, b[n:]); err != nil {
			return fail(err)
		}
		if _, err := c.br.Discard(2); err != nil { // the chunk's CRLF
			return fail(err)
		}
		end := bytes.LastIndex(b, eventEnd)
		if end < 0 {
			continue
		}
		end += len(eventEnd)
		c.rest = append(c.rest, b[end:]...)
		b = b[:end]
		if i := bytes.Index(b, closeOp); i >= 0 {
			code := 0
			for _, d := range b[i+len(closeOp):] {
				if d < '0' || d > '9' {
					break
				}
				code = code*10 + int(d-'0')
			}
			c.close = code
		}
		*bp = b
		return bp, nil
	}
}
