// The transport choice of connect(): WebSocket first, the event stream after a refused upgrade
// or a missing welcome, back to WebSocket later; with a fake WebSocket, EventSource and fetch.
import { test, mock, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../notify.js";

function fakes() {
  const sockets = [], streams = [], requests = [];
  class FakeSocket {
    constructor(url, protocols) { this.url = url; this.protocols = protocols; this.sent = []; sockets.push(this); }
    send(frame) { this.sent.push(frame); }
    close(code, reason) { this.closed = { code, reason }; }
    receive(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
    serverClose(code, reason = "") { this.onclose?.({ code, reason }); }
  }
  class FakeEventSource {
    constructor(url) { this.url = url; streams.push(this); }
    close() { this.closed = true; }
    receive(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
  }
  const fetch = async (url, init) => {
    requests.push({ url, method: init.method, auth: init.headers?.Authorization, body: init.body });
    if (url.endsWith("/ticket")) return { ok: true, status: 200, json: async () => ({ ticket: `tk${requests.length}` }) };
    return { ok: true, status: 202, json: async () => ({}) };
  };
  return { FakeSocket, FakeEventSource, fetch, sockets, streams, requests };
}

const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
const welcome = (extra = {}) => ({ op: "welcome", user: "alice", session: "s1", exp: 2e9, ping: 25, epoch: "E", offset: 3, ...extra });

let closeAfter = [];
beforeEach(() => { mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 }); });
afterEach(() => { for (const n of closeAfter) n.close(); closeAfter = []; mock.timers.reset(); });

async function setup(opts = {}) {
  const f = fakes();
  let n = 0;
  const token = async () => `jwt${++n}`;
  const c = connect("wss://example.com/notify/ws", { token, minDelay: 100, maxDelay: 1000,
    WebSocket: f.FakeSocket, EventSource: f.FakeEventSource, fetch: f.fetch, ...opts });
  closeAfter.push(c);
  const transports = [];
  c.onTransport((t, info) => transports.push([t, info.previous]));
  await settle();
  return { c, transports, ...f };
}

test("a refused upgrade falls back to the event stream, with a ticket and the same events", async () => {
  const { c, transports, sockets, streams, requests } = await setup();
  assert.equal(c.transport, "websocket");
  assert.equal(sockets.length, 1);
  sockets[0].serverClose(1006);
  mock.timers.tick(1);
  await settle();
  assert.deepEqual(transports, [["sse", "websocket"]]);
  assert.equal(c.transport, "sse");
  assert.deepEqual(requests[0], { url: "https://example.com/notify/sse/ticket", method: "POST", auth: "Bearer jwt2", body: undefined });
  assert.equal(streams.length, 1);
  assert.equal(streams[0].url, "https://example.com/notify/sse?ticket=tk1");
  assert.ok(!streams[0].url.includes("jwt"), "no token in the stream's URL");
  const got = [];
  c.on("*", (e) => got.push(e.type));
  streams[0].receive(welcome());
  assert.equal(c.state, "connected");
  streams[0].receive({ offset: 4, epoch: "E", type: "dm", id: "e1" });
  assert.deepEqual(got, ["dm"]);
  // A subscribe is POSTed to the session.
  c.subscribe("news").catch(() => {});
  await settle();
  assert.deepEqual(requests.at(-1), { url: "https://example.com/notify/sse/s1", method: "POST", auth: "Bearer jwt2", body: '{"op":"subscribe","topic":"news"}' });
  // The close event is the socket's close: 4001 asks for a fresh token; the stream recovers
  // from its position like a socket.
  streams[0].receive({ op: "close", code: 1001, reason: "going away, reconnect" });
  assert.equal(c.state, "reconnecting");
  assert.ok(streams[0].closed);
  mock.timers.tick(1000);
  await settle();
  assert.equal(streams.length, 2);
  assert.match(streams[1].url, /^https:\/\/example\.com\/notify\/sse\?epoch=E&offset=4&ticket=tk\d+$/);
});

// ticksUntil advances the clock in 5 s steps, each with a ping on the current stream, until
// cond holds; it returns the time that took (ms), failing past limit.
async function ticksUntil(stream, cond, limit) {
  let spent = 0;
  while (!cond()) {
    assert.ok(spent < limit, `nothing after ${spent} ms`);
    mock.timers.tick(5000);
    spent += 5000;
    stream.receive({ op: "ping" });
    mock.timers.tick(1);
    await settle();
  }
  return spent;
}

test("no welcome within 5 s over WebSocket falls back too; WebSocket is tried again 30 s later, then less often", async () => {
  const { c, transports, sockets, streams } = await setup();
  mock.timers.tick(4999);
  assert.equal(streams.length, 0);
  mock.timers.tick(1);
  mock.timers.tick(1);
  await settle();
  assert.ok(sockets[0].closed, "the silent socket is dropped");
  assert.equal(streams.length, 1);
  streams[0].receive(welcome());
  // Within 15 to 45 s (30 s with jitter) the working stream is dropped to try WebSocket.
  const first = await ticksUntil(streams[0], () => sockets.length === 2, 45_000);
  assert.ok(first >= 15_000, `tried again after ${first} ms`);
  assert.ok(streams[0].closed);
  assert.equal(c.transport, "websocket");
  assert.deepEqual(transports, [["sse", "websocket"], ["websocket", "sse"]]);
  // Refused again: back to the stream, and the next try waits twice as long (30 to 90 s).
  sockets[1].serverClose(1006);
  mock.timers.tick(1);
  await settle();
  assert.equal(streams.length, 2);
  streams[1].receive(welcome());
  const second = await ticksUntil(streams[1], () => sockets.length === 3, 90_000);
  assert.ok(second >= 30_000, `tried again after ${second} ms`);
  sockets[2].receive(welcome());
  assert.equal(c.state, "connected");
  assert.equal(c.transport, "websocket");
});

test('transport "sse" never opens a WebSocket; "websocket" never falls back', async () => {
  const sse = await setup({ transport: "sse" });
  assert.equal(sse.c.transport, "sse");
  assert.equal(sse.sockets.length, 0);
  assert.equal(sse.streams.length, 1);
  const ws = await setup({ transport: "websocket" });
  ws.sockets[0].serverClose(1006);
  mock.timers.tick(1000);
  await settle();
  assert.equal(ws.streams.length, 0);
  assert.equal(ws.c.transport, "websocket");
});

test("a failed stream is closed and reconnected by the connection, not by EventSource", async () => {
  const { c, streams } = await setup({ transport: "sse" });
  streams[0].onerror();
  assert.ok(streams[0].closed);
  assert.equal(c.state, "reconnecting");
});

test("without a token the stream goes without a ticket (cookie authentication)", async () => {
  const f = fakes();
  const c = connect("wss://example.com/notify/ws", { transport: "sse", EventSource: f.FakeEventSource, fetch: f.fetch });
  closeAfter.push(c);
  await settle();
  assert.equal(f.requests.length, 0);
  assert.equal(f.streams[0].url, "https://example.com/notify/sse");
});
