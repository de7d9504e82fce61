// The inbox of connect(): its requests (URL, token, bodies, errors) against a fake fetch, and
// its live counts fed by "inbox" events and by the counts fetched on every (re)connect.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../notify.js";
import { inboxURL } from "./internal.mjs";

class FakeSocket {
  static last = null;
  constructor(url) { this.url = url; FakeSocket.last = this; }
  send() {}
  close() {}
  receive(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

// fakeFetch answers each request with the next of `answers` (status, body) and records it.
function fakeFetch(answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, ...init, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const a = answers.shift() ?? [200, { unread: 0, unseen: 0, total: 0 }];
    if (a instanceof Error) throw a;
    const [status, body] = a;
    return { ok: status >= 200 && status < 300, status, json: async () => body };
  };
  return { fetch, calls };
}

const welcome = { op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25 };
const inboxEvent = (id, data) => ({ type: "inbox", id, time: "2026-12-02T04:00:00Z", data });

async function setup(answers, opts = {}) {
  const { fetch, calls } = fakeFetch(answers);
  const n = connect("wss://example.com/notify/ws", { token: async () => "jwt1", WebSocket: FakeSocket, fetch, ...opts });
  await settle();
  return { n, calls, socket: FakeSocket.last };
}

test("inboxURL: beside the socket, same origin, http(s)", () => {
  for (const [socket, base, want] of [
    ["wss://example.com/notify/ws", undefined, "https://example.com/notify/inbox/"],
    ["ws://localhost:8080/ws?epoch=e&offset=3", undefined, "http://localhost:8080/inbox/"],
    ["/notify/ws", "https://app.example.com/page", "https://app.example.com/notify/inbox/"],
  ]) {
    assert.equal(inboxURL(socket, base), want);
  }
});

test("requests carry the token and reach the endpoints", async () => {
  const { n, calls } = await setup([
    [200, { items: [{ id: "a1", type: "t", createdAt: "2026-12-02T04:00:00Z" }], next: "c1" }],
    [200, { counts: { unread: 0, unseen: 1, total: 1 } }],
    [200, { counts: { unread: 0, unseen: 0, total: 0 } }],
  ]);
  const page = await n.inbox.list({ unread: true, limit: 5, cursor: "c0" });
  assert.equal(page.next, "c1");
  assert.deepEqual(await n.inbox.markRead("a1"), { unread: 0, unseen: 1, total: 1 });
  await n.inbox.markAllRead();
  assert.deepEqual(calls.map((c) => [c.method, c.url, c.body]), [
    ["GET", "https://example.com/notify/inbox/?unread=1&limit=5&cursor=c0", undefined],
    ["POST", "https://example.com/notify/inbox/read", { ids: ["a1"] }],
    ["POST", "https://example.com/notify/inbox/read-all", undefined],
  ]);
  for (const c of calls) {
    assert.equal(c.headers.Authorization, "Bearer jwt1");
    assert.equal(c.cache, "no-store");
  }
  n.close();
});

test("the option inboxURL overrides the default", async () => {
  const { n, calls } = await setup([[200, { items: [] }]], { inboxURL: "https://api.example.com/inbox/" });
  await n.inbox.list();
  assert.equal(calls[0].url, "https://api.example.com/inbox/");
  n.close();
});

test("errors carry the server's code and the status", async () => {
  const { n } = await setup([
    [404, { error: "not_found", reason: "no such notification" }],
    [503, { error: "unavailable", reason: "try again" }],
    new TypeError("Failed to fetch"),
    [500, null],
  ]);
  for (const [call, code, status] of [
    [() => n.inbox.markRead(["x"]), "not_found", 404],
    [() => n.inbox.counts(), "unavailable", 503],
    [() => n.inbox.list(), "network", 0],
    [() => n.inbox.archive("x"), "http_500", 500],
  ]) {
    await assert.rejects(call(), (err) => err.code === code && err.status === status);
  }
  n.close();
});

test("signed out: token() null rejects without a request", async () => {
  const { fetch, calls } = fakeFetch([]);
  const n = connect("wss://example.com/notify/ws", { token: async () => null, WebSocket: FakeSocket, fetch });
  await assert.rejects(n.inbox.counts(), (err) => err.code === "unauthorized" && err.status === 401);
  assert.equal(calls.length, 0);
  n.close();
});

test("live counts: fetched on connect, then moved by inbox events", async () => {
  const { n, calls, socket } = await setup([[200, { unread: 3, unseen: 3, total: 3 }]]);
  const updates = [];
  n.inbox.onChange((u) => updates.push(u));
  assert.equal(n.inbox.unread, 0);
  assert.equal(n.inbox.current, null);
  socket.receive(welcome);
  await settle();
  assert.equal(calls.at(-1).url, "https://example.com/notify/inbox/counts");
  assert.equal(n.inbox.unread, 3);
  socket.receive(inboxEvent("e1", { op: "read-all", counts: { unread: 0, unseen: 3, total: 3 } }));
  assert.equal(n.inbox.unread, 0);
  socket.receive(inboxEvent("e2", { op: "new", notification: { id: "a4" }, counts: { unread: 1, unseen: 4, total: 4 } }));
  assert.deepEqual(n.inbox.current, { unread: 1, unseen: 4, total: 4 });
  assert.deepEqual(updates.map((u) => [u.change?.op ?? null, u.counts.unread]), [[null, 3], ["read-all", 0], ["new", 1]]);
  // Another event type, or an inbox event without counts, changes nothing.
  socket.receive({ type: "message", id: "e3", time: "2026-12-02T04:00:00Z", data: { counts: { unread: 9 } } });
  socket.receive(inboxEvent("e4", { op: "read" }));
  assert.equal(n.inbox.unread, 1);
  n.close();
});

test("a fetched count older than a live event is not applied", async () => {
  let answer;
  const fetch = (url, init) => new Promise((resolve) => { answer = resolve; });
  const n = connect("wss://example.com/notify/ws", { token: async () => "jwt1", WebSocket: FakeSocket, fetch });
  await settle();
  const socket = FakeSocket.last;
  n.inbox; // made before the welcome: it fetches on "connected"
  socket.receive(welcome);
  await settle();
  socket.receive(inboxEvent("e1", { op: "read-all", counts: { unread: 0, unseen: 0, total: 2 } }));
  answer({ ok: true, status: 200, json: async () => ({ unread: 2, unseen: 2, total: 2 }) });
  await settle();
  assert.equal(n.inbox.unread, 0);
  n.close();
});

test("a change's answer sets the counts: the server leaves the asking session out of its event", async () => {
  const { n, socket } = await setup([
    [200, { counts: { unread: 5, unseen: 5, total: 5 } }],
    [200, { unread: 7, unseen: 7, total: 7 }],
    [200, { counts: { unread: 6, unseen: 6, total: 7 } }],
  ]);
  await n.inbox.markRead("a"); // not connected yet
  assert.equal(n.inbox.unread, 5);
  socket.receive(welcome);
  await settle();
  assert.equal(n.inbox.unread, 7);
  await n.inbox.markRead("b"); // connected: the request names the session, left out of the event
  assert.equal(n.inbox.unread, 6);
  n.close();
});
