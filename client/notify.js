// notify browser client: one dependency-free ES module implementing PROTOCOL.md, version 1.
// The server serves this file as it is at <prefix>/client.js; npm has it as @gonotify/notify.
// Its exports are the public API (connect, NotifyError, the close codes): the helpers below are
// not exported (the unit tests reach them through client/test/internal.mjs).
//
//   import { connect } from "/notify/client.js"; // or from "@gonotify/notify"
//   const n = connect("/notify/ws", { token: () => fetchToken(), topics: ["news"] });
//   n.on("order.shipped", (ev) => show(ev.data));
//
// The client reconnects with capped exponential backoff and full jitter, fetches a fresh token
// for every connection and on the server's "expiring" warning, resubscribes its topics after
// every welcome, and drops events whose id it has already delivered. It remembers the position
// (epoch and offset) of the user's stream and of each topic, and on every reconnect and
// resubscribe asks the server for the events it missed; onRecovery tells the application
// whether that worked or whether it should refetch its state.
//
// The server rate-limits what a session sends. A subscribe, unsubscribe or refresh it answers
// with error "rate_limited" was not processed: the client sends it again after a jittered,
// growing delay (rateLimitDelay) and gives up after RATE_RETRIES re-sends. A session closed with
// 4029 reconnects with the normal backoff, but never sooner than RATE_LIMIT_FLOOR.

/** Close codes, PROTOCOL.md "Close codes". */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_TOKEN_EXPIRED = 4000;
export const CLOSE_SIGNED_OUT = 4001;
export const CLOSE_SLOW_CONSUMER = 4002;
export const CLOSE_PROTOCOL_ABUSE = 4003;
export const CLOSE_RATE_LIMITED = 4029;

const SUBPROTOCOL = "notify.v1";
const BEARER_PREFIX = "notify.bearer.";
const DEFAULT_PING = 25; // seconds, when the welcome names none
const DEDUP_SIZE = 1000;
const GAP_GRACE = 10000; // ms: a second offset gap this soon after one is reported, not reconnected
// After a close with 4029 the next connection waits at least RATE_LIMIT_FLOOR ms plus up to as
// much again of jitter, i.e. a uniformly random time in [5 s, 10 s), or the normal backoff if
// that is longer. The jitter keeps clients the server limited together from returning together.
const RATE_LIMIT_FLOOR = 5000;
// How often a message answered with "rate_limited" is sent again before the client gives up.
const RATE_RETRIES = 3;
// With transport "auto": how long a WebSocket may wait for its welcome before the client falls
// back to the event stream, and how long it stays there before trying WebSocket again (ms):
// WS_AGAIN_MIN after the first fallback (a server restart also fails a WebSocket before its
// welcome, and must not keep every client on the stream for long), doubling with each failed
// try up to WS_AGAIN, with jitter (0.5 to 1.5 times) so that clients do not try together.
const WELCOME_WAIT = 5000;
const WS_AGAIN_MIN = 30 * 1000;
const WS_AGAIN = 5 * 60 * 1000;

/**
 * backoffDelay returns how long to wait before reconnect attempt number `attempt` (0-based):
 * a uniformly random time in [0, min(maxDelay, minDelay * 2^attempt)), "full jitter".
 */
function backoffDelay(attempt, minDelay, maxDelay, random = Math.random) {
  // Bound the exponent so that a long outage neither overflows to Infinity nor, with
  // minDelay 0, yields 0 * Infinity = NaN.
  const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return random() * ceiling;
}

/**
 * rateLimitDelay returns how long to wait before sending a message again that the server
 * answered with "rate_limited", for the `retry`th time (0-based): a uniformly random time in
 * [1 s, 3 s), doubled for every earlier retry of the same message.
 */
function rateLimitDelay(retry, random = Math.random) {
  return (1000 + 2000 * random()) * 2 ** Math.min(retry, 30);
}

/**
 * closeAction says what to do after the connection closed with `code`: "stop" (do not
 * reconnect), "now" (reconnect at once with a fresh token), "signedout" (the application
 * disconnected the user: reconnect at once with a fresh token if token() gives one, and stop
 * when it returns null), "limited" (the server's rate limit closed the session: back off, but
 * wait at least RATE_LIMIT_FLOOR) or "backoff".
 */
function closeAction(code) {
  switch (code) {
    case CLOSE_NORMAL: // only ever sent because we asked for it
    case CLOSE_PROTOCOL_ABUSE:
      return "stop";
    case CLOSE_TOKEN_EXPIRED:
    case CLOSE_SLOW_CONSUMER:
      return "now";
    case CLOSE_SIGNED_OUT:
      return "signedout";
    case CLOSE_RATE_LIMITED:
      return "limited";
    default:
      // 1001, 1009, anything unknown, and 1006: a network failure, but also every upgrade the
      // server refused (401, 403, and 429 or 503 when the user's or the hub's session cap is
      // reached), which a browser cannot tell apart. Connections refused before a welcome never
      // reset the attempt count, so the backoff grows to maxDelay and stays there.
      return "backoff";
  }
}

/**
 * parseFrame splits a text frame into its JSON objects. The server may batch several objects
 * into one frame, one per line. Blank lines, malformed lines and lines holding anything but a
 * JSON object are skipped: one bad line must not cost the events around it.
 */
function parseFrame(text) {
  const out = [];
  for (const line of String(text).split("\n")) {
    let value;
    try {
      value = JSON.parse(line);
    } catch {
      continue;
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) out.push(value);
  }
  return out;
}

/**
 * Dedup remembers the last `size` ids it was shown, evicting the oldest first.
 * seen(id) returns true if id is among them, and otherwise records it and returns false.
 */
class Dedup {
  #ids = new Set(); // a Set iterates in insertion order: its first element is the oldest
  #size;

  constructor(size = DEDUP_SIZE) {
    this.#size = size;
  }

  seen(id) {
    if (this.#ids.has(id)) return true;
    this.#ids.add(id);
    if (this.#ids.size > this.#size) this.#ids.delete(this.#ids.values().next().value);
    return false;
  }
}

/**
 * positionOf returns the stream position {epoch, offset} a welcome, subscribed or event object
 * carries, or undefined when it carries none (broadcasts, ephemeral events, a server without
 * history). The server omits a zero offset.
 */
function positionOf(msg) {
  if (typeof msg.epoch !== "string" || msg.epoch === "") return undefined;
  const offset = msg.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { epoch: msg.epoch, offset };
}

/**
 * withPosition returns url (absolute) with the user stream's recovery position in its query,
 * replacing any earlier one. Without a position, the two parameters are removed.
 */
function withPosition(url, pos) {
  const u = new URL(url);
  if (pos) {
    u.searchParams.set("epoch", pos.epoch);
    u.searchParams.set("offset", String(pos.offset));
  } else {
    u.searchParams.delete("epoch");
    u.searchParams.delete("offset");
  }
  return u.href;
}

/**
 * withServerTopics returns url (absolute) with the recovery positions of the subscriptions the
 * server made, one "t.<topic>=<offset>.<epoch>" query parameter each (a topic without a
 * position gets none), replacing any earlier ones.
 */
function withServerTopics(url, positions) {
  const u = new URL(url);
  for (const key of [...u.searchParams.keys()]) if (key.startsWith("t.")) u.searchParams.delete(key);
  for (const [topic, pos] of positions) {
    if (pos) u.searchParams.set("t." + topic, pos.offset + "." + pos.epoch);
  }
  return u.href;
}

/**
 * resolveURL turns a URL relative to `base` (a page address, normally location.href) into an
 * absolute WebSocket URL: http becomes ws and https becomes wss. Without a base, url is
 * returned unchanged.
 */
function resolveURL(url, base) {
  if (base === undefined) return String(url);
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

/**
 * fetchWithSession is connection.fetch: fetch(input, init) with the session's ID in the
 * Notify-Session header (when the connection has one), and nothing else changed. The headers
 * of a Request given as input are kept, unless init has headers of its own (as fetch does).
 */
function fetchWithSession(fetchFn, sessionId, input, init) {
  if (sessionId === undefined) return fetchFn(input, init);
  const from = init?.headers ?? (typeof Request !== "undefined" && input instanceof Request ? input.headers : undefined);
  const headers = new Headers(from);
  headers.set(SESSION_HEADER, sessionId);
  return fetchFn(input, { ...init, headers });
}

// The header in which requests carry the session to leave out (notify.SessionHeader).
const SESSION_HEADER = "Notify-Session";

/**
 * connect opens a notify connection to `url` and keeps it open until close() is called or the
 * server closes it for good. It returns at once; see notify.d.ts for the options and the
 * returned object.
 */
export function connect(url, options = {}) {
  const tokens = new Tokens(options.token);
  const conn = sharedConnection(url, options, tokens) ?? new Connection(url, options, tokens);
  return withPush(withInbox(conn, url, options, tokens), url, options);
}

/**
 * NotifyError is what the client's promises reject with: subscribe() with the server's code,
 * the inbox's requests with the server's code and the HTTP status, connected() with "closed".
 * Its message starts with "notify: ".
 */
export class NotifyError extends Error {
  constructor(code, reason, { topic, status } = {}) {
    super(`notify: ${code}${reason ? ": " + reason : ""}`);
    this.name = "NotifyError";
    this.code = code;
    this.reason = reason;
    this.topic = topic;
    if (status !== undefined) this.status = status;
  }
}

// Reports an exception thrown by an application callback without breaking the frame loop.
function report(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else console.error(err);
}

function notifyError(code, reason, topic, status) {
  return new NotifyError(code, reason, { topic, status });
}

/**
 * jwtExp returns the "exp" claim (unix seconds) of a JWT, or undefined when token is not a JWT
 * or carries none. The signature is not checked: the server does that; the client only needs
 * to know when to ask for a new token.
 */
function jwtExp(token) {
  if (typeof token !== "string") return undefined;
  const part = token.split(".")[1];
  if (!part) return undefined;
  try {
    const b64 = part.replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4))).exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

// How long before its expiry a token is no longer reused for an inbox request, in ms.
const TOKEN_MARGIN = 30000;

/**
 * Tokens holds the connect() option `token` and the last token it gave, shared by the socket
 * and the inbox. The socket asks for a fresh one for every connection and refresh (the server
 * wants one that is not about to expire); the inbox reuses the last one until TOKEN_MARGIN
 * before its JWT "exp" (or, without one, until the server refuses it), so that a page does not
 * call token() for every request. Concurrent requests share one token() call.
 */
class Tokens {
  #source;
  #last = undefined; // {token, exp}: the last token given, when it may be reused
  #pending = null; // a token() call in flight

  constructor(source) {
    this.#source = source;
  }

  // A fresh token: token() is called (once for concurrent callers).
  fresh() {
    if (typeof this.#source !== "function") return Promise.resolve(this.#source);
    this.#pending ??= (async () => {
      try {
        const token = await this.#source();
        this.#last = token ? { token, exp: jwtExp(token) } : undefined;
        return token;
      } finally {
        this.#pending = null;
      }
    })();
    return this.#pending;
  }

  // The last token while it is not about to expire, or a fresh one. reused says which.
  async get() {
    const last = this.#last;
    if (typeof this.#source === "function" && last &&
      (last.exp === undefined || last.exp * 1000 - TOKEN_MARGIN > Date.now())) {
      return { token: last.token, reused: true };
    }
    return { token: await this.fresh(), reused: false };
  }

  // Forgets the last token: the server refused it, or signed the user out.
  forget(token) {
    if (token === undefined || this.#last?.token === token) this.#last = undefined;
  }
}

// Settles as promise does, unless signal aborts first: then it rejects with signal.reason.
function untilAborted(promise, signal) {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const done = () => signal.removeEventListener("abort", onAbort);
    promise.then((v) => { done(); resolve(v); }, (e) => { done(); reject(e); });
  });
}

// Adds fn to set and returns the function that removes it again.
function listen(set, fn) {
  if (typeof fn !== "function") throw new TypeError("notify: handler must be a function");
  set.add(fn);
  return () => void set.delete(fn);
}

/**
 * whenConnected is connected() of a Connection and of a SharedConnection: it resolves with
 * {user, session} once state is "connected" (now, as given, or later, from onState), and
 * rejects when the connection closes for good first, or with signal.reason when signal aborts.
 */
function whenConnected(state, now, onState, signal) {
  if (state === "connected") return Promise.resolve(now);
  if (state === "closed") return Promise.reject(notifyError("closed", "connection closed"));
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const done = () => { off(); signal?.removeEventListener("abort", onAbort); };
    const onAbort = () => { done(); reject(signal.reason); };
    const off = onState((st, info) => {
      if (st === "connected") {
        done();
        resolve({ user: info.user, session: info.session });
      } else if (st === "closed") {
        done();
        reject(notifyError("closed", info.reason || "connection closed"));
      }
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

// Set by Connection's static block for the shared layer: see there.
let positionsOf, resumeFrom, onSkip;

class Connection {
  #url;
  #token; // the option, to tell a function from a fixed token
  #tokens; // Tokens, shared with the inbox
  #minDelay;
  #maxDelay;
  #WebSocket;
  #EventSource;
  #fetch;
  #transportOption; // "auto", "websocket" or "sse"
  #transport = "websocket"; // of the current or next connection
  #wsAgainAt = 0; // Date.now() after which "auto" tries WebSocket again (0: it has not failed)
  #wsAgainDelay = 0; // ms: the wait after the latest fallback; 0 until one, again after a welcome over WebSocket
  #wsAgainTimer = null; // pending switch back to WebSocket from a fallback stream
  #welcomeTimer = null; // pending check that a WebSocket got its welcome
  #transportHandlers = new Set();

  #state = "connecting";
  #user = undefined;
  #session = undefined;

  #ws = null; // the current socket, or null between connections
  #welcomed = false; // the current socket has received its welcome
  #attempt = 0; // reconnect attempts since the last welcome
  #retryTimer = null; // pending reconnect
  #floorUntil = 0; // Date.now() before which the pending reconnect must not start (after 4029)
  #spread = 0; // ms: the window a "goaway" asked the next reconnect to be spread over
  #liveTimer = null; // pending liveness check
  #lastFrame = 0; // Date.now() when the current socket last received anything
  #silence = 0; // ms of silence after which the current socket counts as dead

  #topics = new Set(); // subscribed on every (re)connect
  // Subscriptions the server made (subscribed with "server": true), topic -> position or
  // undefined. The server renews them itself on connect; the client gives their positions in
  // the connect URL so that it recovers them. #serverPrev holds them between a welcome and the
  // server's "subscribed" frames.
  #serverTopics = new Map();
  #serverPrev = new Map();
  #signedOut = false; // closed with 4001: a null token() now means "signed out"
  #pending = new Map(); // topic -> [{resolve, reject}] awaiting "subscribed" or "error"
  #unsubscribing = new Set(); // topics whose "unsubscribe" the current socket has not answered
  #limited = new Map(); // topic -> {tries, timer}: re-sending a request answered "rate_limited"
  #exp = undefined; // unix seconds: when the current session's token expires, if known
  #refreshToken = undefined; // the token of a "refresh" the current socket has not answered
  #refreshTries = 0; // re-sends of that refresh after "rate_limited"
  #refreshTimer = null; // pending re-send of that refresh
  #dedup = new Dedup(DEDUP_SIZE); // outlives sockets: a replayed event is not delivered twice
  #skipHandlers = new Set(); // the shared layer's: told the id of every event skipped for this session
  #handlers = new Map(); // event type or "*" -> Set of functions
  #stateHandlers = new Set();
  #errorHandlers = new Set();
  #recoveryHandlers = new Set();
  // Requests awaiting their answers; sent now when welcomed, else after the next welcome.
  #requests = new Requests((msg) => { if (this.#welcomed) this.#send(msg); });
  #maxMessageSize = MAX_MESSAGE_SIZE;

  // Stream positions: the user stream's, and each subscribed topic's. They outlive sockets.
  #userPos = undefined; // {epoch, offset}
  #topicPos = new Map(); // topic -> {epoch, offset}
  #gapAt = -Infinity; // Date.now() of the last reconnect an offset gap caused

  constructor(url, options, tokens) {
    const base = typeof location !== "undefined" ? location.href : undefined;
    this.#url = resolveURL(url, base);
    this.#token = options.token;
    this.#tokens = tokens;
    this.#minDelay = options.minDelay ?? 500;
    this.#maxDelay = options.maxDelay ?? 30000;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.#EventSource = options.EventSource ?? globalThis.EventSource;
    this.#fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    this.#transportOption = options.transport ?? "auto";
    if (this.#transportOption === "sse") this.#transport = "sse";
    this.#maxMessageSize = options.maxMessageSize ?? MAX_MESSAGE_SIZE;
    for (const topic of options.topics ?? []) this.#topics.add(topic);

    if (typeof document !== "undefined") document.addEventListener("visibilitychange", this.#onVisible);
    if (typeof window !== "undefined") window.addEventListener("online", this.#onOnline);

    // Start after the caller's synchronous code, so that an onState handler registered right
    // after connect() sees "connecting".
    queueMicrotask(() => {
      if (this.#state === "closed") return;
      this.#setState("connecting", {});
      this.#open();
    });
  }

  get state() { return this.#state; }
  get user() { return this.#user; }
  get session() { return this.#session; }
  // What the application's requests carry for the server to leave this session out of the
  // events they cause (PROTOCOL.md, "Leaving out the acting session").
  get sessionId() { return this.#session; }
  get transport() { return this.#transport; }
  onTransport(fn) { return listen(this.#transportHandlers, fn); }

  fetch(input, init) { return fetchWithSession(this.#fetch, this.sessionId, input, init); }

  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    return listen(this.#handlers.get(type), fn);
  }

  onState(fn) { return listen(this.#stateHandlers, fn); }

  // Resolves with {user, session} once connected (at once if connected now); rejects when the
  // connection closes for good first, or with signal.reason when signal aborts first.
  connected({ signal } = {}) {
    return whenConnected(this.#state, { user: this.#user, session: this.#session }, (fn) => this.onState(fn), signal);
  }

  onError(fn) { return listen(this.#errorHandlers, fn); }

  onRecovery(fn) { return listen(this.#recoveryHandlers, fn); }

  subscribe(topic) {
    if (this.#state === "closed") return Promise.reject(notifyError("closed", "connection closed", topic));
    this.#topics.add(topic);
    const answer = new Promise((resolve, reject) => {
      const list = this.#pending.get(topic) ?? [];
      list.push({ resolve, reject });
      this.#pending.set(topic, list);
    });
    // While a re-send for the topic waits out a rate limit, that re-send carries the request.
    if (this.#welcomed && !this.#limited.get(topic)?.timer) this.#send(this.#subscribeFrame(topic));
    return answer;
  }

  unsubscribe(topic) {
    this.#topics.delete(topic);
    this.#topicPos.delete(topic);
    this.#settle(topic, notifyError("unsubscribed", "unsubscribed before the server answered", topic));
    if (this.#welcomed) {
      this.#unsubscribing.add(topic);
      if (!this.#limited.get(topic)?.timer) this.#send({ op: "unsubscribe", topic });
    }
  }

  // Sends a request and returns the promise of its answer (PROTOCOL.md, "Requests").
  request(name, data, { timeout = REQUEST_TIMEOUT, signal, id = randomID() } = {}) {
    if (this.#state === "closed") return Promise.reject(notifyError("closed", "connection closed"));
    const msg = data === undefined ? { op: "request", id, name } : { op: "request", id, name, data };
    const size = utf8Length(JSON.stringify(msg));
    if (size > this.#maxMessageSize) {
      return Promise.reject(notifyError("too_large", `the request is ${size} bytes, at most ${this.#maxMessageSize}`));
    }
    return this.#requests.add(id, msg, timeout, signal);
  }

  close() {
    this.#finish({ code: CLOSE_NORMAL, reason: "closed by the client" });
  }

  // ---- connection lifecycle ----

  // Fetches a token and opens a socket. Called for the first connection and every reconnect.
  async #open() {
    this.#retryTimer = null;
    let token;
    try {
      token = await this.#tokens.fresh();
    } catch (error) {
      if (this.#state !== "closed") this.#retry({ error }, "backoff");
      return;
    }
    if (this.#state === "closed") return; // close() was called while we waited
    if (token === null) {
      // Our choice: null means "signed out". Connecting would only earn a 401, so stop.
      this.#finish(this.#signedOut ? { code: CLOSE_SIGNED_OUT, reason: "signed out" } : { reason: "token() returned null" });
      return;
    }
    const protocols = token ? [SUBPROTOCOL, BEARER_PREFIX + token] : [SUBPROTOCOL];
    // "auto" goes back to WebSocket once the fallback's time is up (see #fallBack).
    if (this.#transportOption === "auto" && this.#transport === "sse" && Date.now() >= this.#wsAgainAt) {
      this.#setTransport("websocket");
    }
    let ws;
    try {
      ws = this.#transport === "sse"
        ? new SSESocket(sseURL(this.#connectURL()), token, this.#tokens, this.#EventSource, this.#fetch)
        : new this.#WebSocket(this.#connectURL(), protocols);
    } catch (error) {
      // A bad URL or a token with characters a protocol name cannot hold: retrying won't help.
      this.#finish({ error, reason: String(error?.message ?? error) });
      return;
    }
    this.#ws = ws;
    this.#welcomed = false;
    ws.onmessage = (e) => this.#onFrame(ws, e.data);
    ws.onclose = (e) => this.#onClose(e.code, e.reason);
    ws.onerror = () => {}; // a close event always follows and carries what we need
    // Until the welcome names the ping interval, assume the default: this also catches a
    // handshake that hangs.
    this.#heard(DEFAULT_PING);
    // A WebSocket that gets no welcome within WELCOME_WAIT is as good as refused: a proxy
    // that holds the upgrade, or answers it without passing anything through.
    clearTimeout(this.#welcomeTimer);
    if (this.#canFallBack() && this.#transport === "websocket") {
      this.#welcomeTimer = setTimeout(() => {
        if (ws !== this.#ws || this.#welcomed) return;
        this.#drop(CLOSE_NORMAL, "no welcome");
        this.#fallBack();
        this.#retry({ reason: "no welcome over WebSocket" }, "now");
      }, WELCOME_WAIT);
    }
  }

  // "auto" falls back where the runtime has an EventSource.
  #canFallBack() {
    return this.#transportOption === "auto" && typeof this.#EventSource === "function";
  }

  // Switches "auto" to the event stream after a WebSocket failed before its welcome, and
  // arms the switch back to WebSocket (see WS_AGAIN_MIN; at a reconnect too: see #open).
  #fallBack() {
    this.#setTransport("sse");
    this.#wsAgainDelay = this.#wsAgainDelay ? Math.min(2 * this.#wsAgainDelay, WS_AGAIN) : WS_AGAIN_MIN;
    const wait = this.#wsAgainDelay * (0.5 + Math.random());
    this.#wsAgainAt = Date.now() + wait;
    clearTimeout(this.#wsAgainTimer);
    this.#wsAgainTimer = setTimeout(() => {
      this.#wsAgainTimer = null;
      // A working stream is dropped to try WebSocket again; recovery keeps every event.
      if (this.#state === "connected" && this.#transport === "sse") {
        this.#drop(CLOSE_NORMAL, "trying WebSocket again");
        this.#retry({ reason: "trying WebSocket again" }, "now");
      }
    }, wait);
  }

  #setTransport(transport) {
    if (transport === this.#transport) return;
    const previous = this.#transport;
    this.#transport = transport;
    for (const fn of [...this.#transportHandlers]) {
      try { fn(transport, { previous }); } catch (err) { report(err); }
    }
  }

  // The URL of the next connection: with the user stream's last position, once there is one,
  // so that the server replays what this client missed.
  #connectURL() {
    const url = this.#userPos ? withPosition(this.#url, this.#userPos) : this.#url;
    return this.#serverTopics.size > 0 ? withServerTopics(url, this.#serverTopics) : url;
  }

  // Only the current socket can get here: #drop detaches a socket's handlers.
  #onClose(code, reason) {
    // A WebSocket that closed before its welcome with 1006: the upgrade was refused or cut.
    const refused = !this.#welcomed && code === CLOSE_ABNORMAL && this.#transport === "websocket";
    this.#drop();
    if (refused && this.#canFallBack()) {
      this.#fallBack();
      this.#retry({ code, reason }, "now");
      return;
    }
    // The inbox must not reuse a token the server refused.
    if (code === CLOSE_TOKEN_EXPIRED || code === CLOSE_SIGNED_OUT) this.#tokens.forget();
    let action = closeAction(code);
    // A server going away said over how long its clients should spread their reconnects, so
    // that they do not all land on the remaining servers at once.
    // A 1006 after the goaway is the same server cutting what is left.
    if ((code === CLOSE_GOING_AWAY || code === CLOSE_ABNORMAL) && this.#spread > 0) action = "spread";
    if (action === "signedout") {
      // The old token must not come back: only a fresh one from token() reconnects.
      if (typeof this.#token !== "function") action = "stop";
      else {
        this.#signedOut = true;
        action = "now";
      }
    }
    if (action === "stop") this.#finish({ code, reason });
    else this.#retry({ code, reason }, action);
  }

  // Schedules the next connection: at once for action "now", after a jittered backoff otherwise,
  // and for "limited" (close 4029) no sooner than a jittered RATE_LIMIT_FLOOR.
  #retry(info, action) {
    let delay = action === "now" ? 0 : backoffDelay(this.#attempt, this.#minDelay, this.#maxDelay);
    this.#floorUntil = 0;
    if (action === "spread") {
      delay = Math.random() * this.#spread;
      this.#floorUntil = Date.now() + delay; // coming back online does not cut it short
    }
    this.#spread = 0;
    if (action === "limited") {
      const floor = RATE_LIMIT_FLOOR * (1 + Math.random());
      this.#floorUntil = Date.now() + floor;
      delay = Math.max(delay, floor);
    }
    this.#attempt++;
    this.#setState("reconnecting", { ...info, attempt: this.#attempt, delay });
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => this.#open(), delay);
  }

  // Forgets the current socket, closing it if it is still open, and detaches its handlers:
  // waiting for a dead socket's closing handshake could take a minute, and its late events
  // must not touch the next connection.
  #drop(code = CLOSE_NORMAL, reason = "") {
    const ws = this.#ws;
    this.#ws = null;
    this.#welcomed = false;
    clearTimeout(this.#liveTimer);
    this.#liveTimer = null;
    clearTimeout(this.#welcomeTimer);
    this.#welcomeTimer = null;
    // Requests in flight die with the socket; the next welcome resubscribes #topics afresh.
    for (const { timer } of this.#limited.values()) clearTimeout(timer);
    this.#limited.clear();
    this.#unsubscribing.clear();
    this.#endRefresh();
    this.#exp = undefined;
    if (!ws) return;
    ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      // already closed or closing
    }
  }

  // Terminal: no socket, no timer, no listener, no pending promise is left behind.
  #finish(info) {
    if (this.#state === "closed") return;
    this.#drop(CLOSE_NORMAL, "");
    clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    clearTimeout(this.#wsAgainTimer);
    this.#wsAgainTimer = null;
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this.#onVisible);
    if (typeof window !== "undefined") window.removeEventListener("online", this.#onOnline);
    for (const topic of [...this.#pending.keys()]) {
      this.#settle(topic, notifyError("closed", "connection closed", topic));
    }
    this.#requests.fail(notifyError("closed", "connection closed"));
    this.#setState("closed", info);
  }

  // ---- liveness ----

  // Records that the socket is alive and (re)arms the check for pingSeconds of silence.
  #heard(pingSeconds) {
    this.#lastFrame = Date.now();
    if (pingSeconds !== undefined) {
      this.#silence = (2 * pingSeconds + 5) * 1000;
      this.#armLiveness();
    }
  }

  #armLiveness() {
    clearTimeout(this.#liveTimer);
    const left = this.#lastFrame + this.#silence - Date.now();
    this.#liveTimer = setTimeout(() => this.#checkLiveness(), Math.max(left, 0) + 1);
  }

  // Reconnects if the socket has been silent too long, and otherwise checks again later.
  // Frames do not reset the timer (that would cost a timer per frame); the timer re-arms
  // itself for the remaining time instead.
  #checkLiveness() {
    if (!this.#ws) return;
    if (Date.now() - this.#lastFrame > this.#silence) {
      this.#drop(CLOSE_NORMAL, "no frame from the server");
      this.#retry({ reason: "no frame from the server" }, "backoff");
    } else {
      this.#armLiveness();
    }
  }

  // Background tabs throttle timers, so check as soon as the page is visible again.
  #onVisible = () => {
    if (document.visibilityState === "visible") this.#checkLiveness();
  };

  // Back online: a waiting reconnect need not wait any longer, except for the floor after a
  // close with 4029; an open socket may be dead.
  #onOnline = () => {
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      const wait = this.#floorUntil - Date.now();
      if (wait > 0) this.#retryTimer = setTimeout(() => this.#open(), wait);
      else this.#open();
    } else {
      this.#checkLiveness();
    }
  };

  // ---- frames ----

  #onFrame(ws, data) {
    if (typeof data !== "string") return; // the protocol uses text frames only
    this.#heard();
    for (const msg of parseFrame(data)) {
      if (ws !== this.#ws) return; // a handler closed the connection mid-frame
      if (typeof msg.op === "string") this.#onControl(ws, msg);
      else if (!("op" in msg)) this.#onEvent(msg);
    }
  }

  #onControl(ws, msg) {
    switch (msg.op) {
      case "goaway":
        // Followed by close 1001: reconnect at a random time within msg.reconnect seconds.
        if (typeof msg.reconnect === "number" && msg.reconnect > 0) this.#spread = Math.min(msg.reconnect, 300) * 1000;
        break;
      case "welcome": {
        // Asked to recover: a complete recovery is followed by the missed events, which move
        // the position on one by one (the welcome's is where they end). Otherwise the
        // welcome's position is where this client now stands.
        if (msg.recovered !== true) this.#userPos = positionOf(msg);
        this.#user = msg.user;
        this.#session = msg.session;
        this.#welcomed = true;
        this.#attempt = 0;
        if (this.#transport === "websocket") this.#wsAgainDelay = 0;
        this.#signedOut = false;
        // The server renews the subscriptions it wants now, each with a "subscribed" frame.
        this.#serverPrev = this.#serverTopics;
        this.#serverTopics = new Map();
        this.#setExp(msg.exp);
        this.#heard(msg.ping > 0 ? msg.ping : DEFAULT_PING);
        this.#setState("connected", { user: msg.user, session: msg.session });
        if (typeof msg.recovered === "boolean" && ws === this.#ws) this.#recovery({ recovered: msg.recovered });
        // A handler may have closed the connection; check before sending.
        for (const topic of this.#topics) if (ws === this.#ws) this.#send(this.#subscribeFrame(topic));
        // Requests still awaiting their answers go again, with their ids.
        if (ws === this.#ws) this.#requests.resend();
        break;
      }
      case "subscribed": {
        // A topic this client follows: track its position as for the user stream. Subscriptions
        // the server made are not renewed on reconnect, so their positions are of no use.
        // An answer without a position (the topic was already subscribed) leaves it as it is.
        const pos = positionOf(msg);
        if (pos && this.#topics.has(msg.topic) && msg.recovered !== true) this.#topicPos.set(msg.topic, pos);
        if (msg.server === true && !this.#topics.has(msg.topic)) {
          // Recovered: the replay moves the position on from the one the URL gave.
          const prev = this.#serverPrev.get(msg.topic);
          this.#serverTopics.set(msg.topic, msg.recovered === true && prev ? prev : pos);
        }
        if (this.#topics.has(msg.topic)) this.#endRetry(msg.topic); // not an unsubscribe's re-send
        this.#settle(msg.topic);
        if (typeof msg.recovered === "boolean" && ws === this.#ws) {
          this.#recovery({ topic: msg.topic, recovered: msg.recovered });
        }
        break;
      }
      case "unsubscribed":
        if (typeof msg.code === "string" && msg.code !== "") {
          // The server ended the subscription on its own, with a reason: a refreshed token no
          // longer grants the topic. Renewing it would only be refused, so forget it for good,
          // reject a subscribe() still waiting for it and tell the application.
          this.#forget(msg.topic);
          this.#settle(msg.topic, notifyError(msg.code, msg.reason, msg.topic));
          this.#reportError(msg);
          break;
        }
        // The answer to our unsubscribe, or the server ended a subscription: do not renew it on
        // reconnect, unless a subscribe() still awaits its answer, which comes after this one.
        this.#unsubscribing.delete(msg.topic);
        this.#serverTopics.delete(msg.topic);
        if (!this.#pending.has(msg.topic)) {
          this.#topics.delete(msg.topic);
          this.#topicPos.delete(msg.topic);
        }
        if (!this.#topics.has(msg.topic)) this.#endRetry(msg.topic);
        break;
      case "error":
        // A request the server did not process for now: send it again later, unreported.
        // "unavailable" (the server's broker could not serve a subscribe) is retried likewise.
        if ((msg.code === "rate_limited" || (msg.code === "unavailable" && typeof msg.topic === "string")) &&
          this.#onRateLimited(ws, msg)) break;
        if (msg.code === "invalid_token") this.#endRefresh();
        if (typeof msg.topic === "string") {
          // The subscription did not take effect; renewing it on every reconnect would only
          // collect errors, and too many in a row close the connection with 4003.
          this.#forget(msg.topic);
          this.#settle(msg.topic, notifyError(msg.code, msg.reason, msg.topic));
        }
        this.#reportError(msg);
        break;
      case "skip":
        // An event this session caused, left out: its position moves on as the event's would
        // (no gap), and its id is remembered, so that a replay after a reconnect (a new
        // session, which gets the event in full) does not deliver it either.
        // Remembered even when its offset jumps (#advance then reconnects to replay the gap,
        // which brings this event in full).
        if (typeof msg.id !== "string") break;
        this.#dedup.seen(msg.id);
        for (const fn of [...this.#skipHandlers]) {
          try { fn(msg.id); } catch (err) { report(err); }
        }
        this.#advance(msg);
        break;
      case "expiring":
        this.#setExp(msg.exp);
        this.#refresh(ws);
        break;
      case "refreshed":
        this.#setExp(msg.exp);
        this.#endRefresh();
        break;
      case "reply":
        this.#requests.reply(msg);
        break;
      // "ping" only proves liveness, recorded in #onFrame. Unknown ops are ignored so that
      // later protocol versions can add some.
    }
  }

  #setExp(exp) {
    if (typeof exp === "number" && Number.isFinite(exp)) this.#exp = exp;
  }

  // Answers "expiring" with a fresh token. If token() fails or returns nothing, the session
  // expires and closes with 4000, and the reconnect reports the error in its state info.
  async #refresh(ws) {
    let token;
    try {
      token = await this.#tokens.fresh();
    } catch {
      return;
    }
    if (token && ws === this.#ws && this.#welcomed) {
      this.#endRefresh(); // a new refresh replaces one still waiting out a rate limit
      this.#refreshToken = token;
      this.#send({ op: "refresh", token });
    }
  }

  // Forgets the refresh in flight, if any, and its pending re-send.
  #endRefresh() {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    this.#refreshToken = undefined;
    this.#refreshTries = 0;
  }

  // ---- rate limiting ----

  // Handles error "rate_limited": the server dropped one of our requests unprocessed. A
  // subscribe, an unsubscribe (both name their topic) or a refresh (the only request without
  // one) is sent again after rateLimitDelay, at most RATE_RETRIES times; then the client gives
  // up and reports the error. Returns false for an error it cannot attribute, which is then
  // reported as any other.
  #onRateLimited(ws, msg) {
    const topic = msg.topic;
    if (typeof topic !== "string" || topic === "") {
      if (this.#refreshToken === undefined) return false;
      this.#retryRefresh(ws, msg);
      return true;
    }
    // Nothing left to ask for the topic (unsubscribe() came first, and its own answer is
    // awaited): the error needs no re-send.
    if (!this.#topics.has(topic) && !this.#unsubscribing.has(topic)) return true;
    const retry = this.#limited.get(topic) ?? { tries: 0, timer: null };
    clearTimeout(retry.timer);
    retry.timer = null;
    if (retry.tries >= RATE_RETRIES) {
      // Give up as if the server had refused the request: a subscription is forgotten and its
      // subscribe() rejected; an unsubscribe stays undone on the server.
      this.#forget(topic);
      this.#settle(topic, notifyError(msg.code, msg.reason, topic));
      this.#reportError(msg);
      return true;
    }
    retry.timer = setTimeout(() => this.#resend(ws, topic), rateLimitDelay(retry.tries++));
    this.#limited.set(topic, retry);
    return true;
  }

  // Sends what the client currently wants for topic: subscribe() and unsubscribe() calls made
  // while the re-send waited changed that, and did not send anything themselves. The retry
  // count stays until the server answers for the topic.
  #resend(ws, topic) {
    const retry = this.#limited.get(topic);
    if (retry) retry.timer = null;
    if (ws !== this.#ws || !this.#welcomed) return;
    if (this.#topics.has(topic)) this.#send(this.#subscribeFrame(topic));
    else if (this.#unsubscribing.has(topic)) this.#send({ op: "unsubscribe", topic });
    else this.#endRetry(topic);
  }

  // Ends the rate-limit retries for topic.
  #endRetry(topic) {
    clearTimeout(this.#limited.get(topic)?.timer);
    this.#limited.delete(topic);
  }

  // Re-sends the refresh that got "rate_limited" while the session's token is still valid. Past
  // its expiry the server closes with 4000, and the reconnect brings a fresh token anyway.
  #retryRefresh(ws, msg) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = null;
    if (this.#refreshTries >= RATE_RETRIES) {
      this.#endRefresh();
      this.#reportError(msg);
      return;
    }
    const delay = rateLimitDelay(this.#refreshTries++);
    if (this.#exp !== undefined && Date.now() + delay >= this.#exp * 1000) {
      this.#endRefresh();
      return;
    }
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      if (ws === this.#ws && this.#welcomed && this.#refreshToken) {
        this.#send({ op: "refresh", token: this.#refreshToken });
      }
    }, delay);
  }

  // Every event passes through here: its stream's position moves on, then the handlers run.
  // An event of the inbox (type "inbox", a change in its data) goes to the "inbox" handlers
  // only: "*" is for the application's events. A new stored notification then also goes, as
  // an event of its own type, to that type's handlers and "*"'s, once per notification.
  #onEvent(ev) {
    if (!this.#advance(ev)) return;
    if (ev.id != null && this.#dedup.seen(ev.id)) return; // no id: nothing to compare
    if (ev.type !== INBOX_TYPE || !isInboxChange(ev.data)) {
      this.#dispatch(ev.type, ev);
      return;
    }
    this.#dispatch(INBOX_TYPE, ev, false);
    const stored = storedEvent(ev.data);
    if (stored && typeof ev.except === "string") stored.except = ev.except; // the tab to leave out
    if (stored && !this.#dedup.seen(STORED_KEY + stored.id)) this.#dispatch(stored.type, stored);
  }

  #dispatch(type, ev, star = true) {
    const handlers = [...(this.#handlers.get(type) ?? []), ...(star ? this.#handlers.get("*") ?? [] : [])];
    for (const fn of handlers) {
      try { fn(ev); } catch (err) { report(err); }
    }
  }

  // Records the position of an event of the user stream or a followed topic, and reports
  // whether to deliver it. The server sends a stream's events with consecutive offsets; a
  // jump means events went missing on the way (a broker that lost messages in an outage).
  // The client then reconnects from its last position, which replays what is missing in
  // order, and drops the event, which the replay brings again. A second jump soon after is
  // not chased: the event is delivered and the application told that recovery failed.
  #advance(ev) {
    const pos = positionOf(ev);
    if (!pos || pos.offset === 0) return true; // broadcast, ephemeral or no history
    const topic = typeof ev.topic === "string" ? ev.topic : undefined;
    const server = topic !== undefined && !this.#topics.has(topic) && this.#serverTopics.has(topic);
    if (topic !== undefined && !this.#topics.has(topic) && !server) return true;
    const positions = server ? this.#serverTopics : this.#topicPos;
    const last = topic === undefined ? this.#userPos : positions.get(topic);
    const set = (p) => (topic === undefined ? (this.#userPos = p) : positions.set(topic, p));
    if (!last) {
      set(pos);
      return true;
    }
    if (last.epoch === pos.epoch) {
      if (pos.offset <= last.offset) return true; // replayed again: dedup by id decides
      if (pos.offset === last.offset + 1) {
        set(pos);
        return true;
      }
      if (Date.now() - this.#gapAt > GAP_GRACE) {
        this.#gapAt = Date.now();
        this.#drop(CLOSE_NORMAL, "missed events, recovering");
        this.#retry({ reason: "missed events, recovering" }, "now");
        return false;
      }
    }
    // The stream's history was lost (new epoch) or a gap could not be chased: the events in
    // between are gone.
    set(pos);
    this.#recovery(topic === undefined ? { recovered: false } : { topic, recovered: false });
    return true;
  }

  #recovery(info) {
    for (const fn of [...this.#recoveryHandlers]) {
      try { fn(info); } catch (err) { report(err); }
    }
  }

  // The subscribe request for topic, with its last position when there is one.
  #subscribeFrame(topic) {
    const pos = this.#topicPos.get(topic);
    return pos ? { op: "subscribe", topic, epoch: pos.epoch, offset: pos.offset } : { op: "subscribe", topic };
  }

  #send(obj) {
    try {
      this.#ws?.send(JSON.stringify(obj));
    } catch {
      // The socket is closing; its close event triggers the reconnect that resends.
    }
  }

  // Forgets everything about topic: it is not renewed on reconnect, its position is dropped, an
  // unanswered unsubscribe and a waiting re-send are abandoned. Pending subscribe()s are left
  // to the caller to settle.
  #forget(topic) {
    this.#topics.delete(topic);
    this.#topicPos.delete(topic);
    this.#serverTopics.delete(topic);
    this.#unsubscribing.delete(topic);
    this.#endRetry(topic);
  }

  #reportError(frame) {
    for (const fn of [...this.#errorHandlers]) {
      try { fn(frame); } catch (err) { report(err); }
    }
  }

  // Resolves (without err) or rejects (with err) every subscribe() awaiting an answer for topic.
  #settle(topic, err) {
    const list = this.#pending.get(topic);
    if (!list) return;
    this.#pending.delete(topic);
    for (const p of list) err ? p.reject(err) : p.resolve();
  }

  #setState(state, info) {
    this.#state = state;
    for (const fn of [...this.#stateHandlers]) {
      try { fn(state, info); } catch (err) { report(err); }
    }
  }

  // The shared layer (below) hands a connection's stream positions over to the next tab that
  // holds the connection: positionsOf reads them, resumeFrom gives them to a new connection
  // before it opens, so that it recovers from there.
  static {
    positionsOf = (c) => ({ user: c.#userPos, topics: [...c.#topicPos], server: [...c.#serverTopics] });
    onSkip = (c, fn) => listen(c.#skipHandlers, fn);
    resumeFrom = (c, p) => {
      c.#userPos = p.user;
      for (const [topic, pos] of p.topics) c.#topicPos.set(topic, pos);
      for (const [topic, pos] of p.server) c.#serverTopics.set(topic, pos);
    };
  }
}

// ---- requests (PROTOCOL.md, "Requests") ----
//
// connection.request(name, data) sends {"op":"request","id","name","data"} and settles with the
// server's "reply" frame of the same id. A request waiting for its answer when the connection
// drops is sent again, with its id, after every welcome until its timeout: the server answers a
// repeated id from its cache, so its handler runs once.

const REQUEST_TIMEOUT = 10000; // ms, the default of request()'s timeout
const MAX_MESSAGE_SIZE = 8192; // bytes, the server's default Config.MaxMessageSize

/**
 * Requests holds a connection's requests awaiting their answers, by id. send(msg) sends one
 * request now when it can (and does nothing when it cannot: resend sends it later). Each id has
 * one timer, its first caller's timeout; several callers of one id share its answer.
 */
class Requests {
  #pending = new Map(); // id -> {msg, waiters: Set of {resolve, reject, done}, timer}
  #send;

  constructor(send) {
    this.#send = send;
  }

  // Sends msg as request id unless it is pending already, and returns the promise of its answer.
  add(id, msg, timeout, signal) {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let entry = this.#pending.get(id);
    if (!entry) {
      entry = { msg, waiters: new Set(), timer: null };
      this.#pending.set(id, entry);
      entry.timer = setTimeout(() => this.answer(id, notifyError("timeout", "no answer in time")), timeout);
    }
    const answer = new Promise((resolve, reject) => {
      const w = { resolve, reject, done: null };
      entry.waiters.add(w);
      if (!signal) return;
      // An aborted request is forgotten once nobody waits for it: it is not sent again.
      const onAbort = () => {
        entry.waiters.delete(w);
        if (entry.waiters.size === 0 && this.#pending.get(id) === entry) {
          clearTimeout(entry.timer);
          this.#pending.delete(id);
        }
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      w.done = () => signal.removeEventListener("abort", onAbort);
    });
    if (entry.waiters.size === 1) this.#send(msg);
    return answer;
  }

  // Settles request id: rejected with err, or resolved with value.
  answer(id, err, value) {
    const entry = this.#pending.get(id);
    if (!entry) return;
    this.#pending.delete(id);
    clearTimeout(entry.timer);
    for (const w of entry.waiters) {
      w.done?.();
      if (err) w.reject(err);
      else w.resolve(value);
    }
  }

  // The answer of a "reply" frame.
  reply(msg) {
    if (typeof msg.id !== "string") return;
    if (typeof msg.code === "string") this.answer(msg.id, notifyError(msg.code, msg.reason));
    else this.answer(msg.id, undefined, msg.data ?? null);
  }

  // Sends every pending request again (after a welcome, or to a new host).
  resend() {
    for (const entry of this.#pending.values()) this.#send(entry.msg);
  }

  // Rejects every pending request with err.
  fail(err) {
    for (const id of [...this.#pending.keys()]) this.answer(id, err);
  }
}

// The size of s in UTF-8 bytes.
function utf8Length(s) {
  return new TextEncoder().encode(s).length;
}

// ---- inbox (PROTOCOL.md, "Inbox over HTTP") ----
//
// connection.inbox reads and changes the user's stored notifications over HTTP, with the
// connection's token, and keeps the live counts: fetched when the connection is (re)established
// and updated by every "inbox" event the server pushes, whichever tab or device made the change.

// The type of the inbox's live events (inbox.EventType).
const INBOX_TYPE = "inbox";
// Prefix of a stored notification's id in the dedup set, apart from the events' ids.
const STORED_KEY = "\u0000inbox:";

// isInboxChange reports whether data is an inbox change ({op, counts, ...}).
function isInboxChange(data) {
  return data !== null && typeof data === "object" && typeof data.op === "string" &&
    data.counts !== null && typeof data.counts === "object";
}

/**
 * storedEvent returns the event of a new stored notification (an inbox change with op "new"),
 * as its own type's handlers get it: type, id and time are the notification's type, id and
 * createdAt, data its data, and `notification` the notification as stored. It returns
 * undefined for any other change.
 */
function storedEvent(change) {
  const n = change.notification;
  if (change.op !== "new" || n === null || typeof n !== "object") return undefined;
  if (typeof n.type !== "string" || n.type === "" || n.type === INBOX_TYPE || typeof n.id !== "string") return undefined;
  const ev = { type: n.type, id: n.id, time: n.createdAt, notification: n };
  if (n.data !== undefined) ev.data = n.data;
  return ev;
}

/**
 * inboxURL returns the inbox endpoints' base URL for the socket at `socketURL` (relative to
 * `base`): the same origin, with "inbox/" in place of the socket's last path segment, so that
 * "/notify/ws" gives "/notify/inbox/". http(s) either way.
 */
function inboxURL(socketURL, base) {
  const u = new URL(socketURL, base);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.search = "";
  u.hash = "";
  return new URL("inbox/", u).href;
}

// Gives the connection its lazily made inbox.
function withInbox(conn, url, options, tokens) {
  let inbox = null;
  Object.defineProperty(conn, "inbox", {
    enumerable: true,
    get: () => (inbox ??= new Inbox(conn, url, options, tokens)),
  });
  return conn;
}

// Set by Inbox's static block for the push section: see there.
let inboxRequest;

class Inbox {
  #conn;
  #base;
  #tokens; // Tokens, shared with the socket
  #fetch;
  #counts = null; // the last counts known: {unread, unseen, total}
  #events = 0; // live "inbox" events received so far
  #handlers = new Set();

  constructor(conn, url, options, tokens) {
    const page = typeof location !== "undefined" ? location.href : undefined;
    this.#conn = conn;
    this.#base = options.inboxURL ? new URL(options.inboxURL, page).href : inboxURL(url, page);
    this.#tokens = tokens;
    this.#fetch = options.fetch ?? ((...args) => globalThis.fetch(...args));
    conn.on(INBOX_TYPE, (ev) => this.#onEvent(ev));
    const refresh = () => this.counts().catch(report);
    conn.onState((state) => { if (state === "connected") refresh(); });
    if (conn.state === "connected") refresh();
  }

  /** The unread count as last known (0 until the first fetch or event). */
  get unread() { return this.#counts?.unread ?? 0; }

  /** The counts as last known, or null before the first fetch or event. */
  get current() { return this.#counts && { ...this.#counts }; }

  /** Calls fn({counts, change}) whenever the counts are known anew; returns the remover. */
  onChange(fn) { return listen(this.#handlers, fn); }

  list({ unread, archived, limit, cursor, signal } = {}) {
    const q = new URLSearchParams();
    if (unread) q.set("unread", "1");
    if (archived) q.set("archived", "1");
    if (limit != null) q.set("limit", String(limit));
    if (cursor) q.set("cursor", cursor);
    const qs = q.toString();
    return this.#request("GET", qs ? "?" + qs : "", undefined, signal);
  }

  async counts({ signal } = {}) {
    const before = this.#events;
    const counts = await this.#request("GET", "counts", undefined, signal);
    // A live event that came meanwhile is as new as this answer, or newer.
    if (this.#events === before) this.#set(counts, null);
    return counts;
  }

  markRead(ids, options) { return this.#change("read", ids, options); }
  markUnread(ids, options) { return this.#change("unread", ids, options); }
  markSeen(ids, options) { return this.#change("seen", ids, options); }
  archive(ids, options) { return this.#change("archive", ids, options); }
  unarchive(ids, options) { return this.#change("unarchive", ids, options); }
  delete(ids, options) { return this.#change("delete", ids, options); }
  markAllRead(options) { return this.#change("read-all", undefined, options); }

  async #change(op, ids, { signal } = {}) {
    const body = op === "read-all" ? undefined : { ids: Array.isArray(ids) ? ids : [ids] };
    const before = this.#events;
    const session = this.#conn.sessionId;
    const { counts } = await this.#request("POST", op, body, signal, session);
    if (session !== undefined) {
      // The server left this page (its session, or its tab) out of the change's live event:
      // the answer stands for it, as the change of onChange, so that the page's list follows
      // as it would the event. A live event that came meanwhile has newer counts.
      const change = { op, ...(body ? { ids: body.ids } : {}), counts };
      this.#set(this.#events === before || !this.#counts ? counts : this.#counts, change);
    } else if (this.#conn.state !== "connected" && this.#events === before) {
      // Otherwise the change's own live event brings the counts, in order with the other
      // tabs' changes; an answer could overtake a newer event.
      this.#set(counts, null);
    }
    return counts;
  }

  #onEvent(ev) {
    const change = ev.data;
    if (!change || typeof change !== "object" || !change.counts) return;
    this.#events++;
    this.#set(change.counts, change);
  }

  #set(counts, change) {
    this.#counts = { unread: counts.unread, unseen: counts.unseen, total: counts.total };
    for (const fn of [...this.#handlers]) {
      try { fn({ counts: { ...this.#counts }, change }); } catch (err) { report(err); }
    }
  }

  // Sends a request with the connection's token; rejects with a NotifyError carrying the
  // server's error code (or "network") and the HTTP status, or with signal.reason once signal
  // aborts. A reused token the server refuses (401) is replaced by a fresh one, once: a 401
  // changed nothing, so the request is safe to send again.
  async #request(method, path, body, signal, session = undefined) {
    if (signal?.aborted) throw signal.reason;
    let { token, reused } = await untilAborted(this.#tokens.get(), signal);
    for (;;) {
      if (token === null) throw notifyError("unauthorized", "signed out", undefined, 401);
      const headers = { Accept: "application/json" };
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (session !== undefined) headers[SESSION_HEADER] = session;
      let res;
      try {
        res = await this.#fetch(new URL(path, this.#base).href, {
          method, headers, body: body === undefined ? undefined : JSON.stringify(body),
          credentials: "same-origin", cache: "no-store", signal,
        });
      } catch (error) {
        if (signal?.aborted) throw signal.reason;
        throw notifyError("network", String(error?.message ?? error), undefined, 0);
      }
      if (res.status === 401 && reused) {
        this.#tokens.forget(token);
        ({ token, reused } = await untilAborted(this.#tokens.get(), signal));
        continue;
      }
      const json = await res.json().catch(() => null);
      if (!res.ok) throw notifyError(json?.error ?? `http_${res.status}`, json?.reason ?? "", undefined, res.status);
      return json;
    }
  }

  // connection.push's requests are the inbox's: its endpoints are beside them.
  static {
    inboxRequest = (ib, method, path, body, signal) => ib.#request(method, path, body, signal);
  }
}

// ---- Web Push (PROTOCOL.md, "Web Push") ----
//
// connection.push subscribes this browser to Web Push for the user, so that the server can
// reach them while none of their tabs is open. Its requests are the tab's own, the inbox's,
// with the inbox's token. The service worker, sw.js, is served beside client.js: it shows what
// the server pushes, marks it seen, and on a click opens it and marks it read.

/**
 * serviceWorkerURL returns where the server serves the service worker for the socket at
 * socketURL (absolute): "sw.js" in place of the socket's last path segment, as Mount does.
 */
function serviceWorkerURL(socketURL) {
  const u = new URL(socketURL);
  u.protocol = u.protocol === "wss:" || u.protocol === "https:" ? "https:" : "http:";
  u.search = "";
  u.hash = "";
  return new URL("sw.js", u).href;
}

// b64urlBytes decodes base64url (padded or not) into bytes.
function b64urlBytes(s) {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)), (c) => c.charCodeAt(0));
}

// sameBytes reports whether the BufferSource a holds the bytes b.
function sameBytes(a, b) {
  if (!a) return false;
  const x = a instanceof ArrayBuffer ? new Uint8Array(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return x.length === b.length && x.every((v, i) => v === b[i]);
}

// pushEnv returns the browser's service workers and Notification, or null where Web Push is
// missing (an old browser, a page that is not a secure context, Node, a worker).
function pushEnv() {
  const container = globalThis.navigator?.serviceWorker;
  const Notification = globalThis.Notification;
  if (!container || typeof Notification !== "function" || typeof globalThis.PushManager !== "function") return null;
  return { container, Notification };
}

// askPermission asks for the permission to show notifications, unless it is decided already.
// It calls requestPermission before any await, while the click that led here still counts as
// a user gesture. Older Safari answers through a callback instead of a promise.
function askPermission(Notification) {
  if (Notification.permission !== "default") return Promise.resolve(Notification.permission);
  return new Promise((resolve) => {
    const p = Notification.requestPermission(resolve);
    if (p && typeof p.then === "function") p.then(resolve, () => resolve("default"));
  });
}

// activated resolves with reg once it has an active worker, which pushManager.subscribe needs.
function activated(reg) {
  if (reg.active) return Promise.resolve(reg);
  const worker = reg.installing ?? reg.waiting;
  if (!worker) return Promise.reject(notifyError("service_worker", "the registration has no worker"));
  return new Promise((resolve, reject) => {
    const check = () => {
      if (worker.state === "activated") resolve(reg);
      else if (worker.state === "redundant") reject(notifyError("service_worker", "the service worker failed to install"));
      else return;
      worker.removeEventListener("statechange", check);
    };
    worker.addEventListener("statechange", check);
    check();
  });
}

// What the service worker posts to the app's windows after it renewed the subscription.
const PUSH_RENEWED = "notify:pushsubscriptionchange";

// Gives the connection its lazily made push.
function withPush(conn, url, options) {
  let push = null;
  Object.defineProperty(conn, "push", {
    enumerable: true,
    get: () => (push ??= new Push(conn, url, options)),
  });
  return conn;
}

class Push {
  #conn;
  #script; // the service worker's URL
  #scope; // its scope, absolute

  constructor(conn, url, options) {
    const page = typeof location !== "undefined" ? location.href : undefined;
    this.#conn = conn;
    this.#script = options.serviceWorkerURL ? new URL(options.serviceWorkerURL, page).href : serviceWorkerURL(new URL(url, page).href);
    this.#scope = new URL(options.serviceWorkerScope ?? "/", page ?? this.#script).href;
    // The service worker renewed the subscription (the push service rotated it): it cannot tell
    // the server, having no token; this tab can.
    pushEnv()?.container.addEventListener?.("message", (e) => {
      if (e.data?.notify === PUSH_RENEWED && this.#conn.state !== "closed") this.#resend().catch(report);
    });
  }

  async state() {
    const env = pushEnv();
    if (!env) return "unsupported";
    const permission = env.Notification.permission;
    if (permission === "denied") return "denied";
    if (permission !== "granted") return "disabled";
    const sub = await this.#subscription(env);
    return sub ? "enabled" : "disabled";
  }

  async enable({ signal } = {}) {
    const env = pushEnv();
    if (!env) throw notifyError("unsupported", "this browser has no Web Push, or the page is not a secure context");
    if (signal?.aborted) throw signal.reason;
    const permission = askPermission(env.Notification);
    const key = this.#request("GET", "push/key", undefined, signal).then(
      (answer) => {
        if (typeof answer?.publicKey !== "string" || answer.publicKey === "") throw notifyError("bad_response", "no publicKey in the answer");
        try {
          return b64urlBytes(answer.publicKey);
        } catch {
          throw notifyError("bad_response", "the publicKey is not base64url");
        }
      },
      (err) => { throw err?.status === 404 ? notifyError("unsupported", "the server has no Web Push", undefined, 404) : err; },
    );
    key.catch(() => {}); // awaited below, after the permission
    const granted = await untilAborted(permission, signal);
    if (granted !== "granted") throw notifyError("permission_denied", `notification permission ${granted === "denied" ? "denied" : "not granted"}`);
    const applicationServerKey = await untilAborted(key, signal);
    let reg;
    try {
      reg = await untilAborted(env.container.register(this.#script, { scope: this.#scope }).then(activated), signal);
    } catch (err) {
      if (signal?.aborted || err instanceof NotifyError) throw err;
      throw notifyError("service_worker", `cannot register ${this.#script}: ${err?.message ?? err}`);
    }
    // A subscription made with another key (the server's keys changed) cannot be used.
    let sub = await untilAborted(reg.pushManager.getSubscription(), signal);
    if (sub && !sameBytes(sub.options?.applicationServerKey, applicationServerKey)) {
      await sub.unsubscribe().catch(() => {});
      sub = null;
    }
    let created = false;
    if (!sub) {
      // The push service may never answer (a network that blocks it): the signal still ends
      // the wait, and a subscription that comes later is undone.
      const subscribing = reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
      try {
        sub = await untilAborted(subscribing, signal);
      } catch (err) {
        if (signal?.aborted) {
          subscribing.then((late) => late.unsubscribe(), () => {}).catch(() => {});
          throw err;
        }
        if (err?.name === "NotAllowedError") throw notifyError("permission_denied", String(err.message ?? err));
        throw notifyError("subscribe_failed", String(err?.message ?? err));
      }
      created = true;
    }
    try {
      if (signal?.aborted) throw signal.reason;
      return await this.#request("POST", "push/subscriptions", sub.toJSON(), signal);
    } catch (err) {
      // One the server does not know would be "enabled" here and reach no one.
      if (created) await sub.unsubscribe().catch(() => {});
      throw err;
    }
  }

  async disable({ signal } = {}) {
    const env = pushEnv();
    if (!env) return;
    const sub = await untilAborted(this.#subscription(env), signal);
    if (!sub) return;
    let failed = null;
    try {
      await this.#request("DELETE", "push/subscriptions", { endpoint: sub.endpoint }, signal);
    } catch (err) {
      failed = err;
    }
    // Unsubscribed here in any case: the push service then refuses the server's pushes to it
    // (404 or 410), and the server deletes what it kept.
    try {
      await sub.unsubscribe();
    } catch (err) {
      failed ??= notifyError("unsubscribe_failed", String(err?.message ?? err));
    }
    if (failed) throw failed;
  }

  subscriptions({ signal } = {}) {
    return this.#request("GET", "push/subscriptions", undefined, signal).then((answer) => answer?.items ?? []);
  }

  preferences({ signal } = {}) { return this.#request("GET", "push/preferences", undefined, signal); }

  mute(types, { signal } = {}) {
    // A string is one type, not an iterable of characters.
    const muted = typeof types === "string" ? [types] : [...types];
    return this.#request("PUT", "push/preferences", { muted }, signal);
  }

  // The subscription of the registration at the scope, or null.
  async #subscription(env) {
    const reg = await env.container.getRegistration(this.#scope);
    if (!reg || reg.scope !== this.#scope) return null;
    return reg.pushManager.getSubscription();
  }

  // Tells the server the browser's current subscription again (after the service worker renewed it).
  async #resend() {
    const env = pushEnv();
    if (!env || env.Notification.permission !== "granted") return;
    const sub = await this.#subscription(env);
    if (sub) await this.#request("POST", "push/subscriptions", sub.toJSON());
  }

  #request(method, path, body, signal) {
    return inboxRequest(this.#conn.inbox, method, path, body, signal);
  }
}

// ---- server-sent events (PROTOCOL.md, "Server-sent events") ----
//
// SSESocket is the event stream with the face of a WebSocket, so that the connection's core
// handles both alike: onmessage gets each frame, onclose the close event's code (1006 when the
// stream failed), send() POSTs a message to the session, close() ends the stream. The stream
// is opened with a single-use ticket for the token (never the token in the URL), or with the
// page's cookie when there is no token. The EventSource's own reconnect is not used: the
// connection reconnects, with its positions, as it does for a WebSocket.

/**
 * sseURL returns the event stream's URL for the socket URL `wsURL` (absolute): http(s), with
 * "sse" in place of the last path segment ("/notify/ws" gives "/notify/sse"), the query kept.
 */
function sseURL(wsURL) {
  const u = new URL(wsURL);
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  u.pathname = u.pathname.replace(/[^/]*$/, "sse");
  return u.href;
}

class SSESocket {
  onmessage = null;
  onclose = null;
  onerror = null;
  #url;
  #tokens;
  #fetch;
  #es = null;
  #session = undefined;
  #closed = false;

  constructor(url, token, tokens, EventSource, fetch) {
    if (typeof EventSource !== "function") throw new TypeError("notify: EventSource is not available");
    this.#url = url;
    this.#tokens = tokens;
    this.#fetch = fetch;
    this.#start(token, EventSource);
  }

  async #start(token, EventSource) {
    const u = new URL(this.#url);
    if (token) {
      let ticket;
      try {
        const res = await this.#fetch(this.#url.split("?")[0] + "/ticket", {
          method: "POST", headers: { Authorization: "Bearer " + token }, credentials: "same-origin",
        });
        if (!res.ok) throw new Error("ticket: HTTP " + res.status);
        ticket = (await res.json()).ticket;
      } catch {
        this.#end(CLOSE_ABNORMAL, "no ticket for the event stream");
        return;
      }
      u.searchParams.set("ticket", ticket);
    }
    if (this.#closed) return;
    const es = new EventSource(u.href);
    this.#es = es;
    es.onmessage = (e) => {
      if (this.#closed) return;
      const data = String(e.data);
      if (data.startsWith('{"op":"close"')) {
        const msg = parseFrame(data)[0] ?? {};
        this.#end(typeof msg.code === "number" ? msg.code : CLOSE_ABNORMAL, String(msg.reason ?? ""));
        return;
      }
      if (this.#session === undefined && data.startsWith('{"op":"welcome"')) this.#session = parseFrame(data)[0]?.session;
      this.onmessage?.({ data });
    };
    // An EventSource reconnects on its own after an error, with Last-Event-ID; the connection
    // does that itself, with a fresh ticket.
    es.onerror = () => this.#end(CLOSE_ABNORMAL, "event stream failed");
  }

  #end(code, reason) {
    if (this.#closed) return;
    this.#closed = true;
    this.#es?.close();
    this.onclose?.({ code, reason });
  }

  // Posts a message to the session, with the token the inbox would use. A refused POST is
  // not retried: what it asked is renewed at the next connection, as for a broken socket.
  send(data) {
    if (this.#closed || this.#session === undefined) throw new Error("notify: event stream not open");
    const url = this.#url.split("?")[0] + "/" + encodeURIComponent(this.#session);
    this.#tokens.get().then(({ token }) => this.#fetch(url, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "Content-Type": "application/json", ...(token ? { Authorization: "Bearer " + token } : {}) },
    })).catch(() => {});
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#es?.close();
  }
}

// ---- one connection per browser, shared by its tabs ----
//
// connect() in a page shares one connection with every other tab of the same origin that
// connects to the same URL (and, with a string `shared` option, the same key). A host holds
// the connection, an ordinary Connection, and relays it to each tab's SharedConnection, which
// has Connection's API:
//
// - where the browser has SharedWorker, the host runs in a shared worker started from this
//   module as the server serves it (<prefix>/client.js, as a module worker), which outlives any
//   one tab; every tab talks to it through its MessagePort;
// - otherwise, with Web Locks and BroadcastChannel, in the tab holding the lock "notify:<key>":
//   the leader. All tabs talk over the BroadcastChannel "notify:<key>". When the leader closes or
//   crashes, the lock passes to the next tab; when it is about to be frozen, it lets the lock go;
//   when it hangs (silent for LEADER_SILENCE, and no answer to a probe), a tab steals the lock.
//   The new leader opens its connection from the stream positions the old
//   one last broadcast, so that the server replays what came meanwhile; each tab drops what it
//   already delivered (by id), so the application sees every event once;
// - otherwise each tab has its own connection, as with {shared: false}.
//
// Messages, tab to host: hello {tab, url, options, topics} (again to every new leader), sub and
// unsub {tab, topic}, token {tab, req, token | error} (the answer to a tokenreq), bye {tab}.
// Host to tabs (all of them, or the one named in `to`): state {state, info, user, session,
// transport}, transport {transport} (the connection fell back to server-sent events, or back), ev
// {ev, inbox, client}, subbed {topic, error}, err {frame, client}, recovery {info, client},
// tokenreq {req}, and from a leader, beat; a leader's messages carry `pos`, its connection's
// stream positions. `client` says that a topic is one some tab subscribed: a tab that did not
// skips it.

const LEADER_BEAT = 250; // ms between a leader's heartbeats
const LEADER_SILENCE = 600; // ms without a word from the leader after which a tab probes it
const LEADER_PROBE = 250; // ms a probed leader has to answer before a tab takes over
const TOKEN_WAIT = 5000; // ms a host waits for a tab's token() before it asks another tab
const TAKEOVER_WAIT = 50; // ms a tab granted the lead waits for the old leader's last messages

const inWorker = typeof SharedWorkerGlobalScope === "function" && globalThis instanceof SharedWorkerGlobalScope;

// clientURL returns where the server serves this module for the socket at socketURL (absolute):
// "client.js" in place of the socket's last path segment, as Mount does.
function clientURL(socketURL) {
  const u = new URL(socketURL);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.search = "";
  u.hash = "";
  return new URL("client.js", u).href;
}

function randomID() {
  return globalThis.crypto?.randomUUID?.() ?? Math.random().toString(36).slice(2) + Date.now().toString(36);
}

/**
 * sharedConnection returns the tab's side of a connection shared with the browser's other
 * tabs, or null when it is not shared: {shared: false}, a WebSocket given in the options, no
 * page (Node, a worker), or a browser with neither SharedWorker nor Web Locks.
 */
function sharedConnection(url, options, tokens) {
  if (options.shared === false || options.WebSocket || inWorker) return null;
  if (typeof window === "undefined" || typeof document === "undefined") return null;
  const hasWorker = typeof SharedWorker === "function";
  const hasLocks = typeof navigator !== "undefined" && navigator.locks && typeof BroadcastChannel === "function";
  if (!hasWorker && !hasLocks) return null;
  const abs = resolveURL(url, location.href);
  const key = "notify:" + abs + (typeof options.shared === "string" ? "#" + options.shared : "");
  const hello = {
    url: abs,
    worker: options.sharedWorkerURL ? new URL(options.sharedWorkerURL, location.href).href : clientURL(abs),
    options: { minDelay: options.minDelay, maxDelay: options.maxDelay },
    // A fixed token (or none: a cookie) is never asked for again after a sign-out (4001).
    fixed: typeof options.token !== "function",
    topics: [...(options.topics ?? [])],
  };
  return new SharedConnection(key, hello, tokens, hasWorker ? "worker" : "leader");
}

/** SharedConnection is one tab's view of the shared connection; its API is Connection's. */
class SharedConnection {
  #tab = randomID();
  #key;
  #hello;
  #tokens;
  #state = "connecting";
  #user = undefined;
  #session = undefined;
  #topics = new Set(); // this tab's subscriptions; the host subscribes the union
  #pending = new Map(); // topic -> [{resolve, reject}] awaiting the host's "subbed"
  #dedup = new Dedup(DEDUP_SIZE); // across hosts: a new leader's replay is not delivered twice
  #handlers = new Map();
  #stateHandlers = new Set();
  #errorHandlers = new Set();
  #recoveryHandlers = new Set();
  #transport = "websocket"; // the host's connection's, as its state messages say
  #transportHandlers = new Set();
  // This tab's requests awaiting the host's "rep"; each goes to every new host (a new leader).
  #requests = new Requests((msg) => this.#post?.(msg));

  #post = null; // sends a message to the host
  #ready = undefined; // a promise, until which the tab does not say hello
  #stop = []; // undoes what the link set up
  // Leader mode.
  #channel = null;
  #host = null; // the Host while this tab leads
  #pos = undefined; // the positions the leader last sent
  #heardAt = 0; // Date.now() when the leader last spoke
  #queued = null; // AbortController of the waiting lock request
  #release = null; // ends this tab's hold on the lock
  #leader = undefined; // the id of the leader whose messages count
  #retired = new Set(); // ids of leaders a newer one replaced
  #leading = undefined; // this tab's id as a leader, while it leads
  #probing = false; // a probe of a silent leader awaits an answer
  #frozen = false; // the page is frozen (or about to be): it neither leads nor queues

  constructor(key, hello, tokens, mode) {
    this.#key = key;
    this.#hello = hello;
    this.#tokens = tokens;
    for (const topic of hello.topics) this.#topics.add(topic);
    if (mode === "worker") this.#viaWorker(hello.worker);
    else this.#viaLeader();
    // A page leaving (or entering the back/forward cache) is not a tab of the host's any more;
    // one coming back from that cache says hello again.
    const bye = () => this.#post?.({ t: "bye", tab: this.#tab });
    const back = (e) => { if (e.persisted && this.#state !== "closed") this.#sayHello(); };
    window.addEventListener("pagehide", bye);
    window.addEventListener("pageshow", back);
    this.#stop.push(() => {
      window.removeEventListener("pagehide", bye);
      window.removeEventListener("pageshow", back);
    });
    queueMicrotask(() => {
      if (this.#state === "closed") return;
      this.#setState("connecting", {});
      this.#sayHello();
    });
  }

  get state() { return this.#state; }
  get user() { return this.#user; }
  get session() { return this.#session; }
  // The shared session's ID and this tab's: the server leaves out only this tab (the host
  // delivers the event to the session's other tabs).
  get sessionId() { return this.#session === undefined ? undefined : this.#session + "." + this.#tab; }
  get transport() { return this.#transport; }
  onTransport(fn) { return listen(this.#transportHandlers, fn); }

  fetch(input, init) { return fetchWithSession((...a) => globalThis.fetch(...a), this.sessionId, input, init); }

  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    return listen(this.#handlers.get(type), fn);
  }

  onState(fn) { return listen(this.#stateHandlers, fn); }
  onError(fn) { return listen(this.#errorHandlers, fn); }
  onRecovery(fn) { return listen(this.#recoveryHandlers, fn); }

  connected({ signal } = {}) {
    return whenConnected(this.#state, { user: this.#user, session: this.#session }, (fn) => this.onState(fn), signal);
  }

  subscribe(topic) {
    if (this.#state === "closed") return Promise.reject(notifyError("closed", "connection closed", topic));
    this.#topics.add(topic);
    const answer = new Promise((resolve, reject) => {
      const list = this.#pending.get(topic) ?? [];
      list.push({ resolve, reject });
      this.#pending.set(topic, list);
    });
    this.#post({ t: "sub", tab: this.#tab, topic });
    return answer;
  }

  unsubscribe(topic) {
    this.#topics.delete(topic);
    this.#settle(topic, notifyError("unsubscribed", "unsubscribed before the server answered", topic));
    if (this.#state !== "closed") this.#post({ t: "unsub", tab: this.#tab, topic });
  }

  // Connection's request(): the host sends it on the shared session, with this tab's id for it,
  // and routes the answer back to this tab only.
  request(name, data, { timeout = REQUEST_TIMEOUT, signal, id = randomID() } = {}) {
    if (this.#state === "closed") return Promise.reject(notifyError("closed", "connection closed"));
    return this.#requests.add(id, { t: "req", tab: this.#tab, id, name, data, timeout }, timeout, signal);
  }

  close() {
    this.#finish({ code: CLOSE_NORMAL, reason: "closed by the client" });
  }

  async #sayHello() {
    await this.#ready;
    if (this.#state === "closed") return;
    this.#post({ t: "hello", tab: this.#tab, ...this.#hello, topics: [...this.#topics] });
    this.#requests.resend(); // a host that has them already ignores them
  }

  // ---- links ----

  // The host is a shared worker running this module as the server serves it, at
  // <prefix>/client.js beside the socket (sharedWorkerURL), whether the page imported it from
  // there or bundled it: a bundle is no worker. The tab holds the lock "<key>:<tab>" while it
  // lives: the worker, waiting for it, learns that the tab is gone even if it crashed. The tab
  // says hello once it holds the lock, or the worker's request could come first. A worker that
  // cannot start (another origin, no such script) leaves the tab to the Web Locks path.
  #viaWorker(scriptURL) {
    let worker;
    try {
      worker = new SharedWorker(scriptURL, { type: "module", name: this.#key });
    } catch {
      this.#viaLeader();
      return;
    }
    const port = worker.port;
    let heard = false;
    port.onmessage = (e) => { heard = true; this.#receive(e.data); };
    worker.onerror = () => {
      if (heard || this.#state === "closed" || this.#channel) return;
      port.close();
      this.#viaLeader();
      this.#sayHello();
    };
    port.start();
    this.#post = (msg) => port.postMessage(msg);
    if (navigator.locks) {
      const held = new Promise((resolve) => this.#stop.push(resolve));
      this.#ready = new Promise((ready) => {
        navigator.locks.request(this.#key + ":" + this.#tab, () => { ready(); return held; }).catch(ready);
      });
    }
    this.#stop.push(() => port.close());
  }

  // The host is whichever tab holds the lock "<key>"; all talk over a BroadcastChannel.
  #viaLeader() {
    const channel = new BroadcastChannel(this.#key);
    this.#channel = channel;
    channel.onmessage = (e) => {
      const msg = e.data;
      if (msg.from === "host") this.#receive(msg);
      else this.#host?.receive(msg);
    };
    this.#post = (msg) => {
      if (this.#host) queueMicrotask(() => this.#host?.receive(msg));
      else channel.postMessage(msg);
    };
    this.#heardAt = Date.now();
    const watch = setInterval(() => this.#watchLeader(), LEADER_BEAT);
    this.#stop.push(() => clearInterval(watch));
    // A page about to be frozen hands the lead on at once; it queues again once resumed.
    const freeze = () => {
      this.#frozen = true;
      this.#queued?.abort();
      this.#queued = null;
      if (this.#host) this.#stepDown();
    };
    const resume = () => {
      this.#frozen = false;
      this.#heardAt = Date.now();
      if (!this.#host && !this.#queued) this.#queue();
    };
    document.addEventListener("freeze", freeze);
    document.addEventListener("resume", resume);
    this.#stop.push(() => {
      document.removeEventListener("freeze", freeze);
      document.removeEventListener("resume", resume);
    });
    this.#queue();
  }

  // Waits in line for the lock.
  #queue() {
    if (this.#state === "closed" || this.#frozen) return;
    const abort = new AbortController();
    this.#queued = abort;
    navigator.locks.request(this.#key, { signal: abort.signal }, () => this.#lead())
      .catch(() => { if (!abort.signal.aborted) this.#stepDown(); });
  }

  // A leader silent for LEADER_SILENCE is probed: a throttled background tab answers at once
  // (messages are not throttled, timers are), a frozen or hung one does not, and then this tab
  // steals the lock. Tabs wait a random moment more, so that usually one of them steals it.
  #watchLeader() {
    if (this.#host || this.#state === "closed" || this.#frozen || this.#probing) return;
    if (Date.now() - this.#heardAt < LEADER_SILENCE) return;
    this.#probing = true;
    const asked = Date.now();
    this.#channel.postMessage({ t: "probe" });
    setTimeout(() => {
      this.#probing = false;
      if (this.#host || this.#state === "closed" || this.#frozen || this.#heardAt >= asked) return;
      this.#queued?.abort();
      this.#queued = null;
      navigator.locks.request(this.#key, { steal: true }, () => this.#lead()).catch(() => this.#stepDown());
    }, LEADER_PROBE + Math.random() * 200);
  }

  // Holds the lock until this tab steps down: hosts the connection, from the positions the old
  // leader last sent.
  #lead() {
    if (this.#state === "closed" || this.#frozen) return undefined;
    // What the old leader posted before it let the lock go (its connection's last state, a
    // sign-out) crosses the browser by another way than the lock: read it first, so that a tab
    // that learns from it that the connection is over does not open another.
    return new Promise((resolve) => setTimeout(resolve, TAKEOVER_WAIT)).then(() => this.#takeLead());
  }

  #takeLead() {
    if (this.#state === "closed" || this.#frozen) return undefined;
    this.#queued = null;
    const leader = randomID();
    let host = null;
    const post = (msg) => {
      if (this.#host !== host) return; // stepped down
      msg.from = "host";
      msg.leader = leader;
      msg.pos = host.positions();
      try { this.#channel.postMessage(msg); } catch (err) { report(err); }
      queueMicrotask(() => this.#receive(msg));
    };
    host = new Host(post, this.#pos);
    this.#host = host;
    const beat = setInterval(() => post({ t: "beat" }), LEADER_BEAT);
    this.#leading = leader;
    post({ t: "leader" });
    return new Promise((resolve) => {
      this.#release = () => { clearInterval(beat); resolve(); };
    });
  }

  // Ends this tab's lead: the lock was stolen, or the tab closed.
  #stepDown() {
    const host = this.#host;
    this.#host = null;
    this.#leading = undefined;
    this.#release?.();
    this.#release = null;
    host?.close();
    if (host && this.#state !== "closed") {
      this.#heardAt = Date.now();
      this.#queue();
    }
  }

  // ---- messages from the host ----

  // The host's connection changed transport (or a state message says which it uses).
  #setTransport(transport) {
    if (!transport || transport === this.#transport) return;
    const previous = this.#transport;
    this.#transport = transport;
    for (const fn of [...this.#transportHandlers]) {
      try { fn(transport, { previous }); } catch (err) { report(err); }
    }
  }

  #receive(msg) {
    if (this.#state === "closed" || !msg || typeof msg !== "object") return;
    if (msg.to !== undefined && msg.to !== this.#tab) return;
    if (msg.leader !== undefined) {
      // Only the newest leader speaks: one that was frozen and woke up to find its lock stolen
      // may still send a little before it hears of it.
      if (this.#retired.has(msg.leader)) return;
      if (msg.leader !== this.#leader) {
        if (this.#leader !== undefined) this.#retired.add(this.#leader);
        this.#leader = msg.leader;
      }
      if (msg.t === "leader" && this.#host && msg.leader !== this.#leading) this.#stepDown();
    }
    if (msg.pos) this.#pos = msg.pos;
    this.#heardAt = Date.now();
    switch (msg.t) {
      case "leader":
        this.#sayHello();
        break;
      case "transport":
        this.#setTransport(msg.transport);
        break;
      case "state":
        this.#setTransport(msg.transport);
        if (msg.state === "closed") {
          this.#finish(msg.info ?? {});
          break;
        }
        this.#user = msg.user;
        this.#session = msg.session;
        if (msg.state !== this.#state || msg.state !== "connecting") this.#setState(msg.state, msg.info ?? {});
        break;
      case "ev":
        this.#onEvent(msg);
        break;
      case "rep":
        this.#requests.answer(msg.id, msg.error ? notifyError(msg.error.code, msg.error.reason) : undefined, msg.data ?? null);
        break;
      case "skip":
        // An event the server left this whole session out of: no tab delivers it.
        this.#dedup.seen(msg.id);
        break;
      case "subbed":
        if (msg.error) {
          this.#topics.delete(msg.topic);
          this.#settle(msg.topic, notifyError(msg.error.code, msg.error.reason, msg.topic));
        } else this.#settle(msg.topic);
        break;
      case "err":
        if (msg.client && !this.#topics.has(msg.frame.topic)) break;
        if (typeof msg.frame.topic === "string" && msg.forget) {
          this.#topics.delete(msg.frame.topic);
          this.#settle(msg.frame.topic, notifyError(msg.frame.code, msg.frame.reason, msg.frame.topic));
        }
        for (const fn of [...this.#errorHandlers]) {
          try { fn(msg.frame); } catch (err) { report(err); }
        }
        break;
      case "recovery":
        if (msg.client && !this.#topics.has(msg.info.topic)) break;
        for (const fn of [...this.#recoveryHandlers]) {
          try { fn(msg.info); } catch (err) { report(err); }
        }
        break;
      case "tokenreq":
        // null ends the connection (see Connection's #open): this tab learns it first, and
        // closes as a Connection would, before its application reacts to the null. A leader
        // hears it from its own host at once, which tells every tab.
        this.#tokens.fresh().then(
          (token) => {
            this.#post({ t: "token", tab: this.#tab, req: msg.req, token });
            if (token === null && !this.#host) {
              this.#finish(msg.signedOut ? { code: CLOSE_SIGNED_OUT, reason: "signed out" } : { reason: "token() returned null" });
            }
          },
          (error) => this.#post({ t: "token", tab: this.#tab, req: msg.req, error: String(error?.message ?? error) }),
        );
        break;
    }
  }

  // An event the host's connection delivered: this tab's handlers get it once, as a
  // Connection's would (see Connection's #onEvent).
  #onEvent({ ev, inbox, client, except }) {
    if (client && !this.#topics.has(ev.topic)) return; // another tab's topic
    if (ev.id != null && this.#dedup.seen((ev.notification ? STORED_KEY : "") + ev.id)) return;
    if (except === this.#tab) return; // this tab caused it: remembered above, not delivered
    const handlers = [...(this.#handlers.get(ev.type) ?? []), ...(inbox ? [] : this.#handlers.get("*") ?? [])];
    for (const fn of handlers) {
      try { fn(ev); } catch (err) { report(err); }
    }
  }

  #settle(topic, err) {
    const list = this.#pending.get(topic);
    if (!list) return;
    this.#pending.delete(topic);
    for (const p of list) err ? p.reject(err) : p.resolve();
  }

  #finish(info) {
    if (this.#state === "closed") return;
    this.#post?.({ t: "bye", tab: this.#tab });
    this.#state = "closed"; // before stepping down: a closed tab does not queue again
    if (this.#host) this.#stepDown();
    this.#queued?.abort();
    for (const stop of this.#stop) stop();
    this.#channel?.close();
    for (const topic of [...this.#pending.keys()]) {
      this.#settle(topic, notifyError("closed", "connection closed", topic));
    }
    this.#requests.fail(notifyError("closed", "connection closed"));
    this.#setState("closed", info);
  }

  #setState(state, info) {
    this.#state = state;
    for (const fn of [...this.#stateHandlers]) {
      try { fn(state, info); } catch (err) { report(err); }
    }
  }
}

/**
 * Host holds the shared connection for the tabs it hears from: it subscribes the union of their
 * topics (counted: a topic stays while one tab wants it), asks one tab at a time for tokens
 * (another when that one leaves or does not answer within TOKEN_WAIT), and relays everything
 * the connection reports. post(msg) sends to every tab, or to msg.to.
 */
class Host {
  #post;
  #resume; // positions to start the first connection from (a leader taking over)
  #conn = null;
  #tabs = new Map(); // tab -> Set of its topics, in the order the tabs said hello
  #subs = new Map(); // topic -> the connection's subscribe() promise
  #asks = new Map(); // req -> {tab, resolve, reject, timer}
  #req = 0;
  #tokenTab = undefined; // the tab asked for tokens, while it answers
  #signedOut = false; // closed with 4001 and not welcomed since: a null token means signed out
  #reqs = new Map(); // request id -> Set of the tabs awaiting its answer

  constructor(post, resume) {
    this.#post = post;
    this.#resume = resume;
  }

  positions() { return this.#conn ? positionsOf(this.#conn) : this.#resume; }

  receive(msg) {
    if (!msg || typeof msg !== "object" || msg.from === "host") return;
    const tab = msg.tab;
    switch (msg.t) {
      case "hello": {
        if (!this.#tabs.has(tab)) this.#tabs.set(tab, new Set());
        const conn = this.#open(msg);
        this.#post({ t: "state", to: tab, state: conn.state, info: conn.state === "connected" ? { user: conn.user, session: conn.session } : {}, user: conn.user, session: conn.session, transport: conn.transport });
        for (const topic of msg.topics ?? []) this.#subscribe(tab, topic);
        break;
      }
      case "sub":
        if (this.#tabs.has(tab) && this.#conn) this.#subscribe(tab, msg.topic);
        break;
      case "probe":
        this.#post({ t: "beat" });
        break;
      case "req":
        if (this.#tabs.has(tab) && this.#conn && typeof msg.id === "string") this.#request(tab, msg);
        break;
      case "unsub":
        this.#tabs.get(tab)?.delete(msg.topic);
        this.#drop(msg.topic);
        break;
      case "token": {
        const ask = this.#asks.get(msg.req);
        if (!ask) break;
        this.#asks.delete(msg.req);
        clearTimeout(ask.timer);
        if (msg.error !== undefined) ask.reject(new Error(msg.error));
        else ask.resolve(msg.token);
        break;
      }
      case "bye": {
        const topics = this.#tabs.get(tab);
        if (!topics) break;
        this.#tabs.delete(tab);
        for (const topic of topics) this.#drop(topic);
        for (const [req, ask] of this.#asks) if (ask.tab === tab) this.#reask(req);
        if (this.#tabs.size === 0) this.close();
        break;
      }
    }
  }

  close() {
    const conn = this.#conn;
    this.#conn = null;
    this.#subs.clear();
    this.#reqs.clear();
    for (const ask of this.#asks.values()) clearTimeout(ask.timer);
    this.#asks.clear();
    conn?.close();
  }

  // The connection, opened for the first tab (again after one closed for good).
  #open(hello) {
    if (this.#conn) return this.#conn;
    const token = () => this.#askToken();
    const options = { ...hello.options, token: hello.fixed ? undefined : token };
    for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
    const conn = new Connection(hello.url, options, new Tokens(token));
    if (this.#resume) resumeFrom(conn, this.#resume);
    this.#conn = conn;
    const isClient = (topic) => typeof topic === "string" && [...this.#tabs.values()].some((s) => s.has(topic));
    // An event naming a tab to leave out ("except") goes to every tab, which all remember its
    // id, and the one named does not deliver it.
    const relay = (ev, extra) => {
      const { except, ...rest } = ev;
      this.#post({ t: "ev", ev: rest, ...extra, ...(typeof except === "string" ? { except } : {}) });
    };
    conn.on("*", (ev) => relay(ev, { client: isClient(ev.topic) }));
    conn.on(INBOX_TYPE, (ev) => { if (isInboxChange(ev.data)) relay(ev, { inbox: true }); });
    onSkip(conn, (id) => this.#post({ t: "skip", id }));
    // The connection reports an error naming a topic when it gave the subscription up.
    conn.onError((frame) => {
      const forget = typeof frame.topic === "string";
      if (forget) {
        this.#subs.delete(frame.topic);
        for (const topics of this.#tabs.values()) topics.delete(frame.topic);
      }
      this.#post({ t: "err", frame, forget, client: forget });
    });
    conn.onRecovery((info) => this.#post({ t: "recovery", info, client: isClient(info.topic) }));
    conn.onState((state, info) => {
      if (conn !== this.#conn) return;
      if (state === "connected") this.#signedOut = false;
      else if (state === "reconnecting" && info?.code === CLOSE_SIGNED_OUT) this.#signedOut = true;
      if (state === "closed") {
        this.#conn = null;
        this.#subs.clear();
      }
      const { error, ...rest } = info ?? {};
      if (error !== undefined) rest.reason ??= String(error?.message ?? error);
      this.#post({ t: "state", state, info: rest, user: conn.user, session: conn.session, transport: conn.transport });
    });
    conn.onTransport((transport) => {
      if (conn === this.#conn) this.#post({ t: "transport", transport });
    });
    return conn;
  }

  #subscribe(tab, topic) {
    this.#tabs.get(tab)?.add(topic);
    let sub = this.#subs.get(topic);
    if (!sub) {
      sub = this.#conn.subscribe(topic);
      this.#subs.set(topic, sub);
      sub.catch(() => { if (this.#subs.get(topic) === sub) this.#subs.delete(topic); });
    }
    sub.then(
      () => this.#post({ t: "subbed", to: tab, topic }),
      (e) => {
        this.#tabs.get(tab)?.delete(topic);
        this.#post({ t: "subbed", to: tab, topic, error: { code: e?.code ?? "error", reason: e?.reason ?? String(e) } });
      },
    );
  }

  // Sends a tab's request on the connection, once for tabs asking with the same id, and posts
  // the answer to those tabs only.
  #request(tab, { id, name, data, timeout }) {
    const tabs = this.#reqs.get(id);
    if (tabs) {
      tabs.add(tab);
      return;
    }
    this.#reqs.set(id, new Set([tab]));
    const conn = this.#conn;
    const reply = (rep) => {
      const to = this.#reqs.get(id);
      if (!to) return;
      this.#reqs.delete(id);
      if (conn !== this.#conn) return; // closed meanwhile: the tabs ask the next host, or close
      for (const t of to) this.#post({ t: "rep", to: t, id, ...rep });
    };
    conn.request(name, data, { id, timeout: typeof timeout === "number" ? timeout : REQUEST_TIMEOUT }).then(
      (value) => reply({ data: value }),
      (e) => reply({ error: { code: e?.code ?? "error", reason: e?.reason ?? String(e) } }),
    );
  }

  // Unsubscribes topic once no tab wants it.
  #drop(topic) {
    for (const topics of this.#tabs.values()) if (topics.has(topic)) return;
    if (!this.#subs.has(topic)) return;
    this.#subs.delete(topic);
    this.#conn?.unsubscribe(topic);
  }

  // A token from one tab's token(): the same tab as last time while it answers.
  #askToken() {
    return new Promise((resolve, reject) => {
      const req = ++this.#req;
      this.#asks.set(req, { tab: undefined, resolve, reject, timer: null, tried: new Set() });
      this.#reask(req);
    });
  }

  // (Re)sends ask req to a tab not tried yet; rejects it when none is left.
  #reask(req) {
    const ask = this.#asks.get(req);
    clearTimeout(ask.timer);
    if (ask.tab !== undefined) ask.tried.add(ask.tab);
    const tabs = [...this.#tabs.keys()].filter((t) => !ask.tried.has(t));
    const tab = tabs.includes(this.#tokenTab) ? this.#tokenTab : tabs[0];
    if (tab === undefined) {
      this.#asks.delete(req);
      ask.reject(new Error("no tab answered for a token"));
      return;
    }
    this.#tokenTab = ask.tab = tab;
    ask.timer = setTimeout(() => this.#reask(req), TOKEN_WAIT);
    this.#post({ t: "tokenreq", to: tab, req, signedOut: this.#signedOut });
  }
}

// In the shared worker: one Host for the tabs that connect to it. A tab's hello names the
// lock it holds while it lives; when the worker gets that lock, the tab is gone.
if (inWorker) {
  const ports = new Map(); // tab -> MessagePort
  const host = new Host((msg) => {
    if (msg.to !== undefined) ports.get(msg.to)?.postMessage(msg);
    else for (const port of ports.values()) port.postMessage(msg);
  });
  const bye = (tab) => {
    host.receive({ t: "bye", tab });
    ports.delete(tab);
  };
  globalThis.onconnect = (e) => {
    const port = e.ports[0];
    port.onmessage = ({ data: msg }) => {
      if (msg?.t === "hello" && !ports.has(msg.tab)) {
        ports.set(msg.tab, port);
        navigator.locks?.request(globalThis.name + ":" + msg.tab, () => bye(msg.tab));
      }
      if (msg?.t === "bye") bye(msg.tab);
      else host.receive(msg);
    };
    port.start();
  };
}
