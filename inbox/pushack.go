package inbox

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// A push's ack capability lets whoever holds it (the service worker that received the push,
// which has no token) mark that one notification of that one user seen or read, until the
// notification expires. It is the base64url of an HMAC-SHA256 (the inbox's cursor key, which
// every node shares, under its own label) followed by the JSON [expiry, user, id] it signs.

// ErrBadAck is returned by [Inbox.Ack] for a capability it did not hand out, or one past its
// expiry (400 over HTTP).
var ErrBadAck = errors.New("notify: invalid or expired push ack")

const maxAckLen = 2048

func ackMAC(key []byte, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("notify push ack\x00"))
	m.Write(payload)
	return m.Sum(nil)[:macLen]
}

func encodeAck(key []byte, user, id string, expires time.Time) string {
	payload, _ := json.Marshal([]any{expires.Unix(), user, id})
	return base64.RawURLEncoding.EncodeToString(append(ackMAC(key, payload), payload...))
}

// decodeAck returns the user and notification ID of the capability s, or ErrBadAck.
func decodeAck(key []byte, s string, now time.Time) (user, id string, err error) {
	if s == "" || len(s) > maxAckLen {
		return "", "", ErrBadAck
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) <= macLen {
		return "", "", ErrBadAck
	}
	payload := b[macLen:]
	if !hmac.Equal(b[:macLen], ackMAC(key, payload)) {
		return "", "", ErrBadAck
	}
	var exp int64
	fields := []any{&exp, &user, &id}
	if json.Unmarshal(payload, &fields) != nil || user == "" || id == "" {
		return "", "", ErrBadAck
	}
	if now.Unix() >= exp {
		return "", "", ErrBadAck
	}
	return user, id, nil
}

// Ack applies op (OpSeen or OpRead only) to the notification a push's ack capability names,
// for its user, and returns the user's counts after: what the service worker calls when it
// shows a push (seen) and when the user clicks it (read). ErrBadAck for a capability the
// inbox did not hand out or that expired; ErrNotFound when the notification is gone.
func (ib *Inbox) Ack(ctx context.Context, ack string, op Op) (Counts, error) {
	if op != OpSeen && op != OpRead {
		return Counts{}, fmt.Errorf("%w: op must be seen or read", ErrInvalid)
	}
	key, err := ib.cursorKey(ctx)
	if err != nil {
		return Counts{}, err
	}
	user, id, err := decodeAck(key, ack, ib.now())
	if err != nil {
		return Counts{}, err
	}
	return ib.Change(ctx, user, op, id)
}
