package pginbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/inbox"
)

// BenchmarkNotifyConcurrent stores and delivers notifications from 32 concurrent senders
// through an Inbox on PostgreSQL, with inserts batched and with one INSERT per notification,
// and reports notifications/s and the p99 of a Notify. Run it with, for example:
//
//	go test -run '^$' -bench NotifyConcurrent -benchtime 20000x ./adapters/pginbox/
func BenchmarkNotifyConcurrent(b *testing.B) {
	for _, bb := range []struct {
		name    string
		noBatch bool
	}{{"batched", false}, {"one-insert-each", true}} {
		b.Run(bb.name, func(b *testing.B) {
			store := newStore(b, pginbox.Options{NoBatch: bb.noBatch})
			hub, err := notify.New(notify.Config{Secret: []byte("bench-secret-0123456789abcdef0123")})
			if err != nil {
				b.Fatal(err)
			}
			defer hub.Shutdown(context.Background())
			ib, err := inbox.New(hub, inbox.Config{Store: store})
			if err != nil {
				b.Fatal(err)
			}
			defer ib.Close()
			const senders = 32
			lat := make([][]time.Duration, senders)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for s := range senders {
				wg.Go(func() {
					for i := s; i < b.N; i += senders {
						t0 := time.Now()
						_, _, err := ib.Notify(ctx, fmt.Sprint("user", i%1000), inbox.Notification{Type: "bench", Data: json.RawMessage(`{"text":"hello"}`)})
						lat[s] = append(lat[s], time.Since(t0))
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "notifications/s")
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkBigTable measures List and Counts for a user with 10,000 notifications in a table
// of 1,000,000. Seeding takes a while, so it runs only with NOTIFY_BENCH_BIG=1, and the
// seeded schema (notify_inbox_bench) is kept for the next run:
//
//	NOTIFY_BENCH_BIG=1 go test -run '^$' -bench BigTable -benchtime 2000x ./adapters/pginbox/
//
// Drop it afterwards with DROP SCHEMA notify_inbox_bench CASCADE.
func BenchmarkBigTable(b *testing.B) {
	if os.Getenv("NOTIFY_BENCH_BIG") != "1" {
		b.Skip("set NOTIFY_BENCH_BIG=1 to seed 1,000,000 notifications and run it")
	}
	url := postgresURL(b)
	const name = "notify_inbox_bench"
	store := newStore(b, pginbox.Options{URL: url, Schema: name})
	ctx := context.Background()
	seedBig(b, store, name)
	pages := []struct {
		name string
		q    inbox.Query
	}{
		{"List/first-page", inbox.Query{Limit: 20}},
		{"List/unread", inbox.Query{Limit: 20, Unread: true}},
		{"List/page-400", inbox.Query{Limit: 20}},
	}
	// The cursor of page 400: 7,980 notifications down.
	all, err := store.List(ctx, "big", inbox.Query{Limit: 7980}, inbox.Cursor{})
	if err != nil || len(all) != 7980 {
		b.Fatalf("seeded list: %d, %v", len(all), err)
	}
	last := all[len(all)-1]
	for _, p := range pages {
		b.Run(p.name, func(b *testing.B) {
			after := inbox.Cursor{}
			if p.name == "List/page-400" {
				after = inbox.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
			}
			for b.Loop() {
				items, err := store.List(ctx, "big", p.q, after)
				if err != nil || len(items) != 20 {
					b.Fatalf("%d items, %v", len(items), err)
				}
			}
		})
	}
	b.Run("Counts", func(b *testing.B) {
		for b.Loop() {
			c, err := store.Counts(ctx, "big")
			if err != nil || c.Total != 10_000 {
				b.Fatalf("%+v, %v", c, err)
			}
		}
	})
}

// seedBig fills the schema once: user "big" with 10,000 notifications, half of them read,
// and 9,900 other users with 100 each.
func seedBig(b *testing.B, store *pginbox.Store, schema string) {
	b.Helper()
	ctx := context.Background()
	notes, counts := pgx.Identifier{schema, "notify_inbox_notifications"}.Sanitize(), pgx.Identifier{schema, "notify_inbox_counts"}.Sanitize()
	var n int
	if err := store.Pool().QueryRow(ctx, `SELECT count(*) FROM `+notes).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == 1_000_000 {
		return
	}
	b.Logf("seeding 1,000,000 notifications in %s (once)", schema)
	for _, stmt := range []string{
		`TRUNCATE ` + notes + `, ` + counts,
		`INSERT INTO ` + notes + ` (user_id, id, type, data, created_at, read_at)
SELECT CASE WHEN g <= 10000 THEN 'big' ELSE 'u' || (g % 9900) END, 'n' || g, 'bench', '{"text":"hello"}',
	now() - (g || ' seconds')::interval, CASE WHEN g % 2 = 0 THEN now() END
FROM generate_series(1, 1000000) AS g`,
		`INSERT INTO ` + counts + ` (user_id, unread, unseen, total, stored)
SELECT user_id, count(*) FILTER (WHERE read_at IS NULL), count(*), count(*), count(*) FROM ` + notes + ` GROUP BY user_id`,
		`ANALYZE ` + notes,
		`ANALYZE ` + counts,
	} {
		if _, err := store.Pool().Exec(ctx, stmt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNotFound compares the time of a change to an ID that does not exist with one to an
// ID of another user's notification: both must be answered ErrNotFound, alike and as fast.
//
//	go test -run '^$' -bench NotFound -benchtime 2000x -count 5 ./adapters/pginbox/
func BenchmarkNotFound(b *testing.B) {
	store := newStore(b, pginbox.Options{})
	ctx := context.Background()
	for i := range 100 {
		for _, user := range []string{"alice", "bob"} {
			n := inbox.Notification{ID: fmt.Sprint(user, i), Type: "t", CreatedAt: time.Now()}
			if _, _, _, err := store.Insert(ctx, user, n, 1000); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, bb := range []struct{ name, id string }{{"unknown", "nobody50"}, {"another-users", "bob50"}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := store.Change(ctx, "alice", inbox.OpRead, []string{bb.id}, time.Now()); err != inbox.ErrNotFound {
					b.Fatalf("%v, want ErrNotFound", err)
				}
			}
		})
	}
}
