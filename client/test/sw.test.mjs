// The service worker (sw.js) run in a fake ServiceWorkerGlobalScope: what it shows for each push
// and what it acknowledges, where a click takes the user, and what it does when the push
// service renews the subscription. The same script runs in Chromium in
// example/push_e2e_test.go.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";

const src = readFileSync(new URL("../sw.js", import.meta.url), "utf8");
const ORIGIN = "https://app.example.com";

class FakeWindow {
  constructor(scope, url, { focused = false, visible = true, controlled = true } = {}) {
    Object.assign(this, { url, focused, controlled, visibilityState: visible ? "visible" : "hidden" });
    this.rec = scope.rec;
  }
  async focus() { this.rec(["focus", this.url]); this.focused = true; return this; }
  async navigate(url) {
    this.rec(["navigate", this.url, url]);
    if (!this.controlled) throw new TypeError("not controlled");
    this.url = url;
    return this;
  }
  postMessage(msg) { this.rec(["message", this.url, msg]); }
}

// scope evaluates sw.js in a fresh global with fakes of what it uses; log records, in order,
// every notification shown, request made and window moved.
function scope({ windows = [], showFails = false } = {}) {
  const log = [];
  // Entries are copied into this realm: the worker's objects have the vm context's prototypes.
  const rec = (entry) => log.push(structuredClone(entry));
  const listeners = {};
  const g = {
    log,
    rec,
    location: new URL(ORIGIN + "/notify/sw.js"),
    registration: {
      scope: ORIGIN + "/",
      async showNotification(title, options) {
        if (showFails) throw new TypeError("no permission");
        rec(["show", title, options]);
      },
      pushManager: { async subscribe(options) { rec(["subscribe", options]); return {}; } },
    },
    clients: {
      async matchAll(options) { rec(["matchAll", options]); return g.windows; },
      async openWindow(url) { rec(["open", url]); return null; },
      async claim() { rec(["claim"]); },
    },
    skipWaiting() { rec(["skipWaiting"]); },
    addEventListener(type, fn) { listeners[type] = fn; },
    async fetch(url, init) {
      rec(["fetch", url, init.method, JSON.parse(init.body)]);
      return { ok: true, status: 200 };
    },
    URL,
    JSON,
  };
  g.self = g;
  g.windows = windows.map(([url, opts]) => new FakeWindow(g, url, opts));
  vm.createContext(g);
  vm.runInContext(src, g);
  // fire dispatches an event and resolves once what it passed to waitUntil settled.
  g.fire = async (type, init = {}) => {
    const waits = [];
    listeners[type]({ ...init, waitUntil: (p) => waits.push(p) });
    await Promise.all(waits);
    return waits.length;
  };
  return g;
}

const data = (text) => ({ json: () => JSON.parse(text), text: () => text });
const payload = (over = {}) => JSON.stringify({
  v: 1, id: "n1", type: "comment", title: "New comment", body: "Bob: nice", icon: "/icon.png",
  url: "/posts/7#c3", tag: "post-7", ack: "cap.abc", ackURL: "/notify/inbox/push/ack", ...over,
});
const notifData = { notify: 1, id: "n1", url: "/posts/7#c3", ack: "cap.abc", ackURL: "/notify/inbox/push/ack" };

test("push: shows the notification, then acks it seen", async () => {
  const g = scope();
  assert.equal(await g.fire("push", { data: data(payload()) }), 1);
  assert.deepEqual(g.log, [
    ["show", "New comment", { body: "Bob: nice", icon: "/icon.png", tag: "post-7", data: notifData }],
    ["fetch", ORIGIN + "/notify/inbox/push/ack", "POST", { ack: "cap.abc", op: "seen" }],
  ]);
});

test("push: what is not a string is left out; without an ack nothing is acked", async () => {
  const g = scope();
  await g.fire("push", { data: data(payload({ body: 5, icon: null, tag: "", url: {}, ack: undefined })) });
  assert.deepEqual(g.log, [["show", "New comment", { data: { notify: 1, id: "n1", url: undefined, ack: undefined, ackURL: "/notify/inbox/push/ack" } }]]);
});

test("push: an ackURL on another origin is not called", async () => {
  for (const ackURL of ["https://evil.example/ack", "//evil.example/ack", "javascript:alert(1)"]) {
    const g = scope();
    await g.fire("push", { data: data(payload({ ackURL })) });
    assert.deepEqual(g.log.map((e) => e[0]), ["show"], ackURL);
  }
});

test("push: garbage shows nothing and acks nothing", async () => {
  for (const [name, d] of [
    ["no data", null],
    ["not JSON", data("{not json")],
    ["JSON null", data("null")],
    ["a string", data('"hello"')],
    ["an array", data("[1,2]")],
    ["another version", data(payload({ v: 2 }))],
    ["no version", data(payload({ v: undefined }))],
    ["no title", data(payload({ title: undefined }))],
    ["empty title", data(payload({ title: "" }))],
    ["title not a string", data(payload({ title: 42 }))],
  ]) {
    const g = scope();
    await g.fire("push", { data: d });
    assert.deepEqual(g.log, [], name);
  }
});

test("push: a notification the browser refuses to show is not acked", async () => {
  const g = scope({ showFails: true });
  await g.fire("push", { data: data(payload()) });
  assert.deepEqual(g.log, []);
});

test("click: closes it, takes a window to its URL or opens one, and acks it read", async (t) => {
  const url = ORIGIN + "/posts/7#c3";
  for (const tt of [
    { name: "a window on the URL: focused", windows: [[ORIGIN + "/", { focused: true }], [url]], want: [["focus", url]] },
    { name: "a focused window elsewhere in the app: navigated there", windows: [[ORIGIN + "/a"], [ORIGIN + "/b", { focused: true }]],
      want: [["navigate", ORIGIN + "/b", url], ["focus", url]] },
    { name: "no window focused: a visible one", windows: [[ORIGIN + "/a", { visible: false }], [ORIGIN + "/b"]],
      want: [["navigate", ORIGIN + "/b", url], ["focus", url]] },
    { name: "a window this worker does not control: a new window", windows: [[ORIGIN + "/a", { controlled: false }]],
      want: [["navigate", ORIGIN + "/a", url], ["open", url]] },
    { name: "no window: a new one", windows: [], want: [["open", url]] },
    { name: "a URL of another origin: a new window", windows: [[ORIGIN + "/"]], url: "https://docs.example.org/x",
      want: [["open", "https://docs.example.org/x"]] },
    { name: "no URL: the scope", windows: [], url: undefined, want: [["open", ORIGIN + "/"]] },
    { name: "a javascript: URL: the scope", windows: [], url: "javascript:alert(1)", want: [["open", ORIGIN + "/"]] },
  ]) {
    await t.test(tt.name, async () => {
      const g = scope({ windows: tt.windows });
      let closed = 0;
      const notification = { data: { ...notifData, url: "url" in tt ? tt.url : notifData.url }, close: () => closed++ };
      assert.equal(await g.fire("notificationclick", { notification }), 1);
      assert.equal(closed, 1);
      const moves = g.log.filter((e) => ["focus", "navigate", "open"].includes(e[0]));
      assert.deepEqual(moves, tt.want);
      assert.deepEqual(g.log.find((e) => e[0] === "matchAll")?.[1] ?? { type: "window", includeUncontrolled: true }, { type: "window", includeUncontrolled: true });
      assert.deepEqual(g.log.filter((e) => e[0] === "fetch"), [["fetch", ORIGIN + "/notify/inbox/push/ack", "POST", { ack: "cap.abc", op: "read" }]]);
    });
  }
});

test("click: a notification that is not notify's is left to the app's own handlers", async () => {
  for (const d of [null, "x", { url: "/a" }, { notify: 2 }]) {
    const g = scope({ windows: [[ORIGIN + "/"]] });
    let closed = 0;
    assert.equal(await g.fire("notificationclick", { notification: { data: d, close: () => closed++ } }), 0);
    assert.equal(closed, 0);
    assert.deepEqual(g.log, []);
  }
});

test("pushsubscriptionchange: subscribes again with the old key unless the browser did, and tells the windows", async () => {
  const key = new Uint8Array([4, 1, 2]).buffer;
  const g = scope({ windows: [[ORIGIN + "/a"], [ORIGIN + "/b"]] });
  await g.fire("pushsubscriptionchange", { oldSubscription: { options: { applicationServerKey: key } }, newSubscription: null });
  const msg = { notify: "notify:pushsubscriptionchange" };
  assert.deepEqual(g.log.filter((e) => e[0] !== "matchAll"), [
    ["subscribe", { userVisibleOnly: true, applicationServerKey: key }],
    ["message", ORIGIN + "/a", msg], ["message", ORIGIN + "/b", msg],
  ]);

  const renewed = scope({ windows: [[ORIGIN + "/a"]] });
  await renewed.fire("pushsubscriptionchange", { oldSubscription: null, newSubscription: {} });
  assert.deepEqual(renewed.log.filter((e) => e[0] !== "matchAll"), [["message", ORIGIN + "/a", msg]]);

  // Nothing known of the old one (Chrome gives neither): nothing to do, no window told.
  const blind = scope({ windows: [[ORIGIN + "/a"]] });
  await blind.fire("pushsubscriptionchange", {});
  assert.deepEqual(blind.log, []);
});

test("install and activate: a new version takes over at once", async () => {
  const g = scope();
  await g.fire("install");
  await g.fire("activate");
  assert.deepEqual(g.log, [["skipWaiting"], ["claim"]]);
});
