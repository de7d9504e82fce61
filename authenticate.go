package notify

import "net/http"

// Authenticate verifies the token of an HTTP request exactly as an upgrade does: found in the
// same places (Authorization: Bearer, the Sec-WebSocket-Protocol bearer, the cookie of
// [Config.CookieName] when set, the query when [Config.AllowQueryToken]) and checked the same
// way. An identity that an adapter put in the request's context with [WithIdentity] is taken
// as it is. Every error wraps [ErrUnauthorized] and names the reason, never the token. HTTP
// endpoints beside the WebSocket one (the inbox's) use it to accept the socket's token.
func (h *Hub) Authenticate(r *http.Request) (Identity, error) {
	if id, ok := IdentityFromContext(r.Context()); ok {
		return id, nil
	}
	return h.auth.verify(h.auth.tokenFrom(r))
}

// OriginAllowed reports whether the request's Origin header, if any, passes the hub's origin
// check: same scheme and host as the request, or listed in [Config.AllowedOrigins]. A request
// without an Origin header does not come from a browser page and passes. HTTP endpoints that
// accept the hub's cookie token use it against cross-site request forgery.
func (h *Hub) OriginAllowed(r *http.Request) bool { return h.originAllowed(r) }
