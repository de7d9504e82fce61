package wstest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// PipeServer serves an HTTP handler over in-memory connections (net.Pipe) instead of TCP, so
// that a test can run a hub, its server and its clients inside a testing/synctest bubble: a
// goroutine blocked on a pipe is durably blocked, one blocked on a socket is not, and the
// bubble's fake clock advances only when every goroutine in it is durably blocked. Create it
// inside the bubble; it closes at cleanup. Its clients wait for frames on the bubble's clock,
// up to an hour (see Client.Wait).
type PipeServer struct {
	// URL is the server's base URL, "ws://pipe"; the dialer ignores the host.
	URL string
	// Dialer connects to the server, for raw use.
	Dialer *websocket.Dialer

	ln     *pipeListener
	srv    *http.Server
	served chan struct{}
}

// pipeWait is how long a pipe client's Next waits for a frame. Waiting costs nothing on the
// bubble's clock (it jumps to the next timer), so it is long: longer than any timer of the
// tests, which check the exact times frames arrive at instead.
const pipeWait = time.Hour

// Pipe starts serving h over in-memory connections.
func Pipe(t testing.TB, h http.Handler) *PipeServer {
	t.Helper()
	ln := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	p := &PipeServer{URL: "ws://pipe", ln: ln, srv: &http.Server{Handler: h}, served: make(chan struct{})}
	p.Dialer = &websocket.Dialer{NetDialContext: ln.dial, HandshakeTimeout: 45 * time.Second}
	go func() {
		defer close(p.served)
		_ = p.srv.Serve(ln)
	}()
	t.Cleanup(p.Close)
	return p
}

// Close stops the server and waits for it; connections it hijacked (WebSocket sessions) are
// their handler's to close.
func (p *PipeServer) Close() {
	_ = p.srv.Close()
	<-p.served
}

// Dial connects to u (only its path and query matter) like the package's Dial.
func (p *PipeServer) Dial(t testing.TB, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	c, resp, err := dial(t, p.Dialer, u, hdr)
	if c != nil {
		c.Wait = pipeWait
	}
	return c, resp, err
}

// DialSSE opens an event stream at u (only its path and query matter) like the package's
// DialSSE, over a pipe; its HTTP client's idle connections close at cleanup.
func (p *PipeServer) DialSSE(t testing.TB, u string, hdr http.Header) (*Client, *http.Response, error) {
	t.Helper()
	tr := &http.Transport{DialContext: p.ln.dial}
	t.Cleanup(tr.CloseIdleConnections)
	c, resp, err := dialSSE(t, &http.Client{Transport: tr}, u, hdr)
	if c != nil {
		c.Wait = pipeWait
	}
	return c, resp, err
}

// Welcome dials u with a bearer token like the package's Welcome.
func (p *PipeServer) Welcome(t testing.TB, u, token string) (*Client, map[string]any) {
	t.Helper()
	c, _, err := p.Dial(t, u, http.Header{"Authorization": {"Bearer " + token}})
	return welcome(t, c, err)
}

// pipeListener is a net.Listener whose connections are the server ends of pipes that dial
// makes.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// dial hands the server one end of a new pipe and returns the other, with a receive buffer.
func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
	case <-l.done:
		server.Close()
		client.Close()
		return nil, errors.New("wstest: pipe server closed")
	case <-ctx.Done():
		server.Close()
		client.Close()
		return nil, ctx.Err()
	}
	return newBufferedConn(client), nil
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// bufferedConn is a client's end of a pipe with a receive buffer, as a socket has: what the
// server writes is taken at once. A bare pipe's write waits for the reader, so a server's write
// would wait while the test looks elsewhere, and on the bubble's clock its write deadline
// could pass meanwhile. Read deadlines are not supported (the client does not use them).
type bufferedConn struct {
	net.Conn
	mu   sync.Mutex
	buf  []byte
	err  error         // the pipe's read error, once it came
	more chan struct{} // capacity 1: buf or err changed
}

func newBufferedConn(c net.Conn) *bufferedConn {
	b := &bufferedConn{Conn: c, more: make(chan struct{}, 1)}
	go b.fill()
	return b
}

// fill reads the pipe until it fails (either end closed it).
func (b *bufferedConn) fill() {
	p := make([]byte, 32<<10)
	for {
		n, err := b.Conn.Read(p)
		b.mu.Lock()
		b.buf = append(b.buf, p[:n]...)
		if err != nil {
			b.err = err
		}
		b.mu.Unlock()
		select {
		case b.more <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

func (b *bufferedConn) Read(p []byte) (int, error) {
	for {
		b.mu.Lock()
		if len(b.buf) > 0 {
			n := copy(p, b.buf)
			b.buf = b.buf[n:]
			b.mu.Unlock()
			return n, nil
		}
		err := b.err
		b.mu.Unlock()
		if err != nil {
			return 0, err
		}
		<-b.more
	}
}
