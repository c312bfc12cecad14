// herald browser client: one dependency-free ES module.
//
// It trades the session cookie for a WS token, opens the socket, dispatches
// the application's events by their "type", and reconnects the way each
// close code of the herald contract asks. herald's own frames (welcome,
// pong, reconnect, resync, replay_complete) are the client's: herald never
// relays an application payload with one of those types, so they never
// reach on() listeners and nothing inside an event can steer the client.
// See README.md beside this file for the behaviour of every code;
// herald.d.ts has the types.

/** Close codes herald sends, by name. */
export const CloseCode = Object.freeze({
  DISCONNECTED: 4000,
  TOKEN_EXPIRED: 4001,
  TOKEN_INVALID: 4002,
  TOKEN_REUSED: 4003,
  TOO_MANY_CONNECTIONS: 4008,
  SLOW_CONSUMER: 4009,
  RATE_LIMITED: 4029,
  IDLE_TIMEOUT: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  INVALID_UTF8: 1007,
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
});

const DEFAULTS = {
  tokenUrl: "/api/ws/token",
  url: "/ws",
  credentials: "include",
  pingIntervalMs: 25000,
  pongTimeoutMs: 10000,
  welcomeTimeoutMs: 15000,
  tokenTimeoutMs: 10000,
  backoffBaseMs: 500,
  backoffMaxMs: 30000,
  stableAfterMs: 10000,
  closeWhenHiddenMs: 0,
  quickRetries: 3,
  resume: true,
  storageKey: "herald:position",
  readyTimeoutMs: 10000,
};

/** The "type" of herald's own frames; herald relays no application payload with one of them. */
export const RESERVED_TYPES = Object.freeze(["welcome", "pong", "reconnect", "resync", "replay_complete"]);
const RESERVED = new Set(RESERVED_TYPES);

// An inbox event: herald splices its id in as the first member. A payload's
// own "inbox_id" further on (browsers keep the last of duplicates) is not it.
const INBOX_PREFIX = /^\{"inbox_id":"(\d+-\d+)"/;
const POSITION = /^\d+-\d+$/;

/**
 * What to do after the socket closed with code: the contract's table.
 * Pure, so that it can be tested alone.
 *
 * @param {number} code the close code (1006 when the connection was lost)
 * @param {{invalidBefore: boolean, quickRetries: number, maxQuickRetries: number, reconnectAfterMs: number|null}} ctx
 * @returns {{action: "stop"|"now"|"after"|"backoff", reason?: string, delayMs?: number}}
 */
export function closeAction(code, ctx) {
  switch (code) {
    case 4000:
      return { action: "stop", reason: "disconnected" };
    case 4008:
      return { action: "stop", reason: "too_many_connections" };
    case 4001:
    case 4003:
      // A fresh token fixes these at once; if it keeps happening (a clock
      // far off, a proxy replaying the URL), slow down rather than spin.
      return ctx.quickRetries < ctx.maxQuickRetries ? { action: "now" } : { action: "backoff" };
    case 4002:
      return ctx.invalidBefore ? { action: "stop", reason: "token_invalid" } : { action: "now" };
    case 1012:
      if (ctx.reconnectAfterMs != null) return { action: "after", delayMs: ctx.reconnectAfterMs };
      return { action: "backoff" };
    default:
      // 4009, 4029, 1013, 1006 and anything else: full-jitter backoff.
      return { action: "backoff" };
  }
}

/**
 * Full-jitter exponential backoff: a uniform delay in [0, min(max, base·2^attempt)).
 * @param {number} attempt 0 for the first retry
 */
export function backoffDelay(attempt, baseMs, maxMs, random = Math.random) {
  const cap = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * cap);
}

export class HeraldClient {
  /** @param {import("./herald").HeraldOptions} [options] */
  constructor(options = {}) {
    this._opts = { ...DEFAULTS, ...options };
    this._fetch = this._opts.fetch || globalThis.fetch?.bind(globalThis);
    this._WebSocket = this._opts.WebSocket || globalThis.WebSocket;
    if (!this._fetch) throw new Error("herald: no fetch; pass options.fetch");
    if (!this._WebSocket) throw new Error("herald: no WebSocket; pass options.WebSocket (the ws package in Node)");
    checkUrls(this._opts);

    this._listeners = new Map(); // type → Set of functions; "*" for every event
    this._stateListeners = new Set();
    this._frameListeners = new Set();
    this._state = "idle";
    this._detail = { state: "idle" };
    this._gen = 0; // bumped whenever the current attempt is abandoned
    this._ws = null;
    this._timers = { retry: null, ping: null, pong: null, welcome: null, hidden: null };
    this._retryKind = null; // "backoff" or "fixed": what the scheduled retry waits for
    this._attempt = 0; // backoff exponent
    this._quick = 0; // consecutive 4001/4003 answered at once
    this._invalidBefore = false; // a 4002 since the last welcome
    this._reconnectAfterMs = null; // from herald's {"type":"reconnect"}
    this._openedAt = 0;
    this._env = null; // removes the page listeners

    /** herald's inbox position: the last inbox_id received, sent back as since= on reconnect. */
    this._position = null;
    const stored = this._storage("getItem");
    if (typeof stored === "string" && POSITION.test(stored)) this._position = stored;
    /** From the welcome frame of the current socket. */
    this.socketId = null;
    this.userId = null;
  }

  /** herald's inbox position: the last inbox_id herald sent (restored from options.storage). */
  get lastEventId() {
    return this._position;
  }

  /** The connection state: idle, connecting, open, waiting, paused or stopped. */
  get state() {
    return this._state;
  }

  /** The last state change with its details (code, reason, delayMs …). */
  get stateDetail() {
    return this._detail;
  }

  /**
   * Calls fn(message, raw) for every application event whose "type" is
   * type; "*" for every event (message is undefined when the text is not
   * JSON). herald's own frame types are refused: they are the client's.
   * Returns a function that removes the listener.
   */
  on(type, fn) {
    if (typeof fn !== "function") throw new TypeError("herald: on(type, fn) needs a function");
    if (RESERVED.has(type)) {
      throw new TypeError(`herald: "${type}" is one of herald's own frames, never an application event; see onState, onResync and onReplayComplete`);
    }
    let set = this._listeners.get(type);
    if (!set) this._listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => this.off(type, fn);
  }

  /** on(), for the next event of type only. Returns the remover. */
  once(type, fn) {
    const wrapper = (m, raw) => {
      this.off(type, wrapper);
      fn(m, raw);
    };
    wrapper.listener = fn;
    return this.on(type, wrapper);
  }

  /** Removes fn (added with on or once) from type's listeners. */
  off(type, fn) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const f of set) if (f === fn || f.listener === fn) set.delete(f);
    if (set.size === 0) this._listeners.delete(type);
  }

  /** Removes every listener of type, or of every type (onState and onFrame ones stay). */
  removeAllListeners(type) {
    if (type === undefined) this._listeners.clear();
    else this._listeners.delete(type);
  }

  /** The number of listeners of type (for tests and leak checks). */
  listenerCount(type) {
    return this._listeners.get(type)?.size ?? 0;
  }

  /**
   * Calls fn(frame) for every frame in or out and every close: the wire,
   * for a debug console. frame is {dir: "in"|"out", data} or
   * {dir: "close", code, reason, by: "server"|"client"}. Returns the remover.
   */
  onFrame(fn) {
    this._frameListeners.add(fn);
    return () => this._frameListeners.delete(fn);
  }

  /**
   * Resolves when the client is open (at once if it is); rejects when it
   * stops, or after timeoutMs (default options.readyTimeoutMs, 10 s). It does
   * not call connect().
   */
  ready(timeoutMs = this._opts.readyTimeoutMs) {
    if (this._state === "open") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err) => {
        clearTimeout(timer);
        remove();
        if (err) reject(err);
        else resolve();
      };
      const timer = setTimeout(() => done(readyError(`not open within ${timeoutMs} ms`, this._detail)), timeoutMs);
      const remove = this.onState((state, detail) => {
        if (state === "open") done();
        else if (state === "stopped") done(readyError(`stopped (${detail.reason})`, detail));
      });
    });
  }

  /** Calls fn(state, detail) on every state change. Returns the remover. */
  onState(fn) {
    this._stateListeners.add(fn);
    return () => this._stateListeners.delete(fn);
  }

  /** Starts connecting: from idle, after a stop, or out of a pause. */
  connect() {
    if (this._state !== "idle" && this._state !== "stopped" && this._state !== "paused") return;
    this._attempt = 0;
    this._quick = 0;
    this._invalidBefore = false;
    this._watchPage();
    if (this._offline()) {
      this._setState("paused", { reason: "offline" });
      return;
    }
    this._open();
  }

  /** Skips the wait: reconnects now when waiting for a retry or paused. */
  retryNow() {
    if (this._state !== "waiting" && this._state !== "paused") return;
    if (this._offline()) return;
    this._open();
  }

  /** Closes the socket and stops reconnecting, until connect() is called. */
  close() {
    this._stop("closed");
  }

  /**
   * Sends a JSON value (or a string as is) if the socket is open, and says
   * whether it did. Nothing is buffered while disconnected.
   */
  send(value) {
    if (this._state !== "open" || !this._ws) return false;
    const data = typeof value === "string" ? value : JSON.stringify(value);
    try {
      this._ws.send(data);
    } catch {
      return false;
    }
    this._frame({ dir: "out", data });
    return true;
  }

  // --- connecting -------------------------------------------------------

  async _open() {
    this._abandon();
    const gen = this._gen;
    this._setState("connecting", { attempt: this._attempt });
    let token;
    try {
      token = await this._token(gen);
    } catch (err) {
      if (gen === this._gen) this._retry("backoff", { reason: "token_fetch_failed", error: err });
      return;
    }
    if (gen !== this._gen || token == null) return;

    let ws;
    try {
      ws = new this._WebSocket(this._socketUrl(token));
    } catch (err) {
      this._retry("backoff", { reason: "socket_failed", error: err });
      return;
    }
    this._ws = ws;
    this._reconnectAfterMs = null;
    this._timers.welcome = setTimeout(() => {
      if (gen === this._gen) this._lost("welcome_timeout");
    }, this._opts.welcomeTimeoutMs);
    ws.onmessage = (ev) => {
      if (gen !== this._gen) return;
      this._frame({ dir: "in", data: ev.data });
      this._onMessage(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen !== this._gen) return;
      this._frame({ dir: "close", code: ev.code, reason: ev.reason, by: "server" });
      this._onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  /** The socket URL: token, and since= (the inbox position) when resuming. */
  _socketUrl(token) {
    const base = globalThis.location?.href;
    const u = new URL(this._opts.url, base);
    if (u.protocol === "http:") u.protocol = "ws:";
    if (u.protocol === "https:") u.protocol = "wss:";
    u.searchParams.set("token", token);
    // herald replays what the inbox holds after this position, or says resync.
    if (this._opts.resume && this._position != null) u.searchParams.set("since", this._position);
    return u.toString();
  }

  /** Fetches a WS token; null when it stopped or scheduled a retry itself. */
  async _token(gen) {
    let askedAgain = false;
    for (;;) {
      const headers = { ...(await resolve(this._opts.headers)) };
      const abort = new AbortController();
      const timer = setTimeout(() => abort.abort(), this._opts.tokenTimeoutMs);
      let resp;
      try {
        resp = await this._fetch(this._opts.tokenUrl, {
          method: "POST",
          credentials: this._opts.credentials,
          headers,
          signal: abort.signal,
        });
      } finally {
        clearTimeout(timer);
      }
      if (gen !== this._gen) return null;
      if (resp.ok) {
        const body = await resp.json();
        if (typeof body?.token !== "string") throw new Error("herald: token response without a token");
        return body.token;
      }
      const error = await resp.json().then((b) => b?.error, () => undefined);
      if (gen !== this._gen) return null;
      const detail = { status: resp.status, reason: error || `http_${resp.status}` };
      if (resp.status === 401) {
        // The session is missing or expired: the app may log in again.
        if (!askedAgain && this._opts.onUnauthorized) {
          askedAgain = true;
          let again = false;
          try {
            again = await this._opts.onUnauthorized(detail);
          } catch {
            again = false;
          }
          if (gen !== this._gen) return null;
          if (again) continue;
        }
        this._stop("unauthorized", detail);
        return null;
      }
      if (resp.status === 403) {
        this._stop("forbidden", detail);
        return null;
      }
      if (resp.status === 429) {
        const s = Number(resp.headers.get("Retry-After"));
        const wait = (Number.isFinite(s) && s > 0 ? s * 1000 : this._opts.backoffBaseMs) + Math.floor(Math.random() * 1000);
        this._retry("fixed", { ...detail, delayMs: wait });
        return null;
      }
      this._retry("backoff", detail);
      return null;
    }
  }

  // --- an open socket ---------------------------------------------------

  _onMessage(raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      msg = undefined;
    }
    this._alive();
    const obj = msg !== null && typeof msg === "object" && !Array.isArray(msg);
    const type = obj && typeof msg.type === "string" ? msg.type : undefined;
    if (RESERVED.has(type)) {
      this._control(type, msg);
      return;
    }
    // An application event: the position is herald's id, spliced in first.
    const m = typeof raw === "string" ? INBOX_PREFIX.exec(raw) : null;
    if (m) this._setPosition(m[1]);
    if (type !== undefined) this._emit(type, msg, raw);
    this._emit("*", msg, raw);
  }

  /** One of herald's own frames (herald relays no application payload of these types). */
  _control(type, msg) {
    if (typeof msg.inbox_id === "string") this._setPosition(msg.inbox_id);
    switch (type) {
      case "welcome":
        clearTimeout(this._timers.welcome);
        this.socketId = msg.socket_id ?? null;
        this.userId = msg.user_id ?? null;
        this._openedAt = Date.now();
        this._invalidBefore = false;
        this._quick = 0;
        this._schedulePing();
        this._setState("open", { socketId: this.socketId, userId: this.userId });
        break;
      case "reconnect":
        // Capped: no frame makes the client stay away longer than its own backoff would.
        this._reconnectAfterMs = Math.min(Math.max(0, Number(msg.after_ms) || 0), this._opts.backoffMaxMs);
        break;
      case "resync":
        if (this._opts.onResync) safely(() => this._opts.onResync(msg));
        break;
      case "replay_complete":
        if (this._opts.onReplayComplete) safely(() => this._opts.onReplayComplete(msg));
        break;
    }
  }

  _setPosition(id) {
    if (!POSITION.test(id) || id === this._position) return;
    this._position = id;
    this._storage("setItem", id);
  }

  /** Calls options.storage[op](storageKey, …), if there is one; its failures are ignored. */
  _storage(op, ...args) {
    const st = this._opts.storage;
    if (!st) return null;
    try {
      return st[op](this._opts.storageKey, ...args);
    } catch {
      return null; // quota, private mode: the position stays in memory
    }
  }

  _frame(f) {
    if (this._frameListeners.size === 0) return;
    for (const fn of [...this._frameListeners]) safely(() => fn(f));
  }

  _emit(type, msg, raw) {
    const set = this._listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) safely(() => fn(msg, raw));
  }

  _schedulePing() {
    clearTimeout(this._timers.ping);
    if (!(this._opts.pingIntervalMs > 0)) return;
    const gen = this._gen;
    this._timers.ping = setTimeout(() => {
      if (gen !== this._gen) return;
      this._ping();
      this._schedulePing();
    }, this._opts.pingIntervalMs);
  }

  /** Sends {"type":"ping"}; with no frame back in pongTimeoutMs the socket is dead. */
  _ping() {
    if (!this._ws || this._state !== "open") return;
    try {
      this._ws.send('{"type":"ping"}');
      this._frame({ dir: "out", data: '{"type":"ping"}' });
    } catch {
      // the close event reports it
    }
    if (this._timers.pong) return;
    const gen = this._gen;
    this._timers.pong = setTimeout(() => {
      if (gen === this._gen) this._lost("ping_timeout");
    }, this._opts.pongTimeoutMs);
  }

  /** Any frame proves the socket alive. */
  _alive() {
    clearTimeout(this._timers.pong);
    this._timers.pong = null;
  }

  /** The socket is dead without a close frame: drop it and back off. */
  _lost(reason) {
    const ws = this._ws;
    this._forgiveIfStable();
    this._abandon();
    this._closeSocket(ws, reason);
    this._retry("backoff", { code: 1006, reason });
  }

  _onClose(code, reason) {
    const after = this._reconnectAfterMs;
    this._forgiveIfStable();
    this._abandon();
    const detail = { code, reason };
    const d = closeAction(code, {
      invalidBefore: this._invalidBefore,
      quickRetries: this._quick,
      maxQuickRetries: this._opts.quickRetries,
      reconnectAfterMs: after,
    });
    if (code === 4002) this._invalidBefore = true;
    switch (d.action) {
      case "stop":
        this._stop(d.reason, detail);
        break;
      case "now":
        this._quick++;
        this._open();
        break;
      case "after":
        this._retry("fixed", { ...detail, delayMs: d.delayMs });
        break;
      default:
        this._retry("backoff", detail);
    }
  }

  /** A socket that stayed open stableAfterMs restarts the backoff from its first step. */
  _forgiveIfStable() {
    if (this._openedAt && Date.now() - this._openedAt >= this._opts.stableAfterMs) this._attempt = 0;
  }

  // --- waiting, pausing, stopping ----------------------------------------

  /** Schedules the next attempt: after detail.delayMs ("fixed") or a backoff. */
  _retry(kind, detail) {
    this._abandon();
    let delayMs = detail.delayMs;
    if (kind === "backoff") {
      delayMs = backoffDelay(this._attempt, this._opts.backoffBaseMs, this._opts.backoffMaxMs);
      this._attempt++;
    }
    this._retryKind = kind;
    this._setState("waiting", { ...detail, delayMs, attempt: this._attempt });
    const gen = this._gen;
    this._timers.retry = setTimeout(() => {
      if (gen === this._gen) this._open();
    }, delayMs);
  }

  _stop(reason, detail = {}) {
    const ws = this._ws;
    this._abandon();
    this._closeSocket(ws, reason === "closed" ? "client closed" : reason);
    this._unwatchPage();
    this._setState("stopped", { ...detail, reason });
  }

  _pause(reason) {
    const ws = this._ws;
    this._abandon();
    this._closeSocket(ws, reason);
    this._setState("paused", { reason });
  }

  /** Closes a socket the client gave up on (1000, with reason). */
  _closeSocket(ws, reason) {
    if (!ws) return;
    try {
      ws.close(1000, reason);
    } catch {
      return; // already closed
    }
    this._frame({ dir: "close", code: 1000, reason, by: "client" });
  }

  /** Forgets the current socket and timers; their callbacks become no-ops. */
  _abandon() {
    this._gen++;
    for (const k of Object.keys(this._timers)) {
      if (k === "hidden") continue;
      clearTimeout(this._timers[k]);
      this._timers[k] = null;
    }
    const ws = this._ws;
    if (ws) {
      ws.onmessage = ws.onclose = null;
      ws.onerror = () => {};
    }
    this._ws = null;
    this._openedAt = 0;
    this._retryKind = null;
  }

  _setState(state, detail = {}) {
    this._state = state;
    this._detail = { state, ...detail };
    for (const fn of [...this._stateListeners]) safely(() => fn(state, this._detail));
  }

  // --- the page: online/offline and visibility -----------------------------

  _offline() {
    return globalThis.navigator?.onLine === false;
  }

  _watchPage() {
    if (this._env || typeof globalThis.addEventListener !== "function") return;
    const doc = globalThis.document;
    const onOffline = () => {
      if (this._state !== "stopped" && this._state !== "idle") this._pause("offline");
    };
    const onOnline = () => this._wake(true);
    const onVisibility = () => {
      clearTimeout(this._timers.hidden);
      this._timers.hidden = null;
      if (doc.visibilityState === "hidden") {
        const ms = this._opts.closeWhenHiddenMs;
        if (ms > 0) {
          this._timers.hidden = setTimeout(() => {
            if (this._state === "open" || this._state === "connecting" || this._state === "waiting") this._pause("hidden");
          }, ms);
        }
        return;
      }
      this._wake(false);
    };
    const add = globalThis.addEventListener.bind(globalThis);
    const remove = (globalThis.removeEventListener || (() => {})).bind(globalThis);
    add("offline", onOffline);
    add("online", onOnline);
    doc?.addEventListener?.("visibilitychange", onVisibility);
    this._env = () => {
      remove("offline", onOffline);
      remove("online", onOnline);
      doc?.removeEventListener?.("visibilitychange", onVisibility);
      clearTimeout(this._timers.hidden);
      this._timers.hidden = null;
    };
  }

  _unwatchPage() {
    this._env?.();
    this._env = null;
  }

  /**
   * The network came back, or the page became visible: reconnect now if
   * paused or waiting on a backoff (a wait the server asked for is kept);
   * check an open socket with a ping (the machine may have slept).
   */
  _wake(online) {
    if (this._offline()) return;
    if (this._state === "paused" || (this._state === "waiting" && this._retryKind === "backoff")) {
      if (online) this._attempt = 0;
      this._open();
    } else if (this._state === "open") {
      this._ping();
    }
  }
}

/**
 * A URL that cannot work never will: say so at construction, rather than
 * retry "Failed to parse URL" for ever. Without a page (Node, a worker
 * without location) relative URLs cannot be resolved; the socket's scheme
 * must be ws(s) or http(s).
 */
function checkUrls(o) {
  const base = globalThis.location?.href;
  for (const [name, schemes] of [["tokenUrl", ["http:", "https:"]], ["url", ["ws:", "wss:", "http:", "https:"]]]) {
    let u = null;
    try {
      u = new URL(o[name], base);
    } catch {
      u = null;
    }
    if (!u && !base) {
      throw new TypeError(
        `herald: options.${name} "${o[name]}" is not an absolute URL, and there is no page to resolve it against (Node?): ` +
          `pass absolute tokenUrl and url, e.g. { tokenUrl: "https://example.com/api/ws/token", url: "wss://example.com/ws" }`,
      );
    }
    if (!u || !schemes.includes(u.protocol)) {
      throw new TypeError(`herald: options.${name} "${o[name]}" is not a URL herald can serve (want ${schemes.join(", ")})`);
    }
  }
}

function readyError(message, detail) {
  const err = new Error(`herald: ${message}`);
  err.detail = detail;
  return err;
}

async function resolve(v) {
  return typeof v === "function" ? v() : v;
}

/** Runs an application callback; its exception is reported, not thrown into the client. */
function safely(fn) {
  try {
    fn();
  } catch (err) {
    if (typeof globalThis.reportError === "function") globalThis.reportError(err);
    else console.error(err);
  }
}
