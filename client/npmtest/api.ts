// Uses the whole public API of @gonotify/notify and @gonotify/notify/react, as installed from
// the packed tarball. client/ci.sh type-checks it: tsc --noEmit --strict.
import * as notify from "@gonotify/notify";
import {
  connect, NotifyError,
  CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_ABNORMAL, CLOSE_TOO_BIG, CLOSE_TOKEN_EXPIRED,
  CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_PROTOCOL_ABUSE, CLOSE_RATE_LIMITED,
} from "@gonotify/notify";
import type {
  Connection, ConnectOptions, Transport, NotifyEvent, State, StateInfo, ErrorFrame, Recovery, Abortable,
  Inbox, InboxNotification, InboxCounts, InboxChange, InboxPage, RequestOptions, RequestErrorCode,
  Push, PushState, PushSubscriptionInfo, PushPreferences,
} from "@gonotify/notify";
import { useNotify, useEvent, useInbox } from "@gonotify/notify/react";
import type { UseNotify, UseInbox } from "@gonotify/notify/react";

interface Shipped { order: number }

const codes: number[] = [CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_ABNORMAL, CLOSE_TOO_BIG, CLOSE_TOKEN_EXPIRED,
  CLOSE_SIGNED_OUT, CLOSE_SLOW_CONSUMER, CLOSE_PROTOCOL_ABUSE, CLOSE_RATE_LIMITED];
const four001: 4001 = CLOSE_SIGNED_OUT;

// @ts-expect-error: the helpers are not public
notify.parseFrame;
// @ts-expect-error: the helpers are not public
notify.Dedup;
// @ts-expect-error: the helpers are not public
notify.backoffDelay;

const options: ConnectOptions = {
  token: async () => (await fetch("/api/token")).ok ? "jwt" : null,
  topics: new Set(["news"]),
  minDelay: 500,
  maxDelay: 30000,
  WebSocket,
  EventSource,
  transport: "auto",
  inboxURL: "/notify/inbox/",
  fetch: (input, init) => fetch(input, init),
  serviceWorkerURL: "/notify/sw.js",
  serviceWorkerScope: "/",
};
connect("/notify/ws", { token: "fixed" });
connect("/notify/ws", { token: null });
connect("/notify/ws", { token: "t", shared: false });
connect("/notify/ws", { token: "t", shared: "user-42", sharedWorkerURL: "/notify/client.js" });
const conn: Connection = connect("/notify/ws", options);

const state: State = conn.state;
const user: string | undefined = conn.user;
const session: string | undefined = conn.session;
const transport: "websocket" | "sse" = conn.transport;
const sessionId: string | undefined = conn.sessionId;
const done: Promise<Response> = conn.fetch("/api/done", { method: "POST", body: "{}" });
void [sessionId, done];
const offTransport: () => void = conn.onTransport((t, { previous }) => { const p: "websocket" | "sse" = previous; void [t, p]; });
const forced: Transport[] = ["sse", "websocket", "auto"];
void [transport, offTransport, forced];
const off: () => void = conn.on<Shipped>("order.shipped", (ev: NotifyEvent<Shipped>) => {
  const order: number | undefined = ev.data?.order;
  const id: string = ev.id;
  const time: string = ev.time;
  const topic: string | undefined = ev.topic;
  const offset: number | undefined = ev.offset;
  const epoch: string | undefined = ev.epoch;
  const stored: InboxNotification<Shipped> | undefined = ev.notification;
  if (stored) void conn.inbox.markRead(stored.id);
  void [order, id, time, topic, offset, epoch];
});
off();
conn.on("*", (ev) => { const t: string = ev.type; void t; });
conn.on("inbox", (ev) => { const change: InboxChange | undefined = ev.data; void change?.counts.unread; });
conn.onState((s: State, info: StateInfo) => {
  const parts = [s, info.user, info.session, info.code, info.reason, info.error, info.attempt, info.delay];
  void parts;
});
conn.onError((e: ErrorFrame) => { const c: string = e.code; const op: "error" | "unsubscribed" = e.op; void [c, op, e.reason, e.topic]; });
conn.onRecovery((r: Recovery) => { const ok: boolean = r.recovered; void [ok, r.topic]; });

async function use(signal: AbortSignal): Promise<void> {
  const who: { user: string; session: string } = await conn.connected({ signal });
  await conn.connected();
  void who;
  try {
    await conn.subscribe("news");
  } catch (err) {
    if (err instanceof NotifyError) {
      const parts: [string, string | undefined, string | undefined, number | undefined] = [err.code, err.reason, err.topic, err.status];
      void parts;
    }
  }
  conn.unsubscribe("news");
  const reqOpts: RequestOptions = { timeout: 5000, signal, id: "order-42-pay" };
  const paid: { ok: boolean } = await conn.request<{ ok: boolean }>("order.pay", { order: 42 }, reqOpts);
  const anything: unknown = await conn.request("ping");
  const reqCode: RequestErrorCode = "unknown_request";
  void [paid, anything, reqCode];

  const inbox: Inbox = conn.inbox;
  const unread: number = inbox.unread;
  const current: InboxCounts | null = inbox.current;
  const stop = inbox.onChange(({ counts, change }: { counts: InboxCounts; change: InboxChange | null }) => {
    void [counts.unread, counts.unseen, counts.total, change?.op, change?.ids, change?.notification];
  });
  stop();
  const page: InboxPage<Shipped> = await inbox.list<Shipped>({ unread: true, archived: false, limit: 20, cursor: "c", signal });
  const first: number | undefined = page.items[0]?.data?.order;
  const next: string | undefined = page.next;
  const n: InboxNotification<Shipped> | undefined = page.items[0];
  void [n?.id, n?.type, n?.createdAt, n?.readAt, n?.seenAt, n?.archivedAt];
  const abortable: Abortable = { signal };
  let counts: InboxCounts = await inbox.counts(abortable);
  counts = await inbox.markRead("a", { signal });
  counts = await inbox.markRead(["a", "b"]);
  counts = await inbox.markUnread("a");
  counts = await inbox.markSeen(["a"]);
  counts = await inbox.archive("a");
  counts = await inbox.unarchive("a");
  counts = await inbox.delete("a");
  counts = await inbox.markAllRead({ signal });
  // @ts-expect-error: ids are strings
  await inbox.markRead(42);
  void [unread, current, first, next, counts];
  conn.close();
  const e = new NotifyError("not_found", "no such notification", { status: 404 });
  const isError: Error = e;
  void isError;
}

function Bell(): number {
  const live: UseNotify = useNotify("/notify/ws", { token: () => "jwt", topics: ["news"] });
  useNotify(null);
  useEvent<Shipped>(live.connection, "order.shipped", (ev) => { const o: number | undefined = ev.data?.order; void o; });
  const box: UseInbox<Shipped> = useInbox<Shipped>(live.connection, { limit: 10 });
  const s: State = live.state;
  const u: string | undefined = live.user;
  void [s, u, box.items[0]?.data?.order, box.counts, box.loading, box.error, box.hasMore, box.more(), box.reload(), box.inbox?.markAllRead()];
  return box.unread;
}

void [codes, four001, state, user, session, use, Bell];

async function usePush(signal: AbortSignal): Promise<void> {
  const push: Push = conn.push;
  const state: PushState = await push.state();
  if (state === "disabled") {
    try {
      const { id }: { id: string } = await push.enable({ signal });
      void id;
    } catch (err) {
      if (err instanceof NotifyError && err.code === "permission_denied") return;
      throw err;
    }
  }
  const subs: PushSubscriptionInfo[] = await push.subscriptions();
  const created: string | undefined = subs[0]?.createdAt;
  let prefs: PushPreferences = await push.preferences({ signal });
  prefs = await push.mute(new Set([...prefs.muted, "digest"]));
  prefs = await push.mute([]);
  await push.disable();
  await push.disable({ signal });
  // @ts-expect-error: not a state
  const bad: PushState = "on";
  void [created, prefs, bad];
}
void usePush;
