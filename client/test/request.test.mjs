// connection.request(): its frames, its answers and errors, its timeout and abort, and its
// re-send with the same id after a reconnect; with a fake WebSocket and mocked timers. The
// host's side of a shared connection is driven with fake tabs, as in shared.test.mjs.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { connect, NotifyError } from "../notify.js";
import { Host } from "./internal.mjs";

function fakeWebSocket() {
  const sockets = [];
  class FakeSocket {
    constructor(url, protocols) { this.url = url; this.protocols = protocols; this.sent = []; sockets.push(this); }
    send(frame) { this.sent.push(JSON.parse(frame)); }
    close(code, reason) { this.closed = { code, reason }; }
    receive(...objs) { this.onmessage?.({ data: objs.map((o) => JSON.stringify(o)).join("\n") }); }
    serverClose(code, reason = "") { this.onclose?.({ code, reason }); }
    requests() { return this.sent.filter((m) => m.op === "request"); }
  }
  return { FakeSocket, sockets };
}

const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
const welcome = { op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25 };

let closeAfter = [];
beforeEach(() => { mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }); });
afterEach(() => { for (const n of closeAfter) n.close(); closeAfter = []; mock.timers.reset(); });

async function setup(opts = {}) {
  const { FakeSocket, sockets } = fakeWebSocket();
  let n = 0;
  const c = connect("wss://example.com/notify/ws", { token: async () => `jwt${++n}`, minDelay: 100, maxDelay: 1000,
    WebSocket: FakeSocket, ...opts });
  closeAfter.push(c);
  await settle();
  return { c, sockets, ws: () => sockets.at(-1) };
}

// outcome records how a promise settled, without an unhandled rejection.
function outcome(p) {
  const o = { settled: false };
  p.then((value) => Object.assign(o, { settled: true, value }), (error) => Object.assign(o, { settled: true, error }));
  return o;
}

test("a request is sent once welcomed and resolves with the reply's data", async () => {
  const { c, ws } = await setup();
  const answer = outcome(c.request("order.get", { id: 42 }, { id: "r1" }));
  const bare = outcome(c.request("ping", undefined, { id: "r2" }));
  assert.deepEqual(ws().requests(), [], "nothing is sent before the welcome");
  ws().receive(welcome);
  assert.deepEqual(ws().requests(), [
    { op: "request", id: "r1", name: "order.get", data: { id: 42 } },
    { op: "request", id: "r2", name: "ping" },
  ]);
  ws().receive({ op: "reply", id: "r1", data: { total: 7 } }, { op: "reply", id: "r2" });
  await settle();
  assert.deepEqual(answer.value, { total: 7 });
  assert.equal(bare.value, null, "a reply without data resolves with null");
  const random = c.request("ping");
  const id = ws().requests().at(-1).id;
  assert.ok(typeof id === "string" && id.length > 0 && id.length <= 64, `a random id: ${id}`);
  ws().receive({ op: "reply", id, data: "pong" });
  assert.equal(await random, "pong");
});

test("each error code rejects with a NotifyError of that code", async () => {
  const { c, ws } = await setup();
  ws().receive(welcome);
  for (const code of ["unknown_request", "not_found", "internal", "timeout", "too_many_requests", "rate_limited", "bad_request"]) {
    const p = outcome(c.request("x", null, { id: code }));
    ws().receive({ op: "reply", id: code, code, reason: `because ${code}` });
    await settle();
    assert.ok(p.error instanceof NotifyError, code);
    assert.equal(p.error.code, code);
    assert.equal(p.error.reason, `because ${code}`);
  }
  ws().receive({ op: "reply", id: "nobody", data: 1 }, { op: "reply", data: 2 }); // unknown ids are ignored
});

test("a request pending at a disconnect is sent again with its id after the reconnect", async () => {
  const { c, sockets, ws } = await setup();
  ws().receive(welcome);
  const p = outcome(c.request("pay", { amount: 5 }, { id: "r1", timeout: 30000 }));
  assert.equal(sockets[0].requests().length, 1);
  sockets[0].serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  assert.equal(sockets.length, 2, "reconnected");
  assert.deepEqual(ws().requests(), [], "not before the welcome");
  ws().receive(welcome);
  assert.deepEqual(ws().requests(), [{ op: "request", id: "r1", name: "pay", data: { amount: 5 } }]);
  ws().receive({ op: "reply", id: "r1", data: "paid" });
  await settle();
  assert.equal(p.value, "paid");
});

test("timeout rejects with code timeout; the late reply is ignored and nothing is sent again", async () => {
  const { c, sockets, ws } = await setup();
  ws().receive(welcome);
  const p = outcome(c.request("slow", null, { id: "r1", timeout: 500 }));
  mock.timers.tick(499);
  await settle();
  assert.equal(p.settled, false);
  mock.timers.tick(1);
  await settle();
  assert.equal(p.error?.code, "timeout");
  ws().receive({ op: "reply", id: "r1", data: "late" });
  sockets[0].serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  ws().receive(welcome);
  assert.deepEqual(ws().requests(), [], "a timed-out request is not sent again");
});

test("close() rejects pending requests with closed, and later ones at once", async () => {
  const { c, ws } = await setup();
  ws().receive(welcome);
  const p = outcome(c.request("x", 1));
  c.close();
  await settle();
  assert.equal(p.error?.code, "closed");
  await assert.rejects(c.request("x", 1), (e) => e instanceof NotifyError && e.code === "closed");
});

test("a closed connection (4003) rejects pending requests with closed", async () => {
  const { c, ws } = await setup();
  ws().receive(welcome);
  const p = outcome(c.request("x", 1));
  ws().serverClose(4003);
  await settle();
  assert.equal(c.state, "closed");
  assert.equal(p.error?.code, "closed");
});

test("an aborted request rejects with the signal's reason and is not sent again", async () => {
  const { c, sockets, ws } = await setup();
  ws().receive(welcome);
  const ac = new AbortController();
  const p = outcome(c.request("x", 1, { id: "r1", signal: ac.signal }));
  ac.abort(new Error("user left"));
  await settle();
  assert.equal(p.error?.message, "user left");
  sockets[0].serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  ws().receive(welcome);
  assert.deepEqual(ws().requests(), []);
  const already = new AbortController();
  already.abort(new Error("before"));
  await assert.rejects(c.request("x", 1, { signal: already.signal }), /before/);
});

test("a request over the size limit is rejected too_large without being sent", async () => {
  const { c, ws } = await setup({ maxMessageSize: 100 });
  ws().receive(welcome);
  const p = outcome(c.request("x", "é".repeat(40))); // 80 bytes of data, over 100 with the frame
  await settle();
  assert.equal(p.error?.code, "too_large");
  assert.deepEqual(ws().requests(), []);
  const small = outcome(c.request("x", "é".repeat(10), { id: "s" }));
  assert.equal(ws().requests().length, 1);
  ws().receive({ op: "reply", id: "s", data: 1 });
  await settle();
  assert.equal(small.value, 1);
});

test("two calls with one id share one frame and one answer", async () => {
  const { c, ws } = await setup();
  ws().receive(welcome);
  const a = outcome(c.request("x", 1, { id: "same" }));
  const b = outcome(c.request("x", 1, { id: "same" }));
  assert.equal(ws().requests().length, 1);
  ws().receive({ op: "reply", id: "same", data: "one" });
  await settle();
  assert.equal(a.value, "one");
  assert.equal(b.value, "one");
});

test("over the event stream a request is POSTed to the session and answered on the stream", async () => {
  const streams = [], posts = [];
  class FakeEventSource {
    constructor(url) { this.url = url; streams.push(this); }
    close() { this.closed = true; }
    receive(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  }
  const fetch = async (url, init) => {
    posts.push({ url, body: init.body });
    if (url.endsWith("/ticket")) return { ok: true, status: 200, json: async () => ({ ticket: "tk" }) };
    return { ok: true, status: 202, json: async () => ({}) };
  };
  const c = connect("wss://example.com/notify/ws", { token: async () => "jwt", transport: "sse", EventSource: FakeEventSource, fetch });
  closeAfter.push(c);
  await settle();
  streams[0].receive(welcome);
  const p = outcome(c.request("order.get", { id: 1 }, { id: "r1" }));
  await settle();
  assert.deepEqual(posts.at(-1), { url: "https://example.com/notify/sse/s1", body: JSON.stringify({ op: "request", id: "r1", name: "order.get", data: { id: 1 } }) });
  streams[0].receive({ op: "reply", id: "r1", data: "ok" });
  await settle();
  assert.equal(p.value, "ok");
});

// The host of a shared connection: one frame per id, the answer to the asking tabs only.
test("shared: the host sends a tab's request on the session and answers that tab only", async () => {
  const { FakeSocket, sockets } = fakeWebSocket();
  const posted = [];
  const host = new Host((msg) => posted.push(msg));
  const hello = (tab) => host.receive({ t: "hello", tab, url: "wss://example.com/notify/ws", topics: [],
    options: { WebSocket: FakeSocket, minDelay: 100, maxDelay: 1000 } });
  hello("a");
  hello("b");
  await settle();
  for (const m of posted.filter((m) => m.t === "tokenreq")) host.receive({ t: "token", tab: m.to, req: m.req, token: "jwt" });
  await settle();
  const ws = sockets.at(-1);
  ws.receive(welcome);
  host.receive({ t: "req", tab: "a", id: "r1", name: "x", data: 1, timeout: 5000 });
  host.receive({ t: "req", tab: "a", id: "r1", name: "x", data: 1, timeout: 5000 }); // a's hello again re-sends it
  host.receive({ t: "req", tab: "b", id: "r2", name: "y", timeout: 5000 });
  host.receive({ t: "req", tab: "stranger", id: "r3", name: "z" }); // no hello: ignored
  assert.deepEqual(ws.requests(), [{ op: "request", id: "r1", name: "x", data: 1 }, { op: "request", id: "r2", name: "y" }]);
  ws.receive({ op: "reply", id: "r1", data: "for a" }, { op: "reply", id: "r2", code: "not_found", reason: "nope" });
  await settle();
  const reps = posted.filter((m) => m.t === "rep");
  assert.deepEqual(reps, [
    { t: "rep", to: "a", id: "r1", data: "for a" },
    { t: "rep", to: "b", id: "r2", error: { code: "not_found", reason: "nope" } },
  ]);
  host.close();
});

// The tab's side of a shared connection, in Node: connect() sees a page with SharedWorker, and
// the fake worker's port leads to a Host run here, as the worker would run it.
test("shared: each tab gets the answers to its own requests only", async (t) => {
  const { FakeSocket, sockets } = fakeWebSocket();
  const ports = new Map(); // tab -> port
  const host = new Host((msg) => {
    for (const [tab, port] of ports) if (msg.to === undefined || msg.to === tab) port.deliver(msg);
  });
  class FakeSharedWorker {
    constructor() {
      const port = {
        onmessage: null, start() {}, close() {},
        postMessage: (msg) => {
          const m = structuredClone(msg);
          if (m.t === "hello") ports.set(m.tab, port);
          queueMicrotask(() => host.receive(m));
        },
        deliver: (msg) => { const m = structuredClone(msg); queueMicrotask(() => port.onmessage?.({ data: m })); },
      };
      this.port = port;
    }
  }
  const saved = {};
  const fakes = {
    window: { addEventListener() {}, removeEventListener() {} },
    document: { addEventListener() {}, removeEventListener() {} },
    location: { href: "https://example.com/app" },
    navigator: {},
    SharedWorker: FakeSharedWorker,
    WebSocket: FakeSocket,
  };
  for (const [k, v] of Object.entries(fakes)) {
    saved[k] = Object.getOwnPropertyDescriptor(globalThis, k);
    Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  }
  t.after(() => {
    host.close();
    for (const [k, d] of Object.entries(saved)) {
      if (d) Object.defineProperty(globalThis, k, d);
      else delete globalThis[k];
    }
  });
  const a = connect("wss://example.com/notify/ws", { token: async () => "jwt" });
  const b = connect("wss://example.com/notify/ws", { token: async () => "jwt" });
  closeAfter.push(a, b);
  await settle();
  assert.equal(sockets.length, 1, "one socket for both tabs");
  const ws = sockets[0];
  ws.receive(welcome);
  await settle();
  assert.equal(a.state, "connected");
  const pa = outcome(a.request("whoami", { tab: "a" }, { id: "ra" }));
  const pb = outcome(b.request("whoami", { tab: "b" }, { id: "rb" }));
  const pc = outcome(b.request("nope", null, { id: "rc" }));
  await settle();
  assert.deepEqual(ws.requests().map((m) => m.id), ["ra", "rb", "rc"]);
  ws.receive({ op: "reply", id: "rb", data: "to b" });
  await settle();
  assert.equal(pb.value, "to b");
  assert.equal(pa.settled, false, "a's request is not b's");
  ws.receive({ op: "reply", id: "ra", data: "to a" }, { op: "reply", id: "rc", code: "unknown_request", reason: "no handler for this name" });
  await settle();
  assert.equal(pa.value, "to a");
  assert.equal(pc.error?.code, "unknown_request");
  // A tab's timeout is its own.
  const late = outcome(a.request("slow", null, { id: "rd", timeout: 1000 }));
  mock.timers.tick(1000);
  await settle();
  assert.equal(late.error?.code, "timeout");
});
