// State-machine tests of connect() with a fake WebSocket the test drives, and mocked
// setTimeout and Date so that backoff and liveness run without waiting.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../notify.js";

// fakeWebSocket returns a WebSocket stand-in class and the list of sockets it has created.
function fakeWebSocket() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.sent = []; // raw frames the client sent
      this.closed = null; // {code, reason} once the client closed it
      sockets.push(this);
    }
    send(frame) { this.sent.push(frame); }
    close(code, reason) { this.closed = { code, reason }; }
    // Test drivers: deliver one frame holding objs (strings are sent as they are) or a close.
    receive(...objs) {
      this.onmessage?.({ data: objs.map((o) => (typeof o === "string" ? o : JSON.stringify(o))).join("\n") });
    }
    serverClose(code, reason = "") { this.onclose?.({ code, reason }); }
    // The client's requests, checking that every frame holds exactly one JSON object.
    requests() {
      return this.sent.map((f) => {
        assert.ok(!f.includes("\n"), `one object per frame: ${f}`);
        return JSON.parse(f);
      });
    }
  }
  return { FakeSocket, sockets };
}

// settle lets pending promises (the async token function) run.
const settle = () => new Promise((resolve) => setImmediate(resolve));

// setup connects with a fake WebSocket and a token function counting its calls.
async function setup(opts = {}) {
  const { FakeSocket, sockets } = fakeWebSocket();
  const tokens = [];
  const token = async () => { tokens.push(`jwt${tokens.length + 1}`); return tokens.at(-1); };
  const n = connect("wss://example.com/notify/ws", { token, minDelay: 100, maxDelay: 1000, WebSocket: FakeSocket, ...opts });
  const states = [];
  n.onState((state, info) => states.push([state, info]));
  await settle();
  return { n, sockets, tokens, states, last: () => sockets.at(-1) };
}

const welcome = (extra = {}) => ({ op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25, ...extra });

let closeAfter = [];
beforeEach(() => { mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }); });
afterEach(() => {
  for (const n of closeAfter) n.close();
  closeAfter = [];
  mock.timers.reset();
});
function track(n) { closeAfter.push(n); return n; }

test("connects with the token as a protocol and delivers events in order", async () => {
  const { n, sockets, states, last } = await setup();
  track(n);
  assert.equal(sockets.length, 1);
  assert.equal(last().url, "wss://example.com/notify/ws");
  assert.deepEqual(last().protocols, ["notify.v1", "notify.bearer.jwt1"]);
  assert.equal(n.state, "connecting");
  assert.deepEqual(states.map((s) => s[0]), ["connecting"], "onState registered after connect() sees connecting");

  last().receive(welcome());
  assert.equal(n.state, "connected");
  assert.equal(n.user, "alice");
  assert.equal(n.session, "s1");
  assert.deepEqual(states.at(-1), ["connected", { user: "alice", session: "s1" }]);

  const got = [];
  n.on("a", (ev) => got.push(`a:${ev.id}`));
  n.on("*", (ev) => got.push(`*:${ev.id}`));
  last().receive({ type: "a", id: "1", data: { x: 1 } });
  last().receive({ type: "b", id: "2" });
  last().receive({ type: "a", id: "3", unknownField: true });
  assert.deepEqual(got, ["a:1", "*:1", "*:2", "a:3", "*:3"]);
});

test("without a token connects with notify.v1 only", async () => {
  const { FakeSocket, sockets } = fakeWebSocket();
  const n = track(connect("wss://h/ws", { WebSocket: FakeSocket }));
  await settle();
  assert.deepEqual(sockets[0].protocols, ["notify.v1"]);
  const m = track(connect("wss://h/ws", { token: "constant", WebSocket: FakeSocket }));
  await settle();
  assert.deepEqual(sockets[1].protocols, ["notify.v1", "notify.bearer.constant"]);
  assert.equal(n.state, "connecting");
  assert.equal(m.state, "connecting");
});

test("relative URL is resolved against location", async (t) => {
  globalThis.location = { href: "https://app.example/page" };
  t.after(() => { delete globalThis.location; });
  const { sockets, n } = await setup();
  track(n);
  assert.equal(sockets[0].url, "wss://example.com/notify/ws", "absolute URL unchanged");
  const { FakeSocket, sockets: rel } = fakeWebSocket();
  track(connect("/notify/ws", { WebSocket: FakeSocket }));
  await settle();
  assert.equal(rel[0].url, "wss://app.example/notify/ws");
});

test("multi-event frame: every event delivered, bad lines and unknown ops skipped", async () => {
  const { n, last } = await setup();
  track(n);
  const got = [];
  n.on("*", (ev) => got.push(ev.id));
  const errors = [];
  n.onError((e) => errors.push(e));
  last().receive(welcome(), { type: "a", id: "1" }, "{broken", "", { op: "future", x: 1 }, { type: "a", id: "2" }, { op: "ping" }, { type: "b", id: "3" });
  assert.equal(n.state, "connected");
  assert.deepEqual(got, ["1", "2", "3"]);
  assert.deepEqual(errors, []);
});

test("handler unsubscribe and a throwing handler do not disturb delivery", async (t) => {
  const reported = [];
  const saved = globalThis.reportError;
  globalThis.reportError = (e) => reported.push(e);
  t.after(() => { globalThis.reportError = saved; });
  const { n, last } = await setup();
  track(n);
  const got = [];
  const off = n.on("a", (ev) => got.push(ev.id));
  n.on("a", () => { throw new Error("boom"); });
  last().receive(welcome(), { type: "a", id: "1" }, { type: "a", id: "2" });
  off();
  last().receive({ type: "a", id: "3" });
  assert.deepEqual(got, ["1", "2"]);
  assert.equal(reported.length, 3);
});

test("duplicate id dropped, also across a reconnect", async () => {
  const { n, sockets, last } = await setup();
  track(n);
  const got = [];
  n.on("*", (ev) => got.push(ev.id));
  last().receive(welcome(), { type: "a", id: "1" }, { type: "a", id: "1" }, { type: "a", id: "2" });
  last().serverClose(1006);
  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 2);
  last().receive(welcome(), { type: "a", id: "2" }, { type: "a", id: "3" }, { type: "noid" }, { type: "noid" });
  assert.deepEqual(got, ["1", "2", "3", undefined, undefined]);
});

test("close 1001: reconnecting, then a new socket with a fresh token that resubscribes", async () => {
  const { n, sockets, tokens, states, last } = await setup({ topics: ["news"] });
  track(n);
  last().receive(welcome());
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }]);
  n.subscribe("sport");
  last().receive({ op: "subscribed", topic: "news" }, { op: "subscribed", topic: "sport" });

  last().serverClose(1001, "going away, reconnect");
  assert.equal(n.state, "reconnecting");
  const [, info] = states.at(-1);
  assert.equal(info.code, 1001);
  assert.equal(info.attempt, 1);
  assert.ok(info.delay >= 0 && info.delay < 100, `delay ${info.delay} within minDelay`);
  assert.equal(sockets.length, 1, "waits for the backoff");

  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 2);
  assert.deepEqual(tokens, ["jwt1", "jwt2"]);
  assert.deepEqual(last().protocols, ["notify.v1", "notify.bearer.jwt2"]);
  assert.deepEqual(last().requests(), [], "nothing sent before the welcome");
  last().receive(welcome({ session: "s2" }));
  assert.equal(n.state, "connected");
  assert.equal(n.session, "s2");
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }, { op: "subscribe", topic: "sport" }]);
});

test("goaway then close 1001: the reconnect is spread over the window the server gave", async (t) => {
  t.mock.method(Math, "random", () => 0.5);
  const { n, sockets, states, last } = await setup();
  track(n);
  last().receive(welcome());
  last().receive({ op: "goaway", reconnect: 10 });
  last().serverClose(1001, "going away, reconnect");
  const [, info] = states.at(-1);
  assert.equal(info.delay, 5000, "half of 10 s with random() = 0.5");
  mock.timers.tick(4999);
  await settle();
  assert.equal(sockets.length, 1, "not before the spread delay");
  mock.timers.tick(1);
  await settle();
  assert.equal(sockets.length, 2);
  last().receive(welcome({ session: "s2" }));
  // The window was for that reconnect only: a later 1001 backs off as usual.
  last().serverClose(1001, "going away, reconnect");
  assert.ok(states.at(-1)[1].delay < 100, "back to the normal backoff");
});

test("backoff grows while connections fail before any welcome, and resets after one", async () => {
  const { n, states, last } = await setup({ minDelay: 100, maxDelay: 100000 });
  track(n);
  for (let i = 0; i < 4; i++) {
    last().serverClose(1006); // e.g. a 401 at the upgrade
    const [state, info] = states.at(-1);
    assert.equal(state, "reconnecting");
    assert.equal(info.attempt, i + 1);
    assert.ok(info.delay < 100 * 2 ** i, `attempt ${i}: ${info.delay}`);
    mock.timers.tick(100 * 2 ** i);
    await settle();
  }
  last().receive(welcome());
  last().serverClose(1006);
  assert.equal(states.at(-1)[1].attempt, 1, "attempts count again from the welcome");
});

test("close 4003: closed for good, no new socket, pending subscribes rejected", async () => {
  const { n, sockets, states, last } = await setup();
  last().receive(welcome());
  const answer = n.subscribe("news");
  last().serverClose(4003, "too many bad messages");
  assert.equal(n.state, "closed");
  assert.deepEqual(states.at(-1), ["closed", { code: 4003, reason: "too many bad messages" }]);
  await assert.rejects(answer, (err) => err.code === "closed" && err.topic === "news" && /^notify: /.test(err.message));
  await assert.rejects(n.subscribe("later"), { code: "closed" });
  mock.timers.tick(1e6);
  await settle();
  assert.equal(sockets.length, 1);
});

test("close 4000: reconnects at once with a new token", async () => {
  const { n, sockets, tokens, states, last } = await setup({ minDelay: 10000, maxDelay: 10000 });
  track(n);
  last().receive(welcome());
  last().serverClose(4000, "token expired");
  assert.equal(states.at(-1)[0], "reconnecting");
  assert.equal(states.at(-1)[1].delay, 0);
  mock.timers.tick(0);
  await settle();
  assert.equal(sockets.length, 2);
  assert.deepEqual(tokens, ["jwt1", "jwt2"]);
  assert.deepEqual(last().protocols, ["notify.v1", "notify.bearer.jwt2"]);
});

test("close 4001 (signed out): reconnects at once if token() gives a fresh token", async () => {
  const { n, sockets, tokens, states, last } = await setup({ minDelay: 10000, maxDelay: 10000 });
  track(n);
  last().receive(welcome());
  last().serverClose(4001, "signed out");
  assert.equal(states.at(-1)[0], "reconnecting");
  assert.equal(states.at(-1)[1].delay, 0);
  mock.timers.tick(0);
  await settle();
  assert.equal(sockets.length, 2);
  assert.deepEqual(tokens, ["jwt1", "jwt2"]);
});

test("close 4001 (signed out): stops when token() returns null, and with a fixed token", async () => {
  let signedIn = true;
  const { n, sockets, states, last } = await setup({ token: async () => (signedIn ? "jwt" : null) });
  last().receive(welcome());
  signedIn = false;
  last().serverClose(4001, "signed out");
  mock.timers.tick(0);
  await settle();
  assert.equal(n.state, "closed");
  assert.deepEqual(states.at(-1), ["closed", { code: 4001, reason: "signed out" }]);
  mock.timers.tick(1e6);
  await settle();
  assert.equal(sockets.length, 1);

  const fixed = await setup({ token: "jwt-fixed" });
  fixed.last().receive(welcome());
  fixed.last().serverClose(4001, "signed out");
  assert.equal(fixed.n.state, "closed");
  mock.timers.tick(1e6);
  await settle();
  assert.equal(fixed.sockets.length, 1, "the old token is not used again");
});

test("close 4002: reconnects at once", async () => {
  const { n, sockets, states, last } = await setup({ minDelay: 10000, maxDelay: 10000 });
  track(n);
  last().receive(welcome());
  last().serverClose(4002, "slow consumer");
  assert.equal(states.at(-1)[1].delay, 0);
  mock.timers.tick(0);
  await settle();
  assert.equal(sockets.length, 2);
});

test("expiring: sends a refresh with a fresh token", async () => {
  const { n, tokens, last } = await setup();
  track(n);
  last().receive(welcome());
  last().receive({ op: "expiring", exp: 2e9 });
  await settle();
  assert.deepEqual(tokens, ["jwt1", "jwt2"]);
  assert.deepEqual(last().requests(), [{ op: "refresh", token: "jwt2" }]);
  last().receive({ op: "refreshed", exp: 2e9 + 60 });
  assert.equal(n.state, "connected");
});

test("subscribe: resolves on subscribed, rejects on an error naming the topic", async () => {
  const { n, sockets, last } = await setup();
  track(n);
  last().receive(welcome());
  const errors = [];
  n.onError((e) => errors.push(e));
  const ok = n.subscribe("news");
  const denied = n.subscribe("secret");
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }, { op: "subscribe", topic: "secret" }]);
  let resolved = false;
  ok.then(() => { resolved = true; });
  last().receive({ op: "subscribed", topic: "other" });
  await settle();
  assert.equal(resolved, false, "an answer for another topic does not resolve it");
  last().receive({ op: "subscribed", topic: "news" }, { op: "error", code: "forbidden", reason: "not allowed", topic: "secret" });
  await ok;
  await assert.rejects(denied, (err) => err.code === "forbidden" && err.reason === "not allowed" && err.topic === "secret");
  assert.deepEqual(errors, [{ op: "error", code: "forbidden", reason: "not allowed", topic: "secret" }]);

  // A refused topic is not renewed on reconnect; an accepted one is.
  last().serverClose(1006);
  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 2);
  last().receive(welcome());
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }]);
});

test("subscribe: stays pending across a reconnect until answered", async () => {
  const { n, last } = await setup();
  track(n);
  const answer = n.subscribe("news"); // before the welcome: sent after it
  let done = false;
  answer.then(() => { done = true; });
  last().serverClose(1006);
  mock.timers.tick(100);
  await settle();
  assert.equal(done, false);
  last().receive(welcome());
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }]);
  last().receive({ op: "subscribed", topic: "news" });
  await answer;
});

test("unsubscribe: forgets the topic, sends unsubscribe, rejects a pending subscribe", async () => {
  const { n, sockets, last } = await setup({ topics: ["news", "sport"] });
  track(n);
  const pending = n.subscribe("weather");
  n.unsubscribe("weather");
  await assert.rejects(pending, { code: "unsubscribed" });
  last().receive(welcome());
  n.unsubscribe("sport");
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }, { op: "subscribe", topic: "sport" }, { op: "unsubscribe", topic: "sport" }]);
  last().serverClose(1001);
  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 2);
  last().receive(welcome());
  assert.deepEqual(last().requests(), [{ op: "subscribe", topic: "news" }]);
});

test("liveness: a silent connection is closed and replaced", async () => {
  const { n, sockets, states, last } = await setup();
  track(n);
  last().receive(welcome({ ping: 1 })); // dead after 2*1+5 = 7 s of silence
  mock.timers.tick(6000);
  last().receive({ op: "ping" });
  mock.timers.tick(6900);
  assert.equal(n.state, "connected", "the ping at 6 s keeps it alive until 13 s");
  assert.equal(sockets[0].closed, null);
  mock.timers.tick(200);
  assert.equal(n.state, "reconnecting");
  assert.equal(sockets[0].closed?.code, 1000);
  assert.match(states.at(-1)[1].reason, /no frame/);
  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 2);
  sockets[0].serverClose(1006); // the late close of the dropped socket changes nothing
  assert.equal(states.filter(([s]) => s === "reconnecting").length, 1);
  last().receive(welcome());
  assert.equal(n.state, "connected");
});

test("liveness: default ping of 25 s when the welcome names none or nonsense", async () => {
  const { n, last } = await setup();
  track(n);
  last().receive(welcome({ ping: undefined }));
  mock.timers.tick(55000);
  assert.equal(n.state, "connected");
  mock.timers.tick(2);
  assert.equal(n.state, "reconnecting");
  mock.timers.tick(100);
  await settle();
  last().receive(welcome({ ping: 0 }));
  mock.timers.tick(55000);
  assert.equal(n.state, "connected");
  mock.timers.tick(2);
  assert.equal(n.state, "reconnecting");
});

test("page visible again and back online: checks liveness and retries at once", async (t) => {
  // EventTargets that count their listeners, to check that close() removes them.
  class Target extends EventTarget {
    listeners = 0;
    addEventListener(...args) { this.listeners++; super.addEventListener(...args); }
    removeEventListener(...args) { this.listeners--; super.removeEventListener(...args); }
  }
  const doc = Object.assign(new Target(), { visibilityState: "hidden" });
  globalThis.document = doc;
  globalThis.window = new Target();
  t.after(() => { delete globalThis.document; delete globalThis.window; });
  const { n, sockets, last } = await setup({ minDelay: 60000, maxDelay: 60000 });
  last().receive(welcome({ ping: 1 }));

  // A background tab's timers are throttled: time passes, the timer does not fire.
  mock.timers.setTime(Date.now() + 8000);
  assert.equal(n.state, "connected");
  doc.visibilityState = "visible";
  doc.dispatchEvent(new Event("visibilitychange"));
  assert.equal(n.state, "reconnecting");
  assert.equal(sockets.length, 1, "backing off");

  window.dispatchEvent(new Event("online"));
  await settle();
  assert.equal(sockets.length, 2, "online retries at once");
  last().receive(welcome({ ping: 1 }));
  window.dispatchEvent(new Event("online")); // connected and alive: nothing happens
  await settle();
  assert.equal(sockets.length, 2);

  n.close();
  mock.timers.setTime(Date.now() + 60000);
  doc.dispatchEvent(new Event("visibilitychange"));
  window.dispatchEvent(new Event("online"));
  await settle();
  assert.equal(sockets.length, 2, "nothing happens after close()");
  assert.equal(n.state, "closed");
  assert.equal(doc.listeners, 0, "document listener removed");
  assert.equal(window.listeners, 0, "window listener removed");
});

test("token() throwing: reported in the state info, backs off, then retries", async () => {
  let calls = 0;
  const boom = new Error("token endpoint down");
  const token = async () => { calls++; if (calls === 1) throw boom; return "good"; };
  const { n, sockets, states, last } = await setup({ token });
  track(n);
  assert.equal(sockets.length, 0);
  assert.equal(n.state, "reconnecting");
  assert.equal(states.at(-1)[1].error, boom);
  mock.timers.tick(100);
  await settle();
  assert.equal(sockets.length, 1);
  assert.deepEqual(last().protocols, ["notify.v1", "notify.bearer.good"]);
});

test("token() returning null: closed without connecting", async () => {
  const { n, sockets, states } = await setup({ token: () => null });
  assert.equal(n.state, "closed");
  assert.equal(sockets.length, 0);
  assert.deepEqual(states.map((s) => s[0]), ["connecting", "closed"]);
});

test("close(): closes with 1000, stops reconnecting, leaves no timer", async () => {
  const { n, sockets, states, last } = await setup();
  last().receive(welcome());
  n.close();
  assert.equal(n.state, "closed");
  assert.deepEqual(sockets[0].closed, { code: 1000, reason: "" });
  assert.equal(states.at(-1)[0], "closed");
  sockets[0].serverClose(1000);
  n.close();
  assert.equal(states.filter(([s]) => s === "closed").length, 1, "closed once");
  mock.timers.tick(1e6);
  await settle();
  assert.equal(sockets.length, 1);

  // Closing while a reconnect is scheduled cancels it.
  const b = await setup();
  b.last().serverClose(1006);
  b.n.close();
  mock.timers.tick(1e6);
  await settle();
  assert.equal(b.sockets.length, 1);
  assert.deepEqual(b.tokens, ["jwt1"], "the cancelled reconnect asks for no token");

  // Closing before the first connection starts opens nothing.
  const { FakeSocket, sockets: none } = fakeWebSocket();
  const c = connect("wss://h/ws", { WebSocket: FakeSocket });
  c.close();
  await settle();
  assert.equal(none.length, 0);
  assert.equal(c.state, "closed");
});

test("close() from an event handler stops the rest of the frame", async () => {
  const { n, last } = await setup();
  const got = [];
  n.on("*", (ev) => { got.push(ev.id); if (ev.id === "2") n.close(); });
  last().receive(welcome(), { type: "a", id: "1" }, { type: "a", id: "2" }, { type: "a", id: "3" });
  assert.deepEqual(got, ["1", "2"]);
  assert.equal(n.state, "closed");
});

// ---- recovery (PROTOCOL.md "Recovery") ----

// recoverySetup is setup plus a log of onRecovery calls and of delivered event ids.
async function recoverySetup(opts) {
  const s = await setup(opts);
  track(s.n);
  s.recoveries = [];
  s.n.onRecovery((r) => s.recoveries.push(r));
  s.got = [];
  s.n.on("*", (ev) => s.got.push(ev.id));
  return s;
}

const ev = (id, offset, extra = {}) => ({ offset, epoch: "E", type: "a", id, ...extra });

// reconnect closes the current socket with code and lets the client open the next one.
async function reconnect(s, code = 1006) {
  s.last().serverClose(code);
  mock.timers.tick(1000);
  await settle();
}

test("recovery: first connection asks nothing; later ones send the user stream's last position", async () => {
  const s = await recoverySetup();
  assert.equal(s.last().url, "wss://example.com/notify/ws");
  s.last().receive(welcome({ epoch: "E", offset: 2 }), ev("3", 3), ev("4", 4));
  assert.deepEqual(s.recoveries, [], "nothing asked, nothing reported");

  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=4");
  // Complete recovery: the welcome names the stream's end, the replay follows.
  s.last().receive(welcome({ epoch: "E", offset: 6, recovered: true }), ev("5", 5), ev("6", 6), ev("7", 7));
  assert.deepEqual(s.recoveries, [{ recovered: true }]);
  assert.deepEqual(s.got, ["3", "4", "5", "6", "7"]);

  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=7");
});

test("recovery: a drop in the middle of a replay resumes from the last replayed event", async () => {
  const s = await recoverySetup();
  s.last().receive(welcome({ epoch: "E", offset: 1 }));
  await reconnect(s);
  s.last().receive(welcome({ epoch: "E", offset: 9, recovered: true }), ev("2", 2), ev("3", 3));
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=3", "not the welcome's 9");
});

test("recovery: recovered false is reported and the welcome's position is the new start", async () => {
  const s = await recoverySetup();
  s.last().receive(welcome({ epoch: "E", offset: 5 }));
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=5");
  s.last().receive(welcome({ epoch: "F", offset: 40, recovered: false }));
  assert.deepEqual(s.recoveries, [{ recovered: false }]);
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=F&offset=40");
});

test("recovery: a stream without history (no epoch) is not recovered; other query parameters stay", async () => {
  const s = await recoverySetup();
  s.n.close();
  const { FakeSocket, sockets } = fakeWebSocket();
  const n = track(connect("wss://h/ws?tenant=7", { WebSocket: FakeSocket, minDelay: 1, maxDelay: 1 }));
  await settle();
  sockets.at(-1).receive(welcome());
  sockets.at(-1).serverClose(1006);
  mock.timers.tick(10);
  await settle();
  assert.equal(sockets.at(-1).url, "wss://h/ws?tenant=7");
  sockets.at(-1).receive(welcome({ epoch: "E" })); // offset 0 is omitted by the server
  sockets.at(-1).serverClose(1006);
  mock.timers.tick(10);
  await settle();
  assert.equal(sockets.at(-1).url, "wss://h/ws?tenant=7&epoch=E&offset=0");
  assert.equal(n.state, "reconnecting");
});

test("recovery: topics resubscribe from their last position and report the outcome", async () => {
  const s = await recoverySetup({ topics: ["news", "sport"] });
  s.last().receive(welcome({ epoch: "U", offset: 0 }));
  assert.deepEqual(s.last().requests(), [{ op: "subscribe", topic: "news" }, { op: "subscribe", topic: "sport" }]);
  s.last().receive(
    { op: "subscribed", topic: "news", epoch: "N", offset: 10 },
    { op: "subscribed", topic: "sport", epoch: "S" },
    { offset: 11, epoch: "N", type: "h", id: "n11", topic: "news" },
    { offset: 1, epoch: "S", type: "h", id: "s1", topic: "sport" },
  );
  // Subscribing again to a followed topic gets an answer without a position: it changes nothing.
  s.n.subscribe("news");
  s.last().receive({ op: "subscribed", topic: "news" });

  await reconnect(s);
  s.last().receive(welcome({ epoch: "U", offset: 0, recovered: true }));
  assert.deepEqual(s.last().requests(), [
    { op: "subscribe", topic: "news", epoch: "N", offset: 11 },
    { op: "subscribe", topic: "sport", epoch: "S", offset: 1 },
  ]);
  s.last().receive(
    { op: "subscribed", topic: "news", epoch: "N", offset: 12, recovered: true },
    { offset: 12, epoch: "N", type: "h", id: "n12", topic: "news" },
    { op: "subscribed", topic: "sport", epoch: "S2", offset: 3, recovered: false },
  );
  assert.deepEqual(s.recoveries, [
    { recovered: true },
    { topic: "news", recovered: true },
    { topic: "sport", recovered: false },
  ]);
  assert.deepEqual(s.got, ["n11", "s1", "n12"]);

  // Unsubscribing forgets the position: a later subscribe starts afresh.
  s.n.unsubscribe("sport");
  s.n.subscribe("sport").catch(() => {}); // rejected when the test closes the connection
  assert.deepEqual(s.last().requests().slice(-2), [{ op: "unsubscribe", topic: "sport" }, { op: "subscribe", topic: "sport" }]);
});

test("recovery: a topic refused on resubscribe loses its position", async () => {
  const s = await recoverySetup({ topics: ["news"] });
  s.last().receive(welcome(), { op: "subscribed", topic: "news", epoch: "N", offset: 3 });
  await reconnect(s);
  s.last().receive(welcome(), { op: "error", code: "forbidden", topic: "news" });
  s.n.subscribe("news").catch(() => {});
  assert.deepEqual(s.last().requests().at(-1), { op: "subscribe", topic: "news" });
});

test("recovery: broadcasts, ephemeral events and server-made subscriptions leave positions alone", async () => {
  const s = await recoverySetup();
  s.last().receive(
    welcome({ epoch: "E", offset: 1 }),
    { type: "b", id: "bc" }, // broadcast: no position
    { type: "typing", id: "eph", topic: "chat" }, // ephemeral
    { op: "subscribed", topic: "srv", epoch: "X", offset: 5 }, // made by the server
    { offset: 9, epoch: "X", type: "s", id: "srv9", topic: "srv" },
  );
  assert.deepEqual(s.got, ["bc", "eph", "srv9"]);
  assert.deepEqual(s.recoveries, []);
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=1");
  assert.deepEqual(s.last().requests(), []);
});

test("recovery: a server-made subscription is kept across reconnects and recovered from its position", async () => {
  const s = await recoverySetup();
  s.last().receive(
    welcome({ epoch: "E", offset: 1 }),
    { op: "subscribed", topic: "team", epoch: "X", offset: 5, server: true },
    { offset: 6, epoch: "X", type: "s", id: "t6", topic: "team" },
  );
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=1&t.team=6.X");
  assert.deepEqual(s.last().requests(), [], "the server renews it, not the client");
  s.last().receive(
    welcome({ epoch: "E", offset: 1, recovered: true }),
    { op: "subscribed", topic: "team", epoch: "X", offset: 7, server: true, recovered: true },
    { offset: 7, epoch: "X", type: "s", id: "t7", topic: "team" },
  );
  assert.deepEqual(s.got, ["t6", "t7"]);
  assert.deepEqual(s.recoveries, [{ recovered: true }, { topic: "team", recovered: true }]);
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=1&t.team=7.X");
  // Not renewed by the server this time: forgotten.
  s.last().receive(welcome({ epoch: "E", offset: 1, recovered: true }));
  await reconnect(s);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=1");
});

test("recovery: an offset gap reconnects at once from the last position; the replay fills it in order", async () => {
  const s = await recoverySetup({ minDelay: 10000, maxDelay: 10000 });
  s.last().receive(welcome({ epoch: "E", offset: 0 }), ev("1", 1), ev("2", 2), ev("5", 5), ev("6", 6));
  assert.deepEqual(s.got, ["1", "2"], "the event after the gap and the rest of the frame wait for the replay");
  assert.deepEqual(s.last().closed, { code: 1000, reason: "missed events, recovering" });
  assert.equal(s.states.at(-1)[0], "reconnecting");
  assert.equal(s.states.at(-1)[1].delay, 0);
  mock.timers.tick(0);
  await settle();
  assert.equal(s.sockets.length, 2);
  assert.equal(s.last().url, "wss://example.com/notify/ws?epoch=E&offset=2");
  s.last().receive(welcome({ epoch: "E", offset: 6, recovered: true }), ev("3", 3), ev("4", 4), ev("5", 5), ev("6", 6));
  assert.deepEqual(s.got, ["1", "2", "3", "4", "5", "6"]);
  assert.deepEqual(s.recoveries, [{ recovered: true }]);

  // A second gap soon after is not chased: the event is delivered and the loss reported.
  mock.timers.tick(1000);
  s.last().receive(ev("9", 9));
  assert.equal(s.sockets.length, 2);
  assert.equal(s.last().closed, null);
  assert.deepEqual(s.got.at(-1), "9");
  assert.deepEqual(s.recoveries.at(-1), { recovered: false });
  // Once the grace period has passed, a gap is chased again.
  mock.timers.tick(10000);
  s.last().receive({ offset: 12, epoch: "E", type: "a", id: "12" });
  assert.deepEqual(s.last().closed, { code: 1000, reason: "missed events, recovering" });
});

test("recovery: a gap in a topic's offsets also reconnects; an epoch change is reported, not chased", async () => {
  const s = await recoverySetup({ topics: ["news"] });
  s.last().receive(welcome({ epoch: "E" }), { op: "subscribed", topic: "news", epoch: "N", offset: 4 });
  s.last().receive({ offset: 5, epoch: "N", type: "h", id: "n5", topic: "news" });
  s.last().receive({ offset: 1, epoch: "N2", type: "h", id: "m1", topic: "news" });
  assert.deepEqual(s.got, ["n5", "m1"]);
  assert.deepEqual(s.recoveries, [{ topic: "news", recovered: false }]);
  assert.equal(s.last().closed, null);
  s.last().receive({ offset: 3, epoch: "N2", type: "h", id: "m3", topic: "news" });
  assert.deepEqual(s.last().closed, { code: 1000, reason: "missed events, recovering" });
  mock.timers.tick(0);
  await settle();
  s.last().receive(welcome({ epoch: "E", recovered: true }));
  assert.deepEqual(s.last().requests(), [{ op: "subscribe", topic: "news", epoch: "N2", offset: 1 }]);
});

// ---- revocation and rate limiting ----

// errorLog is a list onError appends to.
function errorLog(n) {
  const errors = [];
  n.onError((e) => errors.push(e));
  return errors;
}

test("revocation: a topic the refreshed token no longer grants is forgotten, reported, not renewed", async () => {
  const s = await recoverySetup({ topics: ["news", "secret.team"] });
  const errors = errorLog(s.n);
  s.last().receive(
    welcome({ epoch: "U" }),
    { op: "subscribed", topic: "news", epoch: "N", offset: 3 },
    { op: "subscribed", topic: "secret.team", epoch: "S", offset: 7 },
  );
  const waiting = s.n.subscribe("secret.other");
  s.last().receive({ op: "expiring", exp: 2e9 });
  await settle();
  assert.deepEqual(s.last().requests().at(-1), { op: "refresh", token: "jwt2" });

  const revoked = { op: "unsubscribed", topic: "secret.team", code: "forbidden", reason: "topic not granted by token" };
  const revokedWaiting = { op: "unsubscribed", topic: "secret.other", code: "forbidden", reason: "topic not granted by token" };
  s.last().receive(revoked, revokedWaiting, { op: "refreshed", exp: 2e9 + 60 });
  assert.deepEqual(errors, [revoked, revokedWaiting], "reported through onError as sent");
  await assert.rejects(waiting, (err) => err.code === "forbidden" && err.topic === "secret.other" && err.reason === "topic not granted by token");
  assert.equal(s.n.state, "connected", "the connection stays up");

  // An unsubscribed without a code (the answer to unsubscribe()) is not an error.
  s.n.unsubscribe("gone");
  s.last().receive({ op: "unsubscribed", topic: "gone" });
  assert.equal(errors.length, 2);

  // Events of the revoked topic that were already on the way no longer move a position.
  s.last().receive({ offset: 9, epoch: "S", type: "h", id: "late", topic: "secret.team" });
  assert.deepEqual(s.recoveries, []);

  await reconnect(s);
  s.last().receive(welcome({ epoch: "U", recovered: true }));
  assert.deepEqual(s.last().requests(), [{ op: "subscribe", topic: "news", epoch: "N", offset: 3 }],
    "only the topic still granted is renewed");
  // Subscribing again later starts afresh: the revoked topic's position was dropped.
  s.n.subscribe("secret.team").catch(() => {});
  assert.deepEqual(s.last().requests().at(-1), { op: "subscribe", topic: "secret.team" });
});

test("revocation: a topic waiting out a rate limit is not sent again", async () => {
  const s = await setup({ topics: ["secret.team"] });
  track(s.n);
  const errors = errorLog(s.n);
  s.last().receive(welcome(), { op: "error", code: "rate_limited", reason: "slow down", topic: "secret.team" });
  s.last().receive({ op: "unsubscribed", topic: "secret.team", code: "forbidden", reason: "topic not granted by token" });
  mock.timers.tick(30000);
  assert.deepEqual(s.last().requests(), [{ op: "subscribe", topic: "secret.team" }], "no re-send");
  assert.deepEqual(errors.map((e) => e.op), ["unsubscribed"]);
});

const limited = (topic) => ({ op: "error", code: "rate_limited", reason: "too many messages, slow down", ...(topic && { topic }) });

test("rate_limited subscribe: re-sent after a jittered, growing delay, unreported, then resolves", async () => {
  const { n, last } = await setup();
  track(n);
  const errors = errorLog(n);
  last().receive(welcome());
  const answer = n.subscribe("news");
  let done = false;
  answer.then(() => { done = true; });
  const sub = { op: "subscribe", topic: "news" };

  last().receive(limited("news"));
  await settle();
  assert.equal(done, false, "still waiting");
  mock.timers.tick(999);
  assert.deepEqual(last().requests(), [sub], "not before 1 s");
  mock.timers.tick(2001);
  assert.deepEqual(last().requests(), [sub, sub], "re-sent within 3 s");

  last().receive(limited("news")); // the second wait is 2-6 s
  mock.timers.tick(1999);
  assert.equal(last().requests().length, 2, "not before 2 s");
  mock.timers.tick(4001);
  assert.equal(last().requests().length, 3, "re-sent within 6 s");

  last().receive({ op: "subscribed", topic: "news", epoch: "N", offset: 1 });
  await answer;
  assert.deepEqual(errors, [], "retries are not reported");

  // The answer ended the retries: the next rate limit waits 1-3 s again.
  n.subscribe("news").catch(() => {}); // rejected when the test closes the connection
  last().receive(limited("news"));
  mock.timers.tick(3000);
  assert.deepEqual(last().requests().at(-1), { op: "subscribe", topic: "news", epoch: "N", offset: 1 });
  assert.equal(last().requests().length, 5);
});

test("unavailable subscribe (the server's broker is down): re-sent later, unreported, then resolves", async () => {
  const { n, last } = await setup();
  track(n);
  const errors = errorLog(n);
  last().receive(welcome());
  const answer = n.subscribe("news");
  const sub = { op: "subscribe", topic: "news" };
  last().receive({ op: "error", code: "unavailable", topic: "news", reason: "broker unavailable, try again later" });
  mock.timers.tick(3000);
  assert.deepEqual(last().requests(), [sub, sub], "re-sent within 3 s");
  last().receive({ op: "subscribed", topic: "news", epoch: "N", offset: 4 });
  await answer;
  assert.deepEqual(errors, [], "retries are not reported");
});

test("rate_limited resubscribe, unsubscribe and calls made during the wait", async () => {
  const s = await recoverySetup({ topics: ["news", "sport"] });
  const errors = errorLog(s.n);
  s.last().receive(welcome(), { op: "subscribed", topic: "news", epoch: "N", offset: 4 }, { op: "subscribed", topic: "sport" });
  await reconnect(s);
  // The renewals after a reconnect come in a burst; one of them is refused for now.
  s.last().receive(welcome(), { op: "subscribed", topic: "sport" }, limited("news"));
  s.n.subscribe("news").catch(() => {}); // during the wait: the re-send carries it
  assert.equal(s.last().requests().length, 2, "nothing sent while the re-send waits");
  mock.timers.tick(3000);
  assert.deepEqual(s.last().requests().slice(2), [{ op: "subscribe", topic: "news", epoch: "N", offset: 4 }],
    "one re-send, from the topic's position");
  s.last().receive({ op: "subscribed", topic: "news", epoch: "N", offset: 4, recovered: true });

  // An unsubscribe the server refused for now is sent again until answered.
  s.n.unsubscribe("sport");
  s.last().receive(limited("sport"));
  mock.timers.tick(3000);
  assert.deepEqual(s.last().requests().slice(3), [{ op: "unsubscribe", topic: "sport" }, { op: "unsubscribe", topic: "sport" }]);
  s.last().receive({ op: "unsubscribed", topic: "sport" });
  mock.timers.tick(12000);
  assert.equal(s.last().requests().length, 5, "answered: no more re-sends");

  // unsubscribe() while a subscribe waits: the re-send asks for what is wanted by then.
  const weather = s.n.subscribe("weather");
  s.last().receive(limited("weather"));
  s.n.unsubscribe("weather");
  await assert.rejects(weather, { code: "unsubscribed" });
  assert.equal(s.last().requests().length, 6, "unsubscribe() waits for the re-send");
  mock.timers.tick(3000);
  assert.deepEqual(s.last().requests().slice(6), [{ op: "unsubscribe", topic: "weather" }]);
  assert.deepEqual(errors, []);
});

test("rate_limited beyond the retry budget: subscribe rejects, reported once, topic forgotten", async () => {
  const s = await setup();
  track(s.n);
  const errors = errorLog(s.n);
  s.last().receive(welcome());
  const answer = s.n.subscribe("news");
  let failed = false;
  answer.catch(() => { failed = true; });
  s.last().receive(limited("news"));
  for (let retry = 0; retry < 3; retry++) {
    mock.timers.tick(3000 * 2 ** retry); // the longest wait of this retry
    assert.equal(s.last().requests().length, retry + 2, `re-send ${retry + 1}`);
    await settle();
    assert.equal(failed, false);
    s.last().receive(limited("news"));
  }
  await settle();
  assert.equal(failed, true, "the fourth rate_limited gives up");
  await assert.rejects(answer, (err) => err.code === "rate_limited" && err.topic === "news" && /^notify: rate_limited/.test(err.message));
  assert.deepEqual(errors, [limited("news")], "giving up is reported once");
  mock.timers.tick(24000);
  assert.equal(s.last().requests().length, 4, "one request and three re-sends, no more");

  await reconnect(s);
  s.last().receive(welcome());
  assert.deepEqual(s.last().requests(), [], "the topic is not renewed");
});

test("rate_limited refresh: re-sent with the same token while the session's token is valid", async () => {
  const { n, tokens, last } = await setup();
  track(n);
  const errors = errorLog(n);
  last().receive(welcome());
  last().receive({ op: "expiring", exp: 2e9 });
  await settle();
  const refresh = { op: "refresh", token: "jwt2" };
  last().receive(limited());
  mock.timers.tick(999);
  assert.deepEqual(last().requests(), [refresh]);
  mock.timers.tick(2001);
  assert.deepEqual(last().requests(), [refresh, refresh]);
  assert.deepEqual(tokens, ["jwt1", "jwt2"], "no new token fetched");
  last().receive({ op: "refreshed", exp: 2e9 + 60 });
  assert.deepEqual(errors, []);

  // Too late: a re-send would come after the session's token expired. The server then closes
  // with 4000 and the client reconnects with a fresh token; nothing is sent or reported.
  last().receive({ op: "expiring", exp: Date.now() / 1000 + 1 });
  await settle();
  assert.deepEqual(last().requests().at(-1), { op: "refresh", token: "jwt3" });
  last().receive(limited());
  mock.timers.tick(3000);
  assert.equal(last().requests().length, 3);
  assert.deepEqual(errors, []);

  // Past the retry budget the error is reported.
  last().receive({ op: "expiring", exp: 2e9 });
  await settle();
  last().receive(limited());
  for (let retry = 0; retry < 3; retry++) {
    mock.timers.tick(3000 * 2 ** retry);
    last().receive(limited());
  }
  assert.deepEqual(last().requests().slice(3), Array(4).fill({ op: "refresh", token: "jwt4" }));
  assert.deepEqual(errors, [limited()]);
});

test("close 4029: reconnects with backoff, never sooner than the 5 s floor, even back online", async (t) => {
  globalThis.window = new EventTarget();
  t.after(() => { delete globalThis.window; });
  const random = t.mock.method(Math, "random", () => 0); // no jitter: the floor is exactly 5 s
  const { n, sockets, states, last } = await setup({ minDelay: 100, maxDelay: 1000 });
  track(n);
  last().receive(welcome());
  last().serverClose(4029, "rate limited");
  assert.deepEqual(states.at(-1), ["reconnecting", { code: 4029, reason: "rate limited", attempt: 1, delay: 5000 }]);
  mock.timers.tick(4000);
  window.dispatchEvent(new Event("online")); // does not cut the floor short
  await settle();
  mock.timers.tick(999);
  await settle();
  assert.equal(sockets.length, 1, "not before 5 s");
  mock.timers.tick(1);
  await settle();
  assert.equal(sockets.length, 2);

  // With full jitter the floor stretches to just under 10 s.
  random.mock.mockImplementation(() => 0.999);
  last().receive(welcome());
  last().serverClose(4029, "rate limited");
  assert.equal(states.at(-1)[1].delay, 9995);

  // A longer normal backoff is kept; coming back online shortens it to the floor, not below.
  random.mock.mockImplementation(() => 0.9);
  const b = await setup({ minDelay: 20000, maxDelay: 20000 });
  track(b.n);
  b.last().receive(welcome());
  b.last().serverClose(4029, "rate limited");
  assert.equal(b.states.at(-1)[1].delay, 18000);
  window.dispatchEvent(new Event("online"));
  mock.timers.tick(9499);
  await settle();
  assert.equal(b.sockets.length, 1);
  mock.timers.tick(1);
  await settle();
  assert.equal(b.sockets.length, 2, "online waited for the floor (9.5 s), not the backoff (18 s)");
});

test("close 1006 (also a 429 or 503 at the upgrade) still backs off; 4029 does not stop", async () => {
  const { n, states, last } = await setup({ minDelay: 100, maxDelay: 100000 });
  track(n);
  last().serverClose(4029);
  assert.equal(n.state, "reconnecting");
  assert.ok(states.at(-1)[1].delay >= 5000);
  mock.timers.tick(10000);
  await settle();
  last().serverClose(1006); // the session cap refused the next upgrade
  assert.equal(states.at(-1)[1].attempt, 2, "attempts keep counting without a welcome");
  assert.ok(states.at(-1)[1].delay < 200);
});
