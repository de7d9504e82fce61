package promnotify_test

import (
	"context"
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/adapters/promnotify"
)

func ExampleNewCollector() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())

	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)

	// A registry of its own, with the Go runtime's and the process's metrics beside the hub's.
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		promnotify.NewCollector(hub),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	log.Fatal(http.ListenAndServe(":8080", mux))
}
