// Package echonotify mounts a notify hub into an Echo v4 application.
//
//	e := echo.New()
//	echonotify.Mount(e.Group("/notify"), hub, nil) // GET /notify/ws and GET /notify/client.js
//
// It works behind Echo's Logger, Recover and Gzip middleware. When an echo-jwt middleware has
// already verified the request, set [Config.TokenContextKey] and the hub takes the user from
// that token instead of parsing one again.
package echonotify

import (
	"net/http"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gonotify/notify"
)

// Router is what Mount registers routes on: *echo.Echo and *echo.Group both are one.
type Router interface {
	GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
}

// Config configures the Echo handler. A nil *Config means the defaults.
type Config struct {
	// Skipper skips the WebSocket handler for a request, which then gets 404. Default: never.
	Skipper middleware.Skipper
	// TokenContextKey is the echo.Context key under which an echo-jwt middleware stored the
	// verified *jwt.Token (echo-jwt's default is "user"). When set and present, the user comes
	// from that token's claims (which must be jwt.MapClaims with the hub's user claim and exp);
	// when absent, the hub verifies the request's own token. Default "": the hub always
	// verifies.
	TokenContextKey string
}

// Mount registers GET "/ws" (the WebSocket endpoint) and GET "/client.js" (the browser
// client) on r, relative to r's prefix when r is a group.
func Mount(r Router, hub *notify.Hub, cfg *Config) {
	r.GET("/ws", Handler(hub, cfg))
	r.GET("/client.js", echo.WrapHandler(notify.ClientHandler()))
}

// Handler returns the WebSocket endpoint as an echo.HandlerFunc.
func Handler(hub *notify.Hub, cfg *Config) echo.HandlerFunc {
	var c Config
	if cfg != nil {
		c = *cfg
	}
	return func(ec echo.Context) error {
		if c.Skipper != nil && c.Skipper(ec) {
			return echo.ErrNotFound
		}
		req := ec.Request()
		if c.TokenContextKey != "" {
			if tok, ok := ec.Get(c.TokenContextKey).(*jwt.Token); ok && tok.Valid {
				id, err := hub.IdentityFromClaims(tok.Claims)
				if err != nil {
					return echo.NewHTTPError(http.StatusUnauthorized, err.Error())
				}
				req = req.WithContext(notify.WithIdentity(req.Context(), id))
			}
		}
		hub.ServeHTTP(ec.Response(), req)
		return nil
	}
}
