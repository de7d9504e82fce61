package echonotify_test

import (
	"log"
	"net/http"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	echojwt "github.com/labstack/echo-jwt/v4"
	"github.com/labstack/echo/v4"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
)

// currentUser stands for the application's own login: the ID of the user the request is from.
func currentUser(echo.Context) string { return "alice" }

// The README's quick start for Echo: in an existing app e, the hub, its WebSocket endpoint and
// browser client, and the app's endpoint that hands its logged-in user a notify token granting
// "news".
func ExampleMount() {
	e := echo.New() // the existing app

	hub, err := notify.New(notify.Config{Secret: []byte(os.Getenv("NOTIFY_SECRET"))})
	if err != nil {
		log.Fatal(err)
	}
	echonotify.Mount(e.Group("/notify"), hub, nil) // GET /notify/ws and GET /notify/client.js
	e.GET("/api/notify-token", func(c echo.Context) error {
		tok, err := hub.IssueToken(currentUser(c), 10*time.Minute, "news")
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, echo.Map{"token": tok})
	})
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
