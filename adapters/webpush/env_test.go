package webpush_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var secret = []byte("webpush-test-secret-0123456789abcdef")

// logBuf is a slog destination a test reads back.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// env is a hub with an inbox that pushes through a Sender to the test's push service, the
// inbox's handler served at /notify/inbox/.
type env struct {
	t      testing.TB
	ps     *pushService
	hub    *notify.Hub
	ib     *inbox.Inbox
	sender *webpush.Sender
	srv    *httptest.Server
	logs   *logBuf

	pub, priv string // the VAPID keys

	mu    sync.Mutex // guards waits
	waits []time.Duration
}

// options of an env.
type options struct {
	sender func(*webpush.Config)
	inbox  func(*inbox.Config)
	hub    *notify.Hub // default: a new hub with the in-memory broker
	// like is another node of the same application: this env uses its push service and
	// VAPID keys.
	like *env
}

func newEnv(t testing.TB, o options) *env {
	t.Helper()
	e := &env{t: t, logs: &logBuf{}}
	var err error
	if o.like != nil {
		e.ps, e.pub, e.priv = o.like.ps, o.like.pub, o.like.priv
	} else {
		if e.pub, e.priv, err = webpush.GenerateKeys(); err != nil {
			t.Fatal(err)
		}
		e.ps = newPushService(t, e.pub)
	}
	pub, priv := e.pub, e.priv
	logger := slog.New(slog.NewTextHandler(e.logs, nil))
	cfg := webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "mailto:ops@example.com",
		Hosts: []string{"127.0.0.1"}, RootCAs: e.ps.roots(), Logger: logger}
	if o.sender != nil {
		o.sender(&cfg)
	}
	// Retries wait no real time: the test reads the waits scheduled instead.
	now := func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Now()
		return c
	}
	e.sender, err = webpush.NewWithClock(cfg, now, func(d time.Duration) {
		e.mu.Lock()
		e.waits = append(e.waits, d)
		e.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.sender.Close(ctx); err != nil {
			t.Errorf("sender.Close: %v", err)
		}
	})
	e.hub = o.hub
	if e.hub == nil {
		e.hub, err = notify.New(notify.Config{Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := e.hub.Shutdown(ctx); err != nil {
				t.Errorf("hub.Shutdown: %v", err)
			}
		})
	}
	icfg := inbox.Config{Push: e.sender, Logger: logger}
	if o.inbox != nil {
		o.inbox(&icfg)
	}
	e.ib, err = inbox.New(e.hub, icfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.ib.Close() })
	mux := http.NewServeMux()
	mux.Handle("/notify/ws", e.hub)
	mux.Handle("/notify/inbox/", e.ib.Handler())
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) retryWaits() []time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]time.Duration(nil), e.waits...)
}

// do sends a request to the inbox's handler as user ("" for none) and returns the status and
// body.
func (e *env) do(user, method, path string, body any) (int, string) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+"/notify/inbox/"+path, r)
	if err != nil {
		e.t.Fatal(err)
	}
	if user != "" {
		tok, err := e.hub.IssueToken(user, time.Hour)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// subscription is the body of POST push/subscriptions, as PushSubscription.toJSON gives it.
func subscription(endpoint, p256dh, auth string) map[string]any {
	return map[string]any{"endpoint": endpoint, "expirationTime": nil, "keys": map[string]string{"p256dh": p256dh, "auth": auth}}
}

// subscribe makes a subscription at the push service and adds it for user over HTTP.
func (e *env) subscribe(user string, script ...reply) string {
	e.t.Helper()
	endpoint, p, a := e.ps.subscribe(script...)
	if status, body := e.do(user, "POST", "push/subscriptions", subscription(endpoint, p, a)); status != http.StatusCreated {
		e.t.Fatalf("POST push/subscriptions: %d %s, want 201", status, body)
	}
	return endpoint
}

// notify calls Notify and returns its report.
func (e *env) notify(user string, n inbox.Notification) notify.Report {
	e.t.Helper()
	_, rep, err := e.ib.Notify(context.Background(), user, n)
	if err != nil {
		e.t.Fatalf("Notify(%s, %s): %v", user, n.ID, err)
	}
	return rep
}

// pushes waits until the endpoint received n pushes, and returns them.
func (e *env) pushes(endpoint string, n int) []received {
	e.t.Helper()
	var got []received
	wstest.WaitFor(e.t, "pushes", func() bool {
		got, _ = e.ps.got(endpoint)
		return len(got) >= n
	})
	if len(got) != n {
		e.t.Fatalf("%d pushes arrived, want %d", len(got), n)
	}
	return got
}
