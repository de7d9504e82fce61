package notify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
)

// Requests with an answer: the browser's connection.request("order.cancel", {order: 42})
// resolves with the handler's answer, or rejects with its RequestError's code and message.
func ExampleConfig_requests() {
	orders := map[int]string{42: "open"}
	hub, err := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		Requests: map[string]notify.RequestHandler{
			"order.cancel": func(ctx context.Context, req notify.Request) (any, error) {
				var in struct{ Order int }
				if err := json.Unmarshal(req.Data, &in); err != nil {
					return nil, &notify.RequestError{Code: "bad_input", Message: "want {order}"}
				}
				if orders[in.Order] == "" {
					return nil, &notify.RequestError{Code: "not_found", Message: "no such order"}
				}
				// req.ID is the same on a retry: with effects in another store, use it as the key.
				orders[in.Order] = "cancelled by " + req.Identity.UserID
				return map[string]string{"status": orders[in.Order]}, nil
			},
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer hub.Shutdown(context.Background())

	tok, _ := hub.IssueToken("alice", time.Minute)
	d := websocket.Dialer{Subprotocols: []string{notify.Subprotocol}}
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/notify/ws",
		http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()
	nextControl(ws) // the welcome
	for _, r := range []map[string]any{
		{"op": "request", "id": "r1", "name": "order.cancel", "data": map[string]int{"order": 42}},
		{"op": "request", "id": "r2", "name": "order.cancel", "data": map[string]int{"order": 7}},
		{"op": "request", "id": "r1", "name": "order.cancel", "data": map[string]int{"order": 42}}, // a retry
		{"op": "request", "id": "r3", "name": "order.refund"},
	} {
		ws.WriteJSON(r)
		m := nextControl(ws)
		fmt.Println(m["id"], m["data"], m["code"], m["reason"])
	}
	// Output:
	// r1 map[status:cancelled by alice] <nil> <nil>
	// r2 <nil> not_found no such order
	// r1 map[status:cancelled by alice] <nil> <nil>
	// r3 <nil> unknown_request no handler for this name
}
