package inbox

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in a user's list, newest first: a page starts after the notification
// created at CreatedAt with ID. Its zero value is the top of the list. Clients see it only as
// the opaque string of [Cursor.String].
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the top of the list.
func (c Cursor) IsZero() bool { return c.CreatedAt.IsZero() && c.ID == "" }

// String encodes c for [Page].Next; "" for the zero cursor.
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID))
}

// parseCursor decodes a cursor made by String; "" is the top of the list.
func parseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 1024 {
		return Cursor{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	us, id, ok := strings.Cut(string(b), ".")
	if !ok || id == "" || len(id) > maxIDLen {
		return Cursor{}, ErrBadCursor
	}
	n, err := strconv.ParseInt(us, 10, 64)
	if err != nil || n <= 0 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{CreatedAt: time.UnixMicro(n).UTC(), ID: id}, nil
}
