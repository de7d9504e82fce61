package inbox

import (
	"cmp"
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"time"
)

// MemoryStore is the default [Store]: every user's notifications in this process's memory,
// lost when it stops. It suits one process and tests. Its methods are safe for concurrent use.
type MemoryStore struct {
	key []byte // the cursor key, random, made by NewMemoryStore

	mu    sync.Mutex // guards users
	users map[string]*memUser

	push memPush // the push subscriptions and muted types, under their own lock
}

// memUser is one user's notifications, in a slice ordered by creation (oldest first, ties by
// ID) and a map by ID, with counters updated by every change; MemoryStore.mu guards it.
type memUser struct {
	byID   map[string]*Notification
	list   []*Notification // by CreatedAt, then ID, ascending
	counts Counts
}

// NewMemoryStore returns an empty in-memory store.
func NewMemoryStore() *MemoryStore {
	key := make([]byte, MinCursorKeyLen)
	_, _ = rand.Read(key) // crypto/rand.Read does not fail
	return &MemoryStore{key: key, users: make(map[string]*memUser)}
}

// CursorKey implements [Store]: a random key, the store's for its life. The store's data is
// in this process alone, and so are the cursors that point into it.
func (s *MemoryStore) CursorKey(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.key, nil
}

func compareAt(a *Notification, t time.Time, id string) int {
	return cmp.Or(a.CreatedAt.Compare(t), cmp.Compare(a.ID, id))
}

// Insert implements [Store].
func (s *MemoryStore) Insert(ctx context.Context, user string, n Notification, max int) (Notification, bool, Counts, error) {
	if err := ctx.Err(); err != nil {
		return Notification{}, false, Counts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		u = &memUser{byID: make(map[string]*Notification)}
		s.users[user] = u
	}
	if old, ok := u.byID[n.ID]; ok {
		return *old, false, u.counts, nil
	}
	p := &n
	i, _ := slices.BinarySearchFunc(u.list, p, func(a, b *Notification) int { return compareAt(a, b.CreatedAt, b.ID) })
	u.list = slices.Insert(u.list, i, p)
	u.byID[n.ID] = p
	u.counts.Add(p.State(), 1)
	if drop := len(u.list) - max; drop > 0 {
		for _, old := range u.list[:drop] {
			u.counts.Add(old.State(), -1)
			delete(u.byID, old.ID)
		}
		u.list = slices.Delete(u.list, 0, drop)
	}
	return n, true, u.counts, nil
}

// List implements [Store].
func (s *MemoryStore) List(ctx context.Context, user string, q Query, after Cursor) ([]Notification, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		return nil, nil
	}
	end := len(u.list)
	if !after.IsZero() {
		end, _ = slices.BinarySearchFunc(u.list, after, func(a *Notification, c Cursor) int { return compareAt(a, c.CreatedAt, c.ID) })
	}
	var out []Notification
	for i := end - 1; i >= 0 && len(out) < q.Limit; i-- {
		n := u.list[i]
		if q.Archived != !n.ArchivedAt.IsZero() || q.Unread && !n.ReadAt.IsZero() {
			continue
		}
		out = append(out, *n)
	}
	return out, nil
}

// Counts implements [Store].
func (s *MemoryStore) Counts(ctx context.Context, user string) (Counts, error) {
	if err := ctx.Err(); err != nil {
		return Counts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.users[user]; u != nil {
		return u.counts, nil
	}
	return Counts{}, nil
}

// Change implements [Store].
func (s *MemoryStore) Change(ctx context.Context, user string, op Op, ids []string, at time.Time) ([]string, Counts, error) {
	if err := ctx.Err(); err != nil {
		return nil, Counts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		return nil, Counts{}, ErrNotFound
	}
	for _, id := range ids {
		if _, ok := u.byID[id]; !ok {
			return nil, Counts{}, ErrNotFound
		}
	}
	var changed []string
	for _, id := range ids {
		n := u.byID[id]
		if op == OpDelete {
			u.counts.Add(n.State(), -1)
			delete(u.byID, id)
			i, _ := slices.BinarySearchFunc(u.list, n, func(a, b *Notification) int { return compareAt(a, b.CreatedAt, b.ID) })
			u.list = slices.Delete(u.list, i, i+1)
			changed = append(changed, id)
			continue
		}
		var field *time.Time
		set := true
		switch op {
		case OpRead:
			field = &n.ReadAt
		case OpUnread:
			field, set = &n.ReadAt, false
		case OpSeen:
			field = &n.SeenAt
		case OpArchive:
			field = &n.ArchivedAt
		case OpUnarchive:
			field, set = &n.ArchivedAt, false
		}
		if field.IsZero() != set {
			continue // already so
		}
		u.counts.Add(n.State(), -1)
		if set {
			*field = at
		} else {
			*field = time.Time{}
		}
		u.counts.Add(n.State(), 1)
		changed = append(changed, id)
	}
	if len(u.list) == 0 {
		delete(s.users, user)
	}
	return changed, u.counts, nil
}

// ReadAll implements [Store].
func (s *MemoryStore) ReadAll(ctx context.Context, user string, at time.Time) (int, Counts, error) {
	if err := ctx.Err(); err != nil {
		return 0, Counts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[user]
	if u == nil {
		return 0, Counts{}, nil
	}
	n := 0
	for _, x := range u.list {
		if x.ReadAt.IsZero() {
			u.counts.Add(x.State(), -1)
			x.ReadAt = at
			u.counts.Add(x.State(), 1)
			n++
		}
	}
	return n, u.counts, nil
}

// Expire implements [Store].
func (s *MemoryStore) Expire(ctx context.Context, before time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for user, u := range s.users {
		i, _ := slices.BinarySearchFunc(u.list, before, func(a *Notification, t time.Time) int { return a.CreatedAt.Compare(t) })
		for _, old := range u.list[:i] {
			u.counts.Add(old.State(), -1)
			delete(u.byID, old.ID)
		}
		u.list = slices.Delete(u.list, 0, i)
		n += i
		if len(u.list) == 0 {
			delete(s.users, user)
		}
	}
	return n, nil
}
