// Package webpush sends an inbox's notifications as Web Push messages (RFC 8030), encrypted
// for the browser (RFC 8291) and signed with the application server's VAPID key (RFC 8292),
// through github.com/SherClockHolmes/webpush-go. A [Sender] is the [inbox.Pusher] of
// inbox.Config.Push:
//
//	pub, priv, err := webpush.GenerateKeys() // once; keep them with the app's secrets
//	...
//	sender, err := webpush.New(webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "mailto:ops@example.com"})
//	...
//	defer sender.Close(ctx)
//	ib, err := inbox.New(hub, inbox.Config{Store: store, Push: sender})
//
// # When a notification is pushed
//
// inbox.Notify stores a notification and delivers it live; when no session of the user
// received it anywhere in the cluster (the live Report's Nodes is 0), it hands it to the
// sender for each of the user's subscriptions, unless the user muted its type. A user with a
// tab open (visible or not) is not pushed to: that tab shows the notification itself, and a
// push would show it a second time.
//
// # Never blocking Notify
//
// Push encodes the payload and queues it; Config.Workers goroutines send the queue. When
// Config.QueueSize pushes wait already, Push drops the new one: it returns ErrQueueFull (the
// inbox logs it) and Stats.Dropped counts it. A 429 or 5xx answer, a timeout or a failed
// connection is retried up to Config.Retries times, after the push service's Retry-After or
// with exponential backoff, by a goroutine that holds the waiting pushes (bounded by
// Config.QueueSize too); a 404 or 410 deletes the subscription; a 413 is logged and dropped.
//
// # Security
//
// The server POSTs to a URL a browser gave it, so endpoints are checked when added
// (CheckSubscription) and when dialed: https only, the host on Config.Hosts (by default the
// push services of the major browsers), no private, loopback or link-local address unless
// the host is listed exactly, no proxy, no redirect followed, a timeout and a bound on the
// answer read. Logs show an endpoint shortened (inbox.ShortEndpoint) and never keys.
package webpush
