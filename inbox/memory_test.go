package inbox_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

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
