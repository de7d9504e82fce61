package notify

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config configures a [Hub]. The zero value of every field means the documented default. Exactly
// one of Secret, PublicKey and Keyfunc must be set: every connection is authenticated.
type Config struct {
	// Secret is the HMAC key for HS256/HS384/HS512 tokens: at least 32 random bytes (New
	// refuses a shorter one; a short HMAC key can be found by brute force from one token).
	// With a Secret, [Hub.IssueToken] signs HS256 tokens.
	Secret []byte
	// PublicKey verifies RSA (RS*, PS*), ECDSA (ES*) or Ed25519 (EdDSA) tokens: an
	// *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey. The accepted algorithms are pinned
	// to the key's family, so an HMAC token made with the public key as secret is refused.
	PublicKey crypto.PublicKey
	// Keyfunc supplies verification keys, for key rotation or JWKS. Methods is required with it.
	Keyfunc jwt.Keyfunc
	// Methods lists the accepted "alg" values. Default: the family of Secret or PublicKey.
	// "none" is never accepted.
	Methods []string
	// SigningKey lets [Hub.IssueToken] sign with an asymmetric private key (*rsa.PrivateKey,
	// *ecdsa.PrivateKey or ed25519.PrivateKey). Unused with Secret.
	SigningKey crypto.Signer

	// Issuer, when set, is required in the "iss" claim.
	Issuer string
	// Audience, when set, is required in the "aud" claim.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 0.
	Leeway time.Duration
	// UserClaim names the claim holding the user ID. Default "sub".
	UserClaim string
	// GrantsClaim names the claim listing the topics (or patterns) the token grants
	// ([Identity].Grants). Default "topics".
	GrantsClaim string
	// MaxTokenSize is the largest token accepted, in bytes. Default 4096.
	MaxTokenSize int
	// CookieName, when set, lets the token travel in the cookie of that name. Default: no cookie.
	// Use it only with same-origin pages (the default origin rule) since the browser sends the
	// cookie on every request; New refuses it together with AllowedOrigins "*".
	CookieName string
	// AllowQueryToken lets the token travel in the "token" query parameter. Default false:
	// URLs end up in access logs and browser history.
	AllowQueryToken bool
	// ExpiryWarning is how long before the token's expiry the client is told to refresh it.
	// Default 30s.
	ExpiryWarning time.Duration

	// AllowedOrigins lists the origins ("https://app.example.com") allowed besides the
	// request's own host; "*" allows every origin, and New refuses it together with
	// CookieName (any site could then act as the user). Default: same-origin only. Requests
	// with no Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
	// TrustForwardedProto lets the origin check take the request's scheme from the
	// X-Forwarded-Proto header, as a TLS-terminating proxy in front of the hub sets it.
	// Default false: the scheme is https only when the hub itself terminated TLS. Set it only
	// behind a proxy that overwrites the header.
	TrustForwardedProto bool

	// Authorize decides subscriptions to topics the token does not grant. A nil error allows
	// the subscription; the error's text is sent to the client as the reason. It gets the
	// session's identity (with the token's claims in id.Claims) and a context that ends with
	// the session and carries the values of the upgrade request's context. Default: topics
	// not granted by the token are refused. It runs on the subscribing session's read loop.
	Authorize func(ctx context.Context, id Identity, topic string) error

	// OnSessionStart is called on the session's node once it is welcomed and recorded in
	// presence ([Hub.Presence]), with its identity. Default none.
	OnSessionStart func(Identity, SessionInfo)
	// OnSessionEnd is called on the session's node once it has ended and left presence.
	// Default none.
	OnSessionEnd func(Identity, SessionInfo)
	// OnOnline is called when a user's first session anywhere in the cluster starts, once, on
	// the node of that session. Default none.
	OnOnline func(userID string)
	// OnOffline is called when a user's last session anywhere in the cluster ends, once, on
	// the node of that session. When the user's last sessions were on a node that died, it is
	// called once their presence entries expire, on one surviving node, if Presence is an
	// [OfflineWatcher] (adapters/redisbroker's Broker is: within its PresenceTTL and a third of
	// it after the death); with another Presence such a user goes offline without it. It should
	// return promptly. Default none.
	OnOffline func(userID string)

	// Subscriptions returns the topics the application subscribes a session to, given its
	// identity, on every connect: they are joined before the session's own messages are read, marked as
	// the server's, recovered from the positions the client gives in the connect URL, and not
	// revoked by a refresh. Return what [Hub.Subscribe] granted for it to outlive reconnects.
	// An error refuses the session with close code 1013 (try again later). Default none.
	Subscriptions func(ctx context.Context, id Identity) ([]string, error)

	// TokenLifetime is the longest a token may live: [Hub.Disconnect] keeps the refusal of
	// older tokens that long (plus Leeway), unless its options say otherwise. Default 24h.
	TokenLifetime time.Duration

	// MaxMessageSize is the largest message a client may send, in bytes; a larger one closes the
	// session with code 1009. Default 8192.
	MaxMessageSize int64
	// MaxTopics is the most topics one session may subscribe to. Default 100.
	MaxTopics int
	// MessageRate is how many messages a second a session may send on average. A message past
	// the rate is not served and is answered with the error code "rate_limited"; a session that
	// keeps sending past it (more than MessageBurst refused messages, less one for each second
	// that passes) is closed with [CloseRateLimited]. Default 20.
	MessageRate float64
	// MessageBurst is how many messages a session may send at once before MessageRate applies,
	// such as the subscriptions a client renews after a reconnect. Default MaxTopics + 20.
	MessageBurst int

	// MaxUserSessions is the most sessions one user may have open (tabs, devices): on this hub,
	// and in the whole cluster as Presence counts them (with adapters/redisbroker, the
	// sessions of a node that died count until their entries expire). An upgrade past it is
	// refused with 429 before it happens: refusing the newest session rather than closing the
	// oldest keeps a leaking or hostile client from evicting the user's working tabs, and
	// cannot start a cycle of tabs closing each other. Across nodes the count is taken as the
	// session joins presence, in the same step: two nodes admitting at once cannot overshoot
	// it, but a session refused there counts until its leave, so one racing it may be refused
	// too. Default 32.
	MaxUserSessions int
	// MaxSessions is the most sessions this hub holds; an upgrade past it is refused with 503
	// and a Retry-After header. Default 0: no cap but the process's file limit.
	MaxSessions int
	// MaxQueueBytes is how many bytes may wait for a session that reads too slowly; beyond it the
	// session is closed with code 4002 (slow consumer). Default 1 MiB.
	MaxQueueBytes int
	// PingInterval is the period of the in-band ping and of WebSocket pings. Default 25s.
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client. Default 10s.
	WriteTimeout time.Duration
	// SSEHeartbeat is the period of the comment line a server-sent events stream gets between
	// events, so that proxies do not time it out. Default 15s.
	SSEHeartbeat time.Duration
	// Tickets keeps the single-use tickets that let a browser open an event stream without a
	// token in its URL ([Hub.SSE]). With several nodes it must be shared by all of
	// them (adapters/redisbroker's TicketStore): a ticket issued by one node is redeemed on
	// whichever node the stream reaches. Default: an in-process store, for a single node.
	Tickets TicketStore
	// ReconnectSpread is the window over which the clients of a hub that shuts down spread
	// their reconnects: Shutdown tells each session so (a "goaway" frame) before it closes it
	// with 1001, and the browser client reconnects at a random time within it, so that a
	// node's sessions do not all land on the other nodes, and on the broker, at once. Default
	// 10s.
	ReconnectSpread time.Duration

	// Broker carries events between the hubs of a cluster and keeps their history for
	// missed-event recovery. Default: an in-memory broker for one process, with HistorySize and
	// HistoryTTL. The hub closes its broker in Shutdown.
	Broker Broker
	// Presence keeps the cluster's sessions and token refusals ([Hub.Presence],
	// [Hub.Disconnect]). Default: this process's own, which is right for one node only: with
	// several nodes, give the cluster's (adapters/redisbroker's Broker is one), or a user
	// signed out on one node keeps its tokens on the others.
	Presence Presence
	// HistorySize is how many recent events of each stream (a user's, a topic's) the in-memory
	// broker keeps for recovery. Default 100.
	HistorySize int
	// HistoryTTL is how long the in-memory broker keeps an event for recovery. Default 5m.
	HistoryTTL time.Duration

	// Requests are the handlers of the requests clients send with an answer, by name (1 to
	// 128 bytes; PROTOCOL.md, "Requests"; the browser client's connection.request). A request
	// naming no handler is answered with the code "unknown_request". Each runs on a goroutine
	// of its session's, with the session's identity (which the session then keeps with its
	// claims, as for Authorize) and a context that ends with the session or after
	// RequestTimeout. A request counts against MessageRate and MaxMessageSize like any client
	// message. The answers are kept for a minute (at most 10,000 answers and 8 MiB per hub) by
	// user, name and ID, so that a request a client sends again after a reconnect is answered
	// without running its handler twice; on this node only: a retry that reconnects to
	// another node runs the handler there. Default none.
	Requests map[string]RequestHandler
	// RequestTimeout bounds a request's handler: the client is answered "timeout" when it
	// has not returned by then, and its context ends. Default 10s.
	RequestTimeout time.Duration
	// MaxRequestsInFlight is the most requests one session may have awaiting their answers;
	// one past it is answered "too_many_requests" at once, not queued. Default 8.
	MaxRequestsInFlight int

	// Logger receives the hub's logs. Default: none. Tokens are never logged.
	Logger *slog.Logger
}

// minSecretLen is the shortest Secret New accepts: HS256's own key size.
const minSecretLen = 32

// Defaults, applied by New to zero fields.
const (
	defaultUserClaim       = "sub"
	defaultGrantsClaim     = "topics"
	defaultMaxTokenSize    = 4096
	defaultExpiryWarning   = 30 * time.Second
	defaultMaxMessageSize  = 8192
	defaultMaxTopics       = 100
	defaultMaxQueueBytes   = 1 << 20
	defaultMessageRate     = 20
	defaultMaxUserSessions = 32
	defaultPingInterval    = 25 * time.Second
	defaultWriteTimeout    = 10 * time.Second
	defaultReconnectSpread = 10 * time.Second
	defaultSSEHeartbeat    = 15 * time.Second
	defaultTokenLifetime   = 24 * time.Hour
	defaultRequestTimeout  = 10 * time.Second
	defaultMaxRequests     = 8
)

// normalize checks c and applies the defaults to its zero fields.
func (c *Config) normalize() error {
	for _, check := range []func() error{c.checkKeys, c.checkOrigins, c.checkLimits, c.checkRequests} {
		if err := check(); err != nil {
			return err
		}
	}
	c.applyDefaults()
	return nil
}

// checkKeys checks the verification keys and algorithms, defaulting Methods.
func (c *Config) checkKeys() error {
	keys := 0
	for _, set := range []bool{len(c.Secret) > 0, c.PublicKey != nil, c.Keyfunc != nil} {
		if set {
			keys++
		}
	}
	switch {
	case keys == 0:
		return fmt.Errorf("%w: no key to verify tokens: set Secret to 32 or more random bytes "+
			"(openssl rand -hex 32), PublicKey to verify the tokens of your identity provider, "+
			"or Keyfunc for rotating keys (JWKS)", ErrConfig)
	case keys > 1:
		return fmt.Errorf("%w: set only one of Secret, PublicKey and Keyfunc", ErrConfig)
	}
	if len(c.Secret) > 0 && len(c.Secret) < minSecretLen {
		return fmt.Errorf("%w: Secret is %d bytes, want at least %d random bytes (e.g. openssl rand -hex 32)",
			ErrConfig, len(c.Secret), minSecretLen)
	}
	if len(c.Methods) == 0 {
		switch {
		case len(c.Secret) > 0:
			c.Methods = []string{"HS256", "HS384", "HS512"}
		case c.PublicKey != nil:
			m, err := methodsFor(c.PublicKey)
			if err != nil {
				return err
			}
			c.Methods = m
		default:
			return fmt.Errorf("%w: Methods is required with Keyfunc", ErrConfig)
		}
	}
	for _, m := range c.Methods {
		if strings.EqualFold(m, "none") || jwt.GetSigningMethod(m) == nil {
			return fmt.Errorf("%w: signing method %q not supported", ErrConfig, m)
		}
	}
	if c.SigningKey != nil {
		if _, err := signingMethodFor(c.SigningKey); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkOrigins() error {
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			if c.CookieName != "" {
				return fmt.Errorf("%w: AllowedOrigins \"*\" with CookieName would let any site act as "+
					"the user with its cookie: list the origins, or send the token in a header", ErrConfig)
			}
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("%w: AllowedOrigins entry %q is not scheme://host[:port]", ErrConfig, o)
		}
	}
	return nil
}

// checkLimits refuses negative sizes, durations and rates.
func (c *Config) checkLimits() error {
	neg := func(name string, v int64) error {
		if v < 0 {
			return fmt.Errorf("%w: %s is negative", ErrConfig, name)
		}
		return nil
	}
	for _, e := range []error{
		neg("Leeway", int64(c.Leeway)), neg("MaxTokenSize", int64(c.MaxTokenSize)),
		neg("ExpiryWarning", int64(c.ExpiryWarning)), neg("MaxMessageSize", c.MaxMessageSize),
		neg("MaxTopics", int64(c.MaxTopics)), neg("MaxQueueBytes", int64(c.MaxQueueBytes)),
		neg("PingInterval", int64(c.PingInterval)), neg("WriteTimeout", int64(c.WriteTimeout)),
		neg("SSEHeartbeat", int64(c.SSEHeartbeat)),
		neg("ReconnectSpread", int64(c.ReconnectSpread)), neg("TokenLifetime", int64(c.TokenLifetime)),
		neg("MessageBurst", int64(c.MessageBurst)), neg("MaxUserSessions", int64(c.MaxUserSessions)),
		neg("MaxSessions", int64(c.MaxSessions)),
		neg("HistorySize", int64(c.HistorySize)), neg("HistoryTTL", int64(c.HistoryTTL)),
		neg("RequestTimeout", int64(c.RequestTimeout)), neg("MaxRequestsInFlight", int64(c.MaxRequestsInFlight)),
	} {
		if e != nil {
			return e
		}
	}
	if c.MessageRate < 0 || c.MessageRate != c.MessageRate {
		return fmt.Errorf("%w: MessageRate is negative", ErrConfig)
	}
	return nil
}

// applyDefaults sets every zero field to its default.
func (c *Config) applyDefaults() {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&c.UserClaim, defaultUserClaim)
	def(&c.GrantsClaim, defaultGrantsClaim)
	if c.MaxTokenSize == 0 {
		c.MaxTokenSize = defaultMaxTokenSize
	}
	if c.ExpiryWarning == 0 {
		c.ExpiryWarning = defaultExpiryWarning
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = defaultMaxMessageSize
	}
	if c.MaxTopics == 0 {
		c.MaxTopics = defaultMaxTopics
	}
	if c.MessageRate == 0 {
		c.MessageRate = defaultMessageRate
	}
	if c.MessageBurst == 0 {
		c.MessageBurst = c.MaxTopics + 20
	}
	if c.MaxUserSessions == 0 {
		c.MaxUserSessions = defaultMaxUserSessions
	}
	if c.MaxQueueBytes == 0 {
		c.MaxQueueBytes = defaultMaxQueueBytes
	}
	if c.PingInterval == 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.SSEHeartbeat == 0 {
		c.SSEHeartbeat = defaultSSEHeartbeat
	}
	if c.ReconnectSpread == 0 {
		c.ReconnectSpread = defaultReconnectSpread
	}
	if c.TokenLifetime == 0 {
		c.TokenLifetime = defaultTokenLifetime
	}
	if c.HistorySize == 0 {
		c.HistorySize = DefaultHistorySize
	}
	if c.HistoryTTL == 0 {
		c.HistoryTTL = DefaultHistoryTTL
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = defaultRequestTimeout
	}
	if c.MaxRequestsInFlight == 0 {
		c.MaxRequestsInFlight = defaultMaxRequests
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// checkRequests refuses request names a client could not send and handlers that are nil.
func (c *Config) checkRequests() error {
	for name, h := range c.Requests {
		if name == "" || len(name) > maxRequestName {
			return fmt.Errorf("%w: Requests name %q is not 1 to %d bytes", ErrConfig, name, maxRequestName)
		}
		if h == nil {
			return fmt.Errorf("%w: Requests handler %q is nil", ErrConfig, name)
		}
	}
	return nil
}

func methodsFor(k crypto.PublicKey) ([]string, error) {
	switch k.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		return []string{"ES256", "ES384", "ES512"}, nil
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("%w: PublicKey of type %T not supported", ErrConfig, k)
}

func signingMethodFor(k crypto.Signer) (jwt.SigningMethod, error) {
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve.Params().BitSize {
		case 256:
			return jwt.SigningMethodES256, nil
		case 384:
			return jwt.SigningMethodES384, nil
		case 521:
			return jwt.SigningMethodES512, nil
		}
	case ed25519.PrivateKey:
		return jwt.SigningMethodEdDSA, nil
	}
	return nil, fmt.Errorf("%w: SigningKey of type %T not supported", ErrConfig, k)
}
