// Package pginbox keeps notify inboxes in PostgreSQL: an [inbox.Store] on pgx v5.
//
//	store, err := pginbox.New(ctx, pginbox.Options{URL: "postgres://app@db/app"})
//	...
//	defer store.Close()
//	ib, err := inbox.New(hub, inbox.Config{Store: store})
//
// New creates its tables, or migrates them to the current version, in Options.Schema (a
// version table records what was applied; an advisory lock keeps two nodes starting at once
// from migrating together). Two tables hold the data: the notifications, keyed by (user, ID) with
// an index for each user's list newest first and a partial one for the unread, and one row of
// counts per user, updated in the transaction of every change, so that reading the counts is
// one lookup by primary key. Every change of a user locks that row first: a user's changes
// are serialized, and two tabs marking the same notification read change the counts once. A
// third table holds the key that signs the list's cursors ([Store.CursorKey]), one for every
// node on the database. Two more hold the Web Push subscriptions, keyed by (user, endpoint),
// and the types each user muted for push ([inbox.SubscriptionStore]). Operations on several
// notifications are one statement each (id = ANY($2)); none issues a query per notification.
//
// Inserts that arrive while one is being written go together in the next transaction (one
// INSERT for all of them), unless Options.NoBatch; a lone insert is never held back.
package pginbox

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// Options configure a [Store]. Zero values mean the documented defaults.
type Options struct {
	// URL is the database's connection string, such as
	// "postgres://user:pass@host:5432/db?sslmode=verify-full". Ignored when Pool is set.
	URL string
	// Pool is a pool of the application's own, used instead of URL; Close leaves it open.
	Pool *pgxpool.Pool
	// Schema holds the tables; New creates it when missing. Default "public".
	Schema string
	// Prefix begins the tables' names. Default "notify_inbox".
	Prefix string
	// NoBatch writes every notification in a transaction of its own instead of gathering
	// those that arrive together. Default false.
	NoBatch bool
	// MaxBatch bounds the notifications of one batched insert. Default 500.
	MaxBatch int
}

// ErrClosed is returned by the inserts that reach a closed store.
var ErrClosed = errors.New("notify: inbox store is closed")

var validName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,40}$`)

// Store is an [inbox.Store] on PostgreSQL. Its methods are safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	ownPool bool
	opts    Options
	q       queries

	// mu guards closed and the sends on reqs, which Close closes.
	mu     sync.RWMutex
	closed bool
	reqs   chan *insertReq
	wg     sync.WaitGroup // the batching writer
}

// New connects (unless given a pool), creates or migrates the tables, and starts the
// batching writer. Close the store when done.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Schema == "" {
		opts.Schema = "public"
	}
	if opts.Prefix == "" {
		opts.Prefix = "notify_inbox"
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = 500
	}
	if !validName.MatchString(opts.Schema) || !validName.MatchString(opts.Prefix) {
		return nil, fmt.Errorf("%w: pginbox Schema and Prefix must be lower-case identifiers of up to 41 letters, digits and '_'", notify.ErrConfig)
	}
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("%w: pginbox MaxBatch is negative", notify.ErrConfig)
	}
	s := &Store{pool: opts.Pool, opts: opts, q: newQueries(opts.Schema, opts.Prefix)}
	if s.pool == nil {
		if opts.URL == "" {
			return nil, fmt.Errorf("%w: pginbox needs URL or Pool", notify.ErrConfig)
		}
		p, err := pgxpool.New(ctx, opts.URL)
		if err != nil {
			return nil, fmt.Errorf("notify: pginbox: %w", err)
		}
		s.pool, s.ownPool = p, true
	}
	if err := s.migrate(ctx); err != nil {
		if s.ownPool {
			s.pool.Close()
		}
		return nil, err
	}
	if !opts.NoBatch {
		s.reqs = make(chan *insertReq, opts.MaxBatch)
		s.wg.Add(1)
		go s.writer()
	}
	return s, nil
}

// Close stops the batching writer once the inserts already queued are written, waits for it,
// and closes the pool if New opened it. It is safe to call more than once.
func (s *Store) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	if s.reqs != nil {
		close(s.reqs)
	}
	s.mu.Unlock()
	s.wg.Wait()
	if s.ownPool {
		s.pool.Close()
	}
}

// CursorKey implements [inbox.Store]: the first call on a database writes a random key to
// the store's tables, and every store on those tables returns it from then on, so the nodes
// of an app accept each other's cursors. Deleting the row makes a new key, and refuses the
// cursors handed out before.
func (s *Store) CursorKey(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, inbox.MinCursorKeyLen)
	_, _ = rand.Read(fresh) // crypto/rand.Read does not fail
	var key []byte
	err := s.pool.QueryRow(ctx, `WITH ins AS (INSERT INTO `+s.q.key+` (key) VALUES ($1) ON CONFLICT DO NOTHING RETURNING key)
SELECT key FROM ins UNION ALL SELECT key FROM `+s.q.key+` LIMIT 1`, fresh).Scan(&key)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another node's insert won while this statement ran, after its snapshot was taken:
		// the next statement sees it.
		err = s.pool.QueryRow(ctx, `SELECT key FROM `+s.q.key).Scan(&key)
	}
	if err != nil {
		return nil, fmt.Errorf("notify: pginbox: cursor key: %w", err)
	}
	return key, nil
}

// Pool returns the store's pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// queries holds the statements, with the schema and table names filled in.
type queries struct {
	schema, version, notes, counts, key, prefix string
	subs, muted                                 string
}

func newQueries(schema, prefix string) queries {
	q := func(name string) string { return pgx.Identifier{schema, prefix + name}.Sanitize() }
	return queries{
		schema:  pgx.Identifier{schema}.Sanitize(),
		version: q("_version"),
		notes:   q("_notifications"),
		counts:  q("_counts"),
		key:     q("_key"),
		subs:    q("_push_subscriptions"),
		muted:   q("_push_muted"),
		prefix:  prefix,
	}
}

// migrations, in order; each runs once, in a transaction with the version update.
func (q queries) migrations() []string {
	return []string{
		// 1: the notifications and the counts.
		fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
	user_id     text NOT NULL,
	id          text NOT NULL,
	type        text NOT NULL,
	data        json,
	created_at  timestamptz NOT NULL,
	read_at     timestamptz,
	seen_at     timestamptz,
	archived_at timestamptz,
	PRIMARY KEY (user_id, id)
);
CREATE INDEX IF NOT EXISTS %[3]s ON %[1]s (user_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS %[4]s ON %[1]s (user_id, created_at DESC, id DESC) WHERE read_at IS NULL AND archived_at IS NULL;
CREATE INDEX IF NOT EXISTS %[5]s ON %[1]s (created_at);
CREATE TABLE IF NOT EXISTS %[2]s (
	user_id text PRIMARY KEY,
	unread  integer NOT NULL DEFAULT 0 CHECK (unread >= 0),
	unseen  integer NOT NULL DEFAULT 0 CHECK (unseen >= 0),
	total   integer NOT NULL DEFAULT 0 CHECK (total >= 0),
	stored  integer NOT NULL DEFAULT 0 CHECK (stored >= 0)
);`, q.notes, q.counts,
			pgx.Identifier{q.prefix + "_list"}.Sanitize(),
			pgx.Identifier{q.prefix + "_unread"}.Sanitize(),
			pgx.Identifier{q.prefix + "_created"}.Sanitize()),
		// 2: the key that signs the list's cursors, one row, written by the first CursorKey.
		fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
	one boolean PRIMARY KEY DEFAULT true CHECK (one),
	key bytea NOT NULL CHECK (length(key) >= %[2]d)
);`, q.key, inbox.MinCursorKeyLen),
		// 3: the push subscriptions, one per user and endpoint, and the types each user muted.
		fmt.Sprintf(`
CREATE TABLE IF NOT EXISTS %[1]s (
	user_id    text NOT NULL,
	endpoint   text NOT NULL,
	id         text NOT NULL,
	p256dh     text NOT NULL,
	auth       text NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (user_id, endpoint)
);
CREATE TABLE IF NOT EXISTS %[2]s (
	user_id text PRIMARY KEY,
	types   text[] NOT NULL
);`, q.subs, q.muted),
	}
}

// migrate brings the schema to the current version.
func (s *Store) migrate(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Two nodes starting together: the second waits, then finds the work done.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext($1))`, s.q.version); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+s.q.schema); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.q.version+` (version integer NOT NULL)`); err != nil {
			return err
		}
		var v int
		err := tx.QueryRow(ctx, `SELECT version FROM `+s.q.version).Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, err := tx.Exec(ctx, `INSERT INTO `+s.q.version+` (version) VALUES (0)`); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		all := s.q.migrations()
		if v > len(all) {
			return fmt.Errorf("schema version %d is newer than this code's %d", v, len(all))
		}
		for i, m := range all[v:] {
			if _, err := tx.Exec(ctx, m); err != nil {
				return fmt.Errorf("migration %d: %w", v+i+1, err)
			}
		}
		_, err = tx.Exec(ctx, `UPDATE `+s.q.version+` SET version = $1`, len(all))
		return err
	})
	if err != nil {
		return fmt.Errorf("notify: pginbox: migrate: %w", err)
	}
	return nil
}

// retry runs fn in a transaction, again when PostgreSQL aborted it for a deadlock or a
// serialization failure.
func (s *Store) retry(ctx context.Context, fn func(pgx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, s.pool, fn)
		var pe *pgconn.PgError
		if attempt < 5 && errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001") {
			continue
		}
		return err
	}
}

const columns = `id, type, data, created_at, read_at, seen_at, archived_at`

func scanNote(row pgx.Row) (inbox.Notification, error) {
	var n inbox.Notification
	var data []byte
	var read, seen, archived *time.Time
	if err := row.Scan(&n.ID, &n.Type, &data, &n.CreatedAt, &read, &seen, &archived); err != nil {
		return n, err
	}
	if data != nil {
		n.Data = json.RawMessage(data)
	}
	n.CreatedAt = n.CreatedAt.UTC()
	for _, f := range []struct {
		dst *time.Time
		src *time.Time
	}{{&n.ReadAt, read}, {&n.SeenAt, seen}, {&n.ArchivedAt, archived}} {
		if f.src != nil {
			*f.dst = f.src.UTC()
		}
	}
	return n, nil
}

// List implements [inbox.Store].
func (s *Store) List(ctx context.Context, user string, q inbox.Query, after inbox.Cursor) ([]inbox.Notification, error) {
	var where strings.Builder
	where.WriteString(`user_id = $1`)
	if q.Archived {
		where.WriteString(` AND archived_at IS NOT NULL`)
	} else {
		where.WriteString(` AND archived_at IS NULL`)
	}
	if q.Unread {
		where.WriteString(` AND read_at IS NULL`)
	}
	args := []any{user, q.Limit}
	if !after.IsZero() {
		where.WriteString(` AND (created_at, id) < ($3, $4)`)
		args = append(args, after.CreatedAt, after.ID)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM `+s.q.notes+` WHERE `+where.String()+
		` ORDER BY created_at DESC, id DESC LIMIT $2`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (inbox.Notification, error) { return scanNote(r) })
}

// Counts implements [inbox.Store].
func (s *Store) Counts(ctx context.Context, user string) (inbox.Counts, error) {
	var c inbox.Counts
	err := s.pool.QueryRow(ctx, `SELECT unread, unseen, total FROM `+s.q.counts+` WHERE user_id = $1`, user).
		Scan(&c.Unread, &c.Unseen, &c.Total)
	if errors.Is(err, pgx.ErrNoRows) {
		return inbox.Counts{}, nil
	}
	return c, err
}

// userCounts is a user's counts row: the counts and the notifications stored, archived
// ones included.
type userCounts struct {
	inbox.Counts
	stored int
}

// add adds sign times a notification in state st to c, by inbox's rule of the counts.
func (c *userCounts) add(st inbox.State, sign int) {
	c.stored += sign
	c.Counts.Add(st, sign)
}

// lockCounts locks the users' counts rows, in order, and returns them; users without one
// are missing from the map.
func (s *Store) lockCounts(ctx context.Context, tx pgx.Tx, users []string) (map[string]*userCounts, error) {
	rows, err := tx.Query(ctx, `SELECT user_id, unread, unseen, total, stored FROM `+s.q.counts+
		` WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE`, users)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*userCounts, len(users))
	var user string
	var c userCounts
	_, err = pgx.ForEachRow(rows, []any{&user, &c.Unread, &c.Unseen, &c.Total, &c.stored}, func() error {
		cc := c
		out[user] = &cc
		return nil
	})
	return out, err
}

// saveCounts writes the users' counts rows.
func (s *Store) saveCounts(ctx context.Context, tx pgx.Tx, counts map[string]*userCounts) error {
	n := len(counts)
	users, unread, unseen, total, stored := make([]string, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
	for u, c := range counts {
		users = append(users, u)
		unread, unseen = append(unread, int32(c.Unread)), append(unseen, int32(c.Unseen))
		total, stored = append(total, int32(c.Total)), append(stored, int32(c.stored))
	}
	_, err := tx.Exec(ctx, `UPDATE `+s.q.counts+` c SET unread = x.unread, unseen = x.unseen, total = x.total, stored = x.stored
FROM unnest($1::text[], $2::int[], $3::int[], $4::int[], $5::int[]) AS x(user_id, unread, unseen, total, stored)
WHERE c.user_id = x.user_id`, users, unread, unseen, total, stored)
	return err
}

// opSQL is the assignment and condition of each change: it changes only the rows not
// already so.
var opSQL = map[inbox.Op]struct{ set, cond string }{
	inbox.OpRead:      {"read_at = $3", "read_at IS NULL"},
	inbox.OpUnread:    {"read_at = NULL", "read_at IS NOT NULL"},
	inbox.OpSeen:      {"seen_at = $3", "seen_at IS NULL"},
	inbox.OpArchive:   {"archived_at = $3", "archived_at IS NULL"},
	inbox.OpUnarchive: {"archived_at = NULL", "archived_at IS NOT NULL"},
}

// before returns the state a changed row had before op, from the state after it.
func before(op inbox.Op, st inbox.State) inbox.State {
	switch op {
	case inbox.OpRead, inbox.OpUnread:
		st.Read = !st.Read
	case inbox.OpSeen:
		st.Seen = !st.Seen
	case inbox.OpArchive, inbox.OpUnarchive:
		st.Archived = !st.Archived
	}
	return st
}

// Change implements [inbox.Store].
func (s *Store) Change(ctx context.Context, user string, op inbox.Op, ids []string, at time.Time) ([]string, inbox.Counts, error) {
	var changed []string
	var counts inbox.Counts
	err := s.retry(ctx, func(tx pgx.Tx) error {
		changed = changed[:0]
		locked, err := s.lockCounts(ctx, tx, []string{user})
		if err != nil {
			return err
		}
		c := locked[user]
		if c == nil {
			return inbox.ErrNotFound
		}
		var found int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+s.q.notes+` WHERE user_id = $1 AND id = ANY($2)`, user, ids).Scan(&found); err != nil {
			return err
		}
		if found != len(ids) {
			return inbox.ErrNotFound
		}
		var stmt string
		args := []any{user, ids}
		if op == inbox.OpDelete {
			stmt = `DELETE FROM ` + s.q.notes + ` WHERE user_id = $1 AND id = ANY($2)`
		} else {
			o, ok := opSQL[op]
			if !ok {
				return fmt.Errorf("%w: unknown op %q", inbox.ErrInvalid, op)
			}
			stmt = `UPDATE ` + s.q.notes + ` SET ` + o.set + ` WHERE user_id = $1 AND id = ANY($2) AND ` + o.cond
			if strings.Contains(o.set, "$3") {
				args = append(args, at)
			}
		}
		rows, err := tx.Query(ctx, stmt+` RETURNING id, read_at IS NOT NULL, seen_at IS NOT NULL, archived_at IS NOT NULL`, args...)
		if err != nil {
			return err
		}
		var id string
		var st inbox.State
		if _, err := pgx.ForEachRow(rows, []any{&id, &st.Read, &st.Seen, &st.Archived}, func() error {
			changed = append(changed, id)
			if op == inbox.OpDelete {
				c.add(st, -1)
			} else {
				c.add(before(op, st), -1)
				c.add(st, 1)
			}
			return nil
		}); err != nil {
			return err
		}
		counts = c.Counts
		if len(changed) == 0 {
			return nil
		}
		return s.saveCounts(ctx, tx, locked)
	})
	if err != nil {
		return nil, inbox.Counts{}, err
	}
	return changed, counts, nil
}

// ReadAll implements [inbox.Store].
func (s *Store) ReadAll(ctx context.Context, user string, at time.Time) (int, inbox.Counts, error) {
	var n int
	var counts inbox.Counts
	err := s.retry(ctx, func(tx pgx.Tx) error {
		locked, err := s.lockCounts(ctx, tx, []string{user})
		if err != nil {
			return err
		}
		c := locked[user]
		if c == nil {
			n, counts = 0, inbox.Counts{}
			return nil
		}
		rows, err := tx.Query(ctx, `UPDATE `+s.q.notes+` SET read_at = $2 WHERE user_id = $1 AND read_at IS NULL
RETURNING seen_at IS NOT NULL, archived_at IS NOT NULL`, user, at)
		if err != nil {
			return err
		}
		n = 0
		var st inbox.State
		if _, err := pgx.ForEachRow(rows, []any{&st.Seen, &st.Archived}, func() error {
			n++
			c.add(st, -1)
			st.Read = true
			c.add(st, 1)
			st.Read = false
			return nil
		}); err != nil {
			return err
		}
		counts = c.Counts
		if n == 0 {
			return nil
		}
		return s.saveCounts(ctx, tx, locked)
	})
	if err != nil {
		return 0, inbox.Counts{}, err
	}
	return n, counts, nil
}

// Expire implements [inbox.Store].
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.retry(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT DISTINCT user_id FROM `+s.q.notes+` WHERE created_at < $1`, before)
		if err != nil {
			return err
		}
		users, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || len(users) == 0 {
			n = 0
			return err
		}
		slices.Sort(users)
		locked, err := s.lockCounts(ctx, tx, users)
		if err != nil {
			return err
		}
		n, err = s.deleteCounted(ctx, tx, locked, `DELETE FROM `+s.q.notes+` WHERE user_id = ANY($1) AND created_at < $2`, users, before)
		if err != nil || n == 0 {
			return err
		}
		return s.saveCounts(ctx, tx, locked)
	})
	return n, err
}

// deleteCounted runs a DELETE and takes what it deleted off the locked counts.
func (s *Store) deleteCounted(ctx context.Context, tx pgx.Tx, locked map[string]*userCounts, stmt string, args ...any) (int, error) {
	rows, err := tx.Query(ctx, stmt+` RETURNING user_id, read_at IS NOT NULL, seen_at IS NOT NULL, archived_at IS NOT NULL`, args...)
	if err != nil {
		return 0, err
	}
	n := 0
	var user string
	var st inbox.State
	_, err = pgx.ForEachRow(rows, []any{&user, &st.Read, &st.Seen, &st.Archived}, func() error {
		c := locked[user]
		if c == nil {
			return fmt.Errorf("deleted a notification of %q, whose counts are not locked", user)
		}
		c.add(st, -1)
		n++
		return nil
	})
	return n, err
}
