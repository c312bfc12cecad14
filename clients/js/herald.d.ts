// Types of herald.js, the herald browser client. The ```ts examples in
// this file are type-checked with tsc --strict (test/types.test.mjs).

/** Close codes herald sends, by name. */
export declare const CloseCode: Readonly<{
  DISCONNECTED: 4000;
  TOKEN_EXPIRED: 4001;
  TOKEN_INVALID: 4002;
  TOKEN_REUSED: 4003;
  TOO_MANY_CONNECTIONS: 4008;
  SLOW_CONSUMER: 4009;
  RATE_LIMITED: 4029;
  IDLE_TIMEOUT: 1001;
  PROTOCOL_ERROR: 1002;
  ABNORMAL: 1006;
  INVALID_UTF8: 1007;
  MESSAGE_TOO_BIG: 1009;
  SERVICE_RESTART: 1012;
  TRY_AGAIN_LATER: 1013;
}>;

/**
 * idle: before connect(); connecting: fetching a token or opening the socket;
 * open: the welcome frame arrived; waiting: a retry is scheduled (detail.delayMs);
 * paused: the page is offline or was hidden past closeWhenHiddenMs;
 * stopped: it will not reconnect until connect() (detail.reason says why).
 */
export type State = "idle" | "connecting" | "open" | "waiting" | "paused" | "stopped";

/** Why the client stopped, in the "stopped" state. */
export type StopReason =
  | "closed" // close() was called
  | "disconnected" // 4000: logout or ban
  | "too_many_connections" // 4008
  | "token_invalid" // 4002 twice in a row
  | "unauthorized" // 401 from the token endpoint (and onUnauthorized did not fix it)
  | "forbidden"; // 403 from the token endpoint: origin not allowed

export interface StateDetail {
  state: State;
  /** The close code that led here (1006: the connection was lost). */
  code?: number;
  /** A close reason, a StopReason, "offline", "hidden", "ping_timeout", "welcome_timeout", "token_fetch_failed", or the token endpoint's error code. */
  reason?: string;
  /** HTTP status of a failed token request. */
  status?: number;
  /** In "waiting": milliseconds until the next attempt. */
  delayMs?: number;
  /** Backoff step of the next attempt. */
  attempt?: number;
  /** In "open": from the welcome frame. */
  socketId?: string | null;
  userId?: string | null;
  error?: unknown;
}

/** The "type" values of herald's own frames. herald relays no application payload with one of them, so they are never application events. */
export type ReservedType = "welcome" | "pong" | "reconnect" | "resync" | "replay_complete";
export declare const RESERVED_TYPES: readonly ReservedType[];

/**
 * An application event as delivered: what the backend published, plus
 * herald's `inbox_id` when it came through the inbox. `T` is the type of
 * `data`, by the convention `{"type", "id", "ts", "data"}` of herald's
 * examples; other top-level members are there as `unknown`.
 *
 * @example
 * ```ts
 * import type { Message } from "@herald-gw/client";
 * type FriendRequest = { from: { id: string; name: string } };
 * function show(m: Message<FriendRequest>): string {
 *   return `${m.data.from.name} (${m.inbox_id ?? "live"})`;
 * }
 * ```
 */
export interface Message<T = unknown> {
  type: string;
  /** herald's inbox position of this event, when it came through the inbox. */
  inbox_id?: string;
  id?: string | number;
  ts?: number;
  data: T;
  [key: string]: unknown;
}

/** herald's first frame on every socket. */
export interface Welcome {
  type: "welcome";
  socket_id: string;
  user_id: string;
  heartbeat_s: number;
  /** The inbox's newest id; absent when the socket asked for a replay, or with --inbox=false. */
  inbox_id?: string;
}

/** Ends a replay of the events missed since the position sent in since=. */
export interface ReplayComplete {
  type: "replay_complete";
  count: number;
  inbox_id: string;
}

/** herald could not replay everything since the position: refetch, then carry on from inbox_id. */
export interface Resync {
  type: "resync";
  inbox_id?: string;
}

/** What options.storage needs: sessionStorage, localStorage, or your own. */
export interface PositionStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

export interface HeraldOptions {
  /** Token endpoint. Default "/api/ws/token". Absolute without a page (Node). */
  tokenUrl?: string;
  /** Socket URL, absolute (ws:, wss:, http:, https:) or relative to the page. Default "/ws". Absolute without a page (Node). */
  url?: string;
  /** fetch credentials for the token request. Default "include", so the session cookie goes cross-origin too. */
  credentials?: RequestCredentials;
  /** Extra headers for the token request (e.g. Authorization: Bearer for non-browser clients), or a function returning them. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** herald's {"type":"resync"}: events may have been missed; refetch the notification list. The one way to handle a resync. */
  onResync?: (frame: Resync) => void;
  /** herald's {"type":"replay_complete"} after a reconnect: frame.count events were replayed. */
  onReplayComplete?: (frame: ReplayComplete) => void;
  /**
   * Called when the token endpoint answers 401 (no session, or it expired).
   * Resolve true after logging in again to retry once; otherwise the client stops ("unauthorized").
   */
  onUnauthorized?: (detail: { status: number; reason: string }) => boolean | Promise<boolean>;
  /** Keeps the inbox position across reloads: sessionStorage (per tab), localStorage, or your own. Default none. */
  storage?: PositionStorage;
  /** The storage key. Default "herald:position"; one client per login, so name it per user if users share a browser. */
  storageKey?: string;
  /** ready()'s default timeout. Default 10000. */
  readyTimeoutMs?: number;
  /** App-level {"type":"ping"} period while open. Default 25000; 0 turns pings off. */
  pingIntervalMs?: number;
  /** With no frame this long after a ping, the socket is dead: drop it and back off. Default 10000. */
  pongTimeoutMs?: number;
  /** Bound on one token request; past it, back off. Default 10000. */
  tokenTimeoutMs?: number;
  /** From opening the socket to the welcome frame. Default 15000. */
  welcomeTimeoutMs?: number;
  /** Full-jitter backoff: uniform in [0, min(backoffMaxMs, backoffBaseMs·2^attempt)). Defaults 500 and 30000. backoffMaxMs also caps a reconnect frame's after_ms. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A socket open this long restarts the backoff from its first step. Default 10000. */
  stableAfterMs?: number;
  /** Close the socket after the page has been hidden this long (0: never, the default). */
  closeWhenHiddenMs?: number;
  /** 4001/4003 reconnect at once this many times in a row, then back off. Default 3. */
  quickRetries?: number;
  /** Reconnect with since=<lastEventId>, so that herald replays what was missed (or sends a resync). Default true. */
  resume?: boolean;
  /** Implementations to use instead of the globals (Node 20: fetch is global; WebSocket from the ws package). */
  fetch?: typeof fetch;
  WebSocket?: unknown;
}

/** A listener of events whose data is T. */
export type Listener<T = unknown> = (message: Message<T>, raw: string) => void;

/** A frame on the wire, for onFrame: in, out, or the socket's close. */
export type Frame =
  | { dir: "in" | "out"; data: string }
  | { dir: "close"; code: number; reason: string; by: "server" | "client" };

/** The error ready() rejects with: detail is the state detail at that moment. */
export interface ReadyError extends Error {
  detail: StateDetail;
}

/**
 * The herald client. Events (optional) maps each application event type
 * to the type of its data, declared once; without it, on<T>() types one
 * listener at a time.
 *
 * @example
 * ```ts
 * import { HeraldClient } from "@herald-gw/client";
 *
 * interface Events {
 *   friend_request: { from: { id: string; name: string } };
 *   game_invite: { from: { id: string; name: string }; game_id: string; expires_at: number };
 * }
 * const herald = new HeraldClient<Events>({ storage: sessionStorage });
 * herald.on("friend_request", (m) => console.log(m.data.from.name));
 * herald.once("game_invite", (m) => console.log(m.data.game_id, m.data.expires_at));
 * herald.connect();
 * await herald.ready(5000);
 * const sent: boolean = herald.send({ type: "ping" });
 * ```
 *
 * @example
 * ```ts
 * import { HeraldClient, type Message } from "@herald-gw/client";
 *
 * const herald = new HeraldClient();
 * herald.on<{ in_s: number }>("maintenance", (m) => console.log(m.data.in_s));
 * herald.on("friend_request", (m: Message<{ from: { name: string } }>) => console.log(m.data.from.name));
 * herald.on("*", (m, raw) => console.log(m?.type ?? raw));
 * ```
 */
export declare class HeraldClient<Events extends object = Record<string, unknown>> {
  /** Throws a TypeError when tokenUrl or url is relative and there is no page (Node), or its scheme cannot work. */
  constructor(options?: HeraldOptions);
  readonly state: State;
  readonly stateDetail: StateDetail;
  /** herald's inbox position: the last inbox_id herald sent (welcome, event, replay_complete, resync); sent as since= when reconnecting; restored from options.storage. */
  readonly lastEventId: string | null;
  /** From the current socket's welcome frame. */
  readonly socketId: string | null;
  readonly userId: string | null;
  /** Every application event; message is undefined for text that is not JSON. Returns a remover. */
  on(type: "*", fn: (message: Message | undefined, raw: string) => void): () => void;
  /** Application events of one type (herald's own frame types throw). Returns a remover. */
  on<K extends keyof Events & string>(type: K, fn: Listener<Events[K]>): () => void;
  on<T = unknown>(type: string extends keyof Events ? string : never, fn: Listener<T>): () => void;
  /** on(), for the next event only. */
  once(type: "*", fn: (message: Message | undefined, raw: string) => void): () => void;
  once<K extends keyof Events & string>(type: K, fn: Listener<Events[K]>): () => void;
  once<T = unknown>(type: string extends keyof Events ? string : never, fn: Listener<T>): () => void;
  /** Removes a listener added with on() or once(). */
  off(type: string, fn: (...args: never[]) => void): void;
  /** Removes every listener of type, or of every type. */
  removeAllListeners(type?: string): void;
  listenerCount(type: string): number;
  /** Listen to state changes. Returns a remover. */
  onState(fn: (state: State, detail: StateDetail) => void): () => void;
  /** Every frame in and out and every close, for a debug console. Returns a remover. */
  onFrame(fn: (frame: Frame) => void): () => void;
  /** Resolves when open (at once if open now); rejects with a ReadyError when the client stops or after timeoutMs (default readyTimeoutMs). Does not call connect(). */
  ready(timeoutMs?: number): Promise<void>;
  /** Start connecting (from idle, stopped or paused). */
  connect(): void;
  /** Reconnect now when waiting for a retry or paused (a "retry now" link). */
  retryNow(): void;
  /** Close the socket and stop reconnecting. */
  close(): void;
  /** Send a JSON value, or a string as is, if open; returns whether it was sent. Nothing is buffered while disconnected. */
  send<T extends object>(value: T | string): boolean;
}

export interface CloseContext {
  invalidBefore: boolean;
  quickRetries: number;
  maxQuickRetries: number;
  reconnectAfterMs: number | null;
}

/** The reconnect policy for a close code (the table in the README). */
export declare function closeAction(
  code: number,
  ctx: CloseContext,
): { action: "stop" | "now" | "after" | "backoff"; reason?: StopReason; delayMs?: number };

/** Full-jitter exponential backoff delay for attempt (0 first). */
export declare function backoffDelay(attempt: number, baseMs: number, maxMs: number, random?: () => number): number;
