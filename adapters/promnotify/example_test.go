package promnotify_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/promnotify"
)

// The README's snippet for Prometheus: the hub's metrics on a registry of the application's own,
// served at GET /metrics. (collectors.NewGoCollector and NewProcessCollector may join them on
// the same registry.)
func ExampleNewCollector() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	mux := http.NewServeMux()

	reg := prometheus.NewRegistry()
	reg.MustRegister(promnotify.NewCollector(hub))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	// A scrape:
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "notify_sessions ") || strings.HasPrefix(line, "notify_connects_total{") {
			fmt.Println(line)
		}
	}
	// Output:
	// notify_connects_total{transport="sse"} 0
	// notify_connects_total{transport="websocket"} 0
	// notify_sessions 0
}
