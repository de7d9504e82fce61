package inbox

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in a user's list, newest first: a page starts after the notification
// created at CreatedAt with ID. Its zero value is the top of the list. Clients see it only as
// the opaque, signed string of [Page].Next.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the top of the list.
func (c Cursor) IsZero() bool { return c.CreatedAt.IsZero() && c.ID == "" }

// MinCursorKeyLen is the shortest [Config].CursorKey, and of the key a [Store] makes.
const MinCursorKeyLen = 32

// macLen is the bytes of HMAC-SHA256 a cursor keeps: 128 bits cannot be guessed.
const macLen = 16

// cursorMAC signs a cursor's payload for the user it is handed to: another user's cursor is
// refused as a forged one is.
func cursorMAC(key []byte, user, payload string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)[:macLen]
}

// encodeCursor returns c as the user's signed cursor; "" for the zero cursor.
func encodeCursor(key []byte, user string, c Cursor) string {
	if c.IsZero() {
		return ""
	}
	payload := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString(append(cursorMAC(key, user, payload), payload...))
}

// decodeCursor returns the cursor s, which encodeCursor made for the user with the same key,
// or ErrBadCursor; "" is the top of the list.
func decodeCursor(key []byte, user, s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 1024 {
		return Cursor{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) <= macLen {
		return Cursor{}, ErrBadCursor
	}
	payload := string(b[macLen:])
	if !hmac.Equal(b[:macLen], cursorMAC(key, user, payload)) {
		return Cursor{}, ErrBadCursor
	}
	us, id, ok := strings.Cut(payload, ".")
	if !ok || id == "" || len(id) > maxIDLen {
		return Cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n <= 0 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{CreatedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}
