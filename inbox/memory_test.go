package inbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/inbox/inboxtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestMemoryStore(t *testing.T) {
	inboxtest.Run(t, inboxtest.Harness{
		New: func(*testing.T) inbox.Store { return inbox.NewMemoryStore() },
		Outage: func(*testing.T) (inbox.Store, func()) {
			s := &downStore{Store: inbox.NewMemoryStore()}
			return s, func() { s.down.Store(true) }
		},
	})
}

// downStore is a store whose backend can be taken down: every call fails after that, as a
// database that cannot be reached does.
type downStore struct {
	inbox.Store
	down atomic.Bool
}

var errDown = errors.New("connection refused")

func (s *downStore) Insert(ctx context.Context, user string, n inbox.Notification, max int) (inbox.Notification, bool, inbox.Counts, error) {
	if s.down.Load() {
		return inbox.Notification{}, false, inbox.Counts{}, errDown
	}
	return s.Store.Insert(ctx, user, n, max)
}

func (s *downStore) List(ctx context.Context, user string, q inbox.Query, after inbox.Cursor) ([]inbox.Notification, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.List(ctx, user, q, after)
}

func (s *downStore) Counts(ctx context.Context, user string) (inbox.Counts, error) {
	if s.down.Load() {
		return inbox.Counts{}, errDown
	}
	return s.Store.Counts(ctx, user)
}

func (s *downStore) Change(ctx context.Context, user string, op inbox.Op, ids []string, at time.Time) ([]string, inbox.Counts, error) {
	if s.down.Load() {
		return nil, inbox.Counts{}, errDown
	}
	return s.Store.Change(ctx, user, op, ids, at)
}

func (s *downStore) ReadAll(ctx context.Context, user string, at time.Time) (int, inbox.Counts, error) {
	if s.down.Load() {
		return 0, inbox.Counts{}, errDown
	}
	return s.Store.ReadAll(ctx, user, at)
}

func (s *downStore) Expire(ctx context.Context, before time.Time) (int, error) {
	if s.down.Load() {
		return 0, errDown
	}
	return s.Store.Expire(ctx, before)
}

func (s *downStore) CursorKey(ctx context.Context) ([]byte, error) {
	if s.down.Load() {
		return nil, errDown
	}
	return s.Store.CursorKey(ctx)
}

// keyStore is a store whose cursor key is what the test says.
type keyStore struct {
	inbox.Store
	key []byte
	err error
}

func (s keyStore) CursorKey(context.Context) ([]byte, error) { return s.key, s.err }

// The store's key is read at the first List: a store that cannot give one, or gives one too
// short to sign with, makes List unavailable (503 over HTTP), and a later List tries again.
func TestStoreCursorKeyUnusable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		key  []byte
		err  error
		want string
	}{
		{"store down", nil, errDown, "notify: inbox unavailable: connection refused"},
		{"key too short", make([]byte, 31), nil, "notify: inbox unavailable: the store's cursor key is 31 bytes, want at least 32"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			store := &keyStore{Store: inbox.NewMemoryStore(), key: tt.key, err: tt.err}
			_, ib, _ := newInbox(t, notify.Config{Secret: secret}, inbox.Config{Store: store})
			_, err := ib.List(context.Background(), "alice", inbox.Query{})
			if !errors.Is(err, inbox.ErrUnavailable) || err.Error() != tt.want {
				t.Errorf("List: %v, want %q", err, tt.want)
			}
			store.key, store.err = make([]byte, 32), nil
			if _, err := ib.List(context.Background(), "alice", inbox.Query{}); err != nil {
				t.Errorf("List once the store has a key: %v", err)
			}
		})
	}
}

// Counts.Add is the rule of the counts: archived counts in none, the rest in Total, and in
// Unread and Unseen unless read and seen.
func TestCountsAdd(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		st   inbox.State
		want inbox.Counts
	}{
		{"new", inbox.State{}, inbox.Counts{Unread: 1, Unseen: 1, Total: 1}},
		{"seen", inbox.State{Seen: true}, inbox.Counts{Unread: 1, Total: 1}},
		{"read", inbox.State{Read: true}, inbox.Counts{Unseen: 1, Total: 1}},
		{"read and seen", inbox.State{Read: true, Seen: true}, inbox.Counts{Total: 1}},
		{"archived", inbox.State{Archived: true}, inbox.Counts{}},
		{"archived, read and seen", inbox.State{Read: true, Seen: true, Archived: true}, inbox.Counts{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c inbox.Counts
			c.Add(tt.st, 1)
			if c != tt.want {
				t.Errorf("after +1: %+v, want %+v", c, tt.want)
			}
			c.Add(tt.st, -1)
			if c != (inbox.Counts{}) {
				t.Errorf("after +1 and -1: %+v, want zero", c)
			}
		})
	}
}

func TestNotificationState(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name string
		n    inbox.Notification
		want inbox.State
	}{
		{"new", inbox.Notification{CreatedAt: at}, inbox.State{}},
		{"read", inbox.Notification{ReadAt: at}, inbox.State{Read: true}},
		{"seen", inbox.Notification{SeenAt: at}, inbox.State{Seen: true}},
		{"archived", inbox.Notification{ArchivedAt: at}, inbox.State{Archived: true}},
		{"all", inbox.Notification{ReadAt: at, SeenAt: at, ArchivedAt: at}, inbox.State{Read: true, Seen: true, Archived: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.n.State(); got != tt.want {
				t.Errorf("State() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
