// Command example is a small notifications app built on notify: log in as a user, open a
// second window as another, and send notifications to a user, a topic or everyone.
//
//	NOTIFY_SECRET=$(openssl rand -hex 32) go run ./example # http://127.0.0.1:8080
//
// Several instances share a Redis server with -redis; each serves every user:
//
//	go run ./example -redis redis://127.0.0.1:6379 -addr 127.0.0.1:8080
//	go run ./example -redis redis://127.0.0.1:6379 -addr 127.0.0.1:8081
//
// The users' inboxes (the bell's list and badge) are in memory unless -postgres names a
// database, where they survive restarts and are shared by every instance:
//
//	go run ./example -postgres postgres://postgres@127.0.0.1:5432/test
//
// In demo mode (the default) it also serves two endpoints that need no login, for scripts:
//
//	curl '127.0.0.1:8080/demo/token?user=alice'
//	curl -d '{"user":"alice","type":"message","data":{"text":"hi"}}' 127.0.0.1:8080/demo/send
//
// It listens on the loopback interface unless -addr names another. Since the demo endpoints
// hand anyone a token for any user, -demo is refused on an address other machines can reach:
// listen there with -demo=false, behind a real login.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/shed"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on (-demo needs a loopback address)")
	demo := flag.Bool("demo", true, "serve /demo/token and /demo/send, which need no login (loopback -addr only)")
	redisURL := flag.String("redis", "", "Redis URL shared with other instances, e.g. redis://127.0.0.1:6379 (default: one instance, in memory)")
	postgres := flag.String("postgres", "", "PostgreSQL URL keeping the users' inboxes, e.g. postgres://postgres@127.0.0.1:5432/test (default: in memory)")
	ttl := flag.Duration("token-ttl", 10*time.Minute, "lifetime of the notify tokens handed to pages (over 30s)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, options{
		Secret:   []byte(os.Getenv("NOTIFY_SECRET")),
		TokenTTL: *ttl,
		Demo:     *demo,
		Redis:    *redisURL,
		Postgres: *postgres,
		Node:     *addr,
		Logger:   logger,
	}); err != nil {
		logger.Error("example failed", "err", err)
		os.Exit(1)
	}
}

func run(addr string, opts options) error {
	if opts.Demo {
		if err := demoAddrAllowed(addr); err != nil {
			return err
		}
	}
	e, hub, closeInbox, err := newApp(opts)
	if err != nil {
		return err
	}
	defer closeInbox() // after the hub's shutdown below
	// Code anywhere in the app can now call notify.Send, notify.Publish and notify.Broadcast.
	notify.SetDefault(hub)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, hub.Shutdown(context.Background()))
	}
	// Connections that never finish a request header are shed, oldest first, before they
	// take every file descriptor (a quarter of the file limit may be half-open; more, and
	// accept failing with EMFILE, close the oldest), so that a page's upgrade still gets in;
	// ReadHeaderTimeout ends the rest. Behind a proxy, let it limit each client.
	sl := shed.New(ln, shed.Options{})
	e.Listener = sl
	e.Server = newServer(e, defaultTimeouts)
	e.Server.ConnState = sl.ConnState
	errc := make(chan error, 1)
	go func() { errc <- e.Start(addr) }()
	opts.Logger.Info("listening", "url", "http://"+ln.Addr().String(), "demo", opts.Demo, "redis", opts.Redis != "")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case err := <-errc:
		return errors.Join(err, hub.Shutdown(context.Background()))
	case <-ctx.Done():
		stop() // a second Ctrl-C ends the process at once
	}
	opts.Logger.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The hub first: WebSocket connections and HTTP/1.1 event streams are hijacked, so the
	// HTTP server does not close them. Clients are told "going away" and reconnect to the next
	// instance.
	err = errors.Join(hub.Shutdown(ctx), e.Shutdown(ctx))
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// demoAddrAllowed returns an error unless addr is a loopback address: the demo endpoints give
// anyone who reaches them a token for any user. A host name counts when every address it
// resolves to is a loopback one; an empty host (":8080") is every interface.
func demoAddrAllowed(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %q: %w", addr, err)
	}
	loopback := host != ""
	if ip := net.ParseIP(host); ip != nil {
		loopback = ip.IsLoopback()
	} else if host != "" && host != "localhost" {
		ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", host)
		loopback = err == nil && len(ips) > 0
		for _, ip := range ips {
			loopback = loopback && ip.IsLoopback()
		}
	}
	if !loopback {
		return fmt.Errorf("-demo serves login-free tokens for any user, so it listens only on a loopback address (127.0.0.1:8080, [::1]:8080, localhost:8080), not %q: use such an -addr, or -demo=false with a real login", addr)
	}
	return nil
}

// timeouts are the limits the HTTP server puts on each connection.
type timeouts struct {
	// ReadHeader is how long a client has to send a request's header, counted from when the
	// connection is accepted or, on a kept-alive connection, from the next request's first
	// byte. Without it, a client that opens connections and sends part of a header holds each
	// one open for good: a few hundred exhaust the process's file descriptors.
	ReadHeader time.Duration
	// Read bounds reading a whole request, body included; Write, handling it and writing the
	// response. Neither touches WebSockets: a hijacked connection comes without deadlines
	// (net/http's conn.hijackLocked calls SetDeadline(time.Time{}), and the server does not
	// touch the connection again), and the hub keeps its sessions alive with its own pings.
	// They bound the API calls and static files only, which take milliseconds.
	Read, Write time.Duration
	// Idle is how long a kept-alive connection may wait for its next request.
	Idle time.Duration
}

var defaultTimeouts = timeouts{
	ReadHeader: 10 * time.Second,
	Read:       30 * time.Second,
	Write:      30 * time.Second,
	Idle:       120 * time.Second,
}

// maxHeaderBytes bounds a request's header (net/http's default is 1 MB). The largest header
// here is a WebSocket upgrade carrying a token (at most 4 KB, the hub's MaxTokenSize) or a
// browser's cookies, one small session cookie per user logged in.
const maxHeaderBytes = 64 << 10

// newServer returns the HTTP server for handler h.
func newServer(h http.Handler, t timeouts) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    maxHeaderBytes,
	}
}
