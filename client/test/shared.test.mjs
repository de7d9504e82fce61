// The host of a shared connection (one connection for a browser's tabs), driven with fake tabs
// (the messages they would post) and a fake WebSocket: what the server sees, what each tab is
// sent. The tabs' side and the SharedWorker and Web Locks links are tested in Chromium
// (example/shared_e2e_test.go).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Host, clientURL } from "./internal.mjs";

const settle = () => new Promise((resolve) => setImmediate(resolve));

function setup(resume) {
  const sockets = [];
  class FakeSocket {
    constructor(url) { this.url = url; this.sent = []; sockets.push(this); }
    send(frame) { this.sent.push(JSON.parse(frame)); }
    close() { this.closed = true; }
    receive(...objs) { this.onmessage?.({ data: objs.map((o) => JSON.stringify(o)).join("\n") }); }
  }
  const posted = []; // every message the host sent, to all tabs or msg.to
  const host = new Host((msg) => posted.push(msg), resume);
  const hello = (tab, topics = []) => host.receive({
    t: "hello", tab, url: "wss://example.com/notify/ws", topics,
    options: { WebSocket: FakeSocket, minDelay: 100, maxDelay: 1000 },
  });
  // Answers the host's token requests as tab does, with token.
  const answer = (tab, token) => {
    for (const m of posted.filter((m) => m.t === "tokenreq" && m.to === tab && !m.answered)) {
      m.answered = true;
      host.receive({ t: "token", tab, req: m.req, token });
    }
  };
  const to = (tab, t) => posted.filter((m) => m.t === t && (m.to === undefined || m.to === tab));
  return { host, hello, answer, posted, to, sockets, ws: () => sockets.at(-1) };
}

const welcome = { op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25, epoch: "E", offset: 1 };

test("subscriptions are the union over tabs, counted", async () => {
  const { host, hello, answer, to, ws } = setup();
  hello("a");
  hello("b");
  await settle();
  answer("a", "jwt1");
  await settle();
  ws().receive(welcome);
  host.receive({ t: "sub", tab: "a", topic: "news" });
  host.receive({ t: "sub", tab: "b", topic: "news" });
  assert.deepEqual(ws().sent, [{ op: "subscribe", topic: "news" }], "one subscribe for two tabs");
  ws().receive({ op: "subscribed", topic: "news", epoch: "T", offset: 0 });
  await settle();
  assert.equal(to("a", "subbed").length, 1);
  assert.equal(to("b", "subbed").length, 1);

  host.receive({ t: "unsub", tab: "a", topic: "news" });
  assert.equal(ws().sent.length, 1, "b still wants news: no unsubscribe");
  ws().receive({ topic: "news", type: "headline", id: "h1", epoch: "T", offset: 1 });
  const ev = to("a", "ev").at(-1);
  assert.equal(ev.client, true, "a topic some tab subscribed: a tab that did not skips it");
  host.receive({ t: "bye", tab: "b" });
  assert.deepEqual(ws().sent.at(-1), { op: "unsubscribe", topic: "news" }, "the last tab that wanted it left");
  host.receive({ t: "bye", tab: "a" });
  assert.equal(ws().closed, true, "no tab left: the connection closes");
});

test("one tab's token() at a time; a tab that leaves hands the job on", async () => {
  const { host, hello, answer, posted } = setup();
  hello("a");
  hello("b");
  await settle();
  const asks = () => posted.filter((m) => m.t === "tokenreq");
  assert.deepEqual(asks().map((m) => m.to), ["a"], "only the first tab is asked");
  host.receive({ t: "bye", tab: "a" });
  assert.deepEqual(asks().map((m) => m.to), ["a", "b"], "the ask moves to b");
  answer("b", "jwt-b");
  await settle();
  host.close();
});

test("inbox changes go once, to on(\"inbox\") only; the stored notification to its type", async () => {
  const { host, hello, answer, posted, ws } = setup();
  hello("a");
  await settle();
  answer("a", "jwt1");
  await settle();
  ws().receive(welcome);
  const notification = { id: "n1", type: "order.shipped", createdAt: "2026-12-06T00:00:00Z" };
  ws().receive({ type: "inbox", id: "i1", epoch: "E", offset: 2, data: { op: "new", notification, counts: { unread: 1, unseen: 1, total: 1 } } });
  const evs = posted.filter((m) => m.t === "ev");
  assert.deepEqual(evs.map((m) => [m.ev.type, !!m.inbox]), [["inbox", true], ["order.shipped", false]]);
  host.close();
});

test("a new leader resumes from the positions the old one had", async () => {
  const resume = { user: { epoch: "E", offset: 7 }, topics: [["news", { epoch: "T", offset: 3 }]], server: [["team", { epoch: "S", offset: 2 }]] };
  const { host, hello, answer, ws } = setup(resume);
  hello("a", ["news"]);
  await settle();
  answer("a", "jwt1");
  await settle();
  const url = new URL(ws().url);
  assert.equal(url.searchParams.get("epoch"), "E");
  assert.equal(url.searchParams.get("offset"), "7");
  assert.equal(url.searchParams.get("t.team"), "2.S");
  ws().receive({ ...welcome, recovered: true });
  assert.deepEqual(ws().sent, [{ op: "subscribe", topic: "news", epoch: "T", offset: 3 }]);
  ws().receive({ type: "m", id: "x", epoch: "E", offset: 8 });
  assert.deepEqual(host.positions().user, { epoch: "E", offset: 8 });
  host.close();
});

test("clientURL: client.js beside the socket", () => {
  assert.equal(clientURL("wss://example.com/notify/ws?x=1"), "https://example.com/notify/client.js");
  assert.equal(clientURL("ws://127.0.0.1:8080/ws"), "http://127.0.0.1:8080/client.js");
});
