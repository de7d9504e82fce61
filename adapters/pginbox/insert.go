package pginbox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gonotify/notify/inbox"
)

// insertReq is one Insert waiting for the writer.
type insertReq struct {
	user string
	n    inbox.Notification // n.Data is nil or a json.RawMessage
	data *string            // n.Data's JSON, nil for none
	max  int
	done chan insertRes // buffered: the writer never waits for a caller that gave up
}

type insertRes struct {
	n       inbox.Notification
	created bool
	counts  inbox.Counts
	err     error
}

// rawData returns a notification's Data as the JSON to store: Notify hands a store a
// json.RawMessage, and any other value is marshalled as Notify would. Nil for none.
func rawData(v any) (json.RawMessage, error) {
	var raw json.RawMessage
	switch d := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(d) {
			return nil, fmt.Errorf("%w: data is not JSON", inbox.ErrInvalid)
		}
		raw = d
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: data cannot be encoded as JSON: %w", inbox.ErrInvalid, err)
		}
		raw = b
	}
	if string(raw) == "null" {
		return nil, nil
	}
	return raw, nil
}

// writeTimeout bounds a batched insert: the callers that are waiting have contexts of their
// own, but the writer serves them all.
const writeTimeout = 30 * time.Second

// Insert implements [inbox.Store]. With batching on, the call joins the inserts waiting for
// the writer; each batch is one transaction.
func (s *Store) Insert(ctx context.Context, user string, n inbox.Notification, max int) (inbox.Notification, bool, inbox.Counts, error) {
	data, err := rawData(n.Data)
	if err != nil {
		return inbox.Notification{}, false, inbox.Counts{}, err
	}
	n.Data = nil
	req := &insertReq{user: user, n: n, max: max, done: make(chan insertRes, 1)}
	if data != nil {
		req.n.Data = data
		d := string(data)
		req.data = &d
	}
	if s.opts.NoBatch {
		s.insert(ctx, []*insertReq{req})
		r := <-req.done
		return r.n, r.created, r.counts, r.err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return inbox.Notification{}, false, inbox.Counts{}, ErrClosed
	}
	select {
	case s.reqs <- req:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return inbox.Notification{}, false, inbox.Counts{}, ctx.Err()
	}
	select {
	case r := <-req.done:
		return r.n, r.created, r.counts, r.err
	case <-ctx.Done():
		// The insert may still happen: a retry with the same ID finds it.
		return inbox.Notification{}, false, inbox.Counts{}, ctx.Err()
	}
}

// writer writes the queued inserts: it takes the first that comes, with every other one
// queued by then, up to MaxBatch. What arrives while a batch is written goes in the next.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*insertReq, 0, s.opts.MaxBatch)
	for req := range s.reqs {
		batch = append(batch[:0], req)
	gather:
		for len(batch) < s.opts.MaxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		s.insert(ctx, batch)
		cancel()
		clear(batch)
	}
}

// insert writes a batch in one transaction and answers each request.
func (s *Store) insert(ctx context.Context, batch []*insertReq) {
	type key struct{ user, id string }
	first := make(map[key]*insertReq, len(batch)) // the request that inserts each (user, ID)
	var unique []*insertReq
	for _, r := range batch {
		k := key{r.user, r.n.ID}
		if first[k] == nil {
			first[k] = r
			unique = append(unique, r)
		}
	}
	users := make([]string, 0, len(unique))
	for _, r := range unique {
		users = append(users, r.user)
	}
	slices.Sort(users)
	users = slices.Compact(users)

	results := make(map[key]insertRes, len(unique))
	var counts map[string]*userCounts
	// The counts rows exist before the transaction locks them, in the order of users.
	_, err := s.pool.Exec(ctx, `INSERT INTO `+s.q.counts+` (user_id) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`, users)
	if err == nil {
		err = s.retry(ctx, func(tx pgx.Tx) error {
			clear(results)
			var err error
			if counts, err = s.lockCounts(ctx, tx, users); err != nil {
				return err
			}
			n := len(unique)
			us, ids, types, created := make([]string, n), make([]string, n), make([]string, n), make([]time.Time, n)
			data := make([]*string, n)
			for i, r := range unique {
				us[i], ids[i], types[i], created[i], data[i] = r.user, r.n.ID, r.n.Type, r.n.CreatedAt, r.data
			}
			rows, err := tx.Query(ctx, `INSERT INTO `+s.q.notes+` (user_id, id, type, data, created_at)
SELECT u, i, t, d::json, c FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[]) AS x(u, i, t, d, c)
ON CONFLICT (user_id, id) DO NOTHING RETURNING user_id, id`, us, ids, types, data, created)
			if err != nil {
				return err
			}
			var k key
			if _, err := pgx.ForEachRow(rows, []any{&k.user, &k.id}, func() error {
				r := first[k]
				results[k] = insertRes{n: r.n, created: true}
				counts[k.user].add(inbox.State{}, 1)
				return nil
			}); err != nil {
				return err
			}
			// The ones that were there already: return them as stored.
			var oldUsers, oldIDs []string
			for _, r := range unique {
				if _, ok := results[key{r.user, r.n.ID}]; !ok {
					oldUsers, oldIDs = append(oldUsers, r.user), append(oldIDs, r.n.ID)
				}
			}
			if len(oldIDs) > 0 {
				rows, err := tx.Query(ctx, `SELECT user_id, `+columns+` FROM `+s.q.notes+
					` WHERE (user_id, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, oldUsers, oldIDs)
				if err != nil {
					return err
				}
				for rows.Next() {
					var user string
					n, err := scanNote(prefixed{rows, &user})
					if err != nil {
						rows.Close()
						return err
					}
					results[key{user, n.ID}] = insertRes{n: n}
				}
				if err := rows.Err(); err != nil {
					return err
				}
			}
			// Retention: the users over their maximum lose their oldest.
			maxOf := make(map[string]int, len(users))
			for _, r := range unique {
				if m, ok := maxOf[r.user]; !ok || r.max < m {
					maxOf[r.user] = r.max
				}
			}
			var over []string
			var maxes []int32
			for _, u := range users {
				if counts[u].stored > maxOf[u] {
					over, maxes = append(over, u), append(maxes, int32(maxOf[u]))
				}
			}
			if len(over) > 0 {
				if _, err := s.deleteCounted(ctx, tx, counts, `DELETE FROM `+s.q.notes+` WHERE (user_id, id) IN (
SELECT o.user_id, o.id FROM unnest($1::text[], $2::int[]) AS u(user_id, keep)
CROSS JOIN LATERAL (SELECT user_id, id FROM `+s.q.notes+` n WHERE n.user_id = u.user_id
	ORDER BY created_at DESC, id DESC OFFSET u.keep) o)`, over, maxes); err != nil {
					return err
				}
			}
			return s.saveCounts(ctx, tx, counts)
		})
	}
	for _, r := range batch {
		res := insertRes{err: err}
		if err == nil {
			k := key{r.user, r.n.ID}
			res = results[k]
			if first[k] != r {
				res.created = false // a duplicate within the batch
			}
			res.counts = counts[r.user].Counts
		}
		r.done <- res
	}
}

// prefixed scans a user_id column ahead of a notification's columns.
type prefixed struct {
	rows pgx.Rows
	user *string
}

func (p prefixed) Scan(dest ...any) error { return p.rows.Scan(append([]any{p.user}, dest...)...) }
