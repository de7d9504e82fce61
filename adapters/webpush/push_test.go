package webpush_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// A notification for a user with no session arrives at the push service, signed and
// encrypted, with the payload the contract gives; its ack marks it seen, then read.
func TestPushEndToEnd(t *testing.T) {
	e := newEnv(t, options{sender: func(c *webpush.Config) {
		c.Display = func(n inbox.Notification) webpush.Display {
			return webpush.Display{Title: "Shipped", Body: "Order 42 is on its way", Icon: "/icon.png", URL: "/orders/42"}
		}
	}})
	status, body := e.do("alice", "GET", "push/key", nil)
	if want := `{"publicKey":"` + e.ps.vapid + `"}` + "\n"; status != 200 || body != want {
		t.Fatalf("GET push/key: %d %s, want 200 %s", status, body, want)
	}
	endpoint := e.subscribe("alice")
	rep := e.notify("alice", inbox.Notification{ID: "order-42", Type: "order.shipped"})
	if rep.Nodes != 0 {
		t.Errorf("Report.Nodes = %d, want 0: alice has no session", rep.Nodes)
	}
	got := e.pushes(endpoint, 1)[0]
	ack, _ := got.payload["ack"].(string)
	want := map[string]any{"v": 1.0, "id": "order-42", "type": "order.shipped", "title": "Shipped",
		"body": "Order 42 is on its way", "icon": "/icon.png", "url": "/orders/42", "tag": "order-42",
		"ack": ack, "ackURL": "/notify/inbox/push/ack"}
	if ack == "" || fmt.Sprint(got.payload) != fmt.Sprint(want) {
		t.Errorf("payload = %v\nwant %v", got.payload, want)
	}
	if ttl, _ := strconv.Atoi(got.header.Get("TTL")); ttl <= 0 || ttl > 86400 {
		t.Errorf("TTL = %q, want 1 to 86400 seconds", got.header.Get("TTL"))
	}
	if u := got.header.Get("Urgency"); u != "normal" {
		t.Errorf("Urgency = %q, want normal", u)
	}
	if topic := got.header.Get("Topic"); len(topic) != 32 || strings.Trim(topic, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("Topic = %q, want 32 characters of base64url", topic)
	}
	// The service worker has no token: the ack is its authorization.
	status, body = e.do("", "POST", "push/ack", map[string]string{"ack": ack, "op": "seen"})
	if want := `{"counts":{"unread":1,"unseen":0,"total":1}}` + "\n"; status != 200 || body != want {
		t.Errorf("POST push/ack seen: %d %s, want 200 %s", status, body, want)
	}
	status, body = e.do("", "POST", "push/ack", map[string]string{"ack": ack, "op": "read"})
	if want := `{"counts":{"unread":0,"unseen":0,"total":1}}` + "\n"; status != 200 || body != want {
		t.Errorf("POST push/ack read: %d %s, want 200 %s", status, body, want)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(ack)
	raw[0] ^= 1
	forged := base64.RawURLEncoding.EncodeToString(raw)
	for _, tt := range []struct {
		name string
		body any
		want string
	}{
		{"forged", map[string]string{"ack": forged, "op": "read"}, `{"error":"bad_request","reason":"invalid or expired ack"}`},
		{"empty", map[string]string{"ack": "", "op": "read"}, `{"error":"bad_request","reason":"invalid or expired ack"}`},
		{"an op the ack does not allow", map[string]string{"ack": ack, "op": "delete"}, `{"error":"bad_request","reason":"op must be seen or read"}`},
		{"not JSON", "{", `{"error":"bad_request","reason":"body must be {\"ack\":\"...\",\"op\":\"seen\"}"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do("", "POST", "push/ack", tt.body)
			if status != 400 || body != tt.want+"\n" {
				t.Errorf("POST push/ack: %d %s, want 400 %s", status, body, tt.want)
			}
		})
	}
	if c, _ := e.ib.Counts(context.Background(), "alice"); c != (inbox.Counts{Unread: 0, Unseen: 0, Total: 1}) {
		t.Errorf("counts after the refused acks: %+v", c)
	}
}

// A notification past its age is not pushed, and the ack of one expires with it.
func TestAckExpired(t *testing.T) {
	e := newEnv(t, options{inbox: func(c *inbox.Config) { c.MaxAge = time.Hour }})
	endpoint := e.subscribe("alice")
	e.notify("alice", inbox.Notification{ID: "old", Type: "t", CreatedAt: time.Now().Add(-2 * time.Hour)})
	e.notify("alice", inbox.Notification{ID: "soon", Type: "t", CreatedAt: time.Now().Add(-time.Hour + 1500*time.Millisecond)})
	got := e.pushes(endpoint, 1)
	if got[0].payload["id"] != "soon" {
		t.Fatalf("pushed %v, want only the one still kept", got[0].payload)
	}
	ack := got[0].payload["ack"].(string)
	if status, body := e.do("", "POST", "push/ack", map[string]string{"ack": ack, "op": "seen"}); status != 200 {
		t.Fatalf("POST push/ack before it expires: %d %s, want 200", status, body)
	}
	wstest.WaitFor(t, "the ack to expire", func() bool {
		status, body := e.do("", "POST", "push/ack", map[string]string{"ack": ack, "op": "read"})
		return status == 400 && body == `{"error":"bad_request","reason":"invalid or expired ack"}`+"\n"
	})
}

// Subscriptions that must not be added are refused with 400 and nothing is stored or sent.
func TestSubscriptionRefused(t *testing.T) {
	strict := newEnv(t, options{})
	anyHost := newEnv(t, options{sender: func(c *webpush.Config) { c.Hosts = []string{"*"} }})
	endpoint, p256dh, auth := strict.ps.subscribe()
	notOnCurve := base64.RawURLEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...))
	short := base64.RawURLEncoding.EncodeToString(make([]byte, 15))
	for _, tt := range []struct {
		name   string
		e      *env
		body   any
		status int
		reason string
	}{
		{"http", strict, subscription(strings.Replace(endpoint, "https:", "http:", 1), p256dh, auth), 400, "endpoint must be https"},
		{"not on the allowlist", strict, subscription("https://push.example.net/x", p256dh, auth), 400, "push.example.net is not an allowed push service"},
		{"allowlisted through a wildcard, not exactly", newEnv(t, options{sender: func(c *webpush.Config) { c.Hosts = []string{"*.example.net"} }}),
			subscription("https://example.net/x", p256dh, auth), 400, "not an allowed push service"},
		{"private IPv4", anyHost, subscription("https://10.1.2.3/x", p256dh, auth), 400, "10.1.2.3 is a private address"},
		{"loopback", anyHost, subscription("https://127.0.0.1:8443/x", p256dh, auth), 400, "127.0.0.1 is a private address"},
		{"loopback IPv6", anyHost, subscription("https://[::1]/x", p256dh, auth), 400, "::1 is a private address"},
		{"link-local (cloud metadata)", anyHost, subscription("https://169.254.169.254/x", p256dh, auth), 400, "is a private address"},
		{"IPv4-mapped private", anyHost, subscription("https://[::ffff:192.168.0.1]/x", p256dh, auth), 400, "is a private address"},
		{"user info", strict, subscription(strings.Replace(endpoint, "https://", "https://u:p@", 1), p256dh, auth), 400, "https://host/path"},
		{"p256dh too short", strict, subscription(endpoint, short, auth), 400, "keys.p256dh must be"},
		{"p256dh not on the curve", strict, subscription(endpoint, notOnCurve, auth), 400, "not a point on P-256"},
		{"p256dh not base64url", strict, subscription(endpoint, "!!"+p256dh[2:], auth), 400, "keys.p256dh must be"},
		{"auth of 15 bytes", strict, subscription(endpoint, p256dh, short), 400, "keys.auth must be"},
		{"no keys", strict, map[string]any{"endpoint": endpoint}, 400, "endpoint of 1 to 2048 bytes and keys required"},
		{"no endpoint", strict, subscription("", p256dh, auth), 400, "endpoint of 1 to 2048 bytes"},
		{"endpoint too long", strict, subscription(endpoint+strings.Repeat("x", 2048), p256dh, auth), 400, "endpoint of 1 to 2048 bytes"},
		{"not JSON", strict, "{", 400, "body must be PushSubscription.toJSON()"},
		{"over the body limit", strict, `{"endpoint":"` + strings.Repeat("x", 40<<10) + `"}`, 413, "request body too large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := tt.e.do("alice", "POST", "push/subscriptions", tt.body)
			code := map[int]string{400: "bad_request", 413: "too_large"}[tt.status]
			if status != tt.status || !strings.HasPrefix(body, `{"error":"`+code+`","reason":"`) || !strings.Contains(body, tt.reason) {
				t.Errorf("POST push/subscriptions: %d %s, want %d %s with %q", status, body, tt.status, code, tt.reason)
			}
		})
	}
	for _, e := range []*env{strict, anyHost} {
		if status, body := e.do("alice", "GET", "push/subscriptions", nil); status != 200 || body != `{"items":[]}`+"\n" {
			t.Errorf("GET push/subscriptions: %d %s, want none stored", status, body)
		}
		e.notify("alice", inbox.Notification{Type: "t"})
	}
	strict.sender.Close(context.Background())
	if _, n := strict.ps.got(endpoint); n != 0 || strict.sender.Stats() != (webpush.Stats{}) {
		t.Errorf("the push service got %d requests, stats %+v; want nothing sent", n, strict.sender.Stats())
	}
}

// The same subscription twice is one row; past the cap a new one is refused with 409.
func TestSubscriptionTwiceAndCap(t *testing.T) {
	e := newEnv(t, options{inbox: func(c *inbox.Config) { c.MaxSubscriptions = 2 }})
	endpoint, p, a := e.ps.subscribe()
	status, first := e.do("alice", "POST", "push/subscriptions", subscription(endpoint, p, a))
	if status != 201 || !strings.HasPrefix(first, `{"id":"`) {
		t.Fatalf("first POST: %d %s, want 201 and an id", status, first)
	}
	status, again := e.do("alice", "POST", "push/subscriptions", subscription(endpoint, p, a))
	if status != 200 || again != first {
		t.Errorf("the same again: %d %s, want 200 %s", status, again, first)
	}
	// Another user's subscription of the same endpoint is theirs: it does not count here.
	if status, _ := e.do("bob", "POST", "push/subscriptions", subscription(endpoint, p, a)); status != 201 {
		t.Errorf("bob's: %d, want 201", status)
	}
	e.subscribe("alice")
	other, p2, a2 := e.ps.subscribe()
	status, body := e.do("alice", "POST", "push/subscriptions", subscription(other, p2, a2))
	if want := `{"error":"too_many","reason":"too many push subscriptions"}` + "\n"; status != 409 || body != want {
		t.Errorf("past the cap: %d %s, want 409 %s", status, body, want)
	}
	// Known ones are still answered.
	if status, body := e.do("alice", "POST", "push/subscriptions", subscription(endpoint, p, a)); status != 200 || body != first {
		t.Errorf("a known one at the cap: %d %s, want 200 %s", status, body, first)
	}
	subs, err := e.ib.Subscriptions(context.Background(), "alice")
	if err != nil || len(subs) != 2 {
		t.Fatalf("alice's subscriptions: %d, %v; want 2", len(subs), err)
	}
	status, body = e.do("alice", "GET", "push/subscriptions", nil)
	var list struct {
		Items []struct{ ID, Endpoint, CreatedAt string }
	}
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list.Items) != 2 {
		t.Fatalf("GET push/subscriptions: %d %s", status, body)
	}
	short := e.ps.srv.URL + "…" + endpoint[len(endpoint)-8:]
	if it := list.Items[0]; `{"id":"`+it.ID+`"}`+"\n" != first || it.Endpoint != short {
		t.Errorf("first item %+v, want id of %s and endpoint %s", it, first, short)
	}
	if _, err := time.Parse(time.RFC3339, list.Items[0].CreatedAt); err != nil {
		t.Errorf("createdAt %q: %v", list.Items[0].CreatedAt, err)
	}
	if strings.Contains(body, endpoint[len(e.ps.srv.URL):len(endpoint)-8]) {
		t.Errorf("the list shows the endpoint's secret path: %s", body)
	}
}

// A user removes only their own subscriptions: another user's endpoint answers as absent.
func TestDeleteSubscription(t *testing.T) {
	e := newEnv(t, options{})
	bobs := e.subscribe("bob")
	alices := e.subscribe("alice")
	for _, tt := range []struct {
		name, endpoint string
	}{{"bob's", bobs}, {"unknown", e.ps.srv.URL + "/push/none"}, {"hers", alices}, {"hers again", alices}} {
		if status, body := e.do("alice", "DELETE", "push/subscriptions", map[string]string{"endpoint": tt.endpoint}); status != 204 || body != "" {
			t.Errorf("DELETE %s: %d %q, want 204 and no body", tt.name, status, body)
		}
	}
	if subs, _ := e.ib.Subscriptions(context.Background(), "alice"); len(subs) != 0 {
		t.Errorf("alice has %d subscriptions, want 0", len(subs))
	}
	subs, _ := e.ib.Subscriptions(context.Background(), "bob")
	if len(subs) != 1 || subs[0].Endpoint != bobs {
		t.Fatalf("bob's subscriptions: %+v, want his one", subs)
	}
	e.notify("bob", inbox.Notification{ID: "b1", Type: "t"})
	e.pushes(bobs, 1)
}

// Muted types are not pushed; the preferences are bounded.
func TestPreferences(t *testing.T) {
	e := newEnv(t, options{})
	endpoint := e.subscribe("alice")
	if status, body := e.do("alice", "GET", "push/preferences", nil); status != 200 || body != `{"muted":[]}`+"\n" {
		t.Errorf("GET push/preferences: %d %s", status, body)
	}
	status, body := e.do("alice", "PUT", "push/preferences", map[string]any{"muted": []string{"noisy", "chatty", "noisy"}})
	if want := `{"muted":["chatty","noisy"]}` + "\n"; status != 200 || body != want {
		t.Errorf("PUT push/preferences: %d %s, want %s", status, body, want)
	}
	if status, body := e.do("alice", "GET", "push/preferences", nil); status != 200 || body != `{"muted":["chatty","noisy"]}`+"\n" {
		t.Errorf("GET push/preferences after PUT: %d %s", status, body)
	}
	e.notify("alice", inbox.Notification{ID: "n1", Type: "noisy"})
	e.notify("alice", inbox.Notification{ID: "n2", Type: "wanted"})
	if got := e.pushes(endpoint, 1); got[0].payload["id"] != "n2" {
		t.Errorf("pushed %v, want n2 only", got[0].payload)
	}
	many := make([]string, inbox.MaxMuted+1)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	for _, tt := range []struct {
		name  string
		muted []string
	}{{"too many", many}, {"too long", []string{strings.Repeat("t", 257)}}, {"empty type", []string{""}}} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do("alice", "PUT", "push/preferences", map[string]any{"muted": tt.muted})
			if status != 400 || !strings.HasPrefix(body, `{"error":"bad_request"`) {
				t.Errorf("PUT: %d %s, want 400", status, body)
			}
		})
	}
	if m, _ := e.ib.MutedTypes(context.Background(), "alice"); fmt.Sprint(m) != "[chatty noisy]" {
		t.Errorf("muted after the refused PUTs: %v", m)
	}
}

// Without Config.Push the push endpoints answer 404.
func TestPushDisabled(t *testing.T) {
	e := newEnv(t, options{inbox: func(c *inbox.Config) { c.Push = nil }})
	for _, tt := range []struct{ method, path string }{
		{"GET", "push/key"}, {"POST", "push/subscriptions"}, {"GET", "push/preferences"}, {"POST", "push/ack"},
	} {
		status, body := e.do("alice", tt.method, tt.path, "{}")
		if want := `{"error":"not_found","reason":"push is not enabled"}` + "\n"; status != 404 || body != want {
			t.Errorf("%s %s: %d %s, want 404 %s", tt.method, tt.path, status, body, want)
		}
	}
}

// The push service's faults, each with its outcome.
func TestPushServiceFaults(t *testing.T) {
	for _, tt := range []struct {
		name   string
		cfg    func(*webpush.Config)
		script []reply
		check  func(t *testing.T, e *env, endpoint string)
	}{
		{"410 deletes the subscription", nil, []reply{{status: 410}}, func(t *testing.T, e *env, endpoint string) {
			wstest.WaitFor(t, "the subscription deleted", func() bool { s, _ := e.ib.Subscriptions(context.Background(), "alice"); return len(s) == 0 })
			if st := e.sender.Stats(); st.Gone != 1 || st.Sent != 0 || st.Retried != 0 {
				t.Errorf("stats %+v, want one gone", st)
			}
		}},
		{"404 deletes the subscription", nil, []reply{{status: 404}}, func(t *testing.T, e *env, endpoint string) {
			wstest.WaitFor(t, "the subscription deleted", func() bool { s, _ := e.ib.Subscriptions(context.Background(), "alice"); return len(s) == 0 })
		}},
		{"413 is refused, not retried", nil, []reply{{status: 413}}, func(t *testing.T, e *env, endpoint string) {
			wstest.WaitFor(t, "the refusal", func() bool { return e.sender.Stats().Refused == 1 })
			if _, n := e.ps.got(endpoint); n != 1 || e.sender.Stats().Retried != 0 {
				t.Errorf("%d requests, stats %+v; want one request, no retry", n, e.sender.Stats())
			}
			if s, _ := e.ib.Subscriptions(context.Background(), "alice"); len(s) != 1 {
				t.Errorf("the subscription was deleted")
			}
			if !strings.Contains(e.logs.String(), "refused the payload as too large") {
				t.Errorf("no log of the 413: %s", e.logs)
			}
		}},
		{"429 is retried after Retry-After", nil, []reply{{status: 429, retryAfter: "7"}}, func(t *testing.T, e *env, endpoint string) {
			e.pushes(endpoint, 1)
			if w := e.retryWaits(); len(w) != 1 || w[0] != 7*time.Second {
				t.Errorf("waits %v, want [7s]", w)
			}
		}},
		{"Retry-After beyond MaxRetryAfter is capped", func(c *webpush.Config) { c.MaxRetryAfter = time.Minute }, []reply{{status: 503, retryAfter: "3600"}}, func(t *testing.T, e *env, endpoint string) {
			e.pushes(endpoint, 1)
			if w := e.retryWaits(); len(w) != 1 || w[0] != time.Minute {
				t.Errorf("waits %v, want [1m]", w)
			}
		}},
		{"500 is retried with backoff", nil, []reply{{status: 500}, {status: 502}}, func(t *testing.T, e *env, endpoint string) {
			e.pushes(endpoint, 1)
			w := e.retryWaits()
			if len(w) != 2 || w[0] < time.Second || w[0] >= 1500*time.Millisecond || w[1] < 2*time.Second || w[1] >= 3*time.Second {
				t.Errorf("waits %v, want about 1s then about 2s", w)
			}
		}},
		{"500 past the retries fails", func(c *webpush.Config) { c.Retries = 2 }, []reply{{status: 500}, {status: 500}, {status: 500}}, func(t *testing.T, e *env, endpoint string) {
			wstest.WaitFor(t, "the failure", func() bool { return e.sender.Stats().Failed == 1 })
			if _, n := e.ps.got(endpoint); n != 3 || e.sender.Stats().Retried != 2 {
				t.Errorf("%d requests, stats %+v; want 3 requests, 2 retries", n, e.sender.Stats())
			}
		}},
		{"an endless answer is read no further than MaxResponseSize", func(c *webpush.Config) { c.MaxResponseSize = 1024; c.Timeout = time.Minute }, []reply{{endless: true}}, func(t *testing.T, e *env, endpoint string) {
			// Read to its end, the answer would hold the push until the minute's timeout and
			// fail it: past 1 KB the sender stops reading, and the push counts as sent at once.
			wstest.WaitFor(t, "the push counted sent", func() bool { return e.sender.Stats().Sent == 1 })
			if st := e.sender.Stats(); st.Retried != 0 || st.Failed != 0 {
				t.Errorf("stats %+v, want sent, no retry", st)
			}
		}},
		{"a slow push service times out and is retried", func(c *webpush.Config) { c.Timeout = 200 * time.Millisecond }, []reply{{hang: true}}, func(t *testing.T, e *env, endpoint string) {
			e.pushes(endpoint, 1)
			wstest.WaitFor(t, "the push counted sent", func() bool { return e.sender.Stats().Sent == 1 })
			if st := e.sender.Stats(); st.Retried != 1 || st.Sent != 1 {
				t.Errorf("stats %+v, want one retry and one sent", st)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, options{sender: tt.cfg})
			endpoint := e.subscribe("alice", tt.script...)
			e.notify("alice", inbox.Notification{ID: "n1", Type: "t"})
			tt.check(t, e, endpoint)
		})
	}
}

// A redirect is not followed: the push fails, and its target gets nothing.
func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t, options{})
	target, _, _ := e.ps.subscribe()
	endpoint := e.subscribe("alice", reply{status: http.StatusTemporaryRedirect, location: target})
	e.notify("alice", inbox.Notification{ID: "n1", Type: "t"})
	wstest.WaitFor(t, "the failure logged", func() bool { return strings.Contains(e.logs.String(), "refused the push") })
	if _, n := e.ps.got(target); n != 0 {
		t.Errorf("the redirect's target got %d requests", n)
	}
	if _, n := e.ps.got(endpoint); n != 1 || e.sender.Stats().Failed != 1 {
		t.Errorf("%d requests, stats %+v; want one request, failed", n, e.sender.Stats())
	}
}

// A push service that is down: the push is retried, then given up; Notify returns at once.
func TestPushServiceDown(t *testing.T) {
	e := newEnv(t, options{sender: func(c *webpush.Config) { c.Retries = 2 }})
	dead := httptest.NewTLSServer(http.NotFoundHandler())
	dead.Close()
	_, p, a := e.ps.subscribe()
	if status, body := e.do("alice", "POST", "push/subscriptions", subscription(dead.URL+"/push/secret-path-0123456789", p, a)); status != 201 {
		t.Fatalf("POST: %d %s", status, body)
	}
	e.notify("alice", inbox.Notification{ID: "n1", Type: "t"})
	wstest.WaitFor(t, "the failure", func() bool { return e.sender.Stats().Failed == 1 })
	if st := e.sender.Stats(); st.Retried != 2 || st.Sent != 0 {
		t.Errorf("stats %+v, want 2 retries and nothing sent", st)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "push failed, not retried again") || strings.Contains(logs, "secret-path") || strings.Contains(logs, p) {
		t.Errorf("logs: %s\nwant the failure, without the endpoint's path or the key", logs)
	}
}

// A push service that holds every request does not hold Notify: with one worker stuck, the
// queue takes the rest, and past it they are dropped and counted.
func TestNotifyNotBlocked(t *testing.T) {
	e := newEnv(t, options{sender: func(c *webpush.Config) { c.Workers, c.QueueSize, c.Timeout = 1, 2, time.Minute }})
	endpoint := e.subscribe("alice", reply{hang: true}, reply{hang: true}, reply{hang: true}, reply{hang: true}, reply{hang: true})
	e.notify("alice", inbox.Notification{ID: "n0", Type: "t"})
	wstest.WaitFor(t, "the worker stuck", func() bool { _, n := e.ps.got(endpoint); return n == 1 })
	for i := 1; i <= 5; i++ {
		e.notify("alice", inbox.Notification{ID: fmt.Sprint("n", i), Type: "t"})
	}
	if st := e.sender.Stats(); st.Dropped != 3 {
		t.Errorf("stats %+v, want 3 dropped (2 queued behind the stuck one)", st)
	}
	if !strings.Contains(e.logs.String(), "queue full") {
		t.Errorf("no log of the drops: %s", e.logs)
	}
	// Close waits for the queue until its context ends, then stops the request in flight and
	// drops what waits.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := e.sender.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close: %v, want context.DeadlineExceeded", err)
	}
	if st := e.sender.Stats(); st.Dropped != 6 || st.Sent != 0 {
		t.Errorf("stats after Close %+v, want 6 dropped", st)
	}
	if err := e.sender.Push(inbox.PushMessage{Notification: inbox.Notification{ID: "late", Type: "t"}}); !errors.Is(err, webpush.ErrClosed) {
		t.Errorf("Push after Close: %v, want ErrClosed", err)
	}
}

// A payload over MaxPayload is refused with ErrPayloadTooLarge and nothing is sent.
func TestPayloadTooLarge(t *testing.T) {
	e := newEnv(t, options{sender: func(c *webpush.Config) {
		c.Display = func(n inbox.Notification) webpush.Display {
			return webpush.Display{Body: strings.Repeat("x", 4000)}
		}
	}})
	endpoint, p, a := e.ps.subscribe()
	if status, _ := e.do("alice", "POST", "push/subscriptions", subscription(endpoint, p, a)); status != 201 {
		t.Fatal(status)
	}
	err := e.sender.Push(inbox.PushMessage{Subscription: inbox.Subscription{User: "alice", Endpoint: endpoint, P256dh: p, Auth: a},
		Notification: inbox.Notification{ID: "n1", Type: "t"}})
	if !errors.Is(err, webpush.ErrPayloadTooLarge) {
		t.Errorf("Push: %v, want ErrPayloadTooLarge", err)
	}
	e.notify("alice", inbox.Notification{ID: "n2", Type: "t"})
	if !strings.Contains(e.logs.String(), "payload too large") {
		t.Errorf("no log of the refusal: %s", e.logs)
	}
	if err := e.sender.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, n := e.ps.got(endpoint); n != 0 || e.sender.Stats().Refused != 2 {
		t.Errorf("%d requests, stats %+v; want none sent, 2 refused", n, e.sender.Stats())
	}
	// Exactly at the limit is sent: the body fills one 4096-byte record.
	e2 := newEnv(t, options{sender: func(c *webpush.Config) {
		c.Display = func(n inbox.Notification) webpush.Display {
			return webpush.Display{Title: "t", URL: "/", Tag: "x"}
		}
	}})
	endpoint, p, a = e2.ps.subscribe()
	fill := webpush.MaxPayload - len(`{"v":1,"id":"","type":"t","title":"t","body":"","icon":"","url":"/","tag":"x","ack":"","ackURL":""}`)
	if err := e2.sender.Push(inbox.PushMessage{Subscription: inbox.Subscription{User: "alice", Endpoint: endpoint, P256dh: p, Auth: a},
		Notification: inbox.Notification{ID: strings.Repeat("i", fill), Type: "t"}}); err != nil {
		t.Fatalf("Push of exactly MaxPayload: %v", err)
	}
	if got := e2.pushes(endpoint, 1); len(got[0].raw) != webpush.MaxPayload {
		t.Errorf("arrived %d bytes, want %d", len(got[0].raw), webpush.MaxPayload)
	}
}

// A subscription whose keys cannot encrypt (stored before a check, or by hand) fails at once:
// trying again cannot help, and nothing is sent.
func TestUnusableKeysNotRetried(t *testing.T) {
	e := newEnv(t, options{})
	endpoint, _, a := e.ps.subscribe()
	notOnCurve := base64.RawURLEncoding.EncodeToString(append([]byte{4}, make([]byte, 64)...))
	if err := e.sender.Push(inbox.PushMessage{Subscription: inbox.Subscription{User: "alice", Endpoint: endpoint, P256dh: notOnCurve, Auth: a},
		Notification: inbox.Notification{ID: "n", Type: "t"}}); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the refusal logged", func() bool { return strings.Contains(e.logs.String(), "push refused here") })
	if st := e.sender.Stats(); st.Failed != 1 || st.Retried != 0 {
		t.Errorf("stats %+v, want one failed, no retry", st)
	}
	if _, n := e.ps.got(endpoint); n != 0 {
		t.Errorf("the push service got %d requests", n)
	}
}
