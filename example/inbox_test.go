package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gonotify/notify/internal/wstest"
)

// postgresURL is the PostgreSQL the inbox tests share: NOTIFY_POSTGRES_URL or the local one.
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

// pgSchema returns a fresh schema name, dropped when the test ends.
func pgSchema(t testing.TB, url string) string {
	t.Helper()
	name := "example_" + strings.ToLower(rand.Text()[:10])
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

// bearer sends a request with a notify token, as the page's client does, and decodes the JSON
// answer into v.
func bearer(t testing.TB, c *http.Client, token, method, url, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s %s: %d, body: %v", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode
}

// nextInbox reads the session's next inbox event, skipping pings.
func nextInbox(t testing.TB, s *wstest.Client) map[string]any {
	t.Helper()
	for {
		m := s.Next()
		if m["op"] == "ping" {
			continue
		}
		if m["type"] != "inbox" {
			t.Fatalf("frame %v, want an inbox event", m)
		}
		return m["data"].(map[string]any)
	}
}

// sentType is the type of what /demo/send sent to a user: stored in the inbox, it arrives as an
// inbox event whose notification has the type.
func sentType(m map[string]any) string {
	if m["type"] != "inbox" {
		return ""
	}
	d, _ := m["data"].(map[string]any)
	n, _ := d["notification"].(map[string]any)
	s, _ := n["type"].(string)
	return s
}

// Two instances on one Redis and one PostgreSQL: a notification sent through A and marked read
// through A reaches the user's session on B, live, and B's inbox endpoints see the same store.
func TestInboxTwoNodesRedisPostgres(t *testing.T) {
	redis, pg := redisURL(t), postgresURL(t)
	schema := pgSchema(t, pg)
	user := "carol-" + strings.ToLower(rand.Text()[:8]) // other tests may share this Redis
	a, _ := serve(t, options{Demo: true, Redis: redis, Postgres: pg, PostgresSchema: schema, Node: "A"})
	b, _ := serve(t, options{Demo: true, Redis: redis, Postgres: pg, PostgresSchema: schema, Node: "B"})
	token := demoToken(t, b, user)
	s, _ := wstest.Welcome(t, "ws"+strings.TrimPrefix(b.URL, "http")+"/notify/ws", token)

	if status, body := do(t, a.Client(), "POST", a.URL+"/demo/send", "application/json",
		`{"user":"`+user+`","id":"order-7","type":"order.shipped","data":{"text":"shipped"}}`); status != 202 {
		t.Fatalf("send through A: %d %s", status, body)
	}
	ev := nextInbox(t, s)
	if n := ev["notification"].(map[string]any); ev["op"] != "new" || n["id"] != "order-7" || ev["counts"].(map[string]any)["unread"] != 1.0 {
		t.Fatalf("on B: %v", ev)
	}
	var changed struct {
		Counts struct{ Unread, Unseen, Total int }
	}
	if status := bearer(t, a.Client(), token, "POST", a.URL+"/notify/inbox/read", `{"ids":["order-7"]}`, &changed); status != 200 || changed.Counts.Unread != 0 || changed.Counts.Total != 1 {
		t.Fatalf("read through A: %d %+v", status, changed)
	}
	ev = nextInbox(t, s)
	if ids, _ := ev["ids"].([]any); ev["op"] != "read" || len(ids) != 1 || ids[0] != "order-7" || ev["counts"].(map[string]any)["unread"] != 0.0 {
		t.Fatalf("read event on B: %v", ev)
	}
	var page struct {
		Items []struct {
			ID     string `json:"id"`
			ReadAt string `json:"readAt"`
		}
	}
	if status := bearer(t, b.Client(), token, "GET", b.URL+"/notify/inbox/", "", &page); status != 200 || len(page.Items) != 1 || page.Items[0].ID != "order-7" || page.Items[0].ReadAt == "" {
		t.Fatalf("B's list: %d %+v", status, page)
	}
	// A retry of the send through B stores and delivers nothing more.
	if status, body := do(t, b.Client(), "POST", b.URL+"/demo/send", "application/json",
		`{"user":"`+user+`","id":"order-7","type":"order.shipped","data":{"text":"again"}}`); status != 202 {
		t.Fatalf("retry through B: %d %s", status, body)
	}
	var counts struct{ Unread, Unseen, Total int }
	if status := bearer(t, a.Client(), token, "GET", a.URL+"/notify/inbox/counts", "", &counts); status != 200 || counts.Total != 1 || counts.Unread != 0 {
		t.Errorf("counts after the retry: %d %+v", status, counts)
	}
}
