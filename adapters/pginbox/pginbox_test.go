package pginbox_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/gonotify/notify/adapters/pginbox"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/inbox/inboxtest"
	"github.com/gonotify/notify/internal/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// postgresURL is the PostgreSQL of the tests: NOTIFY_POSTGRES_URL or the local one. The test
// skips when it does not answer, or fails when NOTIFY_REQUIRE_SERVICES=1.
func postgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("NOTIFY_POSTGRES_URL")
	if u == "" {
		u = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err == nil {
		err = c.Ping(ctx)
		c.Close(ctx)
	}
	wstest.RequireService(t, "PostgreSQL at "+u+" (set NOTIFY_POSTGRES_URL)", err)
	return u
}

// schema returns a fresh schema name, dropped with everything in it when the test ends.
func schema(t testing.TB, url string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "inboxtest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("drop schema: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+name+` CASCADE`); err != nil {
			t.Errorf("drop schema: %v", err)
		}
	})
	return name
}

// newStore opens a store on its own schema, closed when the test ends.
func newStore(t testing.TB, opts pginbox.Options) *pginbox.Store {
	t.Helper()
	if opts.URL == "" && opts.Pool == nil {
		opts.URL = postgresURL(t)
	}
	if opts.Schema == "" {
		opts.Schema = schema(t, postgresURL(t))
	}
	s, err := pginbox.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestConformance(t *testing.T) {
	for _, tt := range []struct {
		name    string
		noBatch bool
	}{{"batched", false}, {"one insert each", true}} {
		t.Run(tt.name, func(t *testing.T) {
			inboxtest.Run(t, inboxtest.Harness{
				New: func(t *testing.T) inbox.Store { return newStore(t, pginbox.Options{NoBatch: tt.noBatch}) },
				Outage: func(t *testing.T) (inbox.Store, func()) {
					url := postgresURL(t)
					name := schema(t, url)
					// Migrate directly, then reach the database through a proxy that can cut it.
					newStore(t, pginbox.Options{URL: url, Schema: name})
					cfg, err := pgxpool.ParseConfig(url)
					if err != nil {
						t.Fatal(err)
					}
					p := wstest.NewProxy(t, cfg.ConnConfig.Host+":"+itoa(cfg.ConnConfig.Port))
					cfg.ConnConfig.Host, cfg.ConnConfig.Port = "127.0.0.1", port(t, p.Addr)
					cfg.ConnConfig.ConnectTimeout = 2 * time.Second
					pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(pool.Close)
					s := newStore(t, pginbox.Options{Pool: pool, Schema: name, NoBatch: tt.noBatch})
					return s, p.Outage
				},
			})
		})
	}
}
