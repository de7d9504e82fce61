// Package notify delivers realtime notifications to browsers: a backend calls
// [Hub.Send] with a user ID and every open tab and device of that user receives the event live.
//
// A [Hub] is an http.Handler for the WebSocket endpoint. It authenticates every upgrade with a
// JWT, keeps its own index of sessions by user and by topic (so a send costs what its
// recipients cost, never a scan of all connections), and never lets a slow client hold up a
// send. Where WebSocket cannot pass, [Hub.SSE] serves the same sessions as server-sent events,
// with the client's messages as POSTs that any node routes to the session. Mount both with the
// adapters in adapters/nethttp or adapters/echonotify, which also serve the dependency-free
// browser client at "<prefix>/client.js" and its service worker for Web Push at "<prefix>/sw.js".
//
// # Sending
//
//	hub, err := notify.New(notify.Config{Secret: secret})
//	...
//	report, err := hub.Send(ctx, "alice", notify.Event{Type: "order.shipped", Data: order})
//	_, err = hub.Publish(ctx, "news", notify.Event{Type: "headline", Data: "Hello"})
//	_, err = hub.Broadcast(ctx, notify.Event{Type: "maintenance"})
//
// One method per target. Every hub method that may wait takes a context first; the
// package-level [Send], [Publish] and [Broadcast] are their short forms on the hub given to
// [SetDefault], without a context or a report: notify.Send("alice", ev). A send's [Report]
// says where the event went: its position, until when it is stored, and how many nodes
// received it (0: nobody was online, for example to fall back to e-mail). An event is encoded
// once whatever the number of recipients.
//
// The page that acted (a user marked a message done in one tab) shows the change already:
// its requests carry its session's ID in the [SessionHeader] (the browser client's
// connection.fetch adds it), and [Event].Except set to [SessionFrom] of the request leaves
// that session, or that one tab of a session the browser's tabs share, out of the event; it
// keeps its place in the stream, so that neither the event nor a replay of it reaches the page.
// [Hub.SendSession] sends to one session, on whichever node holds it.
//
// # Authentication
//
// Every connection carries a token: a JWT with the user ID in "sub" (see [Config.UserClaim])
// and a required "exp". It is verified before the upgrade with pinned algorithms; a missing or
// bad token gets 401 and a cross-origin request 403 (see [Config.AllowedOrigins]). Browsers send
// the token in the Sec-WebSocket-Protocol header, which the browser client does for you; an
// application's own authenticated endpoint mints short-lived tokens with [Hub.IssueToken].
// Before a token expires the client is warned and refreshes it in-band; otherwise the session
// closes with [CloseTokenExpired]. Tokens never appear in logs or error messages.
//
// # Topics
//
// Clients subscribe to topics with a message; the token's "topics" claim lists the topics (or
// patterns, "orders.*" or "orders.>") it grants ([Identity].Grants), and [Config.Authorize]
// decides the rest. The server can subscribe a user's sessions with [Hub.Subscribe] and
// [Config.Subscriptions]. A session holds only what its current token allows: when a refresh brings a token that no longer grants a topic the client
// subscribed to (and Authorize does not allow it either), the subscription ends with an
// "unsubscribed" frame carrying the code "forbidden". Subscriptions the server made stay.
//
// # Presence and control
//
// [Hub.Presence] lists a user's sessions on every hub sharing the broker ([Config.Presence]
// keeps them for the cluster, as adapters/redisbroker's Broker does; without one it is this
// hub's); [Hub.LocalSessions] counts this node's only. [Config.OnOnline] and [Config.OnOffline] fire once per cluster-wide
// transition, on the node where it happened (for the users of a node that died, on a surviving
// node, when the Presence is an [OfflineWatcher]); [Config.OnSessionStart] and [Config.OnSessionEnd]
// once per session, with its identity. [Hub.Disconnect] closes every session of a user on
// every node with [CloseSignedOut] and can refuse the user's older tokens everywhere ("sign
// out everywhere"). [Config.Subscriptions] subscribes each session to the topics the application
// grants it on every connect, and [Hub.Subscribe] reaches the user's live sessions on every
// node.
//
// # Slow and misbehaving clients
//
// A session holds at most one frame in its writer's queue; what arrives meanwhile leaves
// together in the next frame. An idle session's event leaves at once, in a frame of its own;
// under load (a thousand sessions or more waiting at once, each with an event or two) the hub
// lets the senders run on first and hands out the frames a few hundred sessions at a time, so
// that each write system call carries several events. Sessions with the same events pending
// (a burst of broadcasts) share one joined frame. When the sessions' writers fall behind a
// burst of broadcasts or topic publishes, the sender yields the processor to them after its
// delivery (it never waits for a client), so that the burst leaves in rounds of a few dozen
// events per write instead of piling up. A client whose backlog passes
// [Config.MaxQueueBytes] is closed with [CloseSlowConsumer] and counted in [Stats]. Bad
// messages get error frames; repeated abuse closes the session with [CloseProtocolAbuse].
//
// # Limits
//
// Whatever a client can make the server keep has a bound. A session may send
// [Config.MessageBurst] messages at once and [Config.MessageRate] a second after that; past
// it messages are answered "rate_limited", and a client that keeps on is closed with
// [CloseRateLimited]. A user may hold [Config.MaxUserSessions] sessions in the cluster (default
// 32; the next upgrade gets 429) and the hub [Config.MaxSessions] (503). A session subscribes to at most
// [Config.MaxTopics] topics, and a topic that never had an event costs nothing once its last
// subscriber leaves. Set the server's ReadHeaderTimeout too, and serve through package shed:
// a hub cannot bound the requests that never finish their headers.
//
// # Metrics
//
// [Hub.Stats] returns the hub's state and its counters (connects and disconnects by close
// code, refused upgrades by reason, sends, deliveries, frames and bytes written, slow-consumer,
// abuse and rate-limit closes, recovery outcomes, broker errors, the duration of sends); they
// cost the send path a few atomic additions. adapters/promnotify exports them to Prometheus.
//
// # Missed events
//
// Every user and every topic is a stream whose events carry consecutive offsets within an
// epoch. The hub keeps each stream's last [Config.HistorySize] events for [Config.HistoryTTL].
// A client that reconnects or resubscribes sends the position of the last event it saw and
// gets what it missed, in order, then live events, without a gap or a duplicate; when the
// history no longer holds it, the client is told (recovered: false) so that it can refetch.
// Broadcasts and events with [Event.Ephemeral] set are not kept.
//
// # Several processes
//
// [Config.Broker] connects the hubs of several processes: a Send on any of them reaches the
// user's sessions on all of them, and [Config.Presence] shares their sessions and token
// refusals. The default is in memory, for one process; adapters/redisbroker implements both on
// Redis, keeping the history there, so a client may reconnect to any node and still recover.
// A [Broker] of another kind names its keys after the streams of [UserStream], [TopicStream]
// and [BroadcastStream].
//
// # Inbox
//
// Package github.com/gonotify/notify/inbox keeps each user's notifications with their read,
// seen and archived state and unread counts, stores and delivers a notification in one call,
// and pushes every change to every session of the user through the hub; adapters/pginbox keeps
// them in PostgreSQL. The browser reaches it over HTTP with the socket's token, which
// [Hub.Authenticate] and [Hub.OriginAllowed] check as an upgrade does.
//
// # Protocol
//
// PROTOCOL.md in the module documents the wire protocol, close codes and what a client does on
// each.
//
// # Concurrency
//
// All methods of [Hub] are safe for concurrent use. [Hub.Shutdown] closes every session with
// "going away" (1001) and waits for the hub's goroutines; when its context ends first it cuts
// the remaining connections and returns the context's error at once.
//
// Inside, each piece of state has one owner, with its lock rule in its doc: the index (the
// sessions by user and by topic), the flusher (frames on their way to melody), each session
// (its token, the recovery state of its streams, its read loop and what it holds, given back
// by one teardown; it reaches the hub through a narrow interface and its connection through a
// transport: melody's WebSocket, or an event stream (sse.go)) and its outbox (its queue of frames, the byte limit and
// the slow-consumer close), the admission counts and the counters. Recovery is pure functions
// over positions (recovery.go); the wire format is internal/wire.
package notify
