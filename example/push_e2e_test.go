package main

// Web Push in Chromium: the browser client's connection.push and its service worker (sw.js)
// against a hub and an inbox whose pushes go through adapters/webpush to a push service of the
// test's own, which decrypts them (RFC 8291) with the subscription's key. The bytes the server
// pushed are then delivered to the service worker with CDP's ServiceWorker.deliverPushMessage:
// headless Chromium cannot reach a real push service (FCM), so its pushManager.subscribe never
// answers, and the subscription is the test's. enable()'s whole flow is in the node tests
// (client/test/push.test.mjs).

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/serviceworker"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/nethttp"
	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/adapters/webpush/webpushtest"
	"github.com/gonotify/notify/inbox"
)

// pushService is the receiving side of RFC 8030 for one subscription: it decrypts each
// message with the subscription's private key and auth secret and hands over the plaintext.
type pushService struct {
	srv      *httptest.Server
	key      *ecdh.PrivateKey
	auth     []byte
	received chan []byte
}

func newPushService(t testing.TB) *pushService {
	t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ps := &pushService{key: key, auth: make([]byte, 16), received: make(chan []byte, 8)}
	rand.Read(ps.auth)
	ps.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 8192))
		if err == nil && r.Header.Get("Content-Encoding") != "aes128gcm" {
			err = fmt.Errorf("Content-Encoding %q", r.Header.Get("Content-Encoding"))
		}
		var plain []byte
		if err == nil {
			plain, err = webpushtest.Decrypt(ps.key, ps.auth, body)
		}
		if err != nil {
			t.Errorf("push service: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ps.received <- plain
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(ps.srv.Close)
	return ps
}

// subscription is the browser's side of the subscription, as PushSubscription.toJSON gives it.
func (ps *pushService) subscription() inbox.Subscription {
	b64 := base64.RawURLEncoding.EncodeToString
	return inbox.Subscription{Endpoint: ps.srv.URL + "/push/e1", P256dh: b64(ps.key.PublicKey().Bytes()), Auth: b64(ps.auth)}
}

// pushServer is a hub and an inbox pushing through adapters/webpush to ps, mounted as the
// example app mounts them, with a blank page at / and the page a click opens at /opened.
func pushServer(t testing.TB, ps *pushService) (*httptest.Server, *notify.Hub, *inbox.Inbox) {
	t.Helper()
	hub, err := notify.New(notify.Config{Secret: testSecret, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ps.srv.Certificate())
	host, _ := url.Parse(ps.srv.URL)
	sender, err := webpush.New(webpush.Config{
		PublicKey: pub, PrivateKey: priv, Subject: "mailto:ops@example.com",
		Hosts: []string{host.Hostname()}, RootCAs: roots, Logger: testLogger(t),
		Display: func(n inbox.Notification) webpush.Display {
			return webpush.Display{Title: "New " + n.Type, Body: "Bob: nice post", Icon: "/icon.png", URL: "/opened?id=" + n.ID, Tag: "post-7"}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := inbox.New(hub, inbox.Config{Push: sender, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shutdownHub(t, hub)
		ib.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := sender.Close(ctx); err != nil {
			t.Errorf("sender.Close: %v", err)
		}
	})
	mux := http.NewServeMux()
	nethttp.Mount(mux, "/notify", hub)
	nethttp.MountInbox(mux, "/notify", ib)
	blank := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<!doctype html><title>push test</title>")
	}
	mux.HandleFunc("GET /{$}", blank)
	mux.HandleFunc("GET /opened", blank)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, hub, ib
}

// registrationID returns the ID of the service worker registration with the scope, as the
// ServiceWorker domain reports it.
func registrationID(t testing.TB, p *page, scope string) serviceworker.RegistrationID {
	t.Helper()
	found := make(chan serviceworker.RegistrationID, 1)
	ctx, cancel := context.WithCancel(p.ctx)
	defer cancel()
	if err := chromedp.Listen(ctx, func(ev any) {
		if ev, ok := ev.(*serviceworker.EventWorkerRegistrationUpdated); ok {
			for _, r := range ev.Registrations {
				if r.ScopeURL == scope && !r.IsDeleted {
					select {
					case found <- r.RegistrationID:
					default:
					}
				}
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(p.ctx, serviceworker.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("ServiceWorker.enable: %v", err)
	}
	select {
	case id := <-found:
		return id
	case <-time.After(5 * time.Second):
		t.Fatalf("no service worker registration with scope %s", scope)
		return ""
	}
}

// inServiceWorker evaluates expr in the service worker whose script is scriptURL.
func inServiceWorker[T any](t testing.TB, p *page, scriptURL, expr string) T {
	t.Helper()
	targets, err := chromedp.CallBrowser(p.ctx, target.GetTargets, target.GetTargetsParams{})
	if err != nil {
		t.Fatal(err)
	}
	var id target.ID
	for _, info := range targets.TargetInfos {
		if info.Type == "service_worker" && info.URL == scriptURL {
			id = info.TargetID
		}
	}
	if id == "" {
		t.Fatalf("no service worker target for %s", scriptURL)
	}
	ctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithTargetID(id))
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 10*time.Second)
	defer cancelTimeout()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("in the service worker: %s: %v", expr, err)
	}
	return v
}

// TestE2EPush runs with a connection of the tab's own and with one shared by the tabs (in a
// SharedWorker): connection.push is the tab's in both.
func TestE2EPush(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) { testE2EPush(t, shared) })
	}
}

func testE2EPush(t *testing.T, shared bool) {
	ps := newPushService(t)
	srv, hub, ib := pushServer(t, ps)
	ctx := context.Background()
	tok, err := hub.IssueToken("alice", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	p := newPage(t, b, "alice")
	p.open(srv.URL + "/")
	origin := srv.URL
	if !eval[bool](p, fmt.Sprintf(`import("/notify/client.js").then(async ({ connect }) => {
		window.conn = connect("/notify/ws", { token: %s, shared: %v });
		await conn.connected();
		return true;
	})`, jsString(tok), shared)) {
		t.Fatal("not connected")
	}
	if got := eval[string](p, `conn.push.state()`); got != "disabled" {
		t.Fatalf("state before: %q, want disabled", got)
	}

	// enable(): permission (granted here through CDP, as a user would at the prompt), the
	// server's key, the service worker from the hub's URL at the scope "/", then the push
	// service, which headless Chromium cannot reach: nothing is kept.
	if _, err := chromedp.CallBrowser(p.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin,
	}); err != nil {
		t.Fatalf("Browser.setPermission: %v", err)
	}
	// Headless Chromium's subscribe() never answers: enable() waits for it until its signal
	// aborts, then rejects with the signal's reason.
	if got := eval[string](p, `conn.push.enable({ signal: AbortSignal.timeout(3000) }).then(() => "enabled", (err) => err.name)`); got != "TimeoutError" {
		t.Fatalf("enable(): %q, want TimeoutError (headless Chromium reaches no push service)", got)
	}
	reg := eval[[]string](p, `navigator.serviceWorker.getRegistration("/").then((r) => [r.scope, (r.active ?? r.waiting ?? r.installing).scriptURL])`)
	if want := []string{origin + "/", origin + "/notify/sw.js"}; fmt.Sprint(reg) != fmt.Sprint(want) {
		t.Fatalf("registration %q, want %q", reg, want)
	}
	if got := eval[string](p, `conn.push.state()`); got != "disabled" {
		t.Errorf("state after an aborted enable: %q, want disabled", got)
	}
	if subs, err := ib.Subscriptions(ctx, "alice"); err != nil || len(subs) != 0 {
		t.Errorf("the server's subscriptions: %v %v, want none", subs, err)
	}
	p.waitJS(5*time.Second, "the worker active", `navigator.serviceWorker.getRegistration("/").then((r) => r.active?.state === "activated")`)

	// The user leaves (no live session), with a subscription the push service (the test's)
	// holds the key of; a notification goes out as a push.
	eval[chromedp.Void](p, `conn.close()`)
	eventually(t, 5*time.Second, "alice's session gone", func() bool { return hub.Stats().Sessions == 0 })
	if _, _, err := ib.AddSubscription(ctx, "alice", ps.subscription()); err != nil {
		t.Fatal(err)
	}
	n, _, err := ib.Notify(ctx, "alice", inbox.Notification{Type: "comment"})
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	select {
	case payload = <-ps.received:
	case <-time.After(10 * time.Second):
		t.Fatal("no push reached the push service")
	}
	if !strings.Contains(string(payload), `"ack":`) {
		t.Fatalf("payload %s", payload)
	}

	// Delivered to the service worker: shown, with the title, body, tag and data the server
	// gave, and acked seen.
	if _, err := chromedp.Call(p.ctx, serviceworker.DeliverPushMessage, serviceworker.DeliverPushMessageParams{
		Origin: origin, RegistrationID: registrationID(t, p, origin+"/"), Data: string(payload),
	}); err != nil {
		t.Fatalf("ServiceWorker.deliverPushMessage: %v", err)
	}
	shown := `navigator.serviceWorker.getRegistration("/").then((r) => r.getNotifications())
		.then((ns) => JSON.stringify(ns.map((n) => [n.title, n.body, n.tag, n.data?.id, n.data?.url])))`
	want := fmt.Sprintf(`[["New comment","Bob: nice post","post-7",%q,"/opened?id=%s"]]`, n.ID, n.ID)
	p.waitJS(5*time.Second, "the notification shown", shown+" .then((s) => s === "+jsString(want)+")")
	eventually(t, 5*time.Second, "the notification seen", func() bool {
		c, err := ib.Counts(ctx, "alice")
		return err == nil && c.Unseen == 0 && c.Unread == 1
	})

	// The click: Chromium has no CDP call to click a system notification, so the test
	// dispatches the event the browser would, for the notification shown, in the worker. The
	// worker closes it, takes the open tab to its URL, and acks it read. (An untrusted event's
	// waitUntil throws, after the worker has started that work; the attached DevTools session
	// keeps the worker alive meanwhile. Its focus() is refused without a user's click.)
	clicked := inServiceWorker[int](t, p, origin+"/notify/sw.js", `self.registration.getNotifications().then((ns) => {
		for (const notification of ns) self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
		return ns.length;
	})`)
	if clicked != 1 {
		t.Fatalf("%d notifications clicked, want 1", clicked)
	}
	eventually(t, 5*time.Second, "the notification read", func() bool {
		c, err := ib.Counts(ctx, "alice")
		return err == nil && c.Unread == 0
	})
	// The tab navigates: its page's context goes away meanwhile, so each poll is a new evaluation.
	eventually(t, 5*time.Second, "the tab on the notification's URL", func() bool {
		ctx, cancel := context.WithTimeout(p.ctx, time.Second)
		defer cancel()
		at, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState === "complete" ? location.pathname + location.search : ""`))
		return err == nil && at == "/opened?id="+n.ID
	})
	p.waitJS(5*time.Second, "the notification closed", `navigator.serviceWorker.getRegistration("/").then((r) => r.getNotifications()).then((ns) => ns.length === 0)`)
}
