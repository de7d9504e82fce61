package pginbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/inbox"
)

func TestOptionsErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts pginbox.Options
		want string
	}{
		{"no database", pginbox.Options{}, "notify: invalid config: pginbox needs URL or Pool"},
		{"schema with a quote", pginbox.Options{URL: "postgres://x", Schema: `a"b`}, "notify: invalid config: pginbox Schema and Prefix must be lower-case identifiers of up to 41 letters, digits and '_'"},
		{"prefix in capitals", pginbox.Options{URL: "postgres://x", Prefix: "Inbox"}, "notify: invalid config: pginbox Schema and Prefix must be lower-case identifiers of up to 41 letters, digits and '_'"},
		{"negative MaxBatch", pginbox.Options{URL: "postgres://x", MaxBatch: -1}, "notify: invalid config: pginbox MaxBatch is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := pginbox.New(context.Background(), tt.opts)
			if s != nil || !errors.Is(err, notify.ErrConfig) || err.Error() != tt.want {
				t.Errorf("New: %v, %v; want %q", s, err, tt.want)
			}
		})
	}
}

// New on a schema that is there already leaves it as it is; a schema of a newer version is
// refused.
func TestMigrate(t *testing.T) {
	url := postgresURL(t)
	name := schema(t, url)
	ctx := context.Background()
	s1 := newStore(t, pginbox.Options{Schema: name, Prefix: "app_inbox"})
	if _, _, _, err := s1.Insert(ctx, "alice", inbox.Notification{ID: "a", Type: "t", CreatedAt: time.Now()}, 10); err != nil {
		t.Fatal(err)
	}
	// Two nodes starting at once.
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { newStore(t, pginbox.Options{Schema: name, Prefix: "app_inbox"}) })
	}
	wg.Wait()
	if c, err := s1.Counts(ctx, "alice"); err != nil || c.Total != 1 {
		t.Errorf("after a second New: %+v, %v", c, err)
	}
	var v int
	if err := s1.Pool().QueryRow(ctx, `SELECT version FROM `+name+`.app_inbox_version`).Scan(&v); err != nil || v != 3 {
		t.Errorf("version %d, %v; want 3", v, err)
	}
	// A database of the second version (before push) gains the push tables, data kept.
	if _, err := s1.Pool().Exec(ctx, `DROP TABLE `+name+`.app_inbox_push_subscriptions, `+name+`.app_inbox_push_muted; UPDATE `+name+`.app_inbox_version SET version = 2`); err != nil {
		t.Fatal(err)
	}
	s2 := newStore(t, pginbox.Options{Schema: name, Prefix: "app_inbox"})
	if _, _, err := s2.AddSubscription(ctx, inbox.Subscription{User: "alice", Endpoint: "https://push.test/1", ID: "s1", CreatedAt: time.Now()}, 10); err != nil {
		t.Errorf("AddSubscription after the migration from version 2: %v", err)
	}
	if c, err := s2.Counts(ctx, "alice"); err != nil || c.Total != 1 {
		t.Errorf("after the migration from version 2: %+v, %v", c, err)
	}
	// A database of the first version (before the cursor key) gains the key's table.
	if _, err := s1.Pool().Exec(ctx, `DROP TABLE `+name+`.app_inbox_key; UPDATE `+name+`.app_inbox_version SET version = 1`); err != nil {
		t.Fatal(err)
	}
	if key, err := newStore(t, pginbox.Options{Schema: name, Prefix: "app_inbox"}).CursorKey(ctx); err != nil || len(key) != inbox.MinCursorKeyLen {
		t.Errorf("CursorKey after the migration from version 1: %x, %v", key, err)
	}
	if c, err := s1.Counts(ctx, "alice"); err != nil || c.Total != 1 {
		t.Errorf("after the migration from version 1: %+v, %v", c, err)
	}
	if _, err := s1.Pool().Exec(ctx, `UPDATE `+name+`.app_inbox_version SET version = 7`); err != nil {
		t.Fatal(err)
	}
	s, err := pginbox.New(ctx, pginbox.Options{URL: url, Schema: name, Prefix: "app_inbox"})
	if s != nil || err == nil || !strings.Contains(err.Error(), "schema version 7 is newer than this code's 3") {
		t.Errorf("New on a newer schema: %v", err)
	}
}

// Inserts that arrive while one is being written go together in the next: 64 concurrent
// inserts are two INSERT statements when the first waits until the other 63 are queued.
func TestBatching(t *testing.T) {
	url := postgresURL(t)
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	tr := &insertTracer{release: make(chan struct{})}
	cfg.ConnConfig.Tracer = tr
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s := newStore(t, pginbox.Options{Pool: pool, Schema: schema(t, url)})
	ctx := context.Background()
	var wg sync.WaitGroup
	insert := func(i int) {
		n := inbox.Notification{ID: fmt.Sprint("n", i), Type: "t", CreatedAt: time.Now()}
		if _, created, _, err := s.Insert(ctx, fmt.Sprint("user", i%5), n, 1000); err != nil || !created {
			t.Errorf("Insert %d: %v, created %v", i, err, created)
		}
	}
	wg.Go(func() { insert(0) })
	waitFor(t, "the first insert to start", func() bool { return tr.inserts.Load() == 1 })
	for i := 1; i < 64; i++ {
		wg.Go(func() { insert(i) })
	}
	waitFor(t, "63 inserts queued", func() bool { return s.Queued() == 63 })
	close(tr.release)
	wg.Wait()
	if n := tr.inserts.Load(); n != 2 {
		t.Errorf("%d INSERT statements for 64 notifications, want 2", n)
	}
	var total int
	for u := range 5 {
		c, err := s.Counts(ctx, fmt.Sprint("user", u))
		if err != nil {
			t.Fatal(err)
		}
		total += c.Total
	}
	if total != 64 {
		t.Errorf("total %d, want 64", total)
	}
	// Closed: what is queued was written; what comes after is refused.
	s.Close()
	s.Close()
	if _, _, _, err := s.Insert(ctx, "user0", inbox.Notification{ID: "late", Type: "t", CreatedAt: time.Now()}, 1000); !errors.Is(err, pginbox.ErrClosed) {
		t.Errorf("Insert after Close: %v, want ErrClosed", err)
	}
}

// insertTracer counts the INSERTs into the notifications and holds the first until release.
type insertTracer struct {
	inserts atomic.Int32
	release chan struct{}
}

func (tr *insertTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if strings.Contains(d.SQL, `_notifications" (user_id, id, type, data, created_at)`) {
		if tr.inserts.Add(1) == 1 {
			<-tr.release
		}
	}
	return ctx
}

func (*insertTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A notification's data comes back byte for byte: the column is json, not jsonb.
func TestDataKeptAsGiven(t *testing.T) {
	s := newStore(t, pginbox.Options{})
	ctx := context.Background()
	data := `{"b": 1,  "a":[true,null], "b": 2}`
	if _, _, _, err := s.Insert(ctx, "alice", inbox.Notification{ID: "x", Type: "t", Data: json.RawMessage(data), CreatedAt: time.Now()}, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.Insert(ctx, "alice", inbox.Notification{ID: "y", Type: "t", CreatedAt: time.Now()}, 10); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, "alice", inbox.Query{Limit: 10}, inbox.Cursor{})
	if err != nil || len(got) != 2 {
		t.Fatalf("List: %v, %v", got, err)
	}
	byID := map[string]any{got[0].ID: got[0].Data, got[1].ID: got[1].Data}
	if raw, ok := byID["x"].(json.RawMessage); !ok || string(raw) != data || byID["y"] != nil {
		t.Errorf("data = %#v, want x's as a json.RawMessage of %s and none for y", byID, data)
	}
}

// Insert called directly (not through Notify) takes Data of any type as Notify does, and
// refuses data that is not JSON with inbox.ErrInvalid.
func TestInsertDataOfAnyType(t *testing.T) {
	s := newStore(t, pginbox.Options{NoBatch: true})
	ctx := context.Background()
	for i, tt := range []struct {
		name string
		data any
		want string // stored JSON, "" for none
		err  string
	}{
		{"struct", struct {
			A int `json:"a"`
		}{1}, `{"a":1}`, ""},
		{"JSON null", json.RawMessage(`null`), "", ""},
		{"string", "s", `"s"`, ""},
		{"raw JSON that is not JSON", json.RawMessage(`{`), "", "notify: invalid inbox request: data is not JSON"},
		{"a channel", make(chan int), "", "notify: invalid inbox request: data cannot be encoded as JSON: json: unsupported type: chan int"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprint("n", i)
			n, _, _, err := s.Insert(ctx, "alice", inbox.Notification{ID: id, Type: "t", Data: tt.data, CreatedAt: time.Now()}, 10)
			if tt.err != "" {
				if !errors.Is(err, inbox.ErrInvalid) || err.Error() != tt.err {
					t.Fatalf("Insert: %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.List(ctx, "alice", inbox.Query{Limit: 10}, inbox.Cursor{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range append(got, n) {
				if m.ID != id {
					continue
				}
				raw, _ := m.Data.(json.RawMessage)
				if string(raw) != tt.want || (tt.want == "") != (m.Data == nil) {
					t.Errorf("data = %#v, want %s", m.Data, tt.want)
				}
			}
		})
	}
}

// Stores on the same tables (the nodes of an app) return the same cursor key, also when they
// ask for it first at the same time; a store on other tables has another.
func TestCursorKeySharedByStores(t *testing.T) {
	url := postgresURL(t)
	name := schema(t, url)
	stores := make([]*pginbox.Store, 8)
	for i := range stores {
		stores[i] = newStore(t, pginbox.Options{URL: url, Schema: name})
	}
	keys := make([][]byte, len(stores))
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() { keys[i], errs[i] = s.CursorKey(context.Background()) })
	}
	wg.Wait()
	for i := range stores {
		if errs[i] != nil || len(keys[i]) != inbox.MinCursorKeyLen || !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("store %d: key %x, %v; want the key of store 0, %x", i, keys[i], errs[i], keys[0])
		}
	}
	other, err := newStore(t, pginbox.Options{URL: url, Schema: name, Prefix: "other"}).CursorKey(context.Background())
	if err != nil || bytes.Equal(other, keys[0]) {
		t.Errorf("store on other tables: key %x, %v; want another key", other, err)
	}
}

// The list's queries can read an index in order: no sort, whatever the table's size (the
// planner is kept off the other plans, so that a small table shows what a large one can use).
func TestListUsesIndex(t *testing.T) {
	url := postgresURL(t)
	name := schema(t, url)
	s := newStore(t, pginbox.Options{Schema: name})
	ctx := context.Background()
	notes := pgx.Identifier{name, "notify_inbox_notifications"}.Sanitize()
	for _, tt := range []struct{ name, where string }{
		{"inbox", "user_id = $1 AND archived_at IS NULL"},
		{"unread", "user_id = $1 AND archived_at IS NULL AND read_at IS NULL"},
		{"after a cursor", "user_id = $1 AND archived_at IS NULL AND (created_at, id) < ($2, $3)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tx, err := s.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			// Plans other than an index read in order cost as if impossible: a Sort shows only when
			// no index gives the order.
			for _, off := range []string{"enable_seqscan", "enable_bitmapscan", "enable_sort"} {
				if _, err := tx.Exec(ctx, `SET LOCAL `+off+` = off`); err != nil {
					t.Fatal(err)
				}
			}
			args := []any{"alice"}
			if strings.Contains(tt.where, "$2") {
				args = append(args, time.Now(), "x")
			}
			rows, err := tx.Query(ctx, `EXPLAIN SELECT id FROM `+notes+` WHERE `+tt.where+` ORDER BY created_at DESC, id DESC LIMIT 21`, args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			if !strings.Contains(plan, "Index") || strings.Contains(plan, "Sort") {
				t.Errorf("plan:\n%s", plan)
			}
		})
	}
}
