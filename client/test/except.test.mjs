// Leaving out the acting session (PROTOCOL.md, "Leaving out the acting session"): the skip
// frame, connection.sessionId and connection.fetch, the inbox's header, and the shared host's
// relay of an event naming a tab.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../notify.js";
import { Host } from "./internal.mjs";

const settle = () => new Promise((resolve) => setImmediate(resolve));

function fakeWebSocket() {
  const sockets = [];
  class FakeSocket {
    constructor(url) { this.url = url; this.sent = []; sockets.push(this); }
    send(frame) { this.sent.push(JSON.parse(frame)); }
    close() { this.closed = true; }
    receive(...objs) { this.onmessage?.({ data: objs.map((o) => JSON.stringify(o)).join("\n") }); }
    serverClose(code) { this.onclose?.({ code, reason: "" }); }
  }
  return { FakeSocket, sockets };
}

const welcome = (extra = {}) => ({ op: "welcome", user: "alice", session: "S1", exp: 2e9, ping: 25, epoch: "E", offset: 0, ...extra });
const ev = (id, offset, extra = {}) => ({ offset, epoch: "E", type: "a", id, ...extra });

let conns = [];
beforeEach(() => { mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }); });
afterEach(() => {
  for (const n of conns) n.close();
  conns = [];
  mock.timers.reset();
});

async function setup(opts = {}) {
  const { FakeSocket, sockets } = fakeWebSocket();
  const fetches = [];
  const fetch = async (input, init) => {
    fetches.push({ input, init });
    return { ok: true, status: 200, json: async () => ({ counts: { unread: 0, unseen: 0, total: 1 } }) };
  };
  const n = connect("wss://example.com/notify/ws", { token: async () => "jwt", WebSocket: FakeSocket, fetch, minDelay: 100, maxDelay: 1000, ...opts });
  conns.push(n);
  const got = [];
  n.on("*", (e) => got.push(e.id));
  const recoveries = [];
  n.onRecovery((r) => recoveries.push(r));
  await settle();
  return { n, sockets, ws: () => sockets.at(-1), got, fetches, recoveries };
}

test("skip: the position moves on without a gap, and the id is not delivered now or on a replay", async () => {
  const s = await setup();
  s.ws().receive(welcome(), ev("1", 1), { op: "skip", id: "2", offset: 2, epoch: "E" }, ev("3", 3));
  assert.deepEqual(s.got, ["1", "3"], "no gap chased, the skipped event not delivered");
  assert.equal(s.sockets.length, 1, "no reconnect");
  s.ws().serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  assert.equal(s.ws().url, "wss://example.com/notify/ws?epoch=E&offset=3");
  // A new session: the server replays event 2 in full had the client asked from 1.
  s.ws().receive(welcome({ session: "S2", offset: 4, recovered: true }), ev("2", 2), ev("4", 4));
  assert.deepEqual(s.got, ["1", "3", "4"], "the replayed skipped event is dropped by id");
});

test("skip of a topic's event moves the topic's position", async () => {
  const s = await setup();
  s.ws().receive(welcome());
  s.n.subscribe("news");
  s.ws().receive({ op: "subscribed", topic: "news", epoch: "T", offset: 4 });
  s.ws().receive({ op: "skip", id: "n5", topic: "news", offset: 5, epoch: "T" }, { topic: "news", type: "h", id: "n6", offset: 6, epoch: "T" });
  assert.deepEqual(s.got, ["n6"]);
  assert.deepEqual(s.recoveries, [], "no loss reported");
  s.ws().serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  s.ws().receive(welcome({ session: "S2" }));
  assert.deepEqual(s.ws().sent.at(-1), { op: "subscribe", topic: "news", epoch: "T", offset: 6 });
});

test("sessionId follows the welcome; fetch adds Notify-Session and nothing else", async () => {
  const s = await setup();
  assert.equal(s.n.sessionId, undefined);
  await s.n.fetch("/before", { method: "POST" });
  assert.equal(s.fetches.at(-1).init?.headers, undefined, "no session yet: the call as given");
  s.ws().receive(welcome());
  assert.equal(s.n.sessionId, "S1");
  await s.n.fetch("/done", { method: "POST", headers: { "X-A": "1" }, body: "b" });
  const { input, init } = s.fetches.at(-1);
  assert.equal(input, "/done");
  assert.equal(init.method, "POST");
  assert.equal(init.body, "b");
  assert.equal(init.headers.get("Notify-Session"), "S1");
  assert.equal(init.headers.get("X-A"), "1");
  const req = new Request("https://example.com/x", { headers: { "X-B": "2" } });
  await s.n.fetch(req);
  assert.equal(s.fetches.at(-1).init.headers.get("X-B"), "2", "a Request's headers are kept");
  s.ws().serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  s.ws().receive(welcome({ session: "S2" }));
  assert.equal(s.n.sessionId, "S2", "a reconnect is a new session");
});

test("inbox change: sends the session; the answer is the change onChange gets (its own event is left out)", async () => {
  const s = await setup();
  s.ws().receive(welcome());
  const changes = [];
  s.n.inbox.onChange(({ counts: c, change }) => changes.push([c.total, change]));
  await settle();
  changes.length = 0;
  await s.n.inbox.markRead("n1");
  const { init } = s.fetches.at(-1);
  assert.equal(init.headers["Notify-Session"], "S1");
  const counts = { unread: 0, unseen: 0, total: 1 };
  assert.deepEqual(changes, [[1, { op: "read", ids: ["n1"], counts }]], "the answer, as the change");
  await s.n.inbox.markAllRead();
  assert.deepEqual(changes.at(-1), [1, { op: "read-all", counts }]);
});

// The host of a shared connection relays an event naming a tab with the tab, without the
// member; a skip of the whole session is relayed for every tab to remember.
test("host: an event naming a tab is relayed with except; a skip is relayed", async () => {
  const { FakeSocket, sockets } = fakeWebSocket();
  const posted = [];
  const host = new Host((msg) => posted.push(msg));
  host.receive({ t: "hello", tab: "a", url: "wss://example.com/notify/ws", topics: [], options: { WebSocket: FakeSocket } });
  await settle();
  for (const m of posted.filter((m) => m.t === "tokenreq")) host.receive({ t: "token", tab: "a", req: m.req, token: "jwt" });
  await settle();
  const ws = sockets.at(-1);
  ws.receive(welcome(), ev("1", 1, { except: "tab-b" }), { op: "skip", id: "2", offset: 2, epoch: "E" },
    { offset: 3, epoch: "E", type: "inbox", id: "3", except: "tab-b", data: { op: "read", ids: ["n"], counts: { unread: 0, unseen: 0, total: 1 } } });
  const evs = posted.filter((m) => m.t === "ev" || m.t === "skip");
  assert.deepEqual(evs.map((m) => [m.t, m.ev?.id ?? m.id, m.except, m.ev && "except" in m.ev]),
    [["ev", "1", "tab-b", false], ["skip", "2", undefined, undefined], ["ev", "3", "tab-b", false]]);
  host.close();
});
