// Unit tests of notify.js's pure helpers. Run from the module root: node --test client/test/
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  backoffDelay, closeAction, parseFrame, resolveURL, Dedup, positionOf, withPosition, rateLimitDelay,
  withServerTopics,
  CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_ABNORMAL, CLOSE_TOO_BIG,
  CLOSE_TOKEN_EXPIRED, CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_PROTOCOL_ABUSE, CLOSE_RATE_LIMITED,
} from "./internal.mjs";

test("backoffDelay: full jitter below min(maxDelay, minDelay * 2^attempt)", () => {
  const cases = [
    { name: "random 0 waits nothing", attempt: 3, random: 0, want: 0 },
    { name: "attempt 0, half", attempt: 0, random: 0.5, want: 250 },
    { name: "attempt 1, half", attempt: 1, random: 0.5, want: 500 },
    { name: "attempt 3, almost all", attempt: 3, random: 0.999, want: 0.999 * 4000 },
    { name: "capped", attempt: 10, random: 0.5, want: 15000 },
    { name: "capped almost all", attempt: 7, random: 0.999, want: 0.999 * 30000 },
    { name: "huge attempt stays capped", attempt: 5000, random: 0.999, want: 0.999 * 30000 },
  ];
  for (const c of cases) {
    assert.equal(backoffDelay(c.attempt, 500, 30000, () => c.random), c.want, c.name);
  }
  assert.equal(backoffDelay(5000, 0, 30000, () => 0.5), 0, "minDelay 0 gives 0, not NaN");
});

test("backoffDelay: default random stays within bounds", () => {
  for (let attempt = 0; attempt < 20; attempt++) {
    const bound = Math.min(30000, 500 * 2 ** attempt);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(attempt, 500, 30000);
      assert.ok(d >= 0 && d < bound, `attempt ${attempt}: ${d} not in [0, ${bound})`);
    }
  }
});

test("closeAction: table of close codes", () => {
  const cases = [
    [CLOSE_NORMAL, "stop"],
    [CLOSE_PROTOCOL_ABUSE, "stop"],
    [CLOSE_TOKEN_EXPIRED, "now"],
    [CLOSE_SLOW_CONSUMER, "now"],
    [CLOSE_SIGNED_OUT, "signedout"],
    [CLOSE_RATE_LIMITED, "limited"],
    [CLOSE_GOING_AWAY, "backoff"],
    [CLOSE_ABNORMAL, "backoff"],
    [CLOSE_TOO_BIG, "backoff"],
    [1011, "backoff"],
    [4004, "backoff"],
    [4028, "backoff"],
    [4030, "backoff"],
    [undefined, "backoff"],
  ];
  for (const [code, want] of cases) assert.equal(closeAction(code), want, `code ${code}`);
  assert.deepEqual(
    [CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_ABNORMAL, CLOSE_TOO_BIG, CLOSE_TOKEN_EXPIRED, CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_PROTOCOL_ABUSE, CLOSE_RATE_LIMITED],
    [1000, 1001, 1006, 1009, 4000, 4001, 4002, 4003, 4029],
  );
});

test("rateLimitDelay: 1-3 s, doubling with every retry", () => {
  const cases = [
    { retry: 0, random: 0, want: 1000 },
    { retry: 0, random: 0.5, want: 2000 },
    { retry: 0, random: 0.999, want: 2998 },
    { retry: 1, random: 0, want: 2000 },
    { retry: 1, random: 0.999, want: 5996 },
    { retry: 2, random: 0.5, want: 8000 },
    { retry: 3, random: 0, want: 8000 },
  ];
  for (const c of cases) assert.equal(rateLimitDelay(c.retry, () => c.random), c.want, `retry ${c.retry}, random ${c.random}`);
  assert.ok(Number.isFinite(rateLimitDelay(5000, () => 0.5)), "a huge retry count stays finite");
  for (let i = 0; i < 100; i++) {
    const d = rateLimitDelay(1);
    assert.ok(d >= 2000 && d < 6000, `default random: ${d} not in [2000, 6000)`);
  }
});

test("parseFrame: one or more objects per frame", () => {
  const cases = [
    { name: "single", text: '{"type":"a","id":"1"}', want: [{ type: "a", id: "1" }] },
    { name: "multiple", text: '{"op":"welcome","user":"u"}\n{"type":"a","id":"1"}\n{"type":"b","id":"2"}',
      want: [{ op: "welcome", user: "u" }, { type: "a", id: "1" }, { type: "b", id: "2" }] },
    { name: "blank lines and trailing newline", text: '\n{"type":"a"}\n\n   \n{"type":"b"}\n', want: [{ type: "a" }, { type: "b" }] },
    { name: "CRLF", text: '{"type":"a"}\r\n{"type":"b"}', want: [{ type: "a" }, { type: "b" }] },
    { name: "malformed line skipped", text: '{"type":"a"}\n{"type":\n{"type":"b"}', want: [{ type: "a" }, { type: "b" }] },
    { name: "non-objects skipped", text: '42\nnull\n"s"\n[1]\ntrue\n{"type":"a"}', want: [{ type: "a" }] },
    { name: "empty", text: "", want: [] },
  ];
  for (const c of cases) assert.deepEqual(parseFrame(c.text), c.want, c.name);
});

test("Dedup: remembers the last size ids, evicting the oldest", () => {
  const d = new Dedup(3);
  assert.equal(d.seen("a"), false);
  assert.equal(d.seen("b"), false);
  assert.equal(d.seen("c"), false);
  assert.equal(d.seen("a"), true, "a is still held");
  assert.equal(d.seen("d"), false, "d is new; a, the oldest, is evicted");
  assert.equal(d.seen("b"), true);
  assert.equal(d.seen("a"), false, "a was evicted although it was seen again: insertion order");
  assert.equal(d.seen("b"), false, "recording a evicted b");
});

test("Dedup: default size is 1000", () => {
  const d = new Dedup();
  for (let i = 0; i < 1000; i++) assert.equal(d.seen(i), false);
  assert.equal(d.seen(0), true);
  assert.equal(d.seen(1000), false);
  assert.equal(d.seen(0), false, "0 was evicted by the 1001st id");
});

test("resolveURL: relative URLs become ws and wss URLs", () => {
  const cases = [
    { url: "/notify/ws", base: "https://example.com/app/page", want: "wss://example.com/notify/ws" },
    { url: "/notify/ws", base: "http://localhost:8080/", want: "ws://localhost:8080/notify/ws" },
    { url: "ws", base: "http://h/notify/", want: "ws://h/notify/ws" },
    { url: "wss://other.example/ws", base: "http://h/", want: "wss://other.example/ws" },
    { url: "/notify/ws", base: undefined, want: "/notify/ws" },
  ];
  for (const c of cases) assert.equal(resolveURL(c.url, c.base), c.want, `${c.url} on ${c.base}`);
});

test("positionOf: the epoch and offset a frame carries, or undefined", () => {
  const cases = [
    { name: "both", msg: { epoch: "E", offset: 7 }, want: { epoch: "E", offset: 7 } },
    { name: "offset 0 is omitted by the server", msg: { epoch: "E" }, want: { epoch: "E", offset: 0 } },
    { name: "no epoch", msg: { offset: 7 }, want: undefined },
    { name: "empty epoch", msg: { epoch: "", offset: 7 }, want: undefined },
    { name: "epoch not a string", msg: { epoch: 5, offset: 7 }, want: undefined },
    { name: "negative offset", msg: { epoch: "E", offset: -1 }, want: undefined },
    { name: "fractional offset", msg: { epoch: "E", offset: 1.5 }, want: undefined },
    { name: "offset a string", msg: { epoch: "E", offset: "7" }, want: undefined },
    { name: "offset beyond 2^53", msg: { epoch: "E", offset: 2 ** 60 }, want: undefined },
  ];
  for (const c of cases) assert.deepEqual(positionOf(c.msg), c.want, c.name);
});

test("withPosition: sets, replaces and removes epoch and offset, keeping other parameters", () => {
  const cases = [
    { url: "wss://h/ws", pos: { epoch: "E", offset: 3 }, want: "wss://h/ws?epoch=E&offset=3" },
    { url: "wss://h/ws?a=1", pos: { epoch: "E", offset: 0 }, want: "wss://h/ws?a=1&epoch=E&offset=0" },
    { url: "wss://h/ws?epoch=X&offset=9&a=1", pos: { epoch: "E", offset: 3 }, want: "wss://h/ws?epoch=E&offset=3&a=1" },
    { url: "wss://h/ws?epoch=X&offset=9&a=1", pos: undefined, want: "wss://h/ws?a=1" },
    { url: "wss://h/ws", pos: { epoch: "a b&c", offset: 1 }, want: "wss://h/ws?epoch=a+b%26c&offset=1" },
  ];
  for (const c of cases) assert.equal(withPosition(c.url, c.pos), c.want, c.url);
});

test("withServerTopics: one t.<topic> parameter per position, earlier ones replaced", () => {
  const u = "wss://h/ws?epoch=E&offset=3&t.old=1.X";
  const got = withServerTopics(u, new Map([["team.a", { epoch: "X.1", offset: 7 }], ["nopos", undefined]]));
  assert.equal(got, "wss://h/ws?epoch=E&offset=3&t.team.a=7.X.1");
});
