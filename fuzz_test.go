package notify_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify"
)

// FuzzVerify: no token string can panic the verifier, and every refusal wraps ErrUnauthorized
// without echoing the token.
func FuzzVerify(f *testing.F) {
	h := newHub(f, nil)
	good, _ := h.IssueToken("alice", time.Minute, "news")
	for _, s := range []string{"", "a.b.c", good, good[:len(good)-3], "eyJhbGciOiJub25lIn0.e30.", strings.Repeat(".", 50)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := verify(h, tok)
		if err == nil {
			if id.UserID == "" {
				t.Fatal("accepted a token without a user")
			}
			return
		}
		if !errors.Is(err, notify.ErrUnauthorized) {
			t.Fatalf("error %v does not wrap ErrUnauthorized", err)
		}
		if len(tok) > 8 && strings.Contains(err.Error(), tok) {
			t.Fatal("error contains the token")
		}
	})
}

// FuzzClientMessages: whatever a client sends, the hub answers or closes the session, and
// another session keeps receiving.
func FuzzClientMessages(f *testing.F) {
	h := newHub(f, func(c *notify.Config) { c.MaxMessageSize = 512 })
	srv := serve(f, h)
	for _, s := range []string{`{"op":"subscribe","topic":"news"}`, `{"op":"unsubscribe"}`, `{"op":"refresh","token":1}`,
		`{`, `null`, `[]`, `{"op":"subscribe","topic":".."}`, "\x00\xff"} {
		f.Add(s)
	}
	bystander := dial(f, srv, token(f, h, "bob"))
	f.Fuzz(func(t *testing.T, msg string) {
		c := dial(t, srv, token(t, h, "mallory"))
		c.WS.WriteMessage(1, []byte(msg))
		if _, err := c.Read(2 * time.Second); err != nil && !strings.Contains(err.Error(), "close") {
			t.Fatalf("no answer and no close: %v", err)
		}
		h.Send(context.Background(), "bob", notify.Event{Type: "ok"})
		for {
			m, err := bystander.Read(5 * time.Second) // not nextNonPing: its t is the F
			if err != nil || m["type"] == "ok" {
				if err != nil {
					t.Fatalf("bystander: %v", err)
				}
				break
			}
			if m["op"] != "ping" {
				t.Fatalf("bystander got %v", m)
			}
		}
	})
}
