// The page client/ci.sh bundles with esbuild, importing the package by name as installed from
// its tarball, with React from npm. example/npm_e2e_test.go drives it in Chromium against the
// example app: ?user=NAME picks the user (the app's demo token endpoint).
import { createElement as h, StrictMode, useState } from "react";
import { createRoot } from "react-dom/client";
import { connect, NotifyError } from "@gonotify/notify";
import { useNotify, useEvent, useInbox } from "@gonotify/notify/react";

const user = new URLSearchParams(location.search).get("user") ?? "alice";
async function token() {
  const res = await fetch("/demo/token?user=" + encodeURIComponent(user), { cache: "no-store" });
  if (!res.ok) throw new Error("token: " + res.status);
  window.__tokens = (window.__tokens ?? 0) + 1;
  return (await res.json()).token;
}

// The core API, without React: connected() and a NotifyError with its status.
window.__core = (async () => {
  const conn = connect("/notify/ws", { token });
  const who = await conn.connected({ signal: AbortSignal.timeout(5000) });
  let error;
  try {
    await conn.inbox.markRead("no-such-notification");
  } catch (err) {
    error = { isNotifyError: err instanceof NotifyError, code: err.code, status: err.status };
  }
  conn.close();
  return { user: who.user, error };
})();

function App() {
  const { connection, state } = useNotify("/notify/ws", { token });
  const { items, unread, inbox } = useInbox(connection);
  const [events, setEvents] = useState([]);
  useEvent(connection, "message", (ev) => setEvents((list) => [...list, { id: ev.id, stored: !!ev.notification, text: ev.data?.text }]));
  return h("div", null,
    h("p", { id: "state" }, state),
    h("p", { id: "unread" }, String(unread)),
    h("ul", { id: "items" }, items.map((n) => h("li", { key: n.id, "data-id": n.id, "data-read": n.readAt ? "1" : "0" },
      h("span", { className: "text" }, n.data?.text ?? ""),
      h("button", { type: "button", onClick: () => inbox.markRead(n.id) }, "read")))),
    h("ul", { id: "events" }, events.map((e, i) => h("li", { key: i, "data-id": e.id, "data-stored": e.stored ? "1" : "0" }, e.text))),
  );
}

createRoot(document.getElementById("root")).render(h(StrictMode, null, h(App)));
