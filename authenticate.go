package notify

import (
	"fmt"
	"net/http"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Authenticate verifies the token of an HTTP request exactly as an upgrade does: found in the
// same places (Authorization: Bearer, the Sec-WebSocket-Protocol bearer, the cookie of
// [Config.CookieName] when set, the query when [Config.AllowQueryToken]) and checked the same
// way. An identity that an adapter put in the request's context with [WithIdentity] is taken
// as it is. A token that [Hub.Disconnect] refused is refused here too, on every node. A
// refused token's error wraps [ErrUnauthorized] and names the reason, never the token; when
// the broker cannot say whether the user's tokens are refused (Redis unreachable), the error
// does not wrap ErrUnauthorized: the endpoint answers that it is unavailable, not that the
// token is bad. HTTP endpoints beside the WebSocket one (the inbox's) use it to accept the
// socket's token.
func (h *Hub) Authenticate(r *http.Request) (Identity, error) {
	id, ok := IdentityFromContext(r.Context())
	if !ok {
		var err error
		if id, err = h.auth.verify(h.auth.tokenFrom(r)); err != nil {
			return Identity{}, err
		}
	}
	if err := h.checkRefused(r.Context(), id); err != nil {
		if _, ok := err.(*AuthError); ok {
			return Identity{}, err
		}
		return Identity{}, fmt.Errorf("notify: authenticate: %w", err)
	}
	return id, nil
}

// OriginAllowed reports whether the request's Origin header, if any, passes the hub's origin
// check: same scheme and host as the request, or listed in [Config.AllowedOrigins]. A request
// without an Origin header does not come from a browser page and passes. HTTP endpoints that
// accept the hub's cookie token use it against cross-site request forgery.
func (h *Hub) OriginAllowed(r *http.Request) bool { return originAllowed(&h.cfg, r) }

// IssueToken signs a token for userID that expires after ttl (default 10 minutes) and grants
// the given topics or patterns (grants). An application's own authenticated endpoint uses it to hand
// its logged-in user a short-lived notify token. It needs Config.Secret or Config.SigningKey.
func (h *Hub) IssueToken(userID string, ttl time.Duration, grants ...string) (string, error) {
	if userID == "" {
		return "", ErrInvalidUser
	}
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	now := time.Now()
	claims := jwt.MapClaims{
		h.cfg.UserClaim: userID,
		"iat":           now.Unix(),
		"exp":           now.Add(ttl).Unix(),
	}
	if len(grants) > 0 {
		claims[h.cfg.GrantsClaim] = grants
	}
	if h.cfg.Issuer != "" {
		claims["iss"] = h.cfg.Issuer
	}
	if h.cfg.Audience != "" {
		claims["aud"] = h.cfg.Audience
	}
	var (
		method jwt.SigningMethod
		key    any
	)
	switch {
	case len(h.cfg.Secret) > 0:
		method, key = jwt.SigningMethodHS256, h.cfg.Secret
	case h.cfg.SigningKey != nil:
		method, _ = signingMethodFor(h.cfg.SigningKey)
		key = h.cfg.SigningKey
	default:
		return "", fmt.Errorf("%w: IssueToken needs Secret or SigningKey", ErrConfig)
	}
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("notify: sign token: %w", err)
	}
	return s, nil
}

// IdentityFromClaims reads an identity out of claims that a framework's JWT middleware has
// already verified (echo-jwt puts a *jwt.Token in the context). The claims must hold the user
// claim and exp.
func (h *Hub) IdentityFromClaims(claims jwt.Claims) (Identity, error) {
	mc, ok := claims.(jwt.MapClaims)
	if !ok {
		return Identity{}, unauthorized(fmt.Sprintf("claims of type %T not supported (use jwt.MapClaims)", claims))
	}
	return h.auth.identity(mc)
}
