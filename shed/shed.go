// Package shed protects an HTTP server's file descriptors from connections that never
// finish a request: a net.Listener that sheds the oldest half-open connections when they
// crowd out the rest.
//
// A client that opens TCP connections and sends part of a request's header, or nothing, holds
// a file descriptor each until the server's ReadHeaderTimeout. Once the process runs out of
// descriptors, accept fails and every new connection, a legitimate WebSocket upgrade too,
// waits in the kernel's backlog until some of them time out; an attacker who keeps opening
// them keeps everyone out. [New] wraps the server's listener so that such connections are
// closed, oldest first, before they take every descriptor, and when accept fails for want of
// one:
//
//	ln, err := net.Listen("tcp", addr)
//	...
//	sl := shed.New(ln, shed.Options{})
//	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ConnState: sl.ConnState}
//	err = srv.Serve(sl)
//
// A connection is half-open from its accept until the server has read a request's header
// (http.StateActive), and again while it waits idle for its next request (http.StateIdle);
// a hijacked connection (a WebSocket, an HTTP/1.x event stream) or an active one is never
// shed. A legitimate client sends its header within a round trip of connecting, so the
// connections that have waited longest are the ones to close: under a flood of R connections
// a second, a new connection has MaxHalfOpen/R seconds to send its header.
//
// # What to set in front of it
//
//   - http.Server.ReadHeaderTimeout (10s, say): the Listener decides who goes first when
//     descriptors run short; the timeout still ends every half-open connection that nobody
//     needed to shed.
//   - The file limit (ulimit -n, systemd's LimitNOFILE): above the sessions you expect, plus
//     room for half-open connections. The default MaxHalfOpen is a quarter of it.
//   - Behind a reverse proxy or load balancer, its own limits on client connections and header
//     time (nginx's client_header_timeout and limit_conn): every connection then comes from
//     the proxy's address, so leave MaxHalfOpenPerHost at zero and let the proxy limit per
//     client.
package shed

import (
	"container/list"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// Options configures [New]. The zero value is ready to use.
type Options struct {
	// MaxHalfOpen is how many half-open connections the listener keeps; accepting one more
	// closes the oldest. Default (0): a quarter of the process's file limit (RLIMIT_NOFILE's
	// soft limit when the listener is made, which Go raises to the hard limit at start), 256
	// where that is not known. Negative: no cap;
	// the oldest are then closed only when accept fails for want of a file descriptor.
	MaxHalfOpen int
	// MaxHalfOpenPerHost is how many half-open connections one remote IP address may hold;
	// accepting one more from it closes its oldest. Default (0): no limit per address, as
	// behind a proxy, where every connection comes from the proxy's address.
	MaxHalfOpenPerHost int
}

// Listener is a net.Listener that sheds half-open connections (see the package
// documentation). Its ConnState must be the http.Server's ConnState hook (or be called from
// it): without it every connection stays half-open in its eyes. It returns the connections
// its inner listener accepts, unwrapped. Its methods are safe for concurrent use.
type Listener struct {
	net.Listener
	max, maxPerHost int

	// mu guards conns, the half-open connections oldest first (their elements' values are
	// *entry), and byHost, each address's half-open connections oldest first.
	mu     sync.Mutex
	conns  map[net.Conn]*entry // every accepted connection until it closes or is hijacked
	order  list.List
	byHost map[string]*list.List
}

// entry is an accepted connection; its elements are set while it is half-open.
type entry struct {
	c              net.Conn
	host           string
	elem, hostElem *list.Element
}

// New wraps ln in a Listener with the options o.
func New(ln net.Listener, o Options) *Listener {
	l := &Listener{Listener: ln, max: o.MaxHalfOpen, maxPerHost: o.MaxHalfOpenPerHost,
		conns: make(map[net.Conn]*entry), byHost: make(map[string]*list.List)}
	if l.max == 0 {
		l.max = 256
		if n := fileLimit(); n > 0 {
			l.max = max(1, n/4)
		}
	}
	return l
}

// Accept waits for the next connection. When the inner listener fails for want of a file
// descriptor (EMFILE, ENFILE), it closes the oldest half-open connection and tries again; it
// returns the error when there is none to close.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			l.add(c)
			return c, nil
		}
		if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
			return nil, err
		}
		l.mu.Lock()
		victim := l.shedLocked(l.order.Front())
		l.mu.Unlock()
		if victim == nil {
			return nil, err
		}
		_ = victim.Close()
	}
}

// add counts a new connection as half-open, shedding the oldest ones beyond the caps.
func (l *Listener) add(c net.Conn) {
	host := ""
	if a := c.RemoteAddr(); a != nil {
		host = a.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	e := &entry{c: c, host: host}
	var victims []net.Conn
	l.mu.Lock()
	l.conns[c] = e
	l.halfOpenLocked(e)
	if l.maxPerHost > 0 {
		for hl := l.byHost[host]; hl.Len() > l.maxPerHost; {
			victims = append(victims, l.shedLocked(hl.Front().Value.(*entry).elem))
		}
	}
	for l.max > 0 && l.order.Len() > l.max {
		victims = append(victims, l.shedLocked(l.order.Front()))
	}
	l.mu.Unlock()
	for _, v := range victims {
		_ = v.Close()
	}
}

// halfOpenLocked counts e as half-open, the newest.
func (l *Listener) halfOpenLocked(e *entry) {
	if e.elem != nil {
		return
	}
	e.elem = l.order.PushBack(e)
	hl := l.byHost[e.host]
	if hl == nil {
		hl = list.New()
		l.byHost[e.host] = hl
	}
	e.hostElem = hl.PushBack(e)
}

// settledLocked stops counting e as half-open.
func (l *Listener) settledLocked(e *entry) {
	if e.elem == nil {
		return
	}
	l.order.Remove(e.elem)
	hl := l.byHost[e.host]
	hl.Remove(e.hostElem)
	if hl.Len() == 0 {
		delete(l.byHost, e.host)
	}
	e.elem, e.hostElem = nil, nil
}

// shedLocked forgets the half-open connection at el (nil: none) and returns it for the
// caller to close once mu is released.
func (l *Listener) shedLocked(el *list.Element) net.Conn {
	if el == nil {
		return nil
	}
	e := el.Value.(*entry)
	l.settledLocked(e)
	delete(l.conns, e.c)
	return e.c
}

// ConnState is the http.Server's ConnState hook: it tells the listener which connections are
// half-open. A TLS connection counts as the connection under it, so the Listener may be
// wrapped in tls.NewListener (as http.Server.ServeTLS does). Connections it did not accept are
// ignored.
func (l *Listener) ConnState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.conns[c]
	for e == nil {
		// Behind tls.NewListener (http.Server.ServeTLS) the server has the *tls.Conn.
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			return
		}
		c = u.NetConn()
		e = l.conns[c]
	}
	switch s {
	case http.StateIdle:
		l.halfOpenLocked(e)
	case http.StateActive:
		l.settledLocked(e)
	case http.StateHijacked, http.StateClosed:
		l.settledLocked(e)
		delete(l.conns, c)
	}
}
