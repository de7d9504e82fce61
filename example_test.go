package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
)

// currentUser stands for the application's own login: the ID of the user the request is from.
func currentUser(*http.Request) string { return "alice" }

// The README's quick start for net/http: the hub, its WebSocket endpoint and browser client,
// and the endpoint that hands the logged-in user a notify token granting "news".
func Example() {
	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub) // GET /notify/ws and GET /notify/client.js
	mux.Handle("GET /api/notify-token", nethttp.TokenHandler(hub, func(r *http.Request) (string, []string, error) {
		return currentUser(r), []string{"news"}, nil // "" (not logged in): 401
	}, 10*time.Minute))

	srv := &http.Server{Addr: "127.0.0.1:8080", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// The README's "anywhere in the backend": one user's every tab and device, or every subscriber
// of a topic, and what the report says of a user with no session anywhere.
func ExampleHub_Send() {
	hub, err := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ctx := context.Background()
	order := map[string]int{"order": 42}

	report, err := hub.Send(ctx, "alice", notify.Event{Type: "order.shipped", Data: order}) // every tab and device of alice
	_, err = hub.Publish(ctx, "news", notify.Event{Type: "headline", Data: "Hello"})        // every subscriber of "news"

	fmt.Println(err, report.Position.Offset, report.Stored, report.Nodes)
	// Output:
	// <nil> 1 true 0
}

func ExampleHub_Publish() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	_, err := hub.Publish(context.Background(), "news", notify.Event{Type: "headline", Data: "Hello"})
	fmt.Println(err)
	_, err = hub.Publish(context.Background(), "no spaces allowed", notify.Event{Type: "headline"})
	fmt.Println(errors.Is(err, notify.ErrInvalidTopic))
	// Output:
	// <nil>
	// true
}

func ExampleSend() {
	// With no default hub, the package-level functions return an error; they never panic.
	fmt.Println(notify.Send("alice", notify.Event{Type: "hello"}))

	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())
	notify.SetDefault(hub)
	defer notify.SetDefault(nil)
	fmt.Println(notify.Send("alice", notify.Event{Type: "hello"}))
	// Output:
	// notify: no default hub (call notify.SetDefault)
	// <nil>
}

func ExampleNew_configError() {
	_, err := notify.New(notify.Config{}) // no key: every connection must be authenticated
	fmt.Println(err)
	fmt.Println(errors.Is(err, notify.ErrConfig))
	// Output:
	// notify: invalid config: no key to verify tokens: set Secret to 32 or more random bytes (openssl rand -hex 32), PublicKey to verify the tokens of your identity provider, or Keyfunc for rotating keys (JWKS)
	// true
}

// An HMAC secret must be at least 32 random bytes: one token is enough to brute-force a short
// one. Generate it with openssl rand -hex 32.
func ExampleNew_shortSecret() {
	_, err := notify.New(notify.Config{Secret: []byte("changeme")})
	fmt.Println(err)
	// Output:
	// notify: invalid config: Secret is 8 bytes, want at least 32 random bytes (e.g. openssl rand -hex 32)
}

func ExampleHub_IssueToken() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())

	// A token for alice, valid 10 minutes, granting the topic "news" and every "orders.*" topic.
	tok, _ := hub.IssueToken("alice", 10*time.Minute, "news", "orders.*")
	r := httptest.NewRequest("GET", "/notify/ws", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	id, err := hub.Authenticate(r)
	fmt.Println(id.UserID, id.Grants, err)
	// Output:
	// alice [news orders.*] <nil>
}

// The hub's state and counters, for a health endpoint or an exporter (adapters/promnotify
// exports them to Prometheus).
func ExampleHub_Stats() {
	hub, _ := notify.New(notify.Config{Secret: []byte("at least 32 random bytes, from env")})
	defer hub.Shutdown(context.Background())
	hub.Send(context.Background(), "alice", notify.Event{Type: "order.shipped"})

	st := hub.Stats()
	fmt.Println(st.Sessions, st.Users, st.Sends, st.Refused["user_sessions"], st.Disconnects[notify.CloseSlowConsumer])
	// Output:
	// 0 0 1 0 0
}

// A subscription to a topic the token does not grant is decided by Config.Authorize. Here a
// server-side client (token in the Authorization header) subscribes to three topics: one its
// token grants, its own team's, which Authorize allows, and another team's, refused with the
// error Authorize returned. The connection stays up after the refusal.
func ExampleConfig_authorize() {
	hub, err := notify.New(notify.Config{
		Secret: []byte("at least 32 random bytes, from env"),
		// Topics the token does not grant: users may follow their own team's topic.
		Authorize: func(ctx context.Context, id notify.Identity, topic string) error {
			if topic == "team."+teamOf(id.UserID) {
				return nil
			}
			return errors.New("not your team")
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer hub.Shutdown(context.Background()) // before srv.Close: it closes the sessions

	tok, _ := hub.IssueToken("alice", time.Minute, "news")
	d := websocket.Dialer{Subprotocols: []string{notify.Subprotocol}} // "notify.v1"
	ws, _, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/notify/ws",
		http.Header{"Authorization": {"Bearer " + tok}})
	if err != nil {
		log.Fatal(err)
	}
	defer ws.Close()
	fmt.Println(nextControl(ws)["op"])
	for _, topic := range []string{"news", "team.red", "team.blue"} {
		ws.WriteJSON(map[string]string{"op": "subscribe", "topic": topic})
		m := nextControl(ws)
		fmt.Println(m["op"], m["topic"], m["code"], m["reason"])
	}
	// Output:
	// welcome
	// subscribed news <nil> <nil>
	// subscribed team.red <nil> <nil>
	// error team.blue forbidden not your team
}

func teamOf(string) string { return "red" }

// nextControl returns the next control frame but pings. A frame may hold several JSON objects,
// one per line; here each answer comes alone, as the client waits for it before the next.
func nextControl(ws *websocket.Conn) map[string]any {
	for {
		ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			log.Fatalf("frame %q: %v", b, err)
		}
		if m["op"] != "ping" {
			return m
		}
	}
}
