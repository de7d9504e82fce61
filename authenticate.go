package notify

import (
	"fmt"
	"net/http"
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
func (h *Hub) OriginAllowed(r *http.Request) bool { return h.originAllowed(r) }
