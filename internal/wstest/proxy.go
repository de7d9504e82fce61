package wstest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a target it can switch, and can cut every open
// connection and refuse new ones, as a network outage does. It closes when the test ends.
type Proxy struct {
	// Addr is the proxy's listen address, host:port; URL is "http://" + Addr.
	Addr, URL string

	ln      net.Listener
	mu      sync.Mutex
	target  string
	blocked bool
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// NewProxy starts a proxy on a free local port that forwards to target (host:port).
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.Addr = ln.Addr().String()
	p.URL = "http://" + p.Addr
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		if p.blocked {
			p.mu.Unlock()
			c.Close()
			continue
		}
		target := p.target
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.pipe(c, target)
	}
}

// pipe copies between the client connection c and a new connection to target until either
// side closes or cut closes them.
func (p *Proxy) pipe(c net.Conn, target string) {
	defer p.wg.Done()
	u, err := net.DialTimeout("tcp", target, 2*time.Second)
	if err != nil {
		p.forget(c)
		return
	}
	p.mu.Lock()
	if _, ok := p.conns[c]; !ok { // cut while dialing
		p.mu.Unlock()
		u.Close()
		return
	}
	p.conns[u] = struct{}{}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		io.Copy(u, c)
		u.Close()
		close(done)
	}()
	io.Copy(c, u)
	c.Close()
	<-done
	p.forget(c, u)
}

func (p *Proxy) forget(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(p.conns, c)
	}
}

// Outage cuts every connection and refuses new ones until Restore.
func (p *Proxy) Outage() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore lets connections through again, to target.
func (p *Proxy) Restore(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.blocked, p.target = false, target
}

func (p *Proxy) close() {
	p.ln.Close()
	p.Outage()
	p.wg.Wait()
}
