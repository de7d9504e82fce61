package webpush

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/gonotify/notify"
	"github.com/gonotify/notify/inbox"
)

// Config configures a [Sender]. Zero values mean the documented defaults.
type Config struct {
	// PublicKey and PrivateKey are the application server's VAPID key pair (RFC 8292), as
	// [GenerateKeys] returns them: base64url of the 65-byte uncompressed P-256 public point
	// and of the 32-byte private scalar. Required. The private key is a secret: it is never
	// logged. Browsers' subscriptions are bound to the public key: changing it orphans them.
	PublicKey, PrivateKey string
	// Subject is the contact the push services may use about this sender: "mailto:" and an
	// address, or an https URL (the VAPID JWT's sub). Required.
	Subject string
	// Hosts is the allowlist of push services' hosts an endpoint may name. An entry is a host
	// name ("fcm.googleapis.com"), "*." and a domain (its subdomains, not the domain itself),
	// or "*" (any host). Private, loopback and link-local addresses are refused, at add time
	// for an address literal and when dialing for a name resolving to one, unless the host is
	// listed exactly (not through a wildcard): that is how tests reach a local push service.
	// Default: [DefaultHosts], the push services of Chrome, Firefox, Edge and Safari.
	Hosts []string
	// RootCAs are the certificate authorities the push services' certificates are verified
	// with. Default: the system's.
	RootCAs *x509.CertPool
	// Display maps a notification to what the system shows. Default: [DefaultDisplay], the
	// notification's Type as title, no body, URL "/".
	Display func(inbox.Notification) Display
	// TTL is how long a push service keeps a message for a browser that is offline (the TTL
	// header), at most until the notification expires from the inbox. Default 24 hours.
	TTL time.Duration
	// Urgency is the Urgency header (RFC 8030): "very-low", "low", "normal" or "high".
	// Default "normal".
	Urgency string
	// Workers is how many pushes are sent at once. Default 4.
	Workers int
	// QueueSize bounds the pushes waiting for a worker, and those waiting to be retried: past
	// it a push is dropped (logged, counted in Stats.Dropped). Default 1024.
	QueueSize int
	// Timeout bounds each request to a push service, connecting included. Default 10
	// seconds.
	Timeout time.Duration
	// Retries is how many times a push is tried again after a 429, a 5xx, a timeout or a
	// failed connection, with exponential backoff from one second (or the Retry-After the
	// push service gave, up to MaxRetryAfter). Default 3; negative means none.
	Retries int
	// MaxRetryAfter caps the wait a push service's Retry-After asks for. Default 10 minutes.
	MaxRetryAfter time.Duration
	// MaxResponseSize bounds the bytes of a push service's answer that are read. Default 64
	// KiB.
	MaxResponseSize int64
	// Logger receives the pushes dropped, refused and failed (endpoints shortened, keys never).
	// Default: slog.Default().
	Logger *slog.Logger
}

// Display is what the system shows of a notification, and where a click leads.
type Display struct {
	// Title is the notification's title. Default: the notification's Type.
	Title string
	// Body is its text. Default: none.
	Body string
	// Icon is the URL of its icon. Default: none (the browser's).
	Icon string
	// URL is where a click leads: the service worker focuses a tab of the app showing it or
	// opens it. Default "/".
	URL string
	// Tag groups notifications: one with the tag of a shown one replaces it. Default: the
	// notification's ID.
	Tag string
}

// DefaultDisplay is the default Config.Display: the Type as title, URL "/".
func DefaultDisplay(n inbox.Notification) Display { return Display{Title: n.Type, URL: "/"} }

// DefaultHosts are the default Config.Hosts: the push services of Chrome (FCM), Firefox
// (Mozilla autopush), Edge (WNS) and Safari (Apple).
var DefaultHosts = []string{
	"fcm.googleapis.com",
	"updates.push.services.mozilla.com",
	"*.push.services.mozilla.com",
	"*.notify.windows.com",
	"web.push.apple.com",
	"*.push.apple.com",
}

// Defaults of [Config].
const (
	DefaultTTL             = 24 * time.Hour
	DefaultWorkers         = 4
	DefaultQueueSize       = 1024
	DefaultTimeout         = 10 * time.Second
	DefaultRetries         = 3
	DefaultMaxRetryAfter   = 10 * time.Minute
	DefaultMaxResponseSize = 64 << 10
)

// MaxPayload is the largest push payload, in bytes: what one aes128gcm record of 4096
// bytes (RFC 8291: push services need accept no more) holds after its header, padding
// delimiter and tag. A notification whose payload is larger is refused with
// [ErrPayloadTooLarge].
const MaxPayload = 4096 - 16 - (16 + 4 + 1 + 65) - 1

// Errors of a [Sender].
var (
	// ErrPayloadTooLarge is returned by Push when the notification's payload, after
	// Config.Display, is over MaxPayload bytes: nothing is sent.
	ErrPayloadTooLarge = errors.New("notify: webpush: payload too large")
	// ErrQueueFull is returned by Push when Config.QueueSize pushes wait already: this one is
	// dropped.
	ErrQueueFull = errors.New("notify: webpush: queue full, push dropped")
	// ErrClosed is returned by Push after Close.
	ErrClosed = errors.New("notify: webpush: sender closed")
	// ErrRefused is wrapped by CheckSubscription's errors: the subscription must not be added.
	ErrRefused = errors.New("notify: webpush: subscription refused")
)

// GenerateKeys returns a new VAPID key pair for Config.PublicKey and Config.PrivateKey,
// base64url without padding. Generate it once and keep it with the application's secrets.
func GenerateKeys() (publicKey, privateKey string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", fmt.Errorf("notify: webpush: %w", err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(k.PublicKey().Bytes()), enc.EncodeToString(k.Bytes()), nil
}

// decodeKey decodes base64url with or without padding (browsers and tools give both).
func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// withDefaults checks cfg and fills its defaults.
func (cfg Config) withDefaults() (Config, error) {
	bad := func(format string, a ...any) (Config, error) {
		return cfg, fmt.Errorf("%w: webpush: "+format, append([]any{notify.ErrConfig}, a...)...)
	}
	pub, err := decodeKey(cfg.PublicKey)
	if err != nil || len(pub) != 65 {
		return bad("PublicKey must be the base64url of a 65-byte P-256 point (see GenerateKeys)")
	}
	priv, err := decodeKey(cfg.PrivateKey)
	if err != nil || len(priv) != 32 {
		return bad("PrivateKey must be the base64url of a 32-byte P-256 key (see GenerateKeys)")
	}
	k, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil || string(k.PublicKey().Bytes()) != string(pub) {
		return bad("PrivateKey is not PublicKey's private key")
	}
	// The library takes the keys in this form, and the public one is handed to browsers so.
	cfg.PublicKey, cfg.PrivateKey = base64.RawURLEncoding.EncodeToString(pub), base64.RawURLEncoding.EncodeToString(priv)
	switch {
	case strings.HasPrefix(cfg.Subject, "mailto:") && len(cfg.Subject) > len("mailto:"):
	case strings.HasPrefix(cfg.Subject, "https://") && len(cfg.Subject) > len("https://"):
	default:
		return bad(`Subject must be "mailto:" and an address, or an https URL`)
	}
	if cfg.Hosts == nil {
		cfg.Hosts = DefaultHosts
	}
	for _, h := range cfg.Hosts {
		if h == "" || strings.ContainsAny(h, "/:@ ") && !strings.HasPrefix(h, "[") {
			return bad("Hosts entry %q is not a host name, *.domain or *", h)
		}
	}
	if cfg.Display == nil {
		cfg.Display = DefaultDisplay
	}
	switch cfg.Urgency {
	case "":
		cfg.Urgency = "normal"
	case "very-low", "low", "normal", "high":
	default:
		return bad("Urgency %q is not very-low, low, normal or high", cfg.Urgency)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"TTL", int64(cfg.TTL)}, {"Workers", int64(cfg.Workers)}, {"QueueSize", int64(cfg.QueueSize)},
		{"Timeout", int64(cfg.Timeout)}, {"MaxRetryAfter", int64(cfg.MaxRetryAfter)}, {"MaxResponseSize", cfg.MaxResponseSize}} {
		if f.v < 0 {
			return bad("%s is negative", f.name)
		}
	}
	def := func(p *int64, d int64) {
		if *p == 0 {
			*p = d
		}
	}
	def((*int64)(&cfg.TTL), int64(DefaultTTL))
	def((*int64)(&cfg.Timeout), int64(DefaultTimeout))
	def((*int64)(&cfg.MaxRetryAfter), int64(DefaultMaxRetryAfter))
	def(&cfg.MaxResponseSize, DefaultMaxResponseSize)
	if cfg.Workers == 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}
