package echonotify_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
	"github.com/gonotify/notify/inbox"
)

// currentUser stands for the application's own login: the ID of the user the request is from.
func currentUser(echo.Context) string { return "alice" }

// In an existing app e: the hub, its WebSocket endpoint and browser client, and the endpoint
// that hands the app's logged-in user a notify token granting "news".
func ExampleMount() {
	e := echo.New() // the existing app

	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	echonotify.Mount(e.Group("/notify"), hub, nil) // GET /notify/ws and GET /notify/client.js
	e.GET("/api/notify-token", echonotify.TokenHandler(hub, func(c echo.Context) (string, []string, error) {
		return currentUser(c), []string{"news"}, nil // "": not logged in, 401
	}, 10*time.Minute))
	e.Server.ReadHeaderTimeout = 10 * time.Second // before e.Start: drops half-open requests

	log.Fatal(e.Start(":8080"))
}

// When an echo-jwt middleware already verifies the app's own token on the group, the hub takes
// the user from it (the claims must hold "sub" and "exp") instead of verifying a notify token.
// Here the app keeps its token in a cookie, which a browser sends with the WebSocket upgrade:
// the page's connect() then needs no token option.
func ExampleMount_echoJWT() {
	e := echo.New()
	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}

	g := e.Group("/notify", echojwt.WithConfig(echojwt.Config{
		SigningKey:    []byte(os.Getenv("APP_JWT_KEY")),
		TokenLookup:   "cookie:token",
		NewClaimsFunc: func(echo.Context) jwt.Claims { return jwt.MapClaims{} },
	}))
	echonotify.Mount(g, hub, &echonotify.Config{TokenContextKey: "user"})
}

// appSecret stands for the app's notify secret: 32 random bytes from its configuration, such
// as os.Getenv("NOTIFY_SECRET").
var appSecret = []byte("an example secret, 32 bytes long")

// The README's quick start for Echo: live notifications in an app that already knows its user
// (currentUser: echo-jwt, a session cookie) are the eight lines between the marks. The rest
// plays the page, which fetches a token from /api/notify-token and connects to /notify/ws, as
// the browser client does.
func Example() {
	e := echo.New() // the existing app

	// -- 8 lines
	hub, err := notify.New(notify.Config{Secret: appSecret})
	if err != nil {
		log.Fatal(err)
	}
	echonotify.Mount(e.Group("/notify"), hub, nil) // GET /notify/ws and GET /notify/client.js
	e.GET("/api/notify-token", echonotify.TokenHandler(hub, func(c echo.Context) (string, []string, error) {
		return currentUser(c), []string{"news"}, nil
	}, 10*time.Minute))
	// -- then, anywhere in the backend: hub.Send(ctx, "alice", notify.Event{...})

	srv := httptest.NewServer(e)
	defer srv.Close()
	defer hub.Shutdown(context.Background())
	ws := page(srv.URL)
	defer ws.Close()
	if _, err := hub.Send(context.Background(), "alice", notify.Event{Type: "order.shipped", Data: map[string]int{"order": 42}}); err != nil {
		log.Fatal(err)
	}
	fmt.Println(next(ws))
	// Output:
	// welcome alice
	// order.shipped {"order":42}
}

// The inbox beside the socket: the browser client's connection.inbox finds its endpoints at
// /notify/inbox/ from the socket's /notify/ws.
func ExampleMountInbox() {
	e := echo.New()
	hub, err := notify.New(notify.Config{Secret: appSecret})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	ib, err := inbox.New(hub, inbox.Config{}) // in memory; adapters/pginbox for PostgreSQL
	if err != nil {
		log.Fatal(err)
	}
	defer ib.Close()

	g := e.Group("/notify")
	echonotify.Mount(g, hub, nil)
	echonotify.MountInbox(g, ib) // GET /notify/inbox/, GET /notify/inbox/counts, POST /notify/inbox/read, ...

	srv := httptest.NewServer(e)
	defer srv.Close()
	if _, _, err := ib.Notify(context.Background(), "alice", inbox.Notification{ID: "order-42", Type: "order.shipped"}); err != nil {
		log.Fatal(err)
	}
	tok, _ := hub.IssueToken("alice", time.Minute)
	req, _ := http.NewRequest("GET", srv.URL+"/notify/inbox/counts", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var counts inbox.Counts
	_ = json.NewDecoder(resp.Body).Decode(&counts)
	fmt.Printf("%d %+v\n", resp.StatusCode, counts)
	// Output: 200 {Unread:1 Unseen:1 Total:1}
}

// page fetches a token from the app and connects with it, and prints the welcome's user.
func page(base string) *websocket.Conn {
	resp, err := http.Get(base + "/api/notify-token")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		log.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/notify/ws",
		http.Header{"Authorization": {"Bearer " + tok.Token}})
	if err != nil {
		log.Fatal(err)
	}
	var welcome struct{ Op, User string }
	if err := ws.ReadJSON(&welcome); err != nil {
		log.Fatal(err)
	}
	fmt.Println(welcome.Op, welcome.User)
	return ws
}

// next returns the type and data of the next event the page receives.
func next(ws *websocket.Conn) string {
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var ev struct {
		Type string
		Data json.RawMessage
	}
	if err := ws.ReadJSON(&ev); err != nil {
		log.Fatal(err)
	}
	return ev.Type + " " + string(ev.Data)
}
