// Command example is a small notifications app built on notify: log in as a user, open a
// second window as another, and send notifications to a user, a topic or everyone.
//
//	NOTIFY_SECRET=$(openssl rand -hex 32) go run ./example -addr localhost:8080
//
// Several instances share a Redis server with -redis; each serves every user:
//
//	go run ./example -redis redis://127.0.0.1:6379 -addr :8080
//	go run ./example -redis redis://127.0.0.1:6379 -addr :8081
//
// In demo mode (the default) it also serves two endpoints that need no login, for scripts:
//
//	curl 'localhost:8080/demo/token?user=alice'
//	curl -d '{"user":"alice","type":"message","data":{"text":"hi"}}' localhost:8080/demo/send
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gonotify/notify"
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	demo := flag.Bool("demo", true, "serve /demo/token and /demo/send, which need no login")
	redisURL := flag.String("redis", "", "Redis URL shared with other instances, e.g. redis://127.0.0.1:6379 (default: one instance, in memory)")
	ttl := flag.Duration("token-ttl", 10*time.Minute, "lifetime of the notify tokens handed to pages (over 30s)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*addr, options{
		Secret:   []byte(os.Getenv("NOTIFY_SECRET")),
		TokenTTL: *ttl,
		Demo:     *demo,
		Redis:    *redisURL,
		Node:     *addr,
		Logger:   logger,
	}); err != nil {
		logger.Error("example failed", "err", err)
		os.Exit(1)
	}
}

func run(addr string, opts options) error {
	e, hub, err := newApp(opts)
	if err != nil {
		return err
	}
	// Code anywhere in the app can now call notify.Send, notify.Publish and notify.Broadcast.
	notify.SetDefault(hub)

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return errors.Join(err, hub.Shutdown(context.Background()))
	}
	e.Listener = ln
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
	// The hub first: WebSocket connections are hijacked, so the HTTP server does not close
	// them. Clients are told "going away" and reconnect to the next instance.
	err = errors.Join(hub.Shutdown(ctx), e.Shutdown(ctx))
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}
