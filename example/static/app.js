// The example's page: a login form, then a live notification list fed by the notify client.
import { connect } from "/notify/client.js";

const $ = (sel) => document.querySelector(sel);
let client = null; // the notify connection while logged in

// Each window remembers its own user, so that two windows of one browser can be two users:
// every API call names it (the server keeps one login cookie per user).
const USER_KEY = "notify-demo-user";
function api(url, init = {}) {
  const user = sessionStorage.getItem(USER_KEY);
  const headers = new Headers(init.headers);
  if (user) headers.set("X-User", user);
  return fetch(url, { ...init, headers });
}

// ---- session ----

// A window that has logged in goes on as its user, also after a reload. A new window asks who
// you are, with an empty form: it may be the second window of the README's tour, about to log
// in as another user, so it does not suggest the user already logged in in this browser.
async function start() {
  if (sessionStorage.getItem(USER_KEY)) {
    const res = await api("/api/me");
    if (res.ok) {
      const me = await res.json();
      showApp(me.user, me.node);
      return;
    }
    sessionStorage.removeItem(USER_KEY);
  }
  showLogin();
}

// notice says why the form shows, e.g. that the user was signed out everywhere.
function showLogin(notice = "") {
  client?.close();
  client = null;
  $("#login-notice").textContent = notice;
  $("#session").hidden = true;
  $("#app-view").hidden = true;
  $("#login-view").hidden = false;
  $("#login-form [name=name]").focus();
}

function showApp(user, node = "") {
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#session").hidden = false;
  $("#user-name").textContent = user;
  $("#node").textContent = node ? `node ${node}` : "";
  $("#refresh-needed").hidden = true;
  $("#avatar").textContent = user.slice(0, 1).toUpperCase();
  document.title = `${user} · notify demo`;
  $("#list").replaceChildren();
  $("#archive").replaceChildren();
  $("#archive-box").open = false;
  nextPage = "";
  $("#more").hidden = true;
  $("#topics").replaceChildren();
  updateUnread();

  // The tabs of this browser share one connection per user: two windows logged in as two
  // users (see USER_KEY) must not share one, so the user names the shared connection.
  client = connect("/notify/ws", { token: fetchToken, shared: user });
  client.onState((state, info) => {
    const el = $("#conn-state");
    // Closed with 4001 and no fresh token: signed out (on this or another tab or device).
    const signedOut = state === "closed" && info?.code === 4001;
    el.textContent = signedOut ? "signed out" : state;
    el.dataset.state = state;
    el.dataset.transport = client.transport; // "sse" when the network refused WebSocket
    if (state === "connected") showPresence(user); // this session included
    // The shared connection asked another tab's fetchToken, which found the user signed out.
    if (signedOut && sessionStorage.getItem(USER_KEY)) {
      sessionStorage.removeItem(USER_KEY);
      setTimeout(() => showLogin("You were signed out."), 0);
    }
  });
  // After a reconnect the client asks for what it missed; see noteRecovery.
  seen.clear();
  unsure.clear();
  client.onRecovery(noteRecovery);
  client.on("*", noteStream);
  // Every notification, of any type: live ones (topics, broadcasts), and the user's stored
  // ones, which carry the inbox's notification (their read state is the inbox's). The inbox's
  // changes (read, archive...) do not come here: see onInbox.
  client.on("*", (ev) => {
    addNotification(ev, ev.notification ? { inbox: true, read: !!ev.notification.readAt } : {});
    toast(ev);
  });
  startInbox(client);
}

// ---- missed notifications ----

// When the server cannot replay what a page missed (too much, too old, or its history was lost,
// as when an in-memory server restarts), the client reports recovered: false for that stream:
// the user's own (topic undefined) or a topic's. A real app would refetch its notifications
// from its API there. This page says that some may be missing, but only when it could have had
// one:
// - it had an event of that stream already, so more may have followed while it was away (after
//   a restart the old history is gone, and nothing tells how far it went);
// - or, if it had none, the stream's next event shows that others came before it: its offset is
//   above 1, so it is not the stream's first. Without this, a page that had received nothing
//   would say that notifications are missing after every restart of the server.
const seen = new Set(); // streams ("" for the user's own) the page has had an event of
const unsure = new Set(); // streams that failed to recover before the page had an event of them
const streamOf = (topic) => topic ?? "";

function noteRecovery({ topic, recovered }) {
  // The user's own notifications are kept in the inbox: what could not be replayed is there,
  // and the list is fetched again on every connect (see startInbox). Only topics can miss.
  if (topic === undefined) return;
  const stream = streamOf(topic);
  if (recovered) unsure.delete(stream);
  else if (seen.has(stream)) showMissed();
  else unsure.add(stream);
}

function noteStream(ev) {
  if (!(ev.offset > 0)) return; // a broadcast or an ephemeral event: no stream, no recovery
  const stream = streamOf(ev.topic);
  if (unsure.delete(stream) && ev.offset > 1) showMissed();
  seen.add(stream);
}

// A topic unsubscribed is forgotten by the client, position and all; subscribed again, it
// starts afresh.
function forgetTopic(topic) {
  seen.delete(topic);
  unsure.delete(topic);
}

function showMissed() {
  $("#refresh-needed").hidden = false;
}

// fetchToken is called by the client on every (re)connect and before the token expires.
// Returning null tells the client we are logged out: it stops.
async function fetchToken() {
  const res = await api("/api/token");
  if (res.status === 401) {
    sessionStorage.removeItem(USER_KEY);
    // Once the client has stopped, and not before: its state then says why (e.g. signed out,
    // close 4001). A shared connection stops when its host has this answer, a moment later.
    const c = client;
    if (!c || c.state === "closed") {
      setTimeout(() => showLogin("You were signed out."), 0);
    } else {
      const off = c.onState((state) => {
        if (state !== "closed") return;
        off();
        setTimeout(() => showLogin("You were signed out."), 0);
      });
    }
    return null;
  }
  if (!res.ok) throw new Error(`token: HTTP ${res.status}`);
  return (await res.json()).token;
}

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = new FormData(e.target).get("name").trim();
  const res = await postJSON("/api/login", { name });
  const body = await res.json();
  if (!res.ok) {
    $("#login-error").textContent = body.message;
    return;
  }
  $("#login-error").textContent = "";
  e.target.reset();
  sessionStorage.setItem(USER_KEY, body.user);
  showApp(body.user, body.node);
});

$("#logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" });
  sessionStorage.removeItem(USER_KEY);
  showLogin();
});

$("#signout-everywhere").addEventListener("click", async () => {
  const res = await api("/api/signout-everywhere", { method: "POST" });
  if (!res.ok) $("#presence").textContent = "Sign out failed: try again.";
  // This tab's session closes with 4001 like every other: the client asks fetchToken for a
  // fresh token, gets none, and stops.
});

// ---- presence ----

async function showPresence(user) {
  const res = await api(`/api/presence?user=${encodeURIComponent(user)}`);
  const el = $("#presence");
  if (!res.ok) {
    el.textContent = `Cannot tell whether ${user} is online.`;
    return;
  }
  const p = await res.json();
  const nodes = new Set(p.sessions.map((s) => s.node)).size;
  el.textContent = p.online
    ? `${p.user} is online: ${p.sessions.length} session(s) on ${nodes} server(s).`
    : `${p.user} is offline.`;
  el.dataset.sessions = String(p.sessions.length);
}

$("#presence-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const user = e.target.user.value.trim() || $("#user-name").textContent;
  showPresence(user);
});

// ---- notifications ----

function describe(ev) {
  const d = ev.data;
  if (d == null) return ev.type;
  if (typeof d === "string") return d;
  return d.text ?? d.message ?? d.title ?? JSON.stringify(d);
}

// The list holds two kinds of items, newest first: the user's inbox notifications (stored,
// data-inbox set), whose read state and the badge come from the inbox and change in every tab
// at once, and the live events of topics and broadcasts, which are not stored and are read in
// this page only.
function addNotification(ev, { inbox = false, read = false } = {}) {
  const list = $("#list");
  const existing = list.querySelector(`li[data-id="${CSS.escape(ev.id)}"]`);
  if (existing) {
    if (inbox) existing.classList.toggle("unread", !read);
    return;
  }
  const li = document.createElement("li");
  li.className = read ? "notification" : "notification unread";
  li.dataset.id = ev.id;
  li.dataset.time = String(timeKey(ev.time));
  if (inbox) li.dataset.inbox = "";
  const from = ev.data?.from ? `from ${ev.data.from}` : "";
  const where = ev.topic ? `#${ev.topic}` : "";
  li.innerHTML = `<span class="dot"></span>
    <div class="body"><div class="text"></div>
    <div class="meta"><span class="type"></span><span class="where"></span><span class="from"></span><time></time></div></div>`;
  li.querySelector(".text").textContent = describe(ev);
  li.querySelector(".type").textContent = ev.type;
  li.querySelector(".where").textContent = where;
  li.querySelector(".from").textContent = from;
  const t = new Date(ev.time);
  li.querySelector("time").textContent = isNaN(t) ? "" : t.toLocaleTimeString();
  if (inbox) {
    const archive = document.createElement("button");
    archive.type = "button";
    archive.className = "link archive";
    archive.title = "Archive";
    archive.textContent = "Archive";
    archive.addEventListener("click", (e) => {
      e.stopPropagation();
      client?.inbox.archive(ev.id).catch(inboxFailed);
    });
    li.append(archive);
  }
  li.addEventListener("click", () => markRead(li));
  // Newest first, by the notification's time (then ID, as the inbox orders them): what a
  // reload or a recovery brings goes where it belongs, not on top.
  const time = Number(li.dataset.time);
  const after = [...list.children].find((other) => {
    const t = Number(other.dataset.time);
    return t < time || (t === time && other.dataset.id < ev.id);
  });
  list.insertBefore(li, after ?? null);
  updateUnread();
}

// timeKey turns an RFC 3339 time into microseconds since 1970 (Date.parse keeps only
// milliseconds, and two notifications may be that close).
function timeKey(time) {
  const ms = Date.parse(time);
  if (isNaN(ms)) return 0;
  const frac = /\.(\d+)/.exec(time)?.[1] ?? "";
  return Math.floor(ms / 1000) * 1e6 + Number(frac.slice(0, 6).padEnd(6, "0"));
}

function markRead(li) {
  if (!li.classList.contains("unread")) return;
  li.classList.remove("unread");
  if ("inbox" in li.dataset) client?.inbox.markRead(li.dataset.id).catch(inboxFailed);
  updateUnread();
}

$("#mark-all-read").addEventListener("click", () => {
  document.querySelectorAll("#list li.unread").forEach((li) => li.classList.remove("unread"));
  client?.inbox.markAllRead().catch(inboxFailed);
  updateUnread();
});

$("#bell").addEventListener("click", () => $("#list").scrollIntoView({ behavior: "smooth" }));
$("#dismiss-missed").addEventListener("click", () => { $("#refresh-needed").hidden = true; });

// The badge: the inbox's unread count, the same in every tab and device, plus the unread live
// events of topics and broadcasts in this page.
function updateUnread() {
  const live = document.querySelectorAll("#list li.notification.unread:not([data-inbox])").length;
  const n = (client?.inbox.unread ?? 0) + live;
  const badge = $("#badge");
  badge.textContent = String(n);
  badge.dataset.count = String(n);
  $("#empty").hidden = $("#list").children.length > 0;
}

// ---- the inbox ----

let nextPage = ""; // the cursor of the list's next page

// startInbox fills the list from the inbox on every connect (a reload, a restart, a recovery
// that failed) and follows its live changes. client.inbox fetches the counts on every connect.
function startInbox(c) {
  c.inbox.onChange(({ change }) => {
    if (c === client && change) onInbox(change);
    updateUnread();
  });
  c.onState((state) => { if (state === "connected" && c === client) loadInbox(); });
}

async function loadInbox(cursor = "") {
  const c = client;
  try {
    const page = await c.inbox.list({ cursor });
    if (c !== client) return;
    for (const n of page.items) showStored(n);
    if (!cursor || nextPage === cursor) nextPage = page.next ?? "";
    $("#more").hidden = !nextPage;
  } catch (err) {
    inboxFailed(err);
  }
}

// A stored notification as the page shows it.
function showStored(n) {
  addNotification({ id: n.id, type: n.type, data: n.data, time: n.createdAt }, { inbox: true, read: !!n.readAt });
}

function inboxItems(ids) {
  const items = [...document.querySelectorAll("#list li[data-inbox]")];
  return ids ? items.filter((li) => ids.includes(li.dataset.id)) : items;
}

// onInbox applies a change made in any tab or device. A new notification comes to on("*").
function onInbox(change) {
  switch (change.op) {
    case "read":
    case "unread":
      for (const li of inboxItems(change.ids)) li.classList.toggle("unread", change.op === "unread");
      break;
    case "read-all":
      for (const li of inboxItems()) li.classList.remove("unread");
      break;
    case "archive":
    case "delete":
      for (const li of inboxItems(change.ids)) li.remove();
      updateUnread();
      if ($("#archive-box").open) loadArchive();
      break;
    case "unarchive":
      loadInbox();
      if ($("#archive-box").open) loadArchive();
      break;
  }
}

// The archive shows when opened, from the inbox, with a button to put each one back.
async function loadArchive() {
  const c = client;
  try {
    const page = await c.inbox.list({ archived: true, limit: 100 });
    if (c !== client) return;
    $("#archive").replaceChildren(...page.items.map((n) => {
      const li = document.createElement("li");
      li.className = "archived";
      li.dataset.id = n.id;
      li.innerHTML = `<span class="text"></span><button type="button" class="link unarchive">Unarchive</button>`;
      li.querySelector(".text").textContent = describe({ type: n.type, data: n.data });
      li.querySelector("button").addEventListener("click", () => c.inbox.unarchive(n.id).catch(inboxFailed));
      return li;
    }));
  } catch (err) {
    inboxFailed(err);
  }
}

$("#archive-box").addEventListener("toggle", () => { if ($("#archive-box").open) loadArchive(); });

function inboxFailed(err) {
  console.warn("inbox:", err.code ?? err, err.reason ?? "");
}

$("#more").addEventListener("click", () => loadInbox(nextPage));

// Toasts stack in a column of their own under the side panel (see style.css), never over the
// controls; the newest comes first, and at most MAX_TOASTS show at once.
const MAX_TOASTS = 3;
function toast(ev) {
  const el = document.createElement("div");
  el.className = "toast";
  el.innerHTML = `<strong></strong><span></span>`;
  el.querySelector("strong").textContent = ev.topic ? `${ev.type} · #${ev.topic}` : ev.type;
  el.querySelector("span").textContent = describe(ev);
  const remove = () => el.remove();
  el.addEventListener("click", remove);
  setTimeout(remove, 5000);
  const toasts = $("#toasts");
  toasts.prepend(el);
  while (toasts.children.length > MAX_TOASTS) toasts.lastElementChild.remove();
}

// ---- sending ----

const sendForm = $("#send-form");
sendForm.addEventListener("change", () => {
  const target = new FormData(sendForm).get("target");
  $("#to-field").hidden = target === "everyone";
  $("#to-label").textContent = target === "topic" ? "Topic" : "User";
  sendForm.to.placeholder = target === "topic" ? "news" : "bob";
});

// The status line says what became of the last send, and only of the last: it is cleared when
// the form changes and while a send is on its way, so a "Sent." never stays next to a message
// that was not sent.
sendForm.addEventListener("input", () => status(""));
sendForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const f = new FormData(sendForm);
  const body = { type: f.get("type").trim(), data: { text: f.get("text"), from: $("#user-name").textContent } };
  const to = f.get("to").trim();
  if (f.get("target") !== "everyone") {
    if (!to) return status("Whom to? Fill in the name.", true);
    body[f.get("target")] = to;
  }
  const button = sendForm.querySelector("button[type=submit]");
  button.disabled = true;
  status("Sending…");
  try {
    const res = await postJSON("/api/send", body);
    if (res.ok) {
      status("Sent.");
      sendForm.text.value = "";
    } else {
      const reason = (await res.json().catch(() => ({}))).message ?? `HTTP ${res.status}`;
      status(`Not sent: ${reason}`, true);
    }
  } catch {
    status("Not sent: the server cannot be reached.", true);
  } finally {
    button.disabled = false;
  }
});

function status(text, isError = false) {
  const el = $("#send-status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// ---- topics ----

$("#topic-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const topic = e.target.topic.value.trim();
  if (!topic || !client || $(`#topics li[data-topic="${CSS.escape(topic)}"]`)) return;
  const chip = document.createElement("li");
  chip.dataset.topic = topic;
  chip.className = "pending";
  chip.innerHTML = `<span></span><button type="button" title="Unsubscribe">&times;</button>`;
  chip.querySelector("span").textContent = `#${topic}`;
  chip.querySelector("button").addEventListener("click", () => {
    client?.unsubscribe(topic);
    forgetTopic(topic);
    chip.remove();
  });
  $("#topics").append(chip);
  $("#topic-error").textContent = "";
  e.target.reset();
  forgetTopic(topic);
  try {
    await client.subscribe(topic);
    chip.className = "subscribed";
  } catch (err) {
    chip.remove();
    forgetTopic(topic);
    $("#topic-error").textContent = `Cannot subscribe to ${topic}: ${err.reason ?? err.message}`;
  }
});

function postJSON(url, body) {
  return api(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
}

start();
