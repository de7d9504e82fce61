package webpush_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
	"github.com/gonotify/notify/internal/wstest"
)

// noSubs is a Store that keeps no subscriptions.
type noSubs struct{ inbox.Store }

func TestConfigErrors(t *testing.T) {
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	otherPub, _, _ := webpush.GenerateKeys()
	ok := webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "mailto:ops@example.com"}
	for _, tt := range []struct {
		name   string
		adjust func(*webpush.Config)
		want   string
	}{
		{"no keys", func(c *webpush.Config) { c.PublicKey, c.PrivateKey = "", "" }, "PublicKey must be"},
		{"public key not base64url", func(c *webpush.Config) { c.PublicKey = "!!" }, "PublicKey must be"},
		{"private key short", func(c *webpush.Config) { c.PrivateKey = priv[:20] }, "PrivateKey must be"},
		{"keys of two pairs", func(c *webpush.Config) { c.PublicKey = otherPub }, "PrivateKey is not PublicKey's private key"},
		{"no subject", func(c *webpush.Config) { c.Subject = "" }, "Subject must be"},
		{"subject an http URL", func(c *webpush.Config) { c.Subject = "http://example.com" }, "Subject must be"},
		{"bare mailto", func(c *webpush.Config) { c.Subject = "mailto:" }, "Subject must be"},
		{"host with a path", func(c *webpush.Config) { c.Hosts = []string{"push.example.com/x"} }, "is not a host name"},
		{"empty host", func(c *webpush.Config) { c.Hosts = []string{""} }, "is not a host name"},
		{"urgency", func(c *webpush.Config) { c.Urgency = "urgent" }, `Urgency "urgent"`},
		{"negative workers", func(c *webpush.Config) { c.Workers = -1 }, "Workers is negative"},
		{"negative timeout", func(c *webpush.Config) { c.Timeout = -time.Second }, "Timeout is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.adjust(&cfg)
			s, err := webpush.New(cfg)
			if s != nil || !errors.Is(err, notify.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
	// Padded keys are accepted and handed out unpadded.
	padded := ok
	padded.PublicKey += "="
	s, err := webpush.New(padded)
	if err != nil {
		t.Fatalf("New with a padded key: %v", err)
	}
	defer s.Close(context.Background())
	if s.PublicKey() != pub {
		t.Errorf("PublicKey() = %s, want %s", s.PublicKey(), pub)
	}
	hub, err := notify.New(notify.Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	for _, tt := range []struct {
		name string
		cfg  inbox.Config
		want string
	}{
		{"a store without subscriptions", inbox.Config{Push: s, Store: noSubs{inbox.NewMemoryStore()}}, "needs a Store that implements inbox.SubscriptionStore"},
		{"PublicPath without a slash", inbox.Config{Push: s, PublicPath: "/notify/inbox"}, "must begin and end with a slash"},
		{"negative MaxSubscriptions", inbox.Config{Push: s, MaxSubscriptions: -1}, "MaxSubscriptions is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ib, err := inbox.New(hub, tt.cfg)
			if ib != nil || !errors.Is(err, notify.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("inbox.New: %v, want ErrConfig with %q", err, tt.want)
			}
		})
	}
}

// The sender accepts the endpoints of the known push services by default, and refuses
// others.
func TestDefaultHosts(t *testing.T) {
	pub, priv, _ := webpush.GenerateKeys()
	s, err := webpush.New(webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "https://example.com/contact"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	_, p, a := newPushService(t, pub).subscribe()
	for _, tt := range []struct {
		endpoint string
		ok       bool
	}{
		{"https://fcm.googleapis.com/fcm/send/abc", true},
		{"https://updates.push.services.mozilla.com/wpush/v2/abc", true},
		{"https://db5p.notify.windows.com/w/?token=abc", true},
		{"https://web.push.apple.com/abc", true},
		{"https://api.push.apple.com/abc", true},
		{"https://FCM.googleapis.com./fcm/send/abc", true},
		{"https://push.apple.com/abc", false},
		{"https://fcm.googleapis.com.evil.example/abc", false},
		{"https://evilfcm.googleapis.com/abc", false},
		{"https://127.0.0.1/abc", false},
	} {
		err := s.CheckSubscription(inbox.Subscription{Endpoint: tt.endpoint, P256dh: p, Auth: a})
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, webpush.ErrRefused) {
			t.Errorf("CheckSubscription(%s): %v, want ok %v", tt.endpoint, err, tt.ok)
		}
	}
}

// A name allowed through a wildcard (here "*") that resolves to a loopback address passes
// CheckSubscription, a name, but is refused when dialed: the check is on the address, after
// resolution.
func TestDialRefusesPrivateAddresses(t *testing.T) {
	e := newEnv(t, options{sender: func(c *webpush.Config) { c.Hosts = []string{"*"} }})
	ep, p, a := e.ps.subscribe()
	sub := inbox.Subscription{User: "alice", Endpoint: strings.Replace(ep, "127.0.0.1", "localhost", 1), P256dh: p, Auth: a}
	if err := e.sender.CheckSubscription(sub); err != nil {
		t.Fatalf("CheckSubscription: %v", err)
	}
	if err := e.sender.Push(inbox.PushMessage{Subscription: sub, Notification: inbox.Notification{ID: "n", Type: "t"}}); err != nil {
		t.Fatal(err)
	}
	wstest.WaitFor(t, "the refusal logged", func() bool { return strings.Contains(e.logs.String(), "resolves to a private address") })
	if st := e.sender.Stats(); st.Sent != 0 || st.Retried != 0 || st.Failed != 1 {
		t.Errorf("stats %+v, want one refused without retry", st)
	}
	if _, n := e.ps.got(sub.Endpoint); n != 0 {
		t.Errorf("the push service got %d requests", n)
	}
}
