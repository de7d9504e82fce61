// Package inboxtest is the conformance suite of inbox stores: [Run] holds a [inbox.Store] to
// the behaviour the inbox relies on, through an [inbox.Inbox] on a real hub with WebSocket
// sessions. The in-memory store and adapters/pginbox both run it.
package inboxtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// Harness makes the stores of a run.
type Harness struct {
	// New returns an empty store, cleaned up when the test ends.
	New func(t *testing.T) inbox.Store
	// Outage returns an empty store and a function that makes its backend unreachable (a
	// database that goes down). Default: the outage test is skipped.
	Outage func(t *testing.T) (inbox.Store, func())
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"ListOrderAndPages", testListPages},
		{"LimitClamped", testLimit},
		{"MalformedCursor", testBadCursor},
		{"ForgedCursor", testForgedCursor},
		{"CursorAcrossInboxes", testCursorAcrossInboxes},
		{"CursorKey", testCursorKey},
		{"DataShapes", testDataShapes},
		{"Filters", testFilters},
		{"Counts", testCounts},
		{"NotifyIdempotent", testNotifyIdempotent},
		{"BadNotification", testBadNotification},
		{"UnknownAndOtherUsersIDs", testNotFound},
		{"ChangeTwice", testChangeTwice},
		{"MarkAllRead", testReadAll},
		{"RetentionByCount", testRetentionCount},
		{"RetentionByAge", testRetentionAge},
		{"LiveEvents", testLive},
		{"ConcurrentMarkRead", testConcurrentRead},
		{"Randomized", testRandomized},
		{"StoreDown", testOutage},
		{"PushSubscriptions", testSubscriptions},
		{"PushSubscriptionsConcurrent", testConcurrentSubscriptions},
		{"PushMutedAndPushed", testMutedAndPushed},
		{"PushStoreDown", testPushOutage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

var secret = []byte("inboxtest-secret-0123456789abcdef")

// env is an inbox on a hub served over HTTP.
type env struct {
	t   *testing.T
	hub *notify.Hub
	ib  *inbox.Inbox
	srv *httptest.Server
}

func newEnv(t *testing.T, store inbox.Store, cfg inbox.Config) *env {
	t.Helper()
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hub.Shutdown(ctx); err != nil {
			t.Errorf("hub.Shutdown: %v", err)
		}
	})
	cfg.Store = store
	ib, err := inbox.New(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ib.Close() })
	mux := http.NewServeMux()
	mux.Handle("/ws", hub)
	mux.Handle("/inbox/", ib.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{t: t, hub: hub, ib: ib, srv: srv}
}

// session opens a WebSocket session of user and reads its welcome.
func (e *env) session(user string) *wstest.Client {
	e.t.Helper()
	tok, err := e.hub.IssueToken(user, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	c, _ := wstest.Welcome(e.t, "ws"+strings.TrimPrefix(e.srv.URL, "http")+"/ws", tok)
	return c
}

// notify stores a notification of type "t" created sec seconds after base (0: now).
func (e *env) notify(user, id string, sec int) inbox.Notification {
	e.t.Helper()
	n := inbox.Notification{ID: id, Type: "t", Data: json.RawMessage(fmt.Sprintf(`{"n":%q}`, id))}
	if sec != 0 {
		n.CreatedAt = base.Add(time.Duration(sec) * time.Second)
	}
	got, _, err := e.ib.Notify(context.Background(), user, n)
	if err != nil {
		e.t.Fatalf("Notify(%s, %s): %v", user, id, err)
	}
	return got
}

var base = time.Now().UTC().Truncate(time.Second).Add(-24 * time.Hour)

func (e *env) counts(user string) inbox.Counts {
	e.t.Helper()
	c, err := e.ib.Counts(context.Background(), user)
	if err != nil {
		e.t.Fatalf("Counts(%s): %v", user, err)
	}
	return c
}

func (e *env) wantCounts(user string, want inbox.Counts) {
	e.t.Helper()
	if got := e.counts(user); got != want {
		e.t.Errorf("Counts(%s) = %+v, want %+v", user, got, want)
	}
}

func (e *env) list(user string, q inbox.Query) inbox.Page {
	e.t.Helper()
	p, err := e.ib.List(context.Background(), user, q)
	if err != nil {
		e.t.Fatalf("List(%s, %+v): %v", user, q, err)
	}
	return p
}

func ids(items []inbox.Notification) []string {
	out := make([]string, len(items))
	for i, n := range items {
		out[i] = n.ID
	}
	return out
}

// all lists every notification of user, inbox and archive, page by page.
func (e *env) all(user string) []inbox.Notification {
	e.t.Helper()
	var out []inbox.Notification
	for _, archived := range []bool{false, true} {
		q := inbox.Query{Archived: archived, Limit: inbox.MaxLimit}
		for {
			p := e.list(user, q)
			out = append(out, p.Items...)
			if p.Next == "" {
				break
			}
			q.Cursor = p.Next
		}
	}
	return out
}

func testListPages(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	const n = 45
	for i := 1; i <= n; i++ {
		// Pairs created in the same second: the ID orders them.
		e.notify("alice", fmt.Sprintf("n%02d", i), (i+1)/2)
	}
	e.notify("bob", "b1", 1)
	var got []string
	q := inbox.Query{Limit: 20}
	sizes := []int{}
	for {
		p := e.list("alice", q)
		sizes = append(sizes, len(p.Items))
		got = append(got, ids(p.Items)...)
		if p.Next == "" {
			break
		}
		q.Cursor = p.Next
	}
	if fmt.Sprint(sizes) != "[20 20 5]" {
		t.Errorf("page sizes = %v, want [20 20 5]", sizes)
	}
	for i, id := range got {
		if want := fmt.Sprintf("n%02d", n-i); id != want {
			t.Fatalf("item %d = %s, want %s (newest first): %v", i, id, want, got)
		}
	}
	p := e.list("alice", inbox.Query{Limit: 1})
	if p.Items[0].Type != "t" || stored(t, p.Items[0].Data) != `{"n":"n45"}` || !p.Items[0].CreatedAt.Equal(base.Add(23*time.Second)) {
		t.Errorf("newest = %+v", p.Items[0])
	}
	if p := e.list("carol", inbox.Query{}); len(p.Items) != 0 || p.Next != "" || p.Items == nil {
		t.Errorf("empty inbox: %+v, want no items (an empty slice) and no next", p)
	}
	// Exactly a page's worth: no next page.
	if p := e.list("alice", inbox.Query{Limit: 5, Cursor: q.Cursor}); len(p.Items) != 5 || p.Next != "" {
		t.Errorf("last page: %d items, next %q; want 5 and none", len(p.Items), p.Next)
	}
}

func testLimit(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	for i := range 130 {
		e.notify("alice", fmt.Sprintf("n%03d", i), i+1)
	}
	for _, tt := range []struct {
		name  string
		limit int
		want  int
	}{
		{"zero means the default", 0, inbox.DefaultLimit},
		{"negative means the default", -1, inbox.DefaultLimit},
		{"very negative", -1 << 40, inbox.DefaultLimit},
		{"one", 1, 1},
		{"the maximum", inbox.MaxLimit, inbox.MaxLimit},
		{"10,000 is clamped", 10_000, inbox.MaxLimit},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := e.list("alice", inbox.Query{Limit: tt.limit})
			if len(p.Items) != tt.want || p.Next == "" {
				t.Errorf("limit %d: %d items, next %q; want %d and a next page", tt.limit, len(p.Items), p.Next, tt.want)
			}
		})
	}
}

func testBadCursor(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	e.notify("alice", "a", 1)
	for _, tt := range []struct{ name, cursor string }{
		{"not base64", "!!!"},
		{"no separator", "MTIz"},      // "123"
		{"no ID", "MTIzLg"},           // "123."
		{"time not a number", "eC55"}, // "x.y"
		{"negative time", "LTEuYQ"},   // "-1.a"
		{"padded base64", "MTIzLmE="}, // "123.a" with padding
		{"huge", strings.Repeat("A", 2000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ib.List(context.Background(), "alice", inbox.Query{Cursor: tt.cursor})
			if !errors.Is(err, inbox.ErrBadCursor) {
				t.Errorf("List with cursor %q: %v, want ErrBadCursor", tt.cursor, err)
			}
			status, body := e.get("alice", "/inbox/?cursor="+tt.cursor)
			if status != http.StatusBadRequest || !strings.Contains(body, `"error":"bad_request"`) {
				t.Errorf("GET with cursor %q: %d %s, want 400 bad_request", tt.cursor, status, body)
			}
		})
	}
}

func testFilters(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	for i := 1; i <= 6; i++ {
		e.notify("alice", fmt.Sprint("n", i), i)
	}
	ctx := context.Background()
	if _, err := e.ib.MarkRead(ctx, "alice", "n1", "n2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ib.Archive(ctx, "alice", "n2", "n3"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		q    inbox.Query
		want string
	}{
		{"inbox", inbox.Query{}, "[n6 n5 n4 n1]"},
		{"unread", inbox.Query{Unread: true}, "[n6 n5 n4]"},
		{"archive", inbox.Query{Archived: true}, "[n3 n2]"},
		{"unread in the archive", inbox.Query{Archived: true, Unread: true}, "[n3]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(ids(e.list("alice", tt.q).Items)); got != tt.want {
				t.Errorf("List(%+v) = %s, want %s", tt.q, got, tt.want)
			}
		})
	}
	p := e.list("alice", inbox.Query{Archived: true})
	if p.Items[1].ReadAt.IsZero() || p.Items[1].ArchivedAt.IsZero() || !p.Items[0].ReadAt.IsZero() {
		t.Errorf("archive's states: %+v", p.Items)
	}
}

func testCounts(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	e.wantCounts("alice", inbox.Counts{})
	for i := 1; i <= 5; i++ {
		e.notify("alice", fmt.Sprint("n", i), i)
	}
	steps := []struct {
		name string
		op   inbox.Op
		ids  []string
		want inbox.Counts
	}{
		{"read two", inbox.OpRead, []string{"n1", "n2"}, inbox.Counts{Unread: 3, Unseen: 5, Total: 5}},
		{"seen three", inbox.OpSeen, []string{"n1", "n3", "n4"}, inbox.Counts{Unread: 3, Unseen: 2, Total: 5}},
		{"archive a read seen one and an unread unseen one", inbox.OpArchive, []string{"n1", "n5"}, inbox.Counts{Unread: 2, Unseen: 1, Total: 3}},
		{"unread an archived one: no count moves", inbox.OpUnread, []string{"n1"}, inbox.Counts{Unread: 2, Unseen: 1, Total: 3}},
		{"unarchive it", inbox.OpUnarchive, []string{"n1"}, inbox.Counts{Unread: 3, Unseen: 1, Total: 4}},
		{"delete an archived one", inbox.OpDelete, []string{"n5"}, inbox.Counts{Unread: 3, Unseen: 1, Total: 4}},
		{"delete a read unseen one", inbox.OpDelete, []string{"n2"}, inbox.Counts{Unread: 3, Unseen: 0, Total: 3}},
		{"read the rest", inbox.OpRead, []string{"n1", "n3", "n4"}, inbox.Counts{Unread: 0, Unseen: 0, Total: 3}},
	}
	for _, s := range steps {
		got, err := e.ib.Change(ctx, "alice", s.op, s.ids...)
		if err != nil || got != s.want {
			t.Fatalf("%s: %+v, %v; want %+v", s.name, got, err, s.want)
		}
		e.wantCounts("alice", s.want)
	}
	e.wantCounts("bob", inbox.Counts{})
	status, body := e.get("alice", "/inbox/counts")
	if status != 200 || body != `{"unread":0,"unseen":0,"total":3}`+"\n" {
		t.Errorf("GET /inbox/counts: %d %s", status, body)
	}
}

func testNotifyIdempotent(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	s := e.session("alice")
	ctx := context.Background()
	first, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{ID: "order-42", Type: "shipped", Data: json.RawMessage(`{"v":1}`)})
	if err != nil {
		t.Fatal(err)
	}
	// A retry, even with other content, returns what was stored.
	again, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{ID: "order-42", Type: "shipped", Data: json.RawMessage(`{"v":2}`)})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID || stored(t, again.Data) != `{"v":1}` || !again.CreatedAt.Equal(first.CreatedAt) {
		t.Errorf("retry returned %+v, want the stored %+v", again, first)
	}
	e.wantCounts("alice", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
	// The same ID in another user's inbox is another notification.
	e.notify("bob", "order-42", 0)
	e.wantCounts("alice", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
	e.wantCounts("bob", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
	// Exactly one live event: the marker sent after the retry comes right after it.
	ev := nextEvent(t, s)
	if ev.Type != inbox.EventType || ev.Data.Op != inbox.OpNew || ev.Data.Notification == nil || ev.Data.Notification.ID != "order-42" {
		t.Fatalf("first event = %+v", ev)
	}
	if _, err := e.hub.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, s); ev.Type != "marker" {
		t.Errorf("after the retry came %+v, want the marker: a retry delivered again", ev)
	}
	// Concurrent retries of one ID create one notification.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, _, err := e.ib.Notify(ctx, "carol", inbox.Notification{ID: "same", Type: "t"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	e.wantCounts("carol", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
}

func testBadNotification(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{MaxDataSize: 64})
	ctx := context.Background()
	big := json.RawMessage(`"` + strings.Repeat("x", 63) + `"`) // 65 bytes
	for _, tt := range []struct {
		name string
		user string
		n    inbox.Notification
		want error
	}{
		{"data over MaxDataSize", "alice", inbox.Notification{Type: "t", Data: big}, inbox.ErrTooLarge},
		{"no type", "alice", inbox.Notification{Data: json.RawMessage(`1`)}, inbox.ErrInvalid},
		{"no user", "", inbox.Notification{Type: "t"}, inbox.ErrInvalid},
		{"data not JSON", "alice", inbox.Notification{Type: "t", Data: json.RawMessage(`{`)}, inbox.ErrInvalid},
		{"ID too long", "alice", inbox.Notification{Type: "t", ID: strings.Repeat("i", 257)}, inbox.ErrInvalid},
		{"type too long", "alice", inbox.Notification{Type: strings.Repeat("t", 257)}, inbox.ErrInvalid},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := e.ib.Notify(ctx, tt.user, tt.n); !errors.Is(err, tt.want) {
				t.Errorf("Notify: %v, want %v", err, tt.want)
			}
		})
	}
	e.wantCounts("alice", inbox.Counts{})
	// Exactly at the limit is fine.
	at := json.RawMessage(`"` + strings.Repeat("x", 62) + `"`)
	if _, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{Type: "t", Data: at}); err != nil {
		t.Errorf("Notify with 64 bytes of data: %v", err)
	}
}

func testNotFound(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	e.notify("alice", "a1", 1)
	e.notify("alice", "a2", 2)
	e.notify("bob", "b1", 3)
	aliceCounts, bobCounts := e.counts("alice"), e.counts("bob")
	ops := []inbox.Op{inbox.OpRead, inbox.OpUnread, inbox.OpSeen, inbox.OpArchive, inbox.OpUnarchive, inbox.OpDelete}
	for _, op := range ops {
		for _, tt := range []struct {
			name string
			ids  []string
		}{
			{"unknown", []string{"nope"}},
			{"another user's", []string{"b1"}},
			{"one of hers and another user's", []string{"a1", "b1"}},
			{"one of hers and an unknown", []string{"a1", "nope"}},
			{"empty", []string{""}},
		} {
			t.Run(string(op)+"/"+tt.name, func(t *testing.T) {
				c, err := e.ib.Change(ctx, "alice", op, tt.ids...)
				if !errors.Is(err, inbox.ErrNotFound) || err.Error() != inbox.ErrNotFound.Error() || c != (inbox.Counts{}) {
					t.Errorf("Change: %+v, %v; want exactly ErrNotFound", c, err)
				}
				status, body := e.post("alice", "/inbox/"+string(op), map[string]any{"ids": tt.ids})
				if status != http.StatusNotFound || body != `{"error":"not_found","reason":"no such notification"}`+"\n" {
					t.Errorf("POST: %d %s, want 404 not_found", status, body)
				}
			})
		}
	}
	// Nothing changed, for either user.
	e.wantCounts("alice", aliceCounts)
	e.wantCounts("bob", bobCounts)
	if got := fmt.Sprint(ids(e.list("alice", inbox.Query{}).Items)); got != "[a2 a1]" {
		t.Errorf("alice's list = %s", got)
	}
	if p := e.list("bob", inbox.Query{}); len(p.Items) != 1 || !p.Items[0].ReadAt.IsZero() {
		t.Errorf("bob's list = %+v", p.Items)
	}
	// No change, no error: no event; bob's ID is refused alike over HTTP and from Go.
	if _, err := e.ib.Change(ctx, "alice", "explode", "a1"); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("unknown op: %v, want ErrInvalid", err)
	}
	if _, err := e.ib.Change(ctx, "alice", inbox.OpRead); !errors.Is(err, inbox.ErrInvalid) {
		t.Errorf("no IDs: %v, want ErrInvalid", err)
	}
}

func testChangeTwice(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	s := e.session("alice")
	ctx := context.Background()
	e.notify("alice", "a1", 1)
	e.notify("alice", "a2", 2)
	nextEvent(t, s)
	nextEvent(t, s)
	for _, tt := range []struct {
		op   inbox.Op
		want inbox.Counts
	}{
		{inbox.OpRead, inbox.Counts{Unread: 1, Unseen: 2, Total: 2}},
		{inbox.OpSeen, inbox.Counts{Unread: 1, Unseen: 1, Total: 2}},
		{inbox.OpUnread, inbox.Counts{Unread: 2, Unseen: 1, Total: 2}},
		{inbox.OpArchive, inbox.Counts{Unread: 1, Unseen: 1, Total: 1}},
		{inbox.OpUnarchive, inbox.Counts{Unread: 2, Unseen: 1, Total: 2}},
		{inbox.OpDelete, inbox.Counts{Unread: 1, Unseen: 1, Total: 1}},
	} {
		for try := range 2 {
			c, err := e.ib.Change(ctx, "alice", tt.op, "a1", "a1")
			if tt.op == inbox.OpDelete && try == 1 {
				// A deleted notification no longer exists.
				if !errors.Is(err, inbox.ErrNotFound) {
					t.Errorf("delete twice: %v, want ErrNotFound", err)
				}
				continue
			}
			if err != nil || c != tt.want {
				t.Errorf("%s, try %d: %+v, %v; want %+v", tt.op, try+1, c, err, tt.want)
			}
		}
		// One event per change that changed something.
		ev := nextEvent(t, s)
		if ev.Data.Op != tt.op || fmt.Sprint(ev.Data.IDs) != "[a1]" || ev.Data.Counts != tt.want {
			t.Errorf("event after %s = %+v", tt.op, ev.Data)
		}
	}
	if _, err := e.hub.Send(context.Background(), "alice", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, s); ev.Type != "marker" {
		t.Errorf("a change that changed nothing sent %+v", ev)
	}
	if _, err := e.ib.MarkAllRead(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	c, err := e.ib.MarkAllRead(ctx, "alice")
	if err != nil || c != (inbox.Counts{Unread: 0, Unseen: 1, Total: 1}) {
		t.Errorf("read-all twice: %+v, %v", c, err)
	}
}

func testReadAll(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		e.notify("alice", fmt.Sprint("a", i), i)
	}
	e.notify("bob", "b1", 1)
	if _, err := e.ib.Archive(ctx, "alice", "a4"); err != nil {
		t.Fatal(err)
	}
	s := e.session("alice")
	c, err := e.ib.MarkAllRead(ctx, "alice")
	if want := (inbox.Counts{Unread: 0, Unseen: 3, Total: 3}); err != nil || c != want {
		t.Fatalf("MarkAllRead: %+v, %v; want %+v", c, err, want)
	}
	if ev := nextEvent(t, s); ev.Data.Op != inbox.OpReadAll || ev.Data.Counts.Unread != 0 {
		t.Errorf("event = %+v", ev)
	}
	for _, n := range e.all("alice") {
		if n.ReadAt.IsZero() {
			t.Errorf("%s is unread after read-all", n.ID)
		}
	}
	e.wantCounts("bob", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
	status, body := e.post("alice", "/inbox/read-all", nil)
	if status != 200 || body != `{"counts":{"unread":0,"unseen":3,"total":3}}`+"\n" {
		t.Errorf("POST read-all: %d %s", status, body)
	}
}

func testRetentionCount(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{MaxPerUser: 5})
	ctx := context.Background()
	for i := 1; i <= 8; i++ {
		e.notify("alice", fmt.Sprint("n", i), i)
		if i == 2 {
			if _, err := e.ib.Archive(ctx, "alice", "n2"); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.notify("bob", "b1", 1)
	if got := fmt.Sprint(ids(e.all("alice"))); got != "[n8 n7 n6 n5 n4]" {
		t.Errorf("alice keeps %s, want the newest 5", got)
	}
	e.wantCounts("alice", inbox.Counts{Unread: 5, Unseen: 5, Total: 5})
	e.wantCounts("bob", inbox.Counts{Unread: 1, Unseen: 1, Total: 1})
	if _, err := e.ib.MarkRead(ctx, "alice", "n1"); !errors.Is(err, inbox.ErrNotFound) {
		t.Errorf("a dropped notification: %v, want ErrNotFound", err)
	}
	// A notification created earlier than all that are kept goes at once.
	e.notify("alice", "old", -1)
	if got := fmt.Sprint(ids(e.all("alice"))); got != "[n8 n7 n6 n5 n4]" {
		t.Errorf("after an older one: %s", got)
	}
}

func testRetentionAge(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{MaxAge: time.Hour})
	ctx := context.Background()
	now := time.Now().UTC()
	for i, at := range []time.Duration{-3 * time.Hour, -2 * time.Hour, -30 * time.Minute, -time.Minute} {
		if _, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{ID: fmt.Sprint("a", i), Type: "t", CreatedAt: now.Add(at)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.ib.Notify(ctx, "bob", inbox.Notification{ID: "b", Type: "t", CreatedAt: now.Add(-5 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ib.MarkRead(ctx, "alice", "a0"); err != nil {
		t.Fatal(err)
	}
	n, err := e.ib.Expire(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Expire: %d, %v; want 3", n, err)
	}
	if got := fmt.Sprint(ids(e.all("alice"))); got != "[a3 a2]" {
		t.Errorf("alice keeps %s", got)
	}
	e.wantCounts("alice", inbox.Counts{Unread: 2, Unseen: 2, Total: 2})
	e.wantCounts("bob", inbox.Counts{})
	if n, err := e.ib.Expire(ctx); err != nil || n != 0 {
		t.Errorf("Expire again: %d, %v; want 0", n, err)
	}
}

func testLive(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	tab1, tab2, bob := e.session("alice"), e.session("alice"), e.session("bob")
	ctx := context.Background()
	n := e.notify("alice", "a1", 0)
	for _, s := range []*wstest.Client{tab1, tab2} {
		ev := nextEvent(t, s)
		if ev.Type != inbox.EventType || ev.Data.Op != inbox.OpNew || ev.Data.Notification.ID != n.ID ||
			jsonOf(t, ev.Data.Notification.Data) != stored(t, n.Data) || ev.Data.Counts != (inbox.Counts{Unread: 1, Unseen: 1, Total: 1}) {
			t.Errorf("new: %+v", ev)
		}
	}
	// A change through HTTP reaches both tabs.
	status, body := e.post("alice", "/inbox/read", map[string]any{"ids": []string{"a1"}})
	if status != 200 || body != `{"counts":{"unread":0,"unseen":1,"total":1}}`+"\n" {
		t.Errorf("POST read: %d %s", status, body)
	}
	for _, s := range []*wstest.Client{tab1, tab2} {
		if ev := nextEvent(t, s); ev.Data.Op != inbox.OpRead || fmt.Sprint(ev.Data.IDs) != "[a1]" || ev.Data.Counts.Unread != 0 {
			t.Errorf("read: %+v", ev)
		}
	}
	if _, err := e.ib.Delete(ctx, "alice", "a1"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*wstest.Client{tab1, tab2} {
		if ev := nextEvent(t, s); ev.Data.Op != inbox.OpDelete || ev.Data.Counts != (inbox.Counts{}) {
			t.Errorf("delete: %+v", ev)
		}
	}
	// bob got none of it: his first event is his own marker.
	if _, err := e.hub.Send(context.Background(), "bob", notify.Event{Type: "marker"}); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, bob); ev.Type != "marker" {
		t.Errorf("bob received %+v", ev)
	}
}

func testConcurrentRead(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	var all []string
	for i := range 50 {
		all = append(all, e.notify("alice", fmt.Sprint("n", i), i+1).ID)
	}
	// Two tabs mark the same notifications read, one request each, and one by one.
	var wg sync.WaitGroup
	for tab := range 2 {
		wg.Go(func() {
			if tab == 0 {
				if _, err := e.ib.MarkRead(ctx, "alice", all...); err != nil {
					t.Error(err)
				}
				return
			}
			for _, id := range all {
				c, err := e.ib.MarkRead(ctx, "alice", id)
				if err != nil || c.Unread < 0 {
					t.Errorf("MarkRead(%s): %+v, %v", id, c, err)
				}
			}
		})
		wg.Go(func() {
			status, body := e.post("alice", "/inbox/read", map[string]any{"ids": all[25:]})
			if status != 200 {
				t.Errorf("POST read: %d %s", status, body)
			}
		})
	}
	wg.Wait()
	e.wantCounts("alice", inbox.Counts{Unread: 0, Unseen: 50, Total: 50})
}

// testRandomized runs thousands of mixed operations (expiry included) from several goroutines
// on a few users, then compares each user's counts with the rows.
func testRandomized(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{MaxPerUser: 40})
	ctx := context.Background()
	users := []string{"u0", "u1", "u2"}
	const workers, opsEach = 6, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			for range opsEach {
				user := users[r.IntN(len(users))]
				id := fmt.Sprint("n", r.IntN(60))
				var c inbox.Counts
				var err error
				switch k := r.IntN(10); k {
				case 0, 1, 2:
					n := inbox.Notification{ID: id, Type: "t"}
					if r.IntN(10) == 0 {
						n.CreatedAt = time.Now().Add(-100 * 24 * time.Hour) // expires at the next Expire
					}
					_, _, err = e.ib.Notify(ctx, user, n)
					if err == nil {
						c, err = e.ib.Counts(ctx, user)
					}
				case 3:
					if r.IntN(4) == 0 {
						if _, err = e.ib.Expire(ctx); err == nil {
							c, err = e.ib.Counts(ctx, user)
						}
					} else {
						c, err = e.ib.MarkAllRead(ctx, user)
					}
				default:
					op := []inbox.Op{inbox.OpRead, inbox.OpUnread, inbox.OpSeen, inbox.OpArchive, inbox.OpUnarchive, inbox.OpDelete}[k-4]
					c, err = e.ib.Change(ctx, user, op, id, fmt.Sprint("n", r.IntN(60)))
					if errors.Is(err, inbox.ErrNotFound) {
						err = nil
					}
				}
				if err != nil {
					t.Errorf("op: %v", err)
					return
				}
				if c.Unread < 0 || c.Unseen < 0 || c.Total < 0 || c.Unread > c.Total || c.Unseen > c.Total {
					t.Errorf("counts %+v", c)
				}
			}
		})
	}
	wg.Wait()
	for _, user := range users {
		var want inbox.Counts
		rows := e.all(user)
		for _, n := range rows {
			if !n.ArchivedAt.IsZero() {
				continue
			}
			want.Total++
			if n.ReadAt.IsZero() {
				want.Unread++
			}
			if n.SeenAt.IsZero() {
				want.Unseen++
			}
		}
		if len(rows) > 40 {
			t.Errorf("%s has %d notifications, MaxPerUser is 40", user, len(rows))
		}
		e.wantCounts(user, want)
		t.Logf("%s: %d rows, %+v", user, len(rows), want)
	}
}

func testOutage(t *testing.T, h Harness) {
	if h.Outage == nil {
		t.Skip("the harness has no outage")
	}
	store, down := h.Outage(t)
	e := newEnv(t, store, inbox.Config{})
	ctx := context.Background()
	e.notify("alice", "a1", 1)
	s := e.session("alice")
	down()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	calls := []struct {
		name string
		fn   func() error
	}{
		{"Notify", func() error { _, _, err := e.ib.Notify(dctx, "alice", inbox.Notification{Type: "t"}); return err }},
		{"List", func() error { _, err := e.ib.List(dctx, "alice", inbox.Query{}); return err }},
		{"Counts", func() error { _, err := e.ib.Counts(dctx, "alice"); return err }},
		{"MarkRead", func() error { _, err := e.ib.MarkRead(dctx, "alice", "a1"); return err }},
		{"MarkAllRead", func() error { _, err := e.ib.MarkAllRead(dctx, "alice"); return err }},
		{"Delete", func() error { _, err := e.ib.Delete(dctx, "alice", "a1"); return err }},
		{"Expire", func() error { _, err := e.ib.Expire(dctx); return err }},
	}
	for _, c := range calls {
		if err := c.fn(); !errors.Is(err, inbox.ErrUnavailable) {
			t.Errorf("%s with the store down: %v, want ErrUnavailable", c.name, err)
		}
	}
	for _, tt := range []struct{ method, path string }{{"GET", "/inbox/"}, {"GET", "/inbox/counts"}, {"POST", "/inbox/read"}, {"POST", "/inbox/read-all"}} {
		var status int
		var body string
		if tt.method == "GET" {
			status, body = e.get("alice", tt.path)
		} else {
			status, body = e.post("alice", tt.path, map[string]any{"ids": []string{"a1"}})
		}
		if status != http.StatusServiceUnavailable || !strings.HasPrefix(body, `{"error":"unavailable"`) {
			t.Errorf("%s %s with the store down: %d %s, want 503 unavailable", tt.method, tt.path, status, body)
		}
	}
	// Live delivery does not depend on the store.
	if _, err := e.hub.Send(context.Background(), "alice", notify.Event{Type: "live"}); err != nil {
		t.Fatalf("Send with the store down: %v", err)
	}
	if ev := nextEvent(t, s); ev.Type != "live" {
		t.Errorf("event = %+v, want the live one", ev)
	}
}

// stored returns the JSON of a notification's Data as the inbox returns it: a
// json.RawMessage, whatever type went in, or nil for none.
func stored(t *testing.T, data any) string {
	t.Helper()
	switch d := data.(type) {
	case nil:
		return ""
	case json.RawMessage:
		return string(d)
	}
	t.Fatalf("Data is a %T, want json.RawMessage or nil", data)
	return ""
}

// jsonOf returns v's JSON, "" for nil.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Data of any type comes back, from Notify, List and the HTTP list, as the JSON it marshals
// to, in a json.RawMessage; the HTTP list shows that JSON as the value of "data".
func testDataShapes(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	ctx := context.Background()
	type order struct {
		Order int    `json:"order"`
		Note  string `json:"note,omitempty"`
	}
	tests := []struct {
		name string
		data any
		want string // "" for none
	}{
		{"struct", order{Order: 42}, `{"order":42}`},
		{"pointer to struct", &order{Order: 7, Note: "<b>"}, `{"order":7,"note":"\u003cb\u003e"}`},
		{"map", map[string]any{"b": 2, "a": []int{1}}, `{"a":[1],"b":2}`},
		{"raw JSON, compacted", json.RawMessage("{ \"x\" : [1, 2] }"), `{"x":[1,2]}`},
		{"string", "hello", `"hello"`},
		{"string that needs escapes", "nul\x00 line\u2028 <tag> & \"quote\" 😀", `"nul\u0000 line\u2028 \u003ctag\u003e \u0026 \"quote\" 😀"`},
		{"invalid UTF-8, replaced", "a\xffb", `"a\ufffdb"`},
		{"integer beyond float64's precision", map[string]int64{"id": 1<<60 + 1}, `{"id":1152921504606846977}`},
		{"number", 3.5, `3.5`},
		{"bytes, as encoding/json shows them", []byte("hi"), `"aGk="`},
		{"none", nil, ""},
		{"JSON null is none", json.RawMessage(`null`), ""},
		{"nil pointer is none", (*order)(nil), ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("d%02d", i)
			n, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{ID: id, Type: "t", Data: tt.data})
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			if got := stored(t, n.Data); got != tt.want {
				t.Errorf("Notify returned data %s, want %s", got, tt.want)
			}
			var listed inbox.Notification
			for _, it := range e.list("alice", inbox.Query{Limit: inbox.MaxLimit}).Items {
				if it.ID == id {
					listed = it
				}
			}
			if got := stored(t, listed.Data); got != tt.want {
				t.Errorf("List returned data %s, want %s", got, tt.want)
			}
			status, body := e.get("alice", "/inbox/?limit=100")
			var page struct {
				Items []map[string]json.RawMessage `json:"items"`
			}
			if err := json.Unmarshal([]byte(body), &page); status != http.StatusOK || err != nil {
				t.Fatalf("GET list: %d %s (%v)", status, body, err)
			}
			for _, it := range page.Items {
				if string(it["id"]) != `"`+id+`"` {
					continue
				}
				if got, ok := it["data"]; string(got) != tt.want || ok != (tt.want != "") {
					t.Errorf(`HTTP list: "data" = %s (present %v), want %s`, got, ok, tt.want)
				}
			}
		})
	}
	for _, tt := range []struct {
		name string
		data any
		want string
	}{
		{"a channel", make(chan int), "notify: invalid inbox request: data cannot be encoded as JSON: json: unsupported type: chan int"},
		{"raw JSON that is not JSON", json.RawMessage(`{`), "notify: invalid inbox request: data cannot be encoded as JSON: json: error calling MarshalJSON for type json.RawMessage: unexpected end of JSON input"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := e.ib.Notify(ctx, "alice", inbox.Notification{Type: "t", Data: tt.data})
			if !errors.Is(err, inbox.ErrInvalid) || err.Error() != tt.want {
				t.Errorf("Notify: %v, want %s", err, tt.want)
			}
		})
	}
}

// A cursor the inbox did not hand out to this user is refused, well formed or not: List says
// ErrBadCursor, the HTTP list 400 with the exact reason PROTOCOL.md gives.
func testForgedCursor(t *testing.T, h Harness) {
	e := newEnv(t, h.New(t), inbox.Config{})
	for i := range 3 {
		e.notify("alice", fmt.Sprintf("a%d", i), i+1)
		e.notify("bob", fmt.Sprintf("b%d", i), i+1)
	}
	p := e.list("alice", inbox.Query{Limit: 1})
	if p.Next == "" {
		t.Fatal("no next page")
	}
	bobs := e.list("bob", inbox.Query{Limit: 1}).Next
	raw, err := base64.RawURLEncoding.DecodeString(p.Next)
	if err != nil {
		t.Fatalf("the cursor %q is not unpadded URL-safe base64: %v", p.Next, err)
	}
	flipped := slices.Clone(raw)
	flipped[0] ^= 1
	// The payload after the signature, with its time moved by a microsecond.
	i := 16 + bytes.IndexByte(raw[16:], '.')
	moved := slices.Clone(raw)
	moved[i-1] ^= 1
	for _, tt := range []struct{ name, cursor string }{
		{"unsigned, as cursors were", base64.RawURLEncoding.EncodeToString(raw[16:])},
		{"signature changed", base64.RawURLEncoding.EncodeToString(flipped)},
		{"position changed under the signature", base64.RawURLEncoding.EncodeToString(moved)},
		{"signature only", base64.RawURLEncoding.EncodeToString(raw[:16])},
		{"another user's", bobs},
		{"another inbox's key", func() string {
			other := newEnv(t, h.New(t), inbox.Config{CursorKey: []byte(strings.Repeat("k", 32))})
			other.notify("alice", "x1", 1)
			other.notify("alice", "x2", 2)
			return other.list("alice", inbox.Query{Limit: 1}).Next
		}()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.ib.List(context.Background(), "alice", inbox.Query{Cursor: tt.cursor})
			if !errors.Is(err, inbox.ErrBadCursor) {
				t.Errorf("List with cursor %q: %v, want ErrBadCursor", tt.cursor, err)
			}
			status, body := e.get("alice", "/inbox/?cursor="+tt.cursor)
			if want := `{"error":"bad_request","reason":"malformed cursor"}` + "\n"; status != http.StatusBadRequest || body != want {
				t.Errorf("GET with cursor %q: %d %q, want 400 %q", tt.cursor, status, body, want)
			}
		})
	}
	// The cursor handed out still lists, once more and again.
	for range 2 {
		if next := e.list("alice", inbox.Query{Limit: 1, Cursor: p.Next}); len(next.Items) != 1 || next.Items[0].ID != "a1" {
			t.Errorf("the inbox's own cursor listed %+v, want a1", next.Items)
		}
	}
}

// Two inboxes on one store (two nodes sharing a database) accept each other's cursors, with
// the store's key or with the same Config.CursorKey.
func testCursorAcrossInboxes(t *testing.T, h Harness) {
	for _, tt := range []struct {
		name string
		key  []byte
	}{
		{"the store's key", nil},
		{"Config.CursorKey", []byte(strings.Repeat("0123456789abcdef", 2))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := h.New(t)
			a := newEnv(t, store, inbox.Config{CursorKey: tt.key})
			b := newEnv(t, store, inbox.Config{CursorKey: tt.key})
			for i := range 3 {
				a.notify("alice", fmt.Sprintf("a%d", i), i+1)
			}
			next := a.list("alice", inbox.Query{Limit: 1}).Next
			status, body := b.get("alice", "/inbox/?limit=1&cursor="+next)
			if status != http.StatusOK || !strings.Contains(body, `"id":"a1"`) {
				t.Errorf("node b, the cursor of node a: %d %s, want a1", status, body)
			}
		})
	}
}

// A store's cursor key is at least MinCursorKeyLen bytes and does not change.
func testCursorKey(t *testing.T, h Harness) {
	store := h.New(t)
	ctx := context.Background()
	k1, err := store.CursorKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := store.CursorKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(k1) < inbox.MinCursorKeyLen || !bytes.Equal(k1, k2) {
		t.Errorf("CursorKey = %x then %x, want the same key of at least %d bytes", k1, k2, inbox.MinCursorKeyLen)
	}
	if bytes.Equal(k1, make([]byte, len(k1))) {
		t.Errorf("CursorKey is all zeros")
	}
	if other, err := h.New(t).CursorKey(ctx); err != nil || bytes.Equal(other, k1) {
		t.Errorf("another empty store's key = %x, %v; want another random key", other, err)
	}
}

// event is an event frame as a session receives it.
type event struct {
	Type string       `json:"type"`
	Data inbox.Change `json:"data"`
}

// nextEvent reads the session's next event, skipping control frames.
func nextEvent(t *testing.T, s *wstest.Client) event {
	t.Helper()
	for {
		m := s.Next()
		if _, ok := m["op"]; ok {
			continue
		}
		b, _ := json.Marshal(m)
		var ev event
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("event %s: %v", b, err)
		}
		return ev
	}
}

func (e *env) token(user string) string {
	e.t.Helper()
	tok, err := e.hub.IssueToken(user, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) get(user, path string) (int, string) {
	e.t.Helper()
	return e.do(user, "GET", path, "")
}

func (e *env) post(user, path string, body any) (int, string) {
	e.t.Helper()
	b := ""
	if body != nil {
		j, _ := json.Marshal(body)
		b = string(j)
	}
	return e.do(user, "POST", path, b)
}

func (e *env) do(user, method, path, body string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token(user))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		e.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, cc)
	}
	return resp.StatusCode, string(b)
}
