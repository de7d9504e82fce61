package inbox_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

func fuzzInbox(f *testing.F) (*notify.Hub, *inbox.Inbox) {
	f.Helper()
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { hub.Shutdown(context.Background()) })
	ib, err := inbox.New(hub, inbox.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ib.Close() })
	ctx := context.Background()
	for _, id := range []string{"a", "b", "c"} {
		if _, _, err := ib.Notify(ctx, "alice", inbox.Notification{ID: id, Type: "t"}); err != nil {
			f.Fatal(err)
		}
	}
	return hub, ib
}

// FuzzListCursor: a cursor from a client either lists or is refused with ErrBadCursor; a
// cursor the inbox handed out always lists.
func FuzzListCursor(f *testing.F) {
	_, ib := fuzzInbox(f)
	ctx := context.Background()
	p, err := ib.List(ctx, "alice", inbox.Query{Limit: 1})
	if err != nil || p.Next == "" {
		f.Fatalf("List: %+v, %v", p, err)
	}
	for _, s := range []string{"", p.Next, p.Next[:len(p.Next)-1], "!!!", "MTIzLmE", strings.Repeat("A", 1100)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		p, err := ib.List(ctx, "alice", inbox.Query{Cursor: cursor})
		if err != nil {
			if !errors.Is(err, inbox.ErrBadCursor) {
				t.Fatalf("List(%q): %v, want ErrBadCursor", cursor, err)
			}
			return
		}
		if p.Next != "" {
			if _, err := ib.List(ctx, "alice", inbox.Query{Cursor: p.Next}); err != nil {
				t.Fatalf("the inbox's own cursor %q: %v", p.Next, err)
			}
		}
	})
}

// FuzzChangeBody: whatever body a client posts, the endpoint answers 200, 400, 404 or 413.
func FuzzChangeBody(f *testing.F) {
	hub, ib := fuzzInbox(f)
	tok, err := hub.IssueToken("alice", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	h := ib.Handler()
	for _, s := range []string{`{"ids":["a"]}`, `{"ids":[]}`, `{"ids":["zz"]}`, `{`, `[]`, `null`, `{"ids":null}`, `{"ids":["a"]} x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/inbox/seen", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("body %q: %d %s", body, w.Code, w.Body)
		}
	})
}
