// The public surface of notify.js and what issue 23 added to it: connected(), AbortSignal on
// the calls that wait, NotifyError, the token the inbox shares with the socket, and a stored
// notification reaching its own type's handlers.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as notify from "../notify.js";
import { connect, NotifyError } from "../notify.js";
import { jwtExp, Tokens } from "./internal.mjs";

class FakeSocket {
  static last = null;
  constructor(url, protocols) { this.url = url; this.protocols = protocols; FakeSocket.last = this; }
  send() {}
  close() {}
  receive(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  serverClose(code, reason = "") { this.onclose?.({ code, reason }); }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const welcome = { op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25 };
const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const jwt = (claims) => `${b64url({ alg: "HS256" })}.${b64url(claims)}.sig`;

function fakeFetch(answers = []) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init });
    if (init.signal?.aborted) throw init.signal.reason;
    const [status, body] = answers.shift() ?? [200, { unread: 0, unseen: 0, total: 0 }];
    return { ok: status >= 200 && status < 300, status, json: async () => body };
  };
  return { fetch, calls };
}

test("notify.js exports the public API only", () => {
  assert.deepEqual(Object.keys(notify).sort(), [
    "CLOSE_ABNORMAL", "CLOSE_GOING_AWAY", "CLOSE_NORMAL", "CLOSE_PROTOCOL_ABUSE", "CLOSE_RATE_LIMITED",
    "CLOSE_SIGNED_OUT", "CLOSE_SLOW_CONSUMER", "CLOSE_TOKEN_EXPIRED", "CLOSE_TOO_BIG",
    "NotifyError", "connect",
  ]);
});

test("NotifyError: an Error with code, reason, topic and status", () => {
  const err = new NotifyError("not_found", "no such notification", { status: 404 });
  assert.ok(err instanceof Error);
  assert.equal(err.name, "NotifyError");
  assert.equal(err.message, "notify: not_found: no such notification");
  assert.deepEqual([err.code, err.reason, err.topic, err.status], ["not_found", "no such notification", undefined, 404]);
});

test("jwtExp reads exp from a JWT's payload and nothing else", () => {
  assert.equal(jwtExp(jwt({ sub: "alice", exp: 1765000000 })), 1765000000);
  assert.equal(jwtExp(jwt({ sub: "alice" })), undefined);
  for (const t of ["", "opaque", "a.b.c", "a.!!!.c", undefined, null]) assert.equal(jwtExp(t), undefined, String(t));
});

test("Tokens: reused until 30 s before exp; concurrent callers share one token() call", async () => {
  let now = 1_000_000_000_000;
  const realNow = Date.now;
  Date.now = () => now;
  try {
    let calls = 0;
    const tokens = new Tokens(async () => jwt({ n: ++calls, exp: now / 1000 + 60 }));
    const [a, b] = await Promise.all([tokens.get(), tokens.get()]);
    assert.equal(calls, 1);
    assert.equal(a.token, b.token);
    assert.deepEqual((await tokens.get()), { token: a.token, reused: true });
    now += 29_000; // 31 s left
    assert.equal((await tokens.get()).token, a.token);
    now += 2_000; // 29 s left
    const c = await tokens.get();
    assert.equal(calls, 2);
    assert.equal(c.reused, false);
    tokens.forget(c.token);
    assert.equal((await tokens.get()).reused, false);
    assert.equal(calls, 3);
  } finally {
    Date.now = realNow;
  }
});

test("inbox requests reuse the socket's token; a refused reused token is replaced once", async (t) => {
  const issued = [];
  const token = async () => { issued.push(jwt({ n: issued.length, exp: Date.now() / 1000 + 3600 })); return issued.at(-1); };
  const { fetch, calls } = fakeFetch([
    [200, { items: [] }], [200, { items: [] }], [200, { counts: { unread: 0, unseen: 0, total: 0 } }],
    [401, { error: "unauthorized", reason: "token revoked" }], [200, { items: [] }],
    [401, { error: "unauthorized", reason: "signed out" }], [401, { error: "unauthorized", reason: "signed out" }],
  ]);
  const n = connect("wss://example.com/notify/ws", { token, WebSocket: FakeSocket, fetch });
  t.after(() => n.close());
  await settle();
  assert.equal(issued.length, 1, "the socket's token");
  await n.inbox.list();
  await n.inbox.list();
  await n.inbox.markRead("a");
  assert.equal(issued.length, 1, "three requests, no new token");
  assert.ok(calls.every((c) => c.headers.Authorization === `Bearer ${issued[0]}`));
  await n.inbox.list(); // 401 with the reused token, then 200 with a fresh one
  assert.equal(issued.length, 2);
  assert.equal(calls.at(-1).headers.Authorization, `Bearer ${issued[1]}`);
  // A fresh token refused is the answer.
  FakeSocket.last.serverClose(4000, "token expired"); // forgets the token; the reconnect brings a fresh one
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(issued.length, 3);
  await assert.rejects(n.inbox.list(), (err) => err instanceof NotifyError && err.status === 401 && err.code === "unauthorized");
  assert.equal(issued.length, 4, "reused token 3 refused, fresh token 4 refused: no third try");
  n.close();
});

test("connected(): resolves once connected, rejects on close and on abort", async () => {
  const n = connect("wss://example.com/notify/ws", { token: "t", WebSocket: FakeSocket });
  const ready = n.connected();
  const ctl = new AbortController();
  const aborted = n.connected({ signal: ctl.signal });
  ctl.abort(new Error("gave up"));
  await assert.rejects(aborted, /gave up/);
  await settle();
  FakeSocket.last.receive(welcome);
  assert.deepEqual(await ready, { user: "alice", session: "s1" });
  assert.deepEqual(await n.connected(), { user: "alice", session: "s1" }, "at once when connected");
  n.close();
  await assert.rejects(n.connected(), (err) => err instanceof NotifyError && err.code === "closed");

  const m = connect("wss://example.com/notify/ws", { token: "t", WebSocket: FakeSocket });
  const pending = m.connected();
  m.close();
  await assert.rejects(pending, (err) => err.code === "closed");
  await assert.rejects(m.connected({ signal: AbortSignal.abort() }), (err) => err.code === "closed");
});

test("inbox calls take an AbortSignal", async () => {
  let answer;
  const fetch = (url, init) => new Promise((resolve, reject) => {
    answer = resolve;
    init.signal?.addEventListener("abort", () => reject(init.signal.reason));
  });
  const n = connect("wss://example.com/notify/ws", { token: "t", WebSocket: FakeSocket, fetch });
  const ctl = new AbortController();
  const list = n.inbox.list({ signal: ctl.signal });
  await settle();
  ctl.abort(new DOMException("stop", "AbortError"));
  await assert.rejects(list, (err) => err.name === "AbortError");
  await assert.rejects(n.inbox.markRead("a", { signal: AbortSignal.abort() }), (err) => err.name === "AbortError");
  await assert.rejects(n.inbox.markAllRead({ signal: AbortSignal.abort() }), (err) => err.name === "AbortError");
  await assert.rejects(n.inbox.counts({ signal: AbortSignal.abort() }), (err) => err.name === "AbortError");
  const counts = n.inbox.counts({ signal: new AbortController().signal });
  await settle();
  answer({ ok: true, status: 200, json: async () => ({ unread: 1, unseen: 1, total: 1 }) });
  assert.deepEqual(await counts, { unread: 1, unseen: 1, total: 1 });
  n.close();
});

test("a stored notification reaches its own type's handlers once; inbox changes stay out of *", async () => {
  const n = connect("wss://example.com/notify/ws", { token: "t", WebSocket: FakeSocket, fetch: fakeFetch().fetch });
  await settle();
  const socket = FakeSocket.last;
  socket.receive(welcome);
  const got = [];
  n.on("order.shipped", (ev) => got.push(["order.shipped", ev]));
  n.on("*", (ev) => got.push(["*", ev.type, ev.id]));
  n.on("inbox", (ev) => got.push(["inbox", ev.data.op, ev.id]));
  const notification = { id: "order-42-shipped", type: "order.shipped", data: { order: 42 }, createdAt: "2026-12-02T04:00:00Z" };
  const created = { type: "inbox", id: "e1", time: "2026-12-02T04:00:01Z", epoch: "ep", offset: 1,
    data: { op: "new", notification, counts: { unread: 1, unseen: 1, total: 1 } } };
  socket.receive(created);
  socket.receive(created); // replayed: the same event
  socket.receive({ ...created, id: "e9", offset: 2 }); // the same notification again (another node's copy)
  socket.receive({ type: "inbox", id: "e2", time: "t", epoch: "ep", offset: 3,
    data: { op: "read", ids: ["order-42-shipped"], counts: { unread: 0, unseen: 1, total: 1 } } });
  socket.receive({ type: "order.shipped", id: "e3", time: "t", data: { order: 43 } }); // hub.Send as before
  assert.deepEqual(got, [
    ["inbox", "new", "e1"],
    ["order.shipped", { type: "order.shipped", id: "order-42-shipped", time: "2026-12-02T04:00:00Z", data: { order: 42 }, notification }],
    ["*", "order.shipped", "order-42-shipped"],
    ["inbox", "new", "e9"],
    ["inbox", "read", "e2"],
    ["order.shipped", { type: "order.shipped", id: "e3", time: "t", data: { order: 43 } }],
    ["*", "order.shipped", "e3"],
  ]);
  assert.equal(n.inbox.unread, 0, "the inbox follows its events still");
  n.close();
});

test("an event of type inbox that is no inbox change goes to * as before", async () => {
  const n = connect("wss://example.com/notify/ws", { token: "t", WebSocket: FakeSocket });
  await settle();
  FakeSocket.last.receive(welcome);
  const got = [];
  n.on("*", (ev) => got.push(ev.id));
  FakeSocket.last.receive({ type: "inbox", id: "x1", time: "t", data: "hello" });
  FakeSocket.last.receive({ type: "inbox", id: "x2", time: "t", data: { op: "new", notification: { id: "n", type: "inbox" }, counts: {} } });
  assert.deepEqual(got, ["x1"]);
  n.close();
});
