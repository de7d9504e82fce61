// notify browser client: one dependency-free ES module implementing PROTOCOL.md, version 1.
//
//   import { connect } from "/notify/client.js";
//   const n = connect("/notify/ws", { token: () => fetchToken(), topics: ["news"] });
//   n.on("order.shipped", (ev) => show(ev.data));
//
// The client reconnects with capped exponential backoff and full jitter, fetches a fresh token
// for every connection and on the server's "expiring" warning, resubscribes its topics after
// every welcome, and drops events whose id it has already delivered. It remembers the position
// (epoch and offset) of the user's stream and of each topic, and on every reconnect and
// resubscribe asks the server for the events it missed; onRecovery tells the application
// whether that worked or whether it should refetch its state.

/** Close codes, PROTOCOL.md "Close codes". */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_TOKEN_EXPIRED = 4000;
export const CLOSE_SLOW_CONSUMER = 4002;
export const CLOSE_PROTOCOL_ABUSE = 4003;

const SUBPROTOCOL = "notify.v1";
const BEARER_PREFIX = "notify.bearer.";
const DEFAULT_PING = 25; // seconds, when the welcome names none
const DEDUP_SIZE = 1000;
const GAP_GRACE = 10000; // ms: a second offset gap this soon after one is reported, not reconnected

/**
 * backoffDelay returns how long to wait before reconnect attempt number `attempt` (0-based):
 * a uniformly random time in [0, min(maxDelay, minDelay * 2^attempt)), "full jitter".
 */
export function backoffDelay(attempt, minDelay, maxDelay, random = Math.random) {
  // Bound the exponent so that a long outage neither overflows to Infinity nor, with
  // minDelay 0, yields 0 * Infinity = NaN.
  const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
  return random() * ceiling;
}

/**
 * closeAction says what to do after the connection closed with `code`: "stop" (do not
 * reconnect), "now" (reconnect at once with a fresh token) or "backoff".
 */
export function closeAction(code) {
  switch (code) {
    case CLOSE_NORMAL: // only ever sent because we asked for it
    case CLOSE_PROTOCOL_ABUSE:
      return "stop";
    case CLOSE_TOKEN_EXPIRED:
    case CLOSE_SLOW_CONSUMER:
      return "now";
    default: // 1001, 1006, 1009 and anything unknown
      return "backoff";
  }
}

/**
 * parseFrame splits a text frame into its JSON objects. The server may batch several objects
 * into one frame, one per line. Blank lines, malformed lines and lines holding anything but a
 * JSON object are skipped: one bad line must not cost the events around it.
 */
export function parseFrame(text) {
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
export class Dedup {
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
export function positionOf(msg) {
  if (typeof msg.epoch !== "string" || msg.epoch === "") return undefined;
  const offset = msg.offset ?? 0;
  if (!Number.isSafeInteger(offset) || offset < 0) return undefined;
  return { epoch: msg.epoch, offset };
}

/**
 * withPosition returns url (absolute) with the user stream's recovery position in its query,
 * replacing any earlier one. Without a position, the two parameters are removed.
 */
export function withPosition(url, pos) {
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
 * resolveURL turns a URL relative to `base` (a page address, normally location.href) into an
 * absolute WebSocket URL: http becomes ws and https becomes wss. Without a base, url is
 * returned unchanged.
 */
export function resolveURL(url, base) {
  if (base === undefined) return String(url);
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

/**
 * connect opens a notify connection to `url` and keeps it open until close() is called or the
 * server closes it for good. It returns at once; see notify.d.ts for the options and the
 * returned object.
 */
export function connect(url, options = {}) {
  return new Connection(url, options);
}

// Reports an exception thrown by an application callback without breaking the frame loop.
function report(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else console.error(err);
}

function notifyError(code, reason, topic) {
  const err = new Error(`notify: ${code}${reason ? ": " + reason : ""}`);
  return Object.assign(err, { code, reason, topic });
}

// Adds fn to set and returns the function that removes it again.
function listen(set, fn) {
  if (typeof fn !== "function") throw new TypeError("notify: handler must be a function");
  set.add(fn);
  return () => void set.delete(fn);
}

class Connection {
  #url;
  #token;
  #minDelay;
  #maxDelay;
  #WebSocket;

  #state = "connecting";
  #user = undefined;
  #session = undefined;

  #ws = null; // the current socket, or null between connections
  #welcomed = false; // the current socket has received its welcome
  #attempt = 0; // reconnect attempts since the last welcome
  #retryTimer = null; // pending reconnect
  #liveTimer = null; // pending liveness check
  #lastFrame = 0; // Date.now() when the current socket last received anything
  #silence = 0; // ms of silence after which the current socket counts as dead

  #topics = new Set(); // subscribed on every (re)connect
  #pending = new Map(); // topic -> [{resolve, reject}] awaiting "subscribed" or "error"
  #dedup = new Dedup(DEDUP_SIZE); // outlives sockets: a replayed event is not delivered twice
  #handlers = new Map(); // event type or "*" -> Set of functions
  #stateHandlers = new Set();
  #errorHandlers = new Set();
  #recoveryHandlers = new Set();

  // Stream positions: the user stream's, and each subscribed topic's. They outlive sockets.
  #userPos = undefined; // {epoch, offset}
  #topicPos = new Map(); // topic -> {epoch, offset}
  #gapAt = -Infinity; // Date.now() of the last reconnect an offset gap caused

  constructor(url, options) {
    const base = typeof location !== "undefined" ? location.href : undefined;
    this.#url = resolveURL(url, base);
    this.#token = options.token;
    this.#minDelay = options.minDelay ?? 500;
    this.#maxDelay = options.maxDelay ?? 30000;
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
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

  on(type, fn) {
    if (!this.#handlers.has(type)) this.#handlers.set(type, new Set());
    return listen(this.#handlers.get(type), fn);
  }

  onState(fn) { return listen(this.#stateHandlers, fn); }

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
    if (this.#welcomed) this.#send(this.#subscribeFrame(topic));
    return answer;
  }

  unsubscribe(topic) {
    this.#topics.delete(topic);
    this.#topicPos.delete(topic);
    this.#settle(topic, notifyError("unsubscribed", "unsubscribed before the server answered", topic));
    if (this.#welcomed) this.#send({ op: "unsubscribe", topic });
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
      token = typeof this.#token === "function" ? await this.#token() : this.#token;
    } catch (error) {
      if (this.#state !== "closed") this.#retry({ error }, "backoff");
      return;
    }
    if (this.#state === "closed") return; // close() was called while we waited
    if (token === null) {
      // Our choice: null means "signed out". Connecting would only earn a 401, so stop.
      this.#finish({ reason: "token() returned null" });
      return;
    }
    const protocols = token ? [SUBPROTOCOL, BEARER_PREFIX + token] : [SUBPROTOCOL];
    let ws;
    try {
      ws = new this.#WebSocket(this.#connectURL(), protocols);
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
  }

  // The URL of the next connection: with the user stream's last position, once there is one,
  // so that the server replays what this client missed.
  #connectURL() {
    return this.#userPos ? withPosition(this.#url, this.#userPos) : this.#url;
  }

  // Only the current socket can get here: #drop detaches a socket's handlers.
  #onClose(code, reason) {
    this.#drop();
    const action = closeAction(code);
    if (action === "stop") this.#finish({ code, reason });
    else this.#retry({ code, reason }, action);
  }

  // Schedules the next connection: at once for action "now", after a jittered backoff otherwise.
  #retry(info, action) {
    const delay = action === "now" ? 0 : backoffDelay(this.#attempt, this.#minDelay, this.#maxDelay);
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
    if (typeof document !== "undefined") document.removeEventListener("visibilitychange", this.#onVisible);
    if (typeof window !== "undefined") window.removeEventListener("online", this.#onOnline);
    for (const topic of [...this.#pending.keys()]) {
      this.#settle(topic, notifyError("closed", "connection closed", topic));
    }
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

  // Back online: a waiting reconnect need not wait any longer; an open socket may be dead.
  #onOnline = () => {
    if (this.#retryTimer !== null) {
      clearTimeout(this.#retryTimer);
      this.#open();
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
      case "welcome": {
        // Asked to recover: a complete recovery is followed by the missed events, which move
        // the position on one by one (the welcome's is where they end). Otherwise the
        // welcome's position is where this client now stands.
        if (msg.recovered !== true) this.#userPos = positionOf(msg);
        this.#user = msg.user;
        this.#session = msg.session;
        this.#welcomed = true;
        this.#attempt = 0;
        this.#heard(msg.ping > 0 ? msg.ping : DEFAULT_PING);
        this.#setState("connected", { user: msg.user, session: msg.session });
        if (typeof msg.recovered === "boolean" && ws === this.#ws) this.#recovery({ recovered: msg.recovered });
        // A handler may have closed the connection; check before sending.
        for (const topic of this.#topics) if (ws === this.#ws) this.#send(this.#subscribeFrame(topic));
        break;
      }
      case "subscribed": {
        // A topic this client follows: track its position as for the user stream. Subscriptions
        // the server made are not renewed on reconnect, so their positions are of no use.
        // An answer without a position (the topic was already subscribed) leaves it as it is.
        const pos = positionOf(msg);
        if (pos && this.#topics.has(msg.topic) && msg.recovered !== true) this.#topicPos.set(msg.topic, pos);
        this.#settle(msg.topic);
        if (typeof msg.recovered === "boolean" && ws === this.#ws) {
          this.#recovery({ topic: msg.topic, recovered: msg.recovered });
        }
        break;
      }
      case "unsubscribed":
        // The server ended a subscription: do not renew it on reconnect, unless a subscribe()
        // still awaits its answer, which comes after this one.
        if (!this.#pending.has(msg.topic)) {
          this.#topics.delete(msg.topic);
          this.#topicPos.delete(msg.topic);
        }
        break;
      case "error":
        if (typeof msg.topic === "string") {
          // The subscription did not take effect; renewing it on every reconnect would only
          // collect errors, and too many in a row close the connection with 4003.
          this.#topics.delete(msg.topic);
          this.#topicPos.delete(msg.topic);
          this.#settle(msg.topic, notifyError(msg.code, msg.reason, msg.topic));
        }
        for (const fn of [...this.#errorHandlers]) {
          try { fn(msg); } catch (err) { report(err); }
        }
        break;
      case "expiring":
        this.#refresh(ws);
        break;
      // "refreshed" and "ping" only prove liveness, recorded in #onFrame. Unknown ops are
      // ignored so that later protocol versions can add some.
    }
  }

  // Answers "expiring" with a fresh token. If token() fails or returns nothing, the session
  // expires and closes with 4000, and the reconnect reports the error in its state info.
  async #refresh(ws) {
    let token;
    try {
      token = typeof this.#token === "function" ? await this.#token() : this.#token;
    } catch {
      return;
    }
    if (token && ws === this.#ws && this.#welcomed) this.#send({ op: "refresh", token });
  }

  // Every event passes through here: its stream's position moves on, then the handlers run.
  #onEvent(ev) {
    if (!this.#advance(ev)) return;
    if (ev.id != null && this.#dedup.seen(ev.id)) return; // no id: nothing to compare
    const handlers = [...(this.#handlers.get(ev.type) ?? []), ...(this.#handlers.get("*") ?? [])];
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
    if (topic !== undefined && !this.#topics.has(topic)) return true;
    const last = topic === undefined ? this.#userPos : this.#topicPos.get(topic);
    const set = (p) => (topic === undefined ? (this.#userPos = p) : this.#topicPos.set(topic, p));
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
}
