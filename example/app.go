package main

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/echonotify"
	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/adapters/promnotify"
	"github.com/gonotify/notify/adapters/redisbroker"
	"github.com/gonotify/notify/inbox"
)

//go:embed static
var static embed.FS

// devSecret is used when no secret is configured. Anyone who reads this file can forge tokens
// and sessions with it: set NOTIFY_SECRET to 32+ random bytes outside development.
const devSecret = "notify-example-development-secret-do-not-use"

// Each user logged in in a browser has a cookie of their own, sessionCookie + "-" + name, so
// that two windows of one browser can be two users; each page names its user in userHeader.
const (
	sessionCookie = "session"
	userHeader    = "X-User"
)

// loginTTL is how long a login lasts.
const loginTTL = 7 * 24 * time.Hour

func cookieName(user string) string { return sessionCookie + "-" + user }

// options configure the app. Zero values mean the documented defaults.
type options struct {
	// Secret signs notify tokens and the login cookie. Default: devSecret, with a warning.
	Secret []byte
	// TokenTTL is the lifetime of the notify tokens handed to the page. Default 10 minutes.
	TokenTTL time.Duration
	// ExpiryWarning is how long before a token expires the page is asked for a fresh one.
	// Default: the hub's, 30s. It must be shorter than TokenTTL.
	ExpiryWarning time.Duration
	// Demo serves GET /demo/token and POST /demo/send, which need no login: anyone can get a
	// token for any user and send to anyone. Never enable it in production.
	Demo bool
	// Redis is the URL of a Redis server shared by several instances of the app, such as
	// "redis://127.0.0.1:6379": a Send on any of them reaches the user's pages on all of them,
	// and a page that reconnects to another instance recovers what it missed. Default: none,
	// one instance with the in-memory broker.
	Redis string
	// Postgres is the URL of the PostgreSQL database that keeps the users' inboxes, such as
	// "postgres://app@127.0.0.1:5432/app": they survive restarts and are shared by every
	// instance. Default: none, in this process's memory (a restart empties them).
	Postgres string
	// PostgresSchema holds the inbox's tables in that database. Default "public".
	PostgresSchema string
	// Node names this instance in the page's header, e.g. its listen address. Default: none.
	Node string
	// Logger receives the app's and the hub's logs. Default: discard.
	Logger *slog.Logger
}

// newApp returns the example's Echo app, its hub and the function that closes its inbox. The
// caller shuts the hub down, then calls that function.
func newApp(opts options) (*echo.Echo, *notify.Hub, func(), error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Secret) == 0 {
		opts.Logger.Warn("NOTIFY_SECRET is not set: using the built-in development secret, which anyone can read")
		opts.Secret = []byte(devSecret)
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = 10 * time.Minute
	}
	// The hub warns at once when less than ExpiryWarning is left; if every fresh token is that
	// short, the page would refresh in a loop.
	if warning := cmp.Or(opts.ExpiryWarning, 30*time.Second); opts.TokenTTL <= warning {
		return nil, nil, nil, fmt.Errorf("token TTL %v must be longer than the expiry warning %v", opts.TokenTTL, warning)
	}
	// nil: the in-memory defaults, for one process.
	var broker notify.Broker
	var presence notify.Presence
	if opts.Redis != "" {
		b, err := redisbroker.New(redisbroker.Config{URL: opts.Redis, Logger: opts.Logger})
		if err != nil {
			return nil, nil, nil, err
		}
		broker, presence = b, b
	}
	hub, err := notify.New(notify.Config{
		Broker:        broker,
		Presence:      presence,
		Secret:        opts.Secret,
		ExpiryWarning: opts.ExpiryWarning,
		Logger:        opts.Logger,
		// Every logged-in user may subscribe to every topic. A real app checks here whether
		// the user may read the topic (is a member of the team, owns the order, ...).
		Authorize: func(ctx context.Context, id notify.Identity, topic string) error { return nil },
	})
	if err != nil {
		if broker != nil {
			broker.Close() // New did not take it over
		}
		return nil, nil, nil, err
	}
	ib, closeInbox, err := newInbox(hub, opts)
	if err != nil {
		return nil, nil, nil, errors.Join(err, hub.Shutdown(context.Background()))
	}
	a := &app{hub: hub, inbox: ib, opts: opts, sessionKey: deriveKey(opts.Secret, "session cookie")}

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURI: true, LogStatus: true, LogLatency: true, LogError: true, HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelInfo
			if v.Error != nil {
				level = slog.LevelWarn
			}
			opts.Logger.LogAttrs(c.Request().Context(), level, "request", slog.String("method", v.Method),
				slog.String("uri", redactURI(v.URI)), slog.Int("status", v.Status), slog.Duration("latency", v.Latency))
			return nil
		},
	}))
	e.Use(middleware.Recover())
	// Browsers may not POST to this app from other origins (CSRF); the WebSocket endpoint has
	// the hub's own origin check.
	e.Use(echo.WrapMiddleware(http.NewCrossOriginProtection().Handler))

	e.StaticFS("/", echo.MustSubFS(static, "static"))
	e.POST("/api/login", a.login)
	e.POST("/api/logout", a.logout)
	api := e.Group("/api", a.requireLogin)
	api.GET("/me", a.me)
	api.GET("/token", a.token)
	api.POST("/send", a.send)
	api.GET("/presence", a.presence)
	api.POST("/signout-everywhere", a.signOutEverywhere)
	live := e.Group("/notify")
	echonotify.Mount(live, hub, nil) // GET /notify/ws and GET /notify/client.js
	// The inbox's endpoints beside the socket, with the socket's token: the page's client finds
	// them at /notify/inbox/.
	echonotify.MountInbox(live, ib)
	// Prometheus metrics: the hub's, the Go runtime's and the process's, on a registry of the
	// app's own. A production app serves them on an internal address or behind auth.
	reg := prometheus.NewRegistry()
	reg.MustRegister(promnotify.NewCollector(hub), collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	if opts.Demo {
		e.GET("/demo/token", a.demoToken)
		e.POST("/demo/send", a.send)
	}
	return e, hub, closeInbox, nil
}

// newInbox returns the users' inboxes, in PostgreSQL with opts.Postgres, in memory otherwise,
// and the function that closes them.
func newInbox(hub *notify.Hub, opts options) (*inbox.Inbox, func(), error) {
	var store inbox.Store // nil: in memory
	closeStore := func() {}
	if opts.Postgres != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := pginbox.New(ctx, pginbox.Options{URL: opts.Postgres, Schema: opts.PostgresSchema})
		if err != nil {
			return nil, nil, err
		}
		store, closeStore = s, s.Close
	}
	ib, err := inbox.New(hub, inbox.Config{Store: store, Logger: opts.Logger})
	if err != nil {
		closeStore()
		return nil, nil, err
	}
	return ib, func() { ib.Close(); closeStore() }, nil
}

// whoami answers /api/login and /api/me: the logged-in user and, when named, this instance.
type whoami struct {
	User string `json:"user"`
	Node string `json:"node,omitempty"`
}

type app struct {
	hub        *notify.Hub
	inbox      *inbox.Inbox
	opts       options
	sessionKey []byte
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

const nameRule = "name must be 1 to 32 letters, digits, '-' or '_'"

// login starts a session for the user named in the form or JSON body. There is no password:
// this is a demo.
func (a *app) login(c echo.Context) error {
	var req struct {
		Name string `json:"name" form:"name"`
	}
	if err := c.Bind(&req); err != nil || !validName.MatchString(req.Name) {
		return echo.NewHTTPError(http.StatusBadRequest, nameRule)
	}
	c.SetCookie(&http.Cookie{
		Name: cookieName(req.Name), Value: a.signSession(req.Name, time.Now().Add(loginTTL)),
		Path: "/", MaxAge: int(loginTTL / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Scheme() == "https",
	})
	return c.JSON(http.StatusOK, whoami{User: req.Name, Node: a.opts.Node})
}

// logout ends the session of the user the page names (or of the only one logged in).
func (a *app) logout(c echo.Context) error {
	if user, ok := a.loggedIn(c); ok {
		c.SetCookie(&http.Cookie{Name: cookieName(user), Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return c.NoContent(http.StatusNoContent)
}

// requireLogin answers 401 unless the request carries a valid session cookie of the user the
// page names in userHeader (or, without that header, of exactly one user), and stores the
// user's name under "user".
func (a *app) requireLogin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		user, ok := a.loggedIn(c)
		if !ok {
			return echo.NewHTTPError(http.StatusUnauthorized, "log in first")
		}
		c.Set("user", user)
		return next(c)
	}
}

// loggedIn returns the user of the request's session, as requireLogin describes.
func (a *app) loggedIn(c echo.Context) (string, bool) {
	if name := c.Request().Header.Get(userHeader); name != "" {
		if !validName.MatchString(name) {
			return "", false
		}
		ck, err := c.Cookie(cookieName(name))
		if err != nil {
			return "", false
		}
		user, ok := a.verifySession(ck.Value)
		return user, ok && user == name
	}
	var found string
	for _, ck := range c.Cookies() {
		name, ok := strings.CutPrefix(ck.Name, sessionCookie+"-")
		if !ok {
			continue
		}
		user, ok := a.verifySession(ck.Value)
		if !ok || user != name {
			continue
		}
		if found != "" && found != user {
			return "", false // several users: the page must say which
		}
		found = user
	}
	return found, found != ""
}

func (a *app) me(c echo.Context) error {
	return c.JSON(http.StatusOK, whoami{User: c.Get("user").(string), Node: a.opts.Node})
}

// token is the endpoint the page calls for a notify token: on connect, on every reconnect and
// when the hub warns that the current one expires.
func (a *app) token(c echo.Context) error {
	user := c.Get("user").(string)
	// A login from before the user's "sign out everywhere" has ended, on every instance: the
	// hub keeps the time of it for as long as a token could outlive it (and this demo's logins
	// are not longer).
	before, err := a.hub.RefusedBefore(c.Request().Context(), user)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "try again later")
	}
	if !before.IsZero() && a.loginTime(c, user).Unix() <= before.Unix() {
		c.SetCookie(&http.Cookie{Name: cookieName(user), Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return echo.NewHTTPError(http.StatusUnauthorized, "signed out")
	}
	return a.issue(c, user)
}

// loginTime is when the user's login cookie was made: its expiry less its lifetime.
func (a *app) loginTime(c echo.Context, user string) time.Time {
	ck, err := c.Cookie(cookieName(user))
	if err != nil {
		return time.Time{}
	}
	_, rest, _ := strings.Cut(ck.Value, ".") // "name.expiry.mac"; names have no dot
	payload, _, _ := strings.Cut(rest, ".")
	exp, _ := strconv.ParseInt(payload, 10, 64)
	return time.Unix(exp, 0).Add(-loginTTL)
}

func (a *app) demoToken(c echo.Context) error {
	user := c.QueryParam("user")
	if !validName.MatchString(user) {
		return echo.NewHTTPError(http.StatusBadRequest, "user: "+nameRule)
	}
	return a.issue(c, user)
}

func (a *app) issue(c echo.Context, user string) error {
	tok, err := a.hub.IssueToken(user, a.opts.TokenTTL)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, map[string]string{"token": tok})
}

// sessionJSON is one session in GET /api/presence's answer.
type sessionJSON struct {
	ID          string    `json:"id"`
	Node        string    `json:"node"`
	ConnectedAt time.Time `json:"connectedAt"`
}

// presence answers GET /api/presence?user=bob: bob's sessions on every instance (the caller's
// own without a user), so that a page can show who is online.
func (a *app) presence(c echo.Context) error {
	user := cmp.Or(c.QueryParam("user"), c.Get("user").(string))
	if !validName.MatchString(user) {
		return echo.NewHTTPError(http.StatusBadRequest, "user: "+nameRule)
	}
	sessions, err := a.hub.Presence(c.Request().Context(), user)
	if err != nil {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "presence unavailable")
	}
	out := make([]sessionJSON, 0, len(sessions))
	for _, s := range sessions {
		out = append(out, sessionJSON{ID: s.ID, Node: s.Node, ConnectedAt: s.ConnectedAt})
	}
	return c.JSON(http.StatusOK, map[string]any{"user": user, "online": len(out) > 0, "sessions": out})
}

// signOutEverywhere ends the user's logins in every browser and closes every notify session of
// theirs on every instance, refusing the notify tokens issued before now: a page that had one
// cannot come back with it, and the token endpoint (see token) gives none to a login older
// than the sign out, so each page's client stops.
func (a *app) signOutEverywhere(c echo.Context) error {
	user := c.Get("user").(string)
	c.SetCookie(&http.Cookie{Name: cookieName(user), Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	err := a.hub.Disconnect(c.Request().Context(), user, notify.DisconnectOptions{RefuseBefore: time.Now()})
	if err != nil {
		a.opts.Logger.Error("sign out everywhere", "user", user, "err", err)
		return echo.NewHTTPError(http.StatusServiceUnavailable, "could not reach every server; try again")
	}
	return c.NoContent(http.StatusNoContent)
}

// sendRequest is the body of POST /api/send and /demo/send. With neither User nor Topic the
// event goes to everyone. To a user, it is stored in the user's inbox (under ID when given: a
// retry with the same ID stores and delivers nothing more) and delivered live; to a topic or
// everyone, it is delivered live only.
type sendRequest struct {
	ID    string          `json:"id"`
	User  string          `json:"user"`
	Topic string          `json:"topic"`
	Type  string          `json:"type"`
	Data  json.RawMessage `json:"data"`
}

func (a *app) send(c echo.Context) error {
	var req sendRequest
	if err := json.NewDecoder(c.Request().Body).Decode(&req); err != nil {
		return echo.NewHTTPError(http.StatusBadRequest, "body must be a JSON object")
	}
	if req.Type == "" {
		return echo.NewHTTPError(http.StatusBadRequest, "type is required")
	}
	ev := notify.Event{Type: req.Type}
	if len(req.Data) > 0 {
		ev.Data = req.Data
	}
	var err error
	switch {
	case req.User != "" && req.Topic != "":
		return echo.NewHTTPError(http.StatusBadRequest, "set user or topic, not both")
	case req.User != "":
		_, _, err = a.inbox.Notify(c.Request().Context(), req.User, inbox.Notification{ID: req.ID, Type: req.Type, Data: req.Data})
	case req.Topic != "":
		_, err = a.hub.Publish(c.Request().Context(), req.Topic, ev)
	default:
		_, err = a.hub.Broadcast(c.Request().Context(), ev)
	}
	switch {
	case errors.Is(err, notify.ErrInvalidTopic), errors.Is(err, notify.ErrInvalidEvent), errors.Is(err, inbox.ErrInvalid):
		return echo.NewHTTPError(http.StatusBadRequest, err.Error())
	case errors.Is(err, inbox.ErrTooLarge):
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge, err.Error())
	case errors.Is(err, inbox.ErrUnavailable):
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the inbox is unavailable; try again")
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusAccepted)
}

// The session cookie is "name.expiry.mac": the user's name, the unix time it expires and an
// HMAC of both. It survives restarts as long as the secret does.
func (a *app) signSession(user string, exp time.Time) string {
	payload := user + "." + strconv.FormatInt(exp.Unix(), 10)
	return payload + "." + a.mac(payload)
}

func (a *app) verifySession(v string) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 || !hmac.Equal([]byte(v[i+1:]), []byte(a.mac(v[:i]))) {
		return "", false
	}
	user, exp, _ := strings.Cut(v[:i], ".")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() >= unix {
		return "", false
	}
	return user, true
}

func (a *app) mac(payload string) string {
	m := hmac.New(sha256.New, a.sessionKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// deriveKey gives each use of the secret its own key.
func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	fmt.Fprint(m, "notify example: ", purpose)
	return m.Sum(nil)
}

// redactURI hides the credentials a URL may carry (an event stream's single-use ticket, a token
// where Config.AllowQueryToken lets one in) from the request log.
func redactURI(uri string) string {
	path, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return path + "?REDACTED"
	}
	for _, k := range []string{"ticket", "token"} {
		if q.Has(k) {
			q.Set(k, "REDACTED")
		}
	}
	return path + "?" + q.Encode()
}
