package notify

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"
)

// Tickets: an EventSource cannot set headers, and a token in a URL ends up in logs. A page
// that has no cookie token trades its token, in an Authorization header, for a ticket: a
// random value that opens one event stream as the token's identity, within TicketTTL, once.

// TicketTTL is how long a stream ticket (see [Hub.SSE]) can be used.
const TicketTTL = 30 * time.Second

// TicketStore keeps tickets for every node that may redeem them. Keys are hashes of the
// tickets, never the tickets themselves. Implementations are safe for concurrent use.
type TicketStore interface {
	// Put keeps value under key until ttl has passed.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Take returns the value under key and removes it in the same step: of concurrent Takes
	// of one key, on any node, at most one gets it. ok is false when there is none (never
	// put, taken already, or expired).
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// serveTicket answers POST <prefix>/sse/ticket: for a request authenticated as
// [Hub.Authenticate] does (the token in an Authorization header), 200 with
// {"ticket":"...","expires_in":30}; the ticket opens one event stream as the token's identity
// (GET <prefix>/sse?ticket=...) within [TicketTTL], once. 403 cross-origin, 401 without a
// valid token, 503 when the store or the broker cannot be reached. The answer is not cached;
// neither the token nor the ticket is logged.
func (h *Hub) serveTicket(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !originAllowed(&h.cfg, r) {
		http.Error(w, "notify: origin not allowed", http.StatusForbidden)
		return
	}
	id, err := h.Authenticate(r)
	if err != nil {
		if errors.Is(err, ErrUnauthorized) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		} else {
			http.Error(w, "notify: broker unavailable", http.StatusServiceUnavailable)
		}
		return
	}
	value, err := json.Marshal(id)
	if err != nil {
		http.Error(w, "notify: identity cannot be kept", http.StatusInternalServerError)
		return
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	ticket := base64.RawURLEncoding.EncodeToString(raw[:])
	if err := h.tickets.Put(r.Context(), ticketKey(ticket), value, TicketTTL); err != nil {
		h.stats.brokerErrors.Add(1)
		h.cfg.Logger.Warn("notify: ticket store failed", "user", id.UserID, "err", err)
		http.Error(w, "notify: ticket store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Ticket    string `json:"ticket"`
		ExpiresIn int    `json:"expires_in"`
	}{ticket, int(TicketTTL / time.Second)})
}

// redeemTicket returns the identity of a stream request's ticket, taking the ticket. A request
// that also carries a token (a cookie, a header) must carry one of the ticket's user.
func (h *Hub) redeemTicket(r *http.Request, ticket string) (Identity, error) {
	value, ok, err := h.tickets.Take(r.Context(), ticketKey(ticket))
	if err != nil {
		h.stats.brokerErrors.Add(1)
		return Identity{}, err
	}
	var id Identity
	if !ok || json.Unmarshal(value, &id) != nil || id.UserID == "" {
		return Identity{}, refused(refusedInvalid, "unknown, used or expired ticket")
	}
	if !id.Expires.IsZero() && time.Now().After(id.Expires.Add(h.cfg.Leeway)) {
		return Identity{}, refused(refusedInvalid, "the ticket's token has expired")
	}
	other, found := IdentityFromContext(r.Context())
	if tok := h.auth.tokenFrom(r); !found && tok != "" {
		other, err = h.auth.verify(tok)
		found = err == nil
	}
	if found && other.UserID != id.UserID {
		return Identity{}, refused(refusedInvalid, "the ticket is for another user")
	}
	return id, nil
}

func ticketKey(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return "ticket:" + hex.EncodeToString(sum[:])
}

// localTickets is the in-process TicketStore. mu guards m; expired entries go at each Put.
type localTickets struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]localTicket
}

type localTicket struct {
	value   []byte
	expires time.Time
}

func newLocalTickets(now func() time.Time) *localTickets {
	return &localTickets{now: now, m: make(map[string]localTicket)}
}

func (l *localTickets) Put(_ context.Context, key string, value []byte, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for k, t := range l.m {
		if !now.Before(t.expires) {
			delete(l.m, k)
		}
	}
	l.m[key] = localTicket{value, now.Add(ttl)}
	return nil
}

func (l *localTickets) Take(_ context.Context, key string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.m[key]
	delete(l.m, key)
	if !ok || !l.now().Before(t.expires) {
		return nil, false, nil
	}
	return t.value, true, nil
}
