package inbox

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Subscription is a browser's Web Push subscription (the PushSubscription of the Push API) of
// one user: where the push service takes the user's pushes, and the keys that encrypt them
// for that browser alone.
type Subscription struct {
	// ID identifies the subscription; the inbox makes it when the subscription is added.
	ID string
	// User is the user the subscription belongs to.
	User string
	// Endpoint is the push service's URL for this browser: a secret, never logged in full
	// (see [ShortEndpoint]). At most [MaxEndpointLen] bytes.
	Endpoint string
	// P256dh is the browser's P-256 public key (65 bytes, uncompressed) and Auth its 16-byte
	// authentication secret, both base64url as PushSubscription.toJSON gives them.
	P256dh, Auth string
	// CreatedAt is when the subscription was first added, to the microsecond.
	CreatedAt time.Time
}

// SubscriptionStore keeps users' push subscriptions and the notification types they muted
// for push. A [Store] that implements it can serve an inbox with Config.Push set; MemoryStore
// and adapters/pginbox do. Every method takes the user: a user reaches only their own
// subscriptions. Implementations are safe for concurrent use.
type SubscriptionStore interface {
	// AddSubscription stores s, unless the user has a subscription with s.Endpoint: then it
	// takes s's keys into it and returns it with created false. It refuses a new one when the
	// user has max already, with ErrTooMany.
	AddSubscription(ctx context.Context, s Subscription, max int) (stored Subscription, created bool, err error)
	// RemoveSubscription deletes the user's subscription with the endpoint; none is not an
	// error.
	RemoveSubscription(ctx context.Context, user, endpoint string) error
	// Subscriptions returns the user's subscriptions, oldest first.
	Subscriptions(ctx context.Context, user string) ([]Subscription, error)
	// Muted returns the types the user muted for push, sorted; empty when none.
	Muted(ctx context.Context, user string) ([]string, error)
	// SetMuted replaces the types the user muted for push with types (distinct, sorted).
	SetMuted(ctx context.Context, user string, types []string) error
}

// Pusher sends notifications as Web Push messages: adapters/webpush's Sender implements it.
// The inbox calls it for the users with no live session (see [Config].Push).
type Pusher interface {
	// PublicKey returns the application server's public key (VAPID, RFC 8292): the 65-byte
	// uncompressed P-256 point, base64url without padding, as the browser's
	// pushManager.subscribe wants it.
	PublicKey() string
	// CheckSubscription returns why s must not be added (an endpoint that is not https, not
	// on the pusher's allowlist or on a private address; malformed keys), or nil. The inbox
	// answers its error with 400, and stores nothing.
	CheckSubscription(s Subscription) error
	// Push queues m for sending and returns at once: it never blocks on the push service.
	// It returns an error when m cannot be sent at all (a payload too large); a failure of the
	// sending itself is the pusher's to handle (retry, log, m.Gone).
	Push(m PushMessage) error
}

// PushMessage is one notification for one subscription, as the inbox hands it to a [Pusher].
type PushMessage struct {
	Subscription Subscription
	Notification Notification
	// Ack is the capability that lets the service worker mark this notification seen or read
	// (POST push/ack) without the user's token; AckURL is that endpoint's absolute path.
	Ack, AckURL string
	// Expires is when the notification leaves the inbox (its CreatedAt plus Config.MaxAge):
	// a push later than that is pointless.
	Expires time.Time
	// Gone deletes the subscription: the pusher calls it when the push service answers that
	// it no longer exists (404, 410). It is safe to call from any goroutine.
	Gone func(ctx context.Context)
}

// Push limits and defaults of [Config].
const (
	// DefaultMaxSubscriptions is the default of Config.MaxSubscriptions.
	DefaultMaxSubscriptions = 10
	// DefaultPublicPath is the default of Config.PublicPath: the browser client's default
	// inboxURL.
	DefaultPublicPath = "/notify/inbox/"
	// MaxEndpointLen bounds a subscription's endpoint, in bytes.
	MaxEndpointLen = 2048
	// MaxMuted bounds the types a user mutes for push; each is at most 256 bytes.
	MaxMuted = 100
)

// ErrTooMany is returned when a user adding a subscription has Config.MaxSubscriptions
// already (409 too_many over HTTP).
var ErrTooMany = errors.New("notify: too many push subscriptions")

// ShortEndpoint returns what logs and the subscriptions list show of an endpoint: its scheme
// and host, "…", and its last 8 characters ("https://fcm.googleapis.com…Xc9a_1Qz"). The rest
// of the path is the subscription's secret.
func ShortEndpoint(endpoint string) string {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return "…"
	}
	tail := endpoint
	if len(tail) > 8 {
		tail = tail[len(tail)-8:]
	}
	return u.Scheme + "://" + u.Host + "…" + tail
}

// subStore is the store's SubscriptionStore, which New checked when Config.Push is set.
func (ib *Inbox) subStore() SubscriptionStore {
	s, _ := ib.cfg.Store.(SubscriptionStore)
	return s
}

// AddSubscription adds the user's push subscription s (its Endpoint, P256dh and Auth) after
// the Pusher checked it, and returns it as stored and whether it was new. The same endpoint
// again is the same subscription (its keys updated). ErrInvalid when the pusher refused it
// (or no pusher is configured: ErrNotFound), ErrTooMany past Config.MaxSubscriptions.
func (ib *Inbox) AddSubscription(ctx context.Context, userID string, s Subscription) (Subscription, bool, error) {
	if err := validUser(userID); err != nil {
		return Subscription{}, false, err
	}
	if ib.cfg.Push == nil {
		return Subscription{}, false, ErrNotFound
	}
	if s.Endpoint == "" || len(s.Endpoint) > MaxEndpointLen || s.P256dh == "" || len(s.P256dh) > 128 || s.Auth == "" || len(s.Auth) > 64 {
		return Subscription{}, false, fmt.Errorf("%w: endpoint of 1 to %d bytes and keys required", ErrInvalid, MaxEndpointLen)
	}
	s.User = userID
	if err := ib.cfg.Push.CheckSubscription(s); err != nil {
		return Subscription{}, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s.ID = randomID()
	s.CreatedAt = ib.now().UTC().Truncate(time.Microsecond)
	stored, created, err := ib.subStore().AddSubscription(ctx, s, ib.cfg.MaxSubscriptions)
	if errors.Is(err, ErrTooMany) {
		return Subscription{}, false, err
	}
	return stored, created, ib.storeErr(err)
}

// RemoveSubscription deletes the user's subscription with the endpoint. An endpoint that is
// not one of the user's (none, or another user's) is not an error: nothing changes.
func (ib *Inbox) RemoveSubscription(ctx context.Context, userID, endpoint string) error {
	if err := validUser(userID); err != nil {
		return err
	}
	if ib.cfg.Push == nil {
		return ErrNotFound
	}
	if endpoint == "" || len(endpoint) > MaxEndpointLen {
		return nil // cannot be stored
	}
	return ib.storeErr(ib.subStore().RemoveSubscription(ctx, userID, endpoint))
}

// Subscriptions returns the user's push subscriptions, oldest first.
func (ib *Inbox) Subscriptions(ctx context.Context, userID string) ([]Subscription, error) {
	if err := validUser(userID); err != nil {
		return nil, err
	}
	if ib.cfg.Push == nil {
		return nil, ErrNotFound
	}
	subs, err := ib.subStore().Subscriptions(ctx, userID)
	return subs, ib.storeErr(err)
}

// MutedTypes returns the notification types the user muted for push, sorted.
func (ib *Inbox) MutedTypes(ctx context.Context, userID string) ([]string, error) {
	if err := validUser(userID); err != nil {
		return nil, err
	}
	if ib.cfg.Push == nil {
		return nil, ErrNotFound
	}
	m, err := ib.subStore().Muted(ctx, userID)
	if m == nil {
		m = []string{}
	}
	return m, ib.storeErr(err)
}

// SetMutedTypes sets the notification types the user muted for push: their notifications
// stay in the inbox and reach live sessions, but are not pushed. At most [MaxMuted] types of
// 1 to 256 bytes; repeats count once. It returns the types as stored, sorted.
func (ib *Inbox) SetMutedTypes(ctx context.Context, userID string, types []string) ([]string, error) {
	if err := validUser(userID); err != nil {
		return nil, err
	}
	if ib.cfg.Push == nil {
		return nil, ErrNotFound
	}
	types = distinct(types)
	if len(types) > MaxMuted {
		return nil, fmt.Errorf("%w: at most %d muted types", ErrInvalid, MaxMuted)
	}
	for _, t := range types {
		if t == "" || len(t) > maxIDLen || !utf8.ValidString(t) {
			return nil, fmt.Errorf("%w: a type is 1 to %d bytes of UTF-8", ErrInvalid, maxIDLen)
		}
	}
	if types == nil {
		types = []string{}
	}
	return types, ib.storeErr(ib.subStore().SetMuted(ctx, userID, types))
}

// pushOut pushes the stored notification n to each of the user's subscriptions, unless the
// user muted its type. It is called when no session of the user received it live. Failures
// are logged: the notification is stored and waits in the inbox.
func (ib *Inbox) pushOut(ctx context.Context, userID string, n Notification) {
	expires := n.CreatedAt.Add(ib.cfg.MaxAge)
	if !expires.After(ib.now()) {
		return // already past its retention: the expiry deletes it
	}
	store := ib.subStore()
	subs, err := store.Subscriptions(ctx, userID)
	if err != nil {
		ib.cfg.Logger.Warn("notify: inbox: cannot read push subscriptions", "user", userID, "err", err)
		return
	}
	if len(subs) == 0 {
		return
	}
	muted, err := store.Muted(ctx, userID)
	if err != nil {
		ib.cfg.Logger.Warn("notify: inbox: cannot read muted types", "user", userID, "err", err)
		return
	}
	if slices.Contains(muted, n.Type) {
		return
	}
	key, err := ib.cursorKey(ctx)
	if err != nil {
		ib.cfg.Logger.Warn("notify: inbox: no key for push acks", "err", err)
		return
	}
	ack := encodeAck(key, userID, n.ID, expires)
	ackURL := strings.TrimSuffix(ib.cfg.PublicPath, "/") + "/push/ack"
	for _, s := range subs {
		endpoint := s.Endpoint
		m := PushMessage{Subscription: s, Notification: n, Ack: ack, AckURL: ackURL, Expires: expires,
			Gone: func(ctx context.Context) {
				if err := store.RemoveSubscription(ctx, userID, endpoint); err != nil {
					ib.cfg.Logger.Warn("notify: inbox: cannot delete an expired push subscription",
						"user", userID, "endpoint", ShortEndpoint(endpoint), "err", err)
				}
			}}
		if err := ib.cfg.Push.Push(m); err != nil {
			ib.cfg.Logger.Warn("notify: inbox: not pushed", "user", userID, "id", n.ID,
				"endpoint", ShortEndpoint(endpoint), "err", err)
		}
	}
}
