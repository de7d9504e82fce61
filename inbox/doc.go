// Package inbox keeps every user's notifications, with read, seen and archived state and the
// unread counts, and keeps every tab and device of the user in agreement about them, live.
//
// A live event from [notify.Hub.Send] is gone once delivered: a reload empties the page's list,
// and reading it in one tab leaves the badge of the others as it was. An [Inbox] stores each
// notification in a [Store] and delivers it through the hub in one call, and pushes every
// change (read, unread, seen, archive, unarchive, delete, read all) with the user's new counts
// to every session of the user, on every node sharing the hub's broker:
//
//	ib, err := inbox.New(hub, inbox.Config{}) // in memory; adapters/pginbox for PostgreSQL
//	...
//	mux.Handle("/notify/inbox/", ib.Handler()) // beside /notify/ws
//	n, report, err := ib.Notify(ctx, "alice", inbox.Notification{ID: "order-42-shipped", Type: "order.shipped", Data: data})
//
// A notification's Data is any value encoding/json marshals, as an event's; the inbox stores
// its JSON and hands it back as a json.RawMessage.
//
// # The browser
//
// The browser reaches the inbox over HTTP ([Inbox.Handler]), not over the WebSocket: a page
// lists and counts at once on load, before or without a socket; each request has its own
// status code and timeout; proxies, rate limiters and logs understand it; and the WebSocket
// protocol gains no request/response messages to version. Requests carry the socket's token
// (Authorization: Bearer, or the hub's cookie) and pass the hub's origin check. The browser
// client's connection.inbox wraps the endpoints and keeps a live unread count; PROTOCOL.md,
// "Inbox over HTTP", documents them.
//
// # Live events
//
// Every change is an event of type [EventType] whose data is a [Change]: the op, the IDs that
// changed (or the new notification) and the user's counts after it. They go through the hub
// like any Send, so they reach every node and are replayed to a session that reconnects. The
// store is the truth: a session that was away fetches the counts and the list on connect.
//
// # Guarantees
//
//   - Notify is idempotent on the notification's ID: a retry after a timeout returns the stored
//     notification and stores and delivers nothing more.
//   - A user reads and changes only their own notifications: an ID of another user's behaves
//     exactly as one that does not exist ([ErrNotFound], counts unchanged), since stores look
//     notifications up by user and ID together.
//   - Counts are kept with the rows (per-user counters, updated in the same step as the rows),
//     read in O(1); they never go negative or drift, and a change applied twice counts once.
//   - An inbox cannot grow without bound: past [Config.MaxPerUser] the oldest go, and
//     notifications older than [Config.MaxAge] are deleted every [Config.ExpireInterval].
//   - A list's cursors are signed (HMAC-SHA256 with [Config].CursorKey, by default a key the
//     store keeps, so every node sharing the store accepts the others'): List refuses a cursor
//     it did not hand out to the user with [ErrBadCursor] (400 over HTTP).
//   - A store that fails gives [ErrUnavailable] (the HTTP endpoints answer 503); the hub's live
//     delivery does not depend on it.
//
// # Web Push
//
// With [Config].Push set (adapters/webpush's Sender), a notification also reaches a user
// with no open tab, as a system notification. Notify stores and delivers it live as always;
// when its live delivery's [notify.Report] says no node holds a session of the user (Nodes
// is 0), Notify hands it to the Pusher for each of the user's [Subscription]s, unless the
// user muted its type, and returns without waiting for the push service. Only then: a
// visible tab shows the notification itself and a push would show it twice, and a hidden tab
// still has a session that gets it live (the page may show a system notification itself). A
// broker that cannot tell (Nodes -1) or fails gets no push: a duplicate is worse than a
// notification that waits in the inbox.
//
// The browser manages its subscriptions beside the inbox's endpoints ([Inbox.Handler]): it
// fetches the VAPID key (push/key), adds the PushSubscription the browser gave it (POST
// push/subscriptions; the Pusher refuses endpoints that are not https, not a known push
// service or on a private address, and malformed keys: 400, nothing stored), removes it
// (DELETE; an endpoint that is not the caller's answers as absent) and mutes types
// (push/preferences). A user has at most [Config].MaxSubscriptions (409 past it); the same
// endpoint again is the same subscription. A subscription the push service says is gone (404,
// 410) is deleted.
//
// Each push carries an ack capability: an HMAC with the cursor key (shared by every node)
// over the user, the notification's ID and its expiry (CreatedAt plus [Config].MaxAge). With
// it the service worker, which has no token, marks that one notification seen or read (POST
// push/ack, [Inbox.Ack]) and nothing else. The push names the endpoint by
// [Config].PublicPath, which the inbox cannot learn from a push: set it when the handler is
// not mounted at the client's default, "/notify/inbox/".
//
// # Stores
//
// [MemoryStore] is the default: zero configuration, for one process and tests. The module
// github.com/gonotify/notify/adapters/pginbox keeps inboxes in PostgreSQL. Package inboxtest
// is the conformance suite every store passes.
//
// # Concurrency
//
// All methods of [Inbox] and [MemoryStore] are safe for concurrent use. An Inbox runs one
// goroutine, the expiry; [Inbox.Close] stops it and waits for it.
package inbox
