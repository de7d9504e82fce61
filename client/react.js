// React hooks for the notify browser client: @gonotify/notify/react. React is a peer
// dependency; the core (notify.js) needs none.
//
//   const { connection, state } = useNotify("/notify/ws", { token: fetchToken });
//   useEvent(connection, "order.shipped", (ev) => toast(ev.data));
//   const { items, unread } = useInbox(connection);
import { useCallback, useEffect, useRef, useState } from "react";
import { connect } from "./notify.js";

/**
 * useNotify opens a connection to url while the component is mounted and url is not null, and
 * closes it on unmount or when url changes. options are read when connecting, except `token`:
 * a function is always called in its latest version, so an inline arrow does not reconnect.
 * Returns {connection, state, user}: connection is null while url is null.
 */
export function useNotify(url, options = {}) {
  const latest = useRef(options);
  latest.current = options;
  const [value, setValue] = useState({ connection: null, state: "closed", user: undefined });
  useEffect(() => {
    if (url == null) {
      setValue({ connection: null, state: "closed", user: undefined });
      return undefined;
    }
    const opts = latest.current;
    const token = typeof opts.token === "function" ? () => latest.current.token() : opts.token;
    const connection = connect(url, { ...opts, token });
    setValue({ connection, state: connection.state, user: connection.user });
    const off = connection.onState((state) => setValue({ connection, state, user: connection.user }));
    return () => {
      off();
      connection.close();
    };
  }, [url]);
  return value;
}

/**
 * useEvent calls handler for every event of type on connection (see Connection.on; "*" for
 * every one) while mounted. The latest handler is called: it need not be memoized.
 */
export function useEvent(connection, type, handler) {
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    if (!connection) return undefined;
    return connection.on(type, (ev) => latest.current(ev));
  }, [connection, type]);
}

const EMPTY = { items: [], counts: null, next: undefined, loading: false, error: null };

/**
 * useInbox returns the user's inbox: {items, unread, counts, loading, error, hasMore, more,
 * reload, inbox}. items is the first page (limit, default 20), newest first, fetched on every
 * (re)connect, plus the pages more() added; it follows the live changes of every tab and device
 * (new notifications, read, seen, archived, deleted), re-rendering on each. Change it with
 * inbox.markRead(id) and the like: the change comes back live.
 */
export function useInbox(connection, { limit = 20 } = {}) {
  const [st, setSt] = useState(EMPTY);
  const loads = useRef(null); // the AbortController of the current first-page load
  // The live changes that came while the first page loaded: its answer may be older than they
  // are, so they are applied to it again.
  const during = useRef(null);

  const reload = useCallback(async () => {
    if (!connection) return;
    loads.current?.abort();
    const ctl = (loads.current = new AbortController());
    const changes = (during.current = []);
    setSt((s) => ({ ...s, loading: true }));
    try {
      const page = await connection.inbox.list({ limit, signal: ctl.signal });
      if (ctl.signal.aborted) return;
      during.current = null;
      const items = changes.reduce(applyChange, page.items);
      setSt((s) => ({ ...s, items, next: page.next, loading: false, error: null }));
    } catch (error) {
      if (!ctl.signal.aborted) setSt((s) => ({ ...s, loading: false, error }));
    }
  }, [connection, limit]);

  useEffect(() => {
    if (!connection) {
      setSt(EMPTY);
      return undefined;
    }
    const inbox = connection.inbox;
    setSt({ ...EMPTY, counts: inbox.current });
    const offChange = inbox.onChange(({ counts, change }) => {
      if (change) during.current?.push(change);
      if (change?.op === "unarchive") reload();
      setSt((s) => ({ ...s, counts, items: change ? applyChange(s.items, change) : s.items }));
    });
    // Every (re)connect: changes made while away may be beyond what the socket replays.
    const offState = connection.onState((state) => { if (state === "connected") reload(); });
    if (connection.state === "connected") reload();
    return () => {
      offChange();
      offState();
      loads.current?.abort();
    };
  }, [connection, reload]);

  const more = useCallback(async ({ signal } = {}) => {
    if (!connection || !st.next) return;
    const cursor = st.next;
    const page = await connection.inbox.list({ limit, cursor, signal });
    setSt((s) => s.next !== cursor ? s : {
      ...s,
      next: page.next,
      items: [...s.items, ...page.items.filter((n) => !s.items.some((m) => m.id === n.id))],
    });
  }, [connection, limit, st.next]);

  return {
    items: st.items,
    unread: st.counts?.unread ?? 0,
    counts: st.counts,
    loading: st.loading,
    error: st.error,
    hasMore: !!st.next,
    more,
    reload,
    inbox: connection ? connection.inbox : null,
  };
}

// applyChange returns items after an inbox change (a live "inbox" event's data).
function applyChange(items, change) {
  const now = new Date().toISOString();
  const ids = new Set(change.ids ?? []);
  const set = (field, value) => items.map((n) => {
    if (change.op !== "read-all" && !ids.has(n.id)) return n;
    if (change.op === "read-all" && n.readAt) return n;
    const m = { ...n };
    if (value === undefined) delete m[field];
    else m[field] ??= value;
    return m;
  });
  switch (change.op) {
    case "new":
      if (!change.notification || items.some((n) => n.id === change.notification.id)) return items;
      return [change.notification, ...items];
    case "read":
    case "read-all":
      return set("readAt", now);
    case "unread":
      return set("readAt", undefined);
    case "seen":
      return set("seenAt", now);
    case "archive":
    case "delete":
      return items.filter((n) => !ids.has(n.id));
    default: // "unarchive": reloaded
      return items;
  }
}
