// Types of herald.js, the herald browser client.

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

/** A message from herald: whatever the backend published, usually with a "type". */
export interface Message {
  type?: string;
  /** herald's inbox position of this event, when it came through the inbox. */
  inbox_id?: string;
  id?: string | number;
  [key: string]: unknown;
}

export interface Welcome extends Message {
  type: "welcome";
  socket_id: string;
  user_id: string;
  heartbeat_s: number;
  /** The inbox's newest id; absent when the socket asked for a replay, or with --inbox=false. */
  inbox_id?: string;
}

/** Ends a replay of the events missed since the position sent in since=. */
export interface ReplayComplete extends Message {
  type: "replay_complete";
  count: number;
  inbox_id: string;
}

export interface HeraldOptions {
  /** Token endpoint. Default "/api/ws/token". */
  tokenUrl?: string;
  /** Socket URL, absolute (ws:, wss:, http:, https:) or relative to the page. Default "/ws". */
  url?: string;
  /** fetch credentials for the token request. Default "include", so the session cookie goes cross-origin too. */
  credentials?: RequestCredentials;
  /** Extra headers for the token request (e.g. Authorization: Bearer for non-browser clients), or a function returning them. */
  headers?: Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>);
  /** Called on {"type":"resync"}: messages may have been missed; refetch the notification list. */
  onResync?: () => void;
  /**
   * Called when the token endpoint answers 401 (no session, or it expired).
   * Resolve true after logging in again to retry once; otherwise the client stops ("unauthorized").
   */
  onUnauthorized?: (detail: { status: number; reason: string }) => boolean | Promise<boolean>;
  /** App-level {"type":"ping"} period while open. Default 25000; 0 turns pings off. */
  pingIntervalMs?: number;
  /** With no frame this long after a ping, the socket is dead: drop it and back off. Default 10000. */
  pongTimeoutMs?: number;
  /** Bound on one token request; past it, back off. Default 10000. */
  tokenTimeoutMs?: number;
  /** From opening the socket to the welcome frame. Default 15000. */
  welcomeTimeoutMs?: number;
  /** Full-jitter backoff: uniform in [0, min(backoffMaxMs, backoffBaseMs·2^attempt)). Defaults 500 and 30000. */
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
  /** Implementations to use instead of the globals (Node: fetch is global; WebSocket from the ws package). */
  fetch?: typeof fetch;
  WebSocket?: unknown;
}

export type Listener<M = Message> = (message: M, raw: string) => void;

export declare class HeraldClient {
  constructor(options?: HeraldOptions);
  readonly state: State;
  readonly stateDetail: StateDetail;
  /** herald's inbox position: the last "inbox_id" received (welcome, event, replay_complete, resync); sent as since= when reconnecting. */
  readonly lastEventId: string | null;
  /** From the current socket's welcome frame. */
  readonly socketId: string | null;
  readonly userId: string | null;
  /** Listen to messages of one type; "*" for every message (message is undefined for non-JSON text). Returns a remover. */
  on(type: "welcome", fn: Listener<Welcome>): () => void;
  on(type: "replay_complete", fn: Listener<ReplayComplete>): () => void;
  on(type: "*", fn: (message: Message | undefined, raw: string) => void): () => void;
  on(type: string, fn: Listener): () => void;
  /** Listen to state changes. Returns a remover. */
  onState(fn: (state: State, detail: StateDetail) => void): () => void;
  /** Start connecting (from idle, stopped or paused). */
  connect(): void;
  /** Reconnect now when waiting for a retry or paused (a "retry now" link). */
  retryNow(): void;
  /** Close the socket and stop reconnecting. */
  close(): void;
  /** Send a JSON value, or a string as is, if open. Returns whether it was sent. */
  send(value: unknown): boolean;
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
