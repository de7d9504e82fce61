// The notify service worker (PROTOCOL.md, "Web Push"), served by the hub at <prefix>/sw.js and
// registered by connection.push.enable(). It shows the notifications the server pushes, marks
// each seen through the inbox, and on a click focuses a tab of the app on the notification's
// URL (or opens one) and marks it read. It has no fetch handler: the pages it controls load as
// if it were not there.
//
// A classic script without dependencies, so that an app with a service worker of its own can
// run it there: importScripts("/notify/sw.js"), and give that worker's URL to connect() as
// serviceWorkerURL. It handles only the pushes and notifications that are notify's (payload
// "v": 1, notification data "notify": 1) and leaves the others to the app's handlers.
"use strict";

(() => {
  // The version of the payload this worker reads.
  const PAYLOAD_VERSION = 1;
  // What the worker posts to the app's windows after it renewed the subscription.
  const RENEWED = "notify:pushsubscriptionchange";

  const text = (v) => (typeof v === "string" && v !== "" ? v : undefined);

  // parse returns the payload of a push that is notify's, or null: no data, not JSON, another
  // version, or no title. The browser may then show a generic notification of its own (a push
  // to a userVisibleOnly subscription is expected to show one); this worker shows nothing.
  function parse(data) {
    if (!data) return null;
    let p;
    try {
      p = data.json();
    } catch {
      return null;
    }
    if (p === null || typeof p !== "object" || p.v !== PAYLOAD_VERSION || !text(p.title)) return null;
    return p;
  }

  // sameOrigin returns url (relative to this worker) as an absolute URL when it is on the
  // worker's origin, or undefined: an acknowledgement never goes anywhere else.
  function sameOrigin(url) {
    if (!text(url)) return undefined;
    try {
      const u = new URL(url, self.location.href);
      return u.origin === self.location.origin ? u.href : undefined;
    } catch {
      return undefined;
    }
  }

  // target returns the http(s) URL a click opens (relative to the scope), or the scope itself.
  function target(url) {
    const scope = self.registration.scope;
    if (!text(url)) return scope;
    try {
      const u = new URL(url, scope);
      return u.protocol === "https:" || u.protocol === "http:" ? u.href : scope;
    } catch {
      return scope;
    }
  }

  // ack marks the notification seen or read with the capability the payload carried; it needs
  // no token. A failure is dropped: the notification stays unseen or unread in the inbox.
  function ack(d, op) {
    const url = sameOrigin(d.ackURL);
    if (!url || !text(d.ack)) return Promise.resolve();
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ack: d.ack, op }),
      cache: "no-store",
    }).then(() => {}, () => {});
  }

  async function onPush(event) {
    const p = parse(event.data);
    if (!p) return;
    const data = { notify: 1, id: text(p.id), url: text(p.url), ack: text(p.ack), ackURL: text(p.ackURL) };
    const options = { data };
    for (const k of ["body", "icon", "tag"]) if (text(p[k])) options[k] = p[k];
    await self.registration.showNotification(p.title, options);
    await ack(data, "seen");
  }

  // open shows url: in the window already on it, else in a window of the app navigated to it
  // (the focused one first), else in a new window. A window this worker does not control
  // cannot be navigated, and a URL of another origin opens in a new window. Only one focus()
  // or openWindow() is made: a click allows one.
  async function open(url) {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const there = windows.find((w) => w.url === url);
    if (there) return there.focus();
    if (windows.length > 0 && new URL(url).origin === self.location.origin) {
      const w = windows.find((c) => c.focused) ?? windows.find((c) => c.visibilityState === "visible") ?? windows[0];
      let moved = null;
      try {
        moved = await w.navigate(url);
      } catch {
        // not controlled by this worker
      }
      if (moved) return moved.focus();
    }
    return self.clients.openWindow(url);
  }

  function onClick(event) {
    const d = event.notification.data;
    if (d === null || typeof d !== "object" || d.notify !== 1) return;
    event.notification.close();
    event.waitUntil(Promise.all([open(target(d.url)).catch(() => {}), ack(d, "read")]));
  }

  // The push service replaced or expired the subscription. The worker has no token to tell the
  // server, so: it subscribes again with the same key when the browser has not done so (the
  // server's pushes to the old endpoint fail with 404 or 410 and it deletes it), and tells the
  // app's open windows, whose connection.push sends the new subscription to the server. With no
  // window open, the server learns it at the next enable().
  async function onSubscriptionChange(event) {
    if (!event.newSubscription) {
      const key = event.oldSubscription?.options?.applicationServerKey;
      if (!key) return;
      await self.registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
    }
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    for (const w of windows) w.postMessage({ notify: RENEWED });
  }

  self.addEventListener("push", (event) => event.waitUntil(onPush(event).catch(() => {})));
  self.addEventListener("notificationclick", onClick);
  self.addEventListener("pushsubscriptionchange", (event) => event.waitUntil(onSubscriptionChange(event).catch(() => {})));
  // Nothing cached, nothing to migrate: a new version takes over at once.
  self.addEventListener("install", () => self.skipWaiting());
  self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));
})();
