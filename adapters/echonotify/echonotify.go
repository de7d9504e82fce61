// Package echonotify mounts a notify hub into an Echo v4 application.
//
//	e := echo.New()
//	echonotify.Mount(e.Group("/notify"), hub, nil) // GET /notify/ws, /notify/sse, /notify/client.js, /notify/sw.js
//	echonotify.MountInbox(e.Group("/notify"), ib)  // /notify/inbox/..., beside the socket
//	e.GET("/api/notify-token", echonotify.TokenHandler(hub, currentUser, 10*time.Minute))
//
// Each Mount function takes the group to register on and the one thing it serves, so that
// what later packages add mounts the same way.
//
// It works behind Echo's Logger, Recover and Gzip middleware. When an echo-jwt middleware has
// already verified the request, set [Config.TokenContextKey] and the hub takes the user from
// that token instead of parsing one again.
package echonotify

import (
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// Router is what the Mount functions register routes on: *echo.Echo and *echo.Group both are
// one.
type Router interface {
	GET(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	POST(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route
	Any(path string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) []*echo.Route
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

// Mount registers GET "/ws" (the WebSocket endpoint), GET "/sse" and POST "/sse/:session"
// (the server-sent events transport, with its tickets at POST "/sse/ticket"), GET "/client.js"
// (the browser client) and GET "/sw.js" (its service worker, for Web Push) on r, relative to
// r's prefix when r is a group.
func Mount(r Router, hub *notify.Hub, cfg *Config) {
	r.GET("/ws", Handler(hub, cfg))
	sse := SSEHandler(hub, cfg)
	r.GET("/sse", sse)
	r.POST("/sse/:session", sse)
	r.GET("/client.js", echo.WrapHandler(notify.ClientHandler()))
	r.GET("/sw.js", echo.WrapHandler(notify.ServiceWorkerHandler()))
}

// Handler returns the WebSocket endpoint as an echo.HandlerFunc.
func Handler(hub *notify.Hub, cfg *Config) echo.HandlerFunc { return wrap(hub, cfg, hub) }

// SSEHandler returns the server-sent events transport ([notify.Hub.SSE]) as an
// echo.HandlerFunc, with the identity of Config.TokenContextKey as Handler takes it.
func SSEHandler(hub *notify.Hub, cfg *Config) echo.HandlerFunc { return wrap(hub, cfg, hub.SSE()) }

// wrap serves h with the request's identity from cfg.TokenContextKey, unless skipped.
func wrap(hub *notify.Hub, cfg *Config, h http.Handler) echo.HandlerFunc {
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
		h.ServeHTTP(ec.Response(), req)
		return nil
	}
}

// MountInbox registers the inbox's HTTP endpoints ([inbox.Inbox.Handler]) on r under "/inbox/",
// relative to r's prefix when r is a group: GET /inbox/ (the list), GET /inbox/counts, POST
// /inbox/read and the other changes (PROTOCOL.md, "Inbox over HTTP"). On the group of Mount,
// they are where the browser client's connection.inbox looks: "/notify/ws" gives
// "/notify/inbox/". Requests carry the socket's token, as the WebSocket does; every method
// reaches the inbox, which answers 405 to the ones an endpoint does not take.
func MountInbox(r Router, ib *inbox.Inbox) {
	h := echo.WrapHandler(ib.Handler())
	r.Any("/inbox/", h)
	r.Any("/inbox/:op", h)
}

// DefaultTokenTTL is the lifetime of the tokens of [TokenHandler] when its ttl is 0 or less.
const DefaultTokenTTL = 10 * time.Minute

// TokenHandler returns the endpoint a page calls for a notify token (the browser client's
// token option), for an app that already knows the request's user: an echo-jwt middleware, a
// session cookie. user returns the request's user ID and the topics or patterns the token
// grants:
//
//	e.GET("/api/notify-token", echonotify.TokenHandler(hub, func(c echo.Context) (string, []string, error) {
//		return c.Get("userID").(string), []string{"news"}, nil
//	}, 10*time.Minute))
//
// It answers 200 with JSON {"token": "...", "expires": "2026-01-02T15:04:05Z"} (RFC 3339, the
// token's exp), and 401 (an echo.HTTPError, "not logged in") when user returns an empty ID
// and no error. An error from user is returned to Echo as it is: an *echo.HTTPError keeps its
// status, any other makes Echo's error handler answer 500. Every answer has Cache-Control:
// no-store. The tokens expire after ttl; DefaultTokenTTL when ttl is 0 or less. Mount the
// endpoint behind the app's own authentication: whoever reaches it gets a token for the user
// that user returns.
func TokenHandler(hub *notify.Hub, user func(c echo.Context) (userID string, grants []string, err error), ttl time.Duration) echo.HandlerFunc {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-store")
		id, grants, err := user(c)
		if err != nil {
			return err
		}
		if id == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "not logged in")
		}
		// Read before signing and cut to the second as exp is: never later than the token's.
		exp := time.Now().Add(ttl).Truncate(time.Second).UTC()
		tok, err := hub.IssueToken(id, ttl, grants...)
		if err != nil {
			return fmt.Errorf("echonotify: issue a token for %q: %w", id, err)
		}
		return c.JSON(http.StatusOK, struct {
			Token   string    `json:"token"`
			Expires time.Time `json:"expires"`
		}{tok, exp})
	}
}
