// connection.push against fakes of the browser's service workers (navigator.serviceWorker, a
// registration, its PushManager and subscription) and of Notification, and a fake fetch for the
// server: what it asks the browser and the server, in which order, and what it does when any of
// them refuses. The real browser path (a registration from the hub's URL, a delivered push, a
// click) is tested in Chromium: example/push_e2e_test.go.
import { test, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect, NotifyError } from "../notify.js";

const src = readFileSync(new URL("../notify.js", import.meta.url), "utf8");
const { serviceWorkerURL } = await import("data:text/javascript;base64," +
  Buffer.from(`${src}\nexport { serviceWorkerURL };\n`).toString("base64"));

class FakeSocket {
  constructor(url) { this.url = url; }
  send() {}
  close() {}
}

const settle = () => new Promise((resolve) => setImmediate(resolve));
const KEY = "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U";
const keyBytes = (k) => new Uint8Array(Buffer.from(k, "base64url"));

// The browser: one origin's service worker registrations, Notification and PushManager.
class Browser {
  permission = "default";
  answer = "granted"; // what the prompt answers
  prompts = 0;
  registrations = new Map(); // scope -> FakeRegistration
  registered = []; // [scriptURL, scope] of every register()
  registerError = null;
  installFails = false;
  subscribeError = null;
  listeners = [];

  install() {
    const browser = this;
    globalThis.PushManager = class PushManager {};
    globalThis.Notification = class Notification {
      static get permission() { return browser.permission; }
      static requestPermission() {
        browser.prompts++;
        browser.permission = browser.answer;
        return Promise.resolve(browser.answer);
      }
    };
    globalThis.navigator = {
      serviceWorker: {
        async register(url, { scope }) {
          browser.registered.push([url, scope]);
          if (browser.registerError) throw browser.registerError;
          let reg = browser.registrations.get(scope);
          if (!reg) {
            reg = new FakeRegistration(browser, scope, url, browser.installFails);
            browser.registrations.set(scope, reg);
          }
          return reg;
        },
        async getRegistration(url) {
          const scopes = [...browser.registrations.keys()].filter((s) => url.startsWith(s)).sort((a, b) => b.length - a.length);
          return scopes.length ? browser.registrations.get(scopes[0]) : undefined;
        },
        addEventListener(type, fn) { browser.listeners.push([type, fn]); },
      },
    };
  }

  // A message from the service worker to this window.
  message(data) {
    for (const [type, fn] of this.listeners) if (type === "message") fn({ data });
  }

  sub(scope = "https://example.com/") { return this.registrations.get(scope)?.pushManager.current ?? null; }
}

class FakeWorker {
  state = "installing";
  #fns = new Set();
  addEventListener(type, fn) { this.#fns.add(fn); }
  removeEventListener(type, fn) { this.#fns.delete(fn); }
  become(state) { this.state = state; for (const fn of [...this.#fns]) fn(); }
}

class FakeRegistration {
  constructor(browser, scope, scriptURL, fails) {
    this.scope = scope;
    this.active = null;
    this.installing = new FakeWorker();
    this.pushManager = new FakePushManager(browser);
    this.scriptURL = scriptURL;
    // It installs and activates (or fails to) after the caller's awaits.
    setImmediate(() => {
      if (fails) return this.installing.become("redundant");
      const w = this.installing;
      this.installing = null;
      this.active = w;
      w.become("activated");
    });
  }
}

let endpoints = 0;
class FakePushManager {
  current = null;
  subscribed = []; // the options of every subscribe()
  constructor(browser) { this.browser = browser; }
  async getSubscription() { return this.current; }
  async subscribe(options) {
    if (this.browser.hold) {
      this.browser.hold = false;
      await new Promise((resolve) => { this.browser.release = resolve; });
    }
    this.subscribed.push(options);
    if (this.browser.subscribeError) throw this.browser.subscribeError;
    this.current = new FakeSubscription(this, `https://fcm.googleapis.com/fcm/send/e${++endpoints}`, options.applicationServerKey);
    return this.current;
  }
}

class FakeSubscription {
  constructor(pm, endpoint, key) {
    this.pm = pm;
    this.endpoint = endpoint;
    this.options = { userVisibleOnly: true, applicationServerKey: key.buffer.slice(key.byteOffset, key.byteOffset + key.byteLength) };
    this.unsubscribed = false;
  }
  toJSON() { return { endpoint: this.endpoint, expirationTime: null, keys: { p256dh: "BP256", auth: "AUTH" } }; }
  async unsubscribe() {
    this.unsubscribed = true;
    if (this.pm.current === this) this.pm.current = null;
    return true;
  }
}

// fakeFetch answers the requests for a path with the next answer queued for it, else 200 {}.
function fakeFetch(answers = {}) {
  const calls = [];
  const fetch = async (url, init) => {
    const path = new URL(url).pathname.replace("/notify/inbox/", "");
    calls.push({ path, method: init.method, auth: init.headers.Authorization, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    if (init.signal?.aborted) throw init.signal.reason;
    const a = answers[`${init.method} ${path}`]?.shift() ?? [200, {}];
    if (a instanceof Error) throw a;
    const [status, body] = a;
    return { ok: status >= 200 && status < 300, status, json: async () => (body === undefined ? Promise.reject(new SyntaxError("no body")) : body) };
  };
  return { fetch, calls };
}

const keyAnswer = () => [[200, { publicKey: KEY }]];

let browser;
let conns = []; // closed after each test, also one that failed
beforeEach(() => {
  browser = new Browser();
  browser.install();
});
afterEach(() => {
  for (const n of conns) n.close();
  conns = [];
  delete globalThis.navigator;
  delete globalThis.Notification;
  delete globalThis.PushManager;
});

function setup(answers, opts = {}) {
  const { fetch, calls } = fakeFetch(answers);
  const n = connect("wss://example.com/notify/ws", { token: async () => "jwt1", WebSocket: FakeSocket, fetch, ...opts });
  conns.push(n);
  return { n, calls, push: n.push };
}

test("serviceWorkerURL: sw.js beside the socket, http(s)", () => {
  for (const [socket, want] of [
    ["wss://example.com/notify/ws", "https://example.com/notify/sw.js"],
    ["ws://localhost:8080/ws?epoch=e&offset=3", "http://localhost:8080/sw.js"],
    ["https://example.com/app/notify/ws", "https://example.com/app/notify/sw.js"],
  ]) {
    assert.equal(serviceWorkerURL(socket), want);
  }
});

test("state: unsupported without service workers, Notification or PushManager", async () => {
  for (const missing of ["navigator", "Notification", "PushManager"]) {
    browser.install();
    delete globalThis[missing];
    const { n } = setup();
    assert.equal(await n.push.state(), "unsupported", `without ${missing}`);
    await assert.rejects(n.push.enable(), (err) => err instanceof NotifyError && err.code === "unsupported", `enable without ${missing}`);
    await n.push.disable(); // nothing to undo
    n.close();
  }
});

test("enable: asks first, then the key, registers sw.js at /, subscribes and posts the subscription", async () => {
  const { n, calls } = setup({ "GET push/key": keyAnswer(), "POST push/subscriptions": [[201, { id: "sub1" }]] });
  assert.equal(await n.push.state(), "disabled");
  const enabled = n.push.enable();
  assert.equal(browser.prompts, 1, "the prompt is asked before any await, within the click's user gesture");
  assert.deepEqual(await enabled, { id: "sub1" });
  assert.deepEqual(browser.registered, [["https://example.com/notify/sw.js", "https://example.com/"]]);
  const pm = browser.registrations.get("https://example.com/").pushManager;
  assert.equal(pm.subscribed.length, 1);
  assert.equal(pm.subscribed[0].userVisibleOnly, true);
  assert.deepEqual(pm.subscribed[0].applicationServerKey, keyBytes(KEY));
  assert.deepEqual(calls.map((c) => [c.method, c.path, c.auth]), [
    ["GET", "push/key", "Bearer jwt1"],
    ["POST", "push/subscriptions", "Bearer jwt1"],
  ]);
  assert.deepEqual(calls[1].body, { endpoint: browser.sub().endpoint, expirationTime: null, keys: { p256dh: "BP256", auth: "AUTH" } });
  assert.equal(await n.push.state(), "enabled");
  n.close();
});

test("enable again: the same subscription is posted again, not remade; a new server key remakes it", async () => {
  const { n, calls } = setup({
    "GET push/key": [...keyAnswer(), ...keyAnswer(), [200, { publicKey: Buffer.from(new Uint8Array(65).fill(4)).toString("base64url") }]],
    "POST push/subscriptions": [[201, { id: "s1" }], [200, { id: "s1" }], [201, { id: "s2" }]],
  });
  await n.push.enable();
  const first = browser.sub();
  assert.deepEqual(await n.push.enable(), { id: "s1" });
  assert.equal(browser.sub(), first);
  assert.equal(browser.prompts, 1, "granted already: no prompt");
  assert.deepEqual(await n.push.enable(), { id: "s2" });
  assert.equal(first.unsubscribed, true, "the subscription of the old key is dropped");
  assert.notEqual(browser.sub(), first);
  assert.equal(browser.registered.length, 3, "register() is the browser's no-op when registered");
  assert.deepEqual(calls.filter((c) => c.method === "POST").map((c) => c.body.endpoint), [first.endpoint, first.endpoint, browser.sub().endpoint]);
  n.close();
});

test("the options serviceWorkerURL and serviceWorkerScope", async () => {
  const { n } = setup({ "GET push/key": keyAnswer() }, { serviceWorkerURL: "https://example.com/app-sw.js", serviceWorkerScope: "https://example.com/app/" });
  await n.push.enable();
  assert.deepEqual(browser.registered, [["https://example.com/app-sw.js", "https://example.com/app/"]]);
  assert.equal(await n.push.state(), "enabled");
  n.close();
});

test("refused or failed: the exact code, and nothing left behind", async (t) => {
  const notAllowed = Object.assign(new Error("Registration failed - permission denied"), { name: "NotAllowedError" });
  const abortError = Object.assign(new Error("Registration failed - push service error"), { name: "AbortError" });
  for (const tt of [
    { name: "permission denied at the prompt", answer: "denied", code: "permission_denied", asked: ["GET push/key"] },
    { name: "prompt dismissed", answer: "default", code: "permission_denied", asked: ["GET push/key"] },
    { name: "permission denied before", permission: "denied", code: "permission_denied", prompts: 0, state: "denied", asked: ["GET push/key"] },
    { name: "server without push", answers: { "GET push/key": [[404, { error: "not_found", reason: "no push" }]] }, code: "unsupported", status: 404, asked: ["GET push/key"] },
    { name: "key answer without a key", answers: { "GET push/key": [[200, {}]] }, code: "bad_response", asked: ["GET push/key"] },
    { name: "a key that is not base64url", answers: { "GET push/key": [[200, { publicKey: "not base64!" }]] }, code: "bad_response", asked: ["GET push/key"] },
    { name: "server down", answers: { "GET push/key": [new TypeError("Failed to fetch")] }, code: "network", status: 0, asked: ["GET push/key"] },
    { name: "sw.js does not register", registerError: new TypeError("bad HTTP response code (404)"), code: "service_worker", asked: ["GET push/key"] },
    { name: "sw.js fails to install", installFails: true, code: "service_worker", asked: ["GET push/key"] },
    { name: "subscribe not allowed", subscribeError: notAllowed, code: "permission_denied", asked: ["GET push/key"] },
    { name: "push service unreachable", subscribeError: abortError, code: "subscribe_failed", asked: ["GET push/key"] },
    { name: "endpoint refused by the server", answers: { "POST push/subscriptions": [[400, { error: "bad_request", reason: "push service not allowed" }]] }, code: "bad_request", status: 400 },
    { name: "too many subscriptions", answers: { "POST push/subscriptions": [[409, { error: "too_many", reason: "10 subscriptions" }]] }, code: "too_many", status: 409 },
    { name: "store down", answers: { "POST push/subscriptions": [[503, { error: "unavailable", reason: "try again" }]] }, code: "unavailable", status: 503 },
  ]) {
    await t.test(tt.name, async () => {
      browser = new Browser();
      browser.install();
      if (tt.answer) browser.answer = tt.answer;
      if (tt.permission) browser.permission = tt.permission;
      browser.registerError = tt.registerError ?? null;
      browser.installFails = tt.installFails ?? false;
      browser.subscribeError = tt.subscribeError ?? null;
      const { n, calls } = setup({ "GET push/key": keyAnswer(), ...tt.answers });
      await assert.rejects(n.push.enable(), (err) => {
        assert.ok(err instanceof NotifyError, String(err));
        assert.equal(err.code, tt.code);
        assert.equal(err.status, tt.status);
        return true;
      });
      assert.equal(browser.prompts, tt.prompts ?? 1);
      assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), tt.asked ?? ["GET push/key", "POST push/subscriptions"]);
      assert.equal(browser.sub(), null, "no subscription is left in the browser");
      assert.equal(await n.push.state(), tt.state ?? (browser.permission === "granted" ? "disabled" : browser.permission === "denied" ? "denied" : "disabled"));
      n.close();
    });
  }
});

test("enable: an abort while the prompt is open rejects with its reason, and subscribes nothing", async () => {
  let answer;
  browser.install();
  globalThis.Notification.requestPermission = () => { browser.prompts++; return new Promise((resolve) => { answer = resolve; }); };
  const { n } = setup({ "GET push/key": keyAnswer() });
  const abort = new AbortController();
  const enabled = n.push.enable({ signal: abort.signal });
  abort.abort(new Error("user left"));
  await assert.rejects(enabled, /user left/);
  answer("granted");
  await settle();
  assert.deepEqual(browser.registered, []);
  n.close();
});

test("enable: an abort during the POST drops the subscription it made", async () => {
  const abort = new AbortController();
  const { fetch, calls } = fakeFetch({ "GET push/key": keyAnswer() });
  const slow = async (url, init) => {
    if (init.method === "POST") {
      abort.abort(new Error("stop"));
      throw init.signal.reason;
    }
    return fetch(url, init);
  };
  const n = connect("wss://example.com/notify/ws", { token: "jwt1", WebSocket: FakeSocket, fetch: slow });
  conns.push(n);
  await assert.rejects(n.push.enable({ signal: abort.signal }), /stop/);
  assert.equal(browser.sub(), null);
  assert.equal(browser.registrations.get("https://example.com/").pushManager.subscribed.length, 1);
  assert.equal(calls.length, 1);
  n.close();
});

test("enable: an abort while the push service does not answer rejects, and undoes the late subscription", async () => {
  const { n, calls } = setup({ "GET push/key": keyAnswer() });
  browser.hold = true; // subscribe() waits (no route to the push service) until browser.release()
  const abort = new AbortController();
  const enabled = n.push.enable({ signal: abort.signal });
  while (!browser.release) await settle();
  abort.abort(new Error("took too long"));
  await assert.rejects(enabled, /took too long/);
  browser.release();
  await settle();
  const pm = browser.registrations.get("https://example.com/").pushManager;
  assert.equal(pm.subscribed.length, 1);
  assert.equal(pm.current, null, "the late subscription is undone");
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), ["GET push/key"]);
});

test("disable: deletes on the server, unsubscribes in the browser", async () => {
  const { n, calls } = setup({ "GET push/key": keyAnswer(), "DELETE push/subscriptions": [[204, undefined]] });
  await n.push.enable();
  const sub = browser.sub();
  await n.push.disable();
  assert.equal(sub.unsubscribed, true);
  assert.deepEqual(calls.at(-1), { path: "push/subscriptions", method: "DELETE", auth: "Bearer jwt1", body: { endpoint: sub.endpoint } });
  assert.equal(await n.push.state(), "disabled");
  // Nothing to disable: no request.
  await n.push.disable();
  assert.equal(calls.length, 3);
  n.close();
});

test("disable: the server unreachable still unsubscribes here, and rejects", async () => {
  const { n } = setup({ "GET push/key": keyAnswer(), "DELETE push/subscriptions": [new TypeError("Failed to fetch")] });
  await n.push.enable();
  const sub = browser.sub();
  await assert.rejects(n.push.disable(), (err) => err.code === "network" && err.status === 0);
  assert.equal(sub.unsubscribed, true);
  assert.equal(await n.push.state(), "disabled");
  n.close();
});

test("disable: both sides failing reject with the server's error; the browser's alone with unsubscribe_failed", async () => {
  const { n } = setup({
    "GET push/key": [...keyAnswer(), ...keyAnswer()],
    "DELETE push/subscriptions": [[503, { error: "unavailable", reason: "try again" }], [204, undefined]],
  });
  for (const want of ["unavailable", "unsubscribe_failed"]) {
    await n.push.enable();
    browser.sub().unsubscribe = async () => { throw new Error("the push service is unreachable"); };
    await assert.rejects(n.push.disable(), (err) => err instanceof NotifyError && err.code === want);
    browser.registrations.get("https://example.com/").pushManager.current = null;
  }
});

test("preferences, mute and subscriptions", async () => {
  const items = [{ id: "s1", endpoint: "https://fcm.googleapis.com/fcm/send/ab…", createdAt: "2026-12-06T05:00:00Z" }];
  const { n, calls } = setup({
    "GET push/preferences": [[200, { muted: [] }]],
    "PUT push/preferences": [[200, { muted: ["digest", "like"] }], [400, { error: "bad_request", reason: "too many types" }], [200, { muted: ["digest"] }]],
    "GET push/subscriptions": [[200, { items }]],
  });
  assert.deepEqual(await n.push.preferences(), { muted: [] });
  assert.deepEqual(await n.push.mute(new Set(["digest", "like"])), { muted: ["digest", "like"] });
  await assert.rejects(n.push.mute(["x"]), (err) => err.code === "bad_request" && err.status === 400);
  assert.deepEqual(await n.push.mute("digest"), { muted: ["digest"] });
  assert.deepEqual(await n.push.subscriptions(), items);
  assert.deepEqual(calls.map((c) => [c.method, c.path, c.body]), [
    ["GET", "push/preferences", undefined],
    ["PUT", "push/preferences", { muted: ["digest", "like"] }],
    ["PUT", "push/preferences", { muted: ["x"] }],
    ["PUT", "push/preferences", { muted: ["digest"] }],
    ["GET", "push/subscriptions", undefined],
  ]);
  n.close();
});

test("signed out: token() null rejects without a request", async () => {
  const { fetch, calls } = fakeFetch();
  const n = connect("wss://example.com/notify/ws", { token: async () => null, WebSocket: FakeSocket, fetch });
  conns.push(n);
  await assert.rejects(n.push.preferences(), (err) => err.code === "unauthorized" && err.status === 401);
  await assert.rejects(n.push.enable(), (err) => err.code === "unauthorized");
  assert.equal(calls.length, 0);
  assert.deepEqual(browser.registered, [], "nothing registered for a signed-out user");
  n.close();
});

test("the service worker renewed the subscription: the tab posts it to the server", async () => {
  const { n, calls } = setup({ "GET push/key": keyAnswer() });
  await n.push.enable();
  // The push service rotated it; the worker subscribed again and told the windows.
  const pm = browser.registrations.get("https://example.com/").pushManager;
  await pm.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(KEY) });
  browser.message({ notify: "other" });
  browser.message({ notify: "notify:pushsubscriptionchange" });
  await settle();
  await settle();
  assert.deepEqual(calls.map((c) => `${c.method} ${c.path}`), ["GET push/key", "POST push/subscriptions", "POST push/subscriptions"]);
  assert.equal(calls.at(-1).body.endpoint, browser.sub().endpoint);
  // A closed connection does not.
  n.close();
  browser.message({ notify: "notify:pushsubscriptionchange" });
  await settle();
  assert.equal(calls.length, 3);
});
