package main

import (
	"context"
	"encoding/json"
	"log"
	"net/http"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"

	"github.com/gonotify/notify/bench/internal/payload"
)

// notifyVariant is the library under test, mounted with its net/http adapter, JWT auth on,
// default configuration.
type notifyVariant struct {
	hub *notify.Hub
	mux *http.ServeMux
}

func newNotify() *notifyVariant {
	hub, err := notify.New(notify.Config{Secret: payload.Secret})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "", hub)
	return &notifyVariant{hub: hub, mux: mux}
}

func (v *notifyVariant) ws() http.Handler { return v.mux }

func (v *notifyVariant) sendUser(user string, msg []byte, ephemeral bool) {
	if _, err := v.hub.Send(context.Background(), user, notify.Event{Type: "b", Data: json.RawMessage(msg), Ephemeral: ephemeral}); err != nil {
		log.Print(err)
	}
}

func (v *notifyVariant) broadcast(msg []byte) {
	if _, err := v.hub.Broadcast(context.Background(), notify.Event{Type: "b", Data: json.RawMessage(msg)}); err != nil {
		log.Print(err)
	}
}

// shutdown is Hub.Shutdown: the restart-storm scenario shuts a node down under its sessions.
func (v *notifyVariant) shutdown(ctx context.Context) error { return v.hub.Shutdown(ctx) }

func (v *notifyVariant) conns() int      { return v.hub.Stats().Sessions }
func (v *notifyVariant) slow() uint64    { return v.hub.Stats().SlowConsumers }
func (v *notifyVariant) dropped() uint64 { return 0 }
