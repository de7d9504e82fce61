package webpush_test

import (
	"context"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/gonotify/notify/adapters/webpush"
	"github.com/gonotify/notify/inbox"
)

// FuzzCheckSubscription: whatever a browser sends, a subscription CheckSubscription accepts
// has an https endpoint on an allowed host that is not an address literal (none is listed
// exactly here), and keys of the right sizes.
func FuzzCheckSubscription(f *testing.F) {
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		f.Fatal(err)
	}
	s, err := webpush.New(webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "mailto:a@example.com",
		Hosts: []string{"fcm.googleapis.com", "*.push.apple.com"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close(context.Background()) })
	for _, e := range []string{"https://fcm.googleapis.com/fcm/send/x", "https://a.push.apple.com/x", "http://fcm.googleapis.com/x",
		"https://fcm.googleapis.com:443/x", "https://10.0.0.1/x", "https://[::1]/x", "https://fcm.googleapis.com.evil/x", "https://u@fcm.googleapis.com/x"} {
		f.Add(e, pub, "AAAAAAAAAAAAAAAAAAAAAA")
	}
	f.Fuzz(func(t *testing.T, endpoint, p256dh, auth string) {
		if s.CheckSubscription(inbox.Subscription{Endpoint: endpoint, P256dh: p256dh, Auth: auth}) != nil {
			return
		}
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "https" || u.User != nil {
			t.Fatalf("accepted %q", endpoint)
		}
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		if host != "fcm.googleapis.com" && !strings.HasSuffix(host, ".push.apple.com") {
			t.Fatalf("accepted host %q of %q", host, endpoint)
		}
		if _, err := netip.ParseAddr(host); err == nil {
			t.Fatalf("accepted an address literal %q", endpoint)
		}
	})
}
