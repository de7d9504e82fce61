package notify

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Subprotocol is the WebSocket subprotocol of this protocol version. Browsers offer it together
// with BearerPrefix+token; the hub selects only this name, so the token is never echoed back.
const Subprotocol = "notify.v1"

// BearerPrefix prefixes the token offered as a second subprotocol by browser clients.
const BearerPrefix = "notify.bearer."

// Identity is who a session belongs to, as established by a verified token.
type Identity struct {
	// UserID is the user the session belongs to.
	UserID string
	// Expires is when the token expires; the session is closed then unless refreshed.
	Expires time.Time
	// IssuedAt is the token's "iat"; zero when it has none. [Hub.Disconnect] can refuse the
	// tokens issued before a time, and then refuses those without one too.
	IssuedAt time.Time
	// Grants lists the topics and patterns the token grants (its [Config].GrantsClaim).
	Grants []string
	// Claims holds every claim of the token.
	Claims jwt.MapClaims
}

type identityKey struct{}

// WithIdentity returns a context carrying id. The hub's handler uses an identity found in the
// request context instead of verifying a token itself: adapters set it when a framework's own
// JWT middleware has already verified the request.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFromContext returns the identity set by [WithIdentity].
func IdentityFromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

type verifier struct {
	cfg    *Config
	parser *jwt.Parser
	key    jwt.Keyfunc
}

func newVerifier(cfg *Config) *verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Methods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithIssuedAt(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v := &verifier{cfg: cfg, parser: jwt.NewParser(opts...)}
	switch {
	case len(cfg.Secret) > 0:
		v.key = func(*jwt.Token) (any, error) { return cfg.Secret, nil }
	case cfg.PublicKey != nil:
		v.key = func(*jwt.Token) (any, error) { return cfg.PublicKey, nil }
	default:
		v.key = cfg.Keyfunc
	}
	return v
}

// AuthError is a refused token: it wraps [ErrUnauthorized], and errors.As reads it out of
// the errors of [Hub.Authenticate] and [Hub.IdentityFromClaims].
type AuthError struct {
	// Reason says why, for the client ("token expired", "token issued before the user was
	// signed out", ...). It never contains the token.
	Reason string
	label  string // for Stats.Refused
}

func (e *AuthError) Error() string { return ErrUnauthorized.Error() + ": " + e.Reason }
func (e *AuthError) Unwrap() error { return ErrUnauthorized }

func unauthorized(reason string) error { return refused(refusedInvalid, reason) }

func refused(label, reason string) *AuthError { return &AuthError{Reason: reason, label: label} }

// refusalLabel is the Stats.Refused label of a verification error.
func refusalLabel(err error) string {
	if e, ok := errors.AsType[*AuthError](err); ok {
		return e.label
	}
	return refusedInvalid
}

// verify checks a raw token. The returned error names the reason, never the token.
func (v *verifier) verify(raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, refused(refusedNoToken, "no token")
	}
	if len(raw) > v.cfg.MaxTokenSize {
		return Identity{}, refused(refusedTooLarge, "token too large")
	}
	claims := jwt.MapClaims{}
	_, err := v.parser.ParseWithClaims(raw, claims, v.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenSignatureInvalid) && !v.methodAllowed(raw) {
			return Identity{}, unauthorized("token signing method not allowed")
		}
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Identity{}, refused(refusedExpired, tokenReason(err))
		}
		return Identity{}, unauthorized(tokenReason(err))
	}
	return v.identity(claims)
}

// methodAllowed tells a disallowed "alg" from a bad signature, which golang-jwt reports alike.
func (v *verifier) methodAllowed(raw string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(raw, jwt.MapClaims{})
	return err == nil && slices.Contains(v.cfg.Methods, t.Method.Alg())
}

// identity reads the user, expiry and topic grants out of verified claims.
func (v *verifier) identity(claims jwt.MapClaims) (Identity, error) {
	user, _ := claims[v.cfg.UserClaim].(string)
	if user == "" {
		return Identity{}, unauthorized("token has no " + v.cfg.UserClaim + " claim")
	}
	exp, ok := unixClaim(claims["exp"])
	if !ok {
		return Identity{}, unauthorized("token has no valid exp claim")
	}
	id := Identity{UserID: user, Expires: exp, Claims: claims}
	if iat, ok := unixClaim(claims["iat"]); ok {
		id.IssuedAt = iat
	}
	switch t := claims[v.cfg.GrantsClaim].(type) {
	case nil:
	case string:
		id.Grants = []string{t}
	case []any:
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return Identity{}, unauthorized("token has a malformed " + v.cfg.GrantsClaim + " claim")
			}
			id.Grants = append(id.Grants, s)
		}
	case []string:
		id.Grants = t
	default:
		return Identity{}, unauthorized("token has a malformed " + v.cfg.GrantsClaim + " claim")
	}
	return id, nil
}

// unixClaim reads a NumericDate claim as parsed from JSON (float64 or json.Number) or as set in
// Go code (integers, *jwt.NumericDate, time.Time).
func unixClaim(v any) (time.Time, bool) {
	switch v := v.(type) {
	case float64:
		return time.Unix(0, int64(v*float64(time.Second))).Truncate(time.Second), true
	case json.Number:
		f, err := v.Float64()
		return time.Unix(int64(f), 0), err == nil
	case int64:
		return time.Unix(v, 0), true
	case int:
		return time.Unix(int64(v), 0), true
	case *jwt.NumericDate:
		if v != nil {
			return v.Time, true
		}
	case time.Time:
		return v, true
	}
	return time.Time{}, false
}

// tokenReason maps golang-jwt's errors to short, token-free reasons.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token signing method not allowed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "invalid token signature"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token lacks a required claim"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong token issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong token audience"
	}
	return "invalid token"
}

// tokenFrom finds the token of an upgrade request, in the places PROTOCOL.md lists.
func (v *verifier) tokenFrom(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			return strings.TrimSpace(h[7:])
		}
	}
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(h, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), BearerPrefix); ok {
				return t
			}
		}
	}
	if v.cfg.CookieName != "" {
		if c, err := r.Cookie(v.cfg.CookieName); err == nil && c.Value != "" {
			return c.Value
		}
	}
	if v.cfg.AllowQueryToken {
		return r.URL.Query().Get("token")
	}
	return ""
}

// originAllowed implements same-origin by default plus the configured allowlist. Same origin
// means the same scheme and host: the request's scheme is https when it came over TLS or, with
// Config.TrustForwardedProto, when a proxy in front says so in X-Forwarded-Proto, http
// otherwise. A request with no Origin header does not come from a browser page and is
// allowed: the origin check protects browsers' cookies and nothing else.
func originAllowed(cfg *Config, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) && strings.EqualFold(u.Scheme, requestScheme(r, cfg.TrustForwardedProto)) {
		return true
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), u.Scheme+"://"+u.Host) {
			return true
		}
	}
	return false
}

// requestScheme is "https" or "http", as originAllowed explains.
func requestScheme(r *http.Request, trustForwarded bool) string {
	if r.TLS != nil {
		return "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); trustForwarded && p != "" {
		p, _, _ = strings.Cut(p, ",")
		return strings.ToLower(strings.TrimSpace(p))
	}
	return "http"
}
