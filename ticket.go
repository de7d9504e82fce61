package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
