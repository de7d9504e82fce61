// Type declarations for @gonotify/notify/react, the React hooks of the notify browser client.
import type { Connection, ConnectOptions, Inbox, InboxCounts, InboxNotification, NotifyEvent, State, Abortable } from "./notify.js";

/** What useNotify returns. */
export interface UseNotify {
  /** The connection, or null while url is null. */
  connection: Connection | null;
  /** Its state; "closed" while url is null. */
  state: State;
  /** The user of the latest welcome. */
  user: string | undefined;
}

/**
 * Opens a connection to url while the component is mounted and url is not null (pass null
 * while signed out), and closes it on unmount or when url changes. options are read when
 * connecting, except `token`: a function is always called in its latest version.
 */
export function useNotify(url: string | null | undefined, options?: ConnectOptions): UseNotify;

/**
 * Calls handler for every event of type on connection (see Connection.on; "*" for every one)
 * while mounted. The latest handler is called: it need not be memoized.
 */
export function useEvent<T = unknown>(connection: Connection | null, type: string, handler: (event: NotifyEvent<T>) => void): void;

/** What useInbox returns. */
export interface UseInbox<T = unknown> {
  /** The first page and the ones more() added, newest first, following live changes. */
  items: InboxNotification<T>[];
  /** The unread count as last known (0 before the first). */
  unread: number;
  /** The counts as last known, or null before the first. */
  counts: InboxCounts | null;
  /** A first-page load is under way. */
  loading: boolean;
  /** Why the last first-page load failed (a NotifyError), or null. */
  error: unknown;
  /** Whether more() has a page to add. */
  hasMore: boolean;
  /** Appends the next page. */
  more(options?: Abortable): Promise<void>;
  /** Fetches the first page again. */
  reload(): Promise<void>;
  /** connection.inbox, for markRead and the other changes; null without a connection. */
  inbox: Inbox | null;
}

/**
 * The user's inbox on connection: the first page (limit, default 20) fetched on every
 * (re)connect, following the live changes of every tab and device, re-rendering on each.
 * T is the type of the notifications' data, as the application knows it (not checked).
 */
export function useInbox<T = unknown>(connection: Connection | null, options?: { limit?: number }): UseInbox<T>;
