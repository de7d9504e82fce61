// Type declarations for notify.js, the notify browser client (served at <prefix>/client.js,
// and on npm as @gonotify/notify). The wire protocol is described in PROTOCOL.md.

/** Close code 1000: normal closure. The client only sees it after its own close(); it does not reconnect. */
export const CLOSE_NORMAL: 1000;
/**
 * Close code 1001: the server is shutting down or restarting; the client reconnects with backoff,
 * or, when the server first sent `{"op":"goaway","reconnect":N}`, at a random time within N
 * seconds (so that a node's clients do not all land on the others at once).
 */
export const CLOSE_GOING_AWAY: 1001;
/**
 * Close code 1006: the network failed or the upgrade was refused (401, 403, or 429 / 503 when the
 * user's or the hub's session cap is reached); reconnect with backoff, which grows while
 * connections keep failing before a welcome.
 */
export const CLOSE_ABNORMAL: 1006;
/** Close code 1009: a client message exceeded the server's size limit; reconnect with backoff. */
export const CLOSE_TOO_BIG: 1009;
/** Close code 4000: the token expired without a refresh; reconnect at once with a fresh token. */
export const CLOSE_TOKEN_EXPIRED: 4000;
/**
 * Close code 4001: signed out, the application disconnected the user on every server. The
 * client reconnects at once if token() (a function) gives a fresh token, and stops with state
 * "closed" and reason "signed out" when it returns null; a fixed token is not used again.
 */
export const CLOSE_SIGNED_OUT: 4001;
/** Close code 4002: slow consumer, the client's queue overflowed; reconnect at once. */
export const CLOSE_SLOW_CONSUMER: 4002;
/** Close code 4003: protocol abuse, too many bad messages; the client does not reconnect. */
export const CLOSE_PROTOCOL_ABUSE: 4003;
/**
 * Close code 4029: the client kept sending faster than the server's message rate. The client
 * reconnects with its normal backoff, but never sooner than 5 seconds plus up to 5 seconds of
 * jitter (a uniformly random wait of at least 5 s and below 10 s), even when the browser comes
 * back online meanwhile.
 */
export const CLOSE_RATE_LIMITED: 4029;

/** An event as the server sends it. Fields this version does not know are kept as they are. */
export interface NotifyEvent<T = unknown> {
  /** The event's type name, chosen by the application. */
  type: string;
  /** Unique id; the client delivers each id at most once (among the last 1000 ids). */
  id: string;
  /** When the event was created, RFC 3339. */
  time: string;
  /** Any JSON value; absent when null. */
  data?: T;
  /** Present on topic events only: the topic it was published to. */
  topic?: string;
  /**
   * The event's position in its stream (the user's, or the topic's): consecutive numbers within
   * an epoch. Absent on broadcasts and ephemeral events.
   */
  offset?: number;
  /** The stream's epoch, with offset. */
  epoch?: string;
  /**
   * Present when the event is a stored notification (package inbox's Notify) delivered to the
   * handlers of its own type: the notification as stored. The event's id, time and data are
   * then the notification's id, createdAt and data; use id with connection.inbox.markRead.
   */
  notification?: InboxNotification<T>;
  [field: string]: unknown;
}

/**
 * The outcome of a recovery, reported by onRecovery. topic is absent for the user's own stream.
 * recovered true: every missed event follows (or none were missed), in order, before live ones.
 * recovered false: events were missed and cannot be replayed (the server's history no longer
 * holds them, or the stream's history was lost); refetch the state they would have changed.
 */
export interface Recovery {
  topic?: string;
  recovered: boolean;
}

/**
 * What onError reports, as the server sent it. The connection stays up after one.
 *
 * op "error": a refused request. bad_request, unknown_op, invalid_topic, forbidden,
 * too_many_topics and invalid_token are reported as they come. rate_limited (the server did not
 * process a request because the client sent too fast) is not reported while the client sends the
 * request again: a subscribe, unsubscribe or refresh is re-sent up to 3 times, after a random
 * 1–3 s, then 2–6 s, then 4–12 s; only when the fourth "rate_limited" comes is it reported (and
 * a subscribe() rejected). A refresh is not re-sent past the session token's expiry: the server
 * then closes with 4000 and the client reconnects with a fresh token.
 *
 * op "unsubscribed" (always with a topic and a code, e.g. "forbidden" with reason "topic not
 * granted by token"): the server ended a subscription on its own, because the token of a refresh
 * no longer grants the topic. The client has forgotten the topic: it is not renewed on
 * reconnect, its position is dropped, and a subscribe() still waiting for it rejects.
 * An "unsubscribed" without a code (the answer to unsubscribe()) is not reported.
 */
export interface ErrorFrame {
  op: "error" | "unsubscribed";
  /** For op "error": bad_request, unknown_op, invalid_topic, forbidden, too_many_topics, invalid_token or rate_limited. */
  code: string;
  /** A human-readable reason. */
  reason?: string;
  /** The topic the error concerns, if any. */
  topic?: string;
  [field: string]: unknown;
}

/**
 * The error the client's promises reject with: subscribe(), connected() and the inbox's
 * requests. Its message starts with "notify: ".
 */
export class NotifyError extends Error {
  constructor(code: string, reason?: string, options?: { topic?: string; status?: number });
  name: "NotifyError";
  /**
   * The server's error code (e.g. "forbidden", also when the server revoked the topic before
   * answering; "rate_limited" when the client gave up re-sending the subscribe), or
   * "unsubscribed" when unsubscribe() was called before the answer, or "closed" when the
   * connection closed for good. For request(): one of RequestErrorCode, or the handler's own
   * code (e.g. "not_found"). For an inbox request: the server's code ("unauthorized",
   * "not_found", "bad_request", "too_large", "unavailable", ...), "http_<status>" when the
   * answer carries none, or "network". connection.push adds "unsupported", "permission_denied",
   * "service_worker", "subscribe_failed", "unsubscribe_failed" and "bad_response" (see Push).
   */
  code: string;
  reason?: string;
  /** The topic of a subscribe() that failed. */
  topic?: string;
  /** Inbox requests only: the HTTP status (0 for a network failure, 401 when token() gave null). */
  status?: number;
}

/** What a call that waits accepts to stop waiting: it then rejects with signal.reason. */
export interface Abortable {
  signal?: AbortSignal;
}

/**
 * The connection states. "connecting": the first connection is being made. "connected": the
 * server's welcome arrived. "reconnecting": the connection dropped or failed and the next attempt
 * is scheduled or under way. "closed": terminal; the connection will not be reopened.
 */
export type State = "connecting" | "connected" | "reconnecting" | "closed";

/** What accompanies a state change; which fields are set depends on the state. */
export interface StateInfo {
  /** connected: the user the server authenticated. */
  user?: string;
  /** connected: the session id the server assigned. */
  session?: string;
  /**
   * reconnecting, closed: the close code that ended the previous connection, if it closed.
   * closed with 4001 and reason "signed out": the user was signed out and token() gave no
   * fresh token.
   */
  code?: number;
  /** reconnecting, closed: the close reason, or why the client gave up on the connection. */
  reason?: string;
  /** reconnecting, closed: what token() threw, or what the WebSocket constructor threw. */
  error?: unknown;
  /** reconnecting: the number of attempts since the last welcome, counting this one (1, 2, ...). */
  attempt?: number;
  /** reconnecting: milliseconds until this attempt starts; after close code 4029, at least 5000. */
  delay?: number;
}

/** Options of connect(). Every field is optional. */
export interface ConnectOptions {
  /**
   * The token (a JWT) for the connection, sent as the protocol "notify.bearer.<token>" next to
   * "notify.v1". A function is called before every connection and reconnection, and when the
   * server sends "expiring" (its result is then sent as a "refresh"); it may be async.
   * undefined or "" connects without a token (cookie authentication). null means the user is
   * signed out: the client then closes for good (state "closed") instead of connecting.
   * If the function throws or rejects, the client reports the error in the "reconnecting" state
   * info and backs off. connection.inbox reuses the last token while it is valid (see Inbox).
   * Default: none.
   */
  token?: string | null | (() => string | null | undefined | Promise<string | null | undefined>);
  /** Topics to subscribe to after every welcome. Default: none. */
  topics?: Iterable<string>;
  /** Backoff base in milliseconds: attempt n waits up to min(maxDelay, minDelay * 2^n). Default: 500. */
  minDelay?: number;
  /** Backoff cap in milliseconds. Default: 30000. */
  maxDelay?: number;
  /** The WebSocket constructor to use, for tests or non-browser runtimes. Default: globalThis.WebSocket. A connection given one is not shared. */
  WebSocket?: new (url: string, protocols: string[]) => WebSocket;
  /**
   * Which transport to use. "auto" connects over WebSocket and, when an upgrade fails (closed
   * before its welcome, or no welcome within 5 s), falls back to server-sent events at
   * "<path>/sse" beside the socket's "<path>/ws", with the same events and API, and tries
   * WebSocket again after about 30 s, then less often up to every 5 minutes while it keeps
   * failing (a working stream is dropped for the try; recovery keeps every event). "sse" uses
   * the event stream only, "websocket" never does. The stream is opened with a single-use
   * ticket fetched with the token (the token never goes in a URL), or with the cookie when
   * there is no token. Default: "auto".
   */
  transport?: Transport;
  /**
   * The largest message the server accepts, in bytes (its Config.MaxMessageSize): request()
   * rejects a larger request with "too_large" without sending it, since the server would close
   * the socket (1009) or refuse the POST (413). Default: 8192, the server's default.
   */
  maxMessageSize?: number;
  /** The EventSource constructor, for tests or non-browser runtimes. Default: globalThis.EventSource. */
  EventSource?: new (url: string) => EventSource;
  /**
   * Whether the page's connection is shared with the browser's other tabs of the same origin
   * that connect to the same URL: one socket, one server session, one subscription per topic
   * for all of them. It lives in a SharedWorker running `sharedWorkerURL`, or, without
   * SharedWorker (Chrome on Android), in one tab elected with Web Locks, which hands it over
   * when it closes, crashes or is frozen. Each tab keeps this same API: its handlers get every
   * event once, its subscribe() and unsubscribe() count (a topic stays while any tab wants it),
   * its inbox's counts agree with the others'. The connection's token() is one tab's at a time.
   *
   * A string shares only with the tabs that pass the same string: give the user's id when tabs
   * of one browser may be different users, or they would share the first one's connection.
   * false gives this tab a connection of its own. Outside a page (Node, a worker) or without
   * SharedWorker and Web Locks, a connection is never shared. Default: true.
   */
  shared?: boolean | string;
  /**
   * The script the SharedWorker runs: this module, unbundled, from the page's origin. Default:
   * "client.js" beside the socket's URL ("/notify/ws" gives "/notify/client.js"), where the
   * server serves it. A worker that cannot start leaves the tabs to the Web Locks path.
   */
  sharedWorkerURL?: string;
}

/** The transports of a connection (see ConnectOptions.transport). */
export type Transport = "auto" | "websocket" | "sse";

/** A notify connection, as connect() returns it. */
export interface Connection {
  /** The current state. */
  readonly state: State;
  /** The user from the latest welcome; undefined before the first. */
  readonly user: string | undefined;
  /** The session id from the latest welcome; undefined before the first. */
  readonly session: string | undefined;
  /**
   * The ID the server leaves out of the events this page's requests cause (PROTOCOL.md,
   * "Leaving out the acting session"): the session's ID, and in a tab sharing the browser's
   * connection, the session's and the tab's ("<session>.<tab>"), so that the browser's other
   * tabs still get them. It changes on every reconnect; undefined before the first welcome.
   * connection.fetch sends it; the backend reads it with notify.SessionFrom and sets
   * Event.Except.
   */
  readonly sessionId: string | undefined;
  /** The transport of the current (or next) connection. */
  readonly transport: "websocket" | "sse";

  /**
   * Calls fn when the transport changes (a fallback to server-sent events, or back to
   * WebSocket), before the connection over it opens. Returns a function that removes fn.
   */
  onTransport(fn: (transport: "websocket" | "sse", info: { previous: "websocket" | "sse" }) => void): () => void;

  /**
   * Calls fn for every event of this type, in the order received; type "*" gets every event
   * except the inbox's own. An event whose id was already delivered, before or after a
   * reconnect, is dropped. Returns a function that removes fn.
   *
   * A stored notification (the inbox's "new") reaches the handlers of its own type and "*", once
   * per notification, with `notification` set (see NotifyEvent). The inbox's events themselves
   * (type "inbox": new, read, seen, archive, delete... with the counts) reach on("inbox") and
   * connection.inbox.onChange only.
   */
  on(type: "inbox", fn: (event: NotifyEvent<InboxChange>) => void): () => void;
  on<T = unknown>(type: string, fn: (event: NotifyEvent<T>) => void): () => void;

  /**
   * Calls fn on every state change, and again with fresh info each time a reconnect is
   * scheduled. Returns a function that removes fn.
   */
  onState(fn: (state: State, info: StateInfo) => void): () => void;

  /**
   * Resolves with the user and session once connected: at once when connected now, otherwise at
   * the next welcome. Rejects with a NotifyError (code "closed") when the connection closes for
   * good first, and with signal.reason when signal aborts first.
   */
  connected(options?: Abortable): Promise<{ user: string; session: string }>;

  /**
   * Calls fn for every "error" control frame from the server, except "rate_limited" ones the
   * client handles by re-sending the request, and for every subscription the server revoked (an
   * "unsubscribed" frame with a code). See ErrorFrame. Returns a function that removes fn.
   */
  onError(fn: (error: ErrorFrame) => void): () => void;

  /**
   * Calls fn each time the client learns whether missed events could be recovered: after every
   * reconnect (for the user stream, then for each topic as it is resubscribed), and when an event
   * shows that events went missing that the client could not get back. The client remembers the
   * position of the user stream and of every topic it subscribed to, sends them when it
   * reconnects and resubscribes, and the server replays what was missed. On the first
   * connection and a first subscribe nothing was missed, and fn is not called. A gap in a
   * stream's offsets makes the client reconnect at once to fetch what is missing.
   * Returns a function that removes fn.
   */
  onRecovery(fn: (recovery: Recovery) => void): () => void;

  /**
   * Subscribes to topic now if connected, and after every reconnect until unsubscribe() or until
   * the server revokes it. The promise resolves when the server answers "subscribed" (also if
   * that answer comes only after a reconnect, or after re-sends the server's rate limit called
   * for) and rejects with a NotifyError when it answers "error" for the topic (which forgets the
   * topic), when the server revokes the topic first (code "forbidden"), when it is still
   * rate-limited after 3 re-sends (code "rate_limited"; the topic is forgotten), when
   * unsubscribe() is called first, or when the connection closes for good.
   */
  subscribe(topic: string): Promise<void>;

  /**
   * Forgets topic and sends "unsubscribe" if connected; if the server answers "rate_limited",
   * sends it again later, as subscribe() does (giving up is reported through onError).
   */
  unsubscribe(topic: string): void;

  /**
   * Asks the server's handler registered under name (the Go hub's Config.Requests) and resolves
   * with its answer (any JSON value; null when it answered none). It is sent now when
   * connected, else after the next welcome; a request still waiting for its answer when the
   * connection drops is sent again, with the same id, after each reconnect until its timeout,
   * and the server answers a repeated id from its cache (for a minute, on the node that
   * answered it) rather than running the handler twice. On a shared connection the tab's
   * request goes through the tab holding the connection and only this tab gets the answer.
   *
   * Rejects with a NotifyError whose code is one of RequestErrorCode or the handler's own code
   * (its RequestError), and with signal.reason when signal aborts first (the request is then
   * not sent again). Requests count against the server's message rate like any message.
   */
  request<T = unknown>(name: string, data?: unknown, options?: RequestOptions): Promise<T>;

  /**
   * fetch(input, init) with the Notify-Session header set to sessionId (when there is one),
   * and nothing else changed: for the application's requests whose events the backend sends
   * with the page's session left out. A Request's own headers are kept unless init has
   * headers. A backend on another origin must allow the header in its CORS preflight answer
   * (Access-Control-Allow-Headers: Notify-Session). The inbox's changes send it themselves.
   */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;

  /** Closes the connection with code 1000 and does not reconnect; the state becomes "closed". */
  close(): void;
}

/** Options of Connection.request(). */
export interface RequestOptions extends Abortable {
  /** Milliseconds to wait for the answer, across reconnects; then it rejects with "timeout". Default: 10000. */
  timeout?: number;
  /**
   * The request's id, 1 to 64 characters, unique for the user: a request with the id of one the
   * server answered within the last minute gets that answer, without its handler running
   * again. Calls with the id of a request still waiting share its answer. Default: a random
   * UUID.
   */
  id?: string;
}

/**
 * The codes request() rejects with, besides the handler's own (PROTOCOL.md, "Requests"):
 * - "unknown_request": the server has no handler by that name;
 * - "internal": the handler failed (or panicked) without a code of its own;
 * - "timeout": no answer in time, from the client's timeout or the server's;
 * - "too_many_requests": the session has as many requests in flight as the server allows;
 * - "rate_limited": past the server's message rate (not re-sent: retry later);
 * - "too_large": the request is larger than maxMessageSize (not sent);
 * - "bad_request": the server could not read the request (an id or name of the wrong size);
 * - "closed": the connection closed for good first.
 */
export type RequestErrorCode =
  | "unknown_request" | "internal" | "timeout" | "too_many_requests" | "rate_limited" | "too_large"
  | "bad_request" | "closed";

/**
 * Opens a notify connection to url (absolute, or relative to the page: http becomes ws, https
 * becomes wss) and keeps it open, reconnecting with capped exponential backoff and full jitter,
 * until close() is called or the server closes it for good. It returns at once; the first state
 * change ("connecting") comes after the caller's synchronous code.
 */
export function connect(url: string, options?: ConnectOptions): Connection;

// ---- inbox (PROTOCOL.md, "Inbox over HTTP") ----

/** A stored notification, as the inbox endpoints return it. */
export interface InboxNotification<T = unknown> {
  id: string;
  type: string;
  /** Any JSON value; absent when none. */
  data?: T;
  /** RFC 3339. */
  createdAt: string;
  /** When it was read, seen, archived; absent while not. */
  readAt?: string;
  seenAt?: string;
  archivedAt?: string;
}

/** The numbers a bell shows. Archived notifications count in none of them. */
export interface InboxCounts {
  unread: number;
  unseen: number;
  total: number;
}

/** The data of a live "inbox" event: what changed and the counts after. */
export interface InboxChange<T = unknown> {
  op: "new" | "read" | "unread" | "read-all" | "seen" | "archive" | "unarchive" | "delete";
  /** The notifications that changed; absent for "new" and "read-all". */
  ids?: string[];
  /** The new notification, for "new". */
  notification?: InboxNotification<T>;
  counts: InboxCounts;
}

/** A page of the list, newest first. */
export interface InboxPage<T = unknown> {
  items: InboxNotification<T>[];
  /** The cursor of the next page; absent on the last. */
  next?: string;
}

/**
 * The user's stored notifications, over HTTP with the connection's token: the token the socket
 * last got from token(), reused until 30 s before its expiry (the JWT's "exp"), so that token()
 * is not called for every request; a reused token the server refuses is replaced once.
 * Requests reject with a NotifyError whose code is the server's ("unauthorized", "not_found",
 * "bad_request", "too_large", "unavailable", ...) or "network", and whose `status` is the HTTP
 * status (0 for a network failure), or with signal.reason when the call's signal aborts.
 */
export interface Inbox {
  /** The unread count as last known: 0 until the first fetch or live event. */
  readonly unread: number;
  /** The counts as last known, or null before the first fetch or live event. */
  readonly current: InboxCounts | null;
  /**
   * Calls fn whenever the counts are known anew: fetched when the connection is established
   * (change null) or pushed by a change in any tab or device. A change this page makes while
   * connected comes from the request's answer (change with the IDs asked for): the server
   * leaves the page out of the change's live event, which on("inbox") therefore does not get.
   * Returns a function that removes fn.
   */
  onChange(fn: (update: { counts: InboxCounts; change: InboxChange | null }) => void): () => void;
  /**
   * A page of the list: unread only, the archive instead of the inbox, 1 to 100 items (default
   * 20). T is the type of the notifications' data, as the application knows it (not checked).
   */
  list<T = unknown>(query?: { unread?: boolean; archived?: boolean; limit?: number; cursor?: string } & Abortable): Promise<InboxPage<T>>;
  /** Fetches the counts (and updates `unread`). */
  counts(options?: Abortable): Promise<InboxCounts>;
  /** Each change takes one id or several (at most 1000) and resolves to the counts after. */
  markRead(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  markUnread(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  markSeen(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  archive(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  unarchive(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  delete(ids: string | string[], options?: Abortable): Promise<InboxCounts>;
  markAllRead(options?: Abortable): Promise<InboxCounts>;
}

export interface Connection {
  /** The user's inbox, made on first use. */
  readonly inbox: Inbox;
}

export interface ConnectOptions {
  /**
   * The base URL of the inbox endpoints. Default: "inbox/" beside the socket's URL, on the same
   * origin ("/notify/ws" gives "/notify/inbox/").
   */
  inboxURL?: string;
  /** The fetch function of the inbox's requests and of the event stream's tickets and messages. Default: globalThis.fetch. */
  fetch?: typeof fetch;
}

// ---- Web Push (PROTOCOL.md, "Web Push") ----

/**
 * Whether this browser gets the user's notifications by Web Push while no tab is open.
 * "unsupported": the browser has no service workers, Push API or Notification (or the page is
 * not a secure context). "denied": the user blocked notifications for the site; only they can
 * undo it, in the browser's settings. "disabled": not subscribed (or permission not asked yet).
 * "enabled": this browser holds a subscription at the service worker's scope.
 */
export type PushState = "unsupported" | "denied" | "disabled" | "enabled";

/** A browser subscribed to the user's pushes, as the server lists it. */
export interface PushSubscriptionInfo {
  id: string;
  /** The push service's endpoint, shortened (it is a capability: never shown in full). */
  endpoint: string;
  /** RFC 3339. */
  createdAt: string;
}

/** The user's push preferences: the notification types they get no push for. */
export interface PushPreferences {
  muted: string[];
}

/**
 * Web Push for the user of the connection: the server pushes a stored notification to each of
 * the user's subscribed browsers when it cannot reach them live, and the service worker
 * (sw.js, served by the hub at "<prefix>/sw.js") shows it, marks it seen, and on a click focuses
 * a tab of the app on its URL (or opens one) and marks it read.
 *
 * The requests are this tab's own, with the inbox's token, to the inbox's endpoints
 * "push/..." (so that using push also makes connection.inbox, which fetches the counts on every
 * connect). They reject with a NotifyError with the server's code and HTTP status, as the
 * inbox's do, or with the codes below.
 *
 * A subscription belongs to the browser, not to the user: call disable() before signing the
 * user out, or this browser keeps receiving their notifications.
 */
export interface Push {
  /** This browser's state; it asks nothing of the server and never prompts. */
  state(): Promise<PushState>;
  /**
   * Subscribes this browser: asks for the notification permission (call it from a click: the
   * browser prompts only within a user gesture, and asks nothing when already decided), fetches
   * the server's VAPID key (GET push/key), registers the service worker if it is not
   * (serviceWorkerURL at serviceWorkerScope), subscribes with the push service and sends the
   * subscription to the server (POST push/subscriptions). Resolves with the server's id of it.
   * Calling it again when enabled sends the same subscription again (the server keeps one); one
   * made with another key (the server's keys changed) is replaced. Call it on each load while
   * state() is "enabled" (no prompt then): the server learns a subscription the browser renewed
   * while no tab was open. Until the push service answers (a network that blocks it may leave
   * the browser waiting for ever), only the signal ends the wait. Rejects with code
   * "unsupported" (no Web Push here, or status 404: the server has none), "permission_denied"
   * (denied or dismissed), "service_worker" (the script did not register or install),
   * "subscribe_failed" (the push service refused or was unreachable), or the server's code
   * ("bad_request": an endpoint it does not accept, "too_many": the user has too many
   * subscriptions, "unavailable", ...). A subscription it made and the server did not take is
   * undone: state() stays "disabled".
   */
  enable(options?: Abortable): Promise<{ id: string }>;
  /**
   * Removes this browser's subscription from the server (DELETE push/subscriptions) and
   * unsubscribes it in the browser, which happens even when the server cannot be reached (the
   * promise then rejects with that error; the push service refuses the server's next push to it,
   * and the server deletes it then). Resolves at once when not subscribed. The service worker
   * stays registered.
   */
  disable(options?: Abortable): Promise<void>;
  /** The user's subscriptions (their browsers and devices), from the server. */
  subscriptions(options?: Abortable): Promise<PushSubscriptionInfo[]>;
  /** The user's push preferences. */
  preferences(options?: Abortable): Promise<PushPreferences>;
  /**
   * Sets the notification types the user gets no push for, replacing the list (an empty one
   * unmutes all; a string is one type); the notifications are stored and delivered live all the same. Resolves with
   * the preferences as stored.
   */
  mute(types: string | Iterable<string>, options?: Abortable): Promise<PushPreferences>;
}

export interface Connection {
  /** Web Push for the user, made on first use. */
  readonly push: Push;
}

export interface ConnectOptions {
  /**
   * The service worker's script, on the page's origin. Default: "sw.js" beside the socket's
   * URL ("/notify/ws" gives "/notify/sw.js"), where the server serves it. An app with a service
   * worker of its own gives that one's URL here, and runs notify's in it with
   * importScripts("/notify/sw.js"): a scope has one service worker, and registering notify's
   * would replace the app's.
   */
  serviceWorkerURL?: string;
  /** The service worker's scope, relative to the page. Default: "/", the whole origin. */
  serviceWorkerScope?: string;
}
