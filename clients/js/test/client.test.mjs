// The client against a real herald process (built from this repository),
// over real sockets, with the ws package as WebSocket.
import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import WebSocket from "ws";

import { HeraldClient } from "../herald.js";
import { Herald, waitFor } from "./herald-process.mjs";

// Whatever a test leaves (it may fail half-way) is closed after it, so that
// a failure is reported instead of the run hanging on retry timers.
const running = new Set();
const clients = new Set();
afterEach(async () => {
  try {
    for (const c of clients) c.close();
  } finally {
    clients.clear();
    for (const h of running) await h.stop("SIGKILL");
    running.clear();
  }
});

async function startHerald(args = []) {
  const h = await Herald.start(args);
  running.add(h);
  return h;
}

/**
 * A client of user on h that records its states, messages and token
 * requests. tokens (optional) replaces what the token endpoint returned:
 * tokens(n, realToken) for the n-th request (0 first).
 */
async function client(h, user, opts = {}, tokens = null) {
  const jar = { cookie: await h.login(user) };
  const rec = { states: [], messages: [], replays: [], fetches: 0, jar };
  const c = new HeraldClient({
    url: h.wsUrl,
    tokenUrl: `${h.base}/api/ws/token`,
    WebSocket,
    onReplayComplete: (m) => rec.replays.push(m),
    fetch: async (url, init) => {
      const n = rec.fetches++;
      const resp = await fetch(url, { ...init, headers: { ...init.headers, cookie: jar.cookie } });
      if (!tokens || !resp.ok) return resp;
      const real = (await resp.json()).token;
      return Response.json({ token: await tokens(n, real), expires_in: 30 });
    },
    ...opts,
  });
  c.onState((state, detail) => rec.states.push({ ...detail, at: Date.now() }));
  // Every frame herald sent, its own included, parsed (undefined: not JSON).
  c.onFrame((f) => {
    if (f.dir !== "in") return;
    try {
      rec.messages.push(JSON.parse(f.data));
    } catch {
      rec.messages.push(undefined);
    }
  });
  rec.client = c;
  clients.add(c);
  rec.stateIs = (s) => c.state === s;
  rec.saw = (pred) => rec.states.some(pred);
  return rec;
}

const stopAll = (...recs) => recs.forEach((r) => r.client.close());

/** A Storage-like map, as sessionStorage would be after a reload. */
function memoryStorage(init = {}) {
  const m = new Map(Object.entries(init));
  return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, String(v)), map: m };
}

describe("herald client", () => {
  test("connects with the session cookie, dispatches by type, keeps the last id, pings", async () => {
    const h = await startHerald();
    const r = await client(h, "42", { pingIntervalMs: 100 });
    const got = [];
    r.client.on("friend_request", (m, raw) => got.push([m, raw]));
    assert.equal(r.client.state, "idle");
    r.client.connect();
    await waitFor(() => r.stateIs("open"), 10000, "open");
    assert.equal(r.client.userId, "42");
    assert.match(r.client.socketId, /^[0-9a-f]+\.[0-9a-f]{16}$/);
    assert.deepEqual(await h.online(), ["42"]);

    const fr = { type: "friend_request", id: "req-1", ts: 1764150000000, data: { from: { id: "7", name: "alice" } } };
    await h.publish("user:42", fr);
    await h.publish("user:42", { type: "game_invite", id: 99, data: {} });
    await h.publish("broadcast", "not json"); // a user's events go through the inbox, which takes JSON objects
    await waitFor(() => r.messages.includes(undefined), 5000, "the non-JSON message");
    // Through the inbox: the payload with its inbox_id spliced in first.
    assert.equal(got.length, 1);
    const [m, raw] = got[0];
    assert.match(m.inbox_id, /^\d+-\d+$/);
    assert.equal(raw, `{"inbox_id":"${m.inbox_id}",${JSON.stringify(fr).slice(1)}`);
    const { inbox_id, ...payload } = m;
    assert.deepEqual(payload, fr);
    const invite = r.messages.find((x) => x?.type === "game_invite");
    assert.equal(r.client.lastEventId, invite.inbox_id);
    assert.ok(invite.inbox_id > m.inbox_id);

    // App-level pings are answered with pongs.
    await waitFor(() => r.messages.filter((m) => m?.type === "pong").length >= 2, 5000, "two pongs");
    assert.equal(r.client.send({ type: "hello" }), true);
    stopAll(r);
    assert.equal(r.client.state, "stopped");
    assert.equal(r.client.send({ type: "hello" }), false);
  });

  test("resync reaches the onResync callback", async () => {
    const h = await startHerald();
    let resyncs = 0;
    // A position newer than the inbox's newest: herald cannot replay, and says so.
    const storage = memoryStorage({ "herald:position": "9999999999999-0" });
    const r = await client(h, "42", { onResync: () => resyncs++, storage });
    assert.equal(r.client.lastEventId, "9999999999999-0");
    r.client.connect();
    await waitFor(() => r.stateIs("open"));
    await waitFor(() => resyncs === 1, 5000, "onResync");
    stopAll(r);
  });

  test("4000 (logout on herald:control) stops every socket of the user, with no reconnect", async () => {
    const h = await startHerald();
    const a = await client(h, "42");
    const b = await client(h, "42");
    const other = await client(h, "7");
    for (const r of [a, b, other]) r.client.connect();
    await waitFor(() => [a, b, other].every((r) => r.stateIs("open")));
    await h.publish("herald:control", { op: "disconnect", user_id: "42", reason: "logout" });
    for (const r of [a, b]) {
      await waitFor(() => r.stateIs("stopped"), 5000, "stopped");
      assert.equal(r.client.stateDetail.code, 4000);
      assert.equal(r.client.stateDetail.reason, "disconnected");
    }
    const fetches = a.fetches + b.fetches;
    // Nothing reconnects: the user is gone from herald and stays gone.
    await waitFor(async () => (await h.online()).join() === "7", 5000, "only user 7 online");
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(a.fetches + b.fetches, fetches, "a stopped client fetched a token");
    assert.deepEqual(await h.online(), ["7"]);
    assert.equal(other.client.state, "open");
    stopAll(a, b, other);
  });

  test("4001 (token expired): a new token and a reconnect at once", async () => {
    const h = await startHerald(["--ws-token-ttl", "1s", "--clock-skew", "1ms"]);
    const r = await client(h, "42", {}, async (n, real) => {
      if (n === 0) await new Promise((res) => setTimeout(res, 2200)); // let it expire
      return real;
    });
    r.client.connect();
    await waitFor(() => r.stateIs("open"), 10000, "open");
    assert.equal(r.fetches, 2);
    assert.ok(!r.saw((s) => s.state === "waiting"), "it waited before reconnecting");
    stopAll(r);
  });

  test("4003 (token reused): a new token and a reconnect at once", async () => {
    const h = await startHerald();
    const spent = await new Promise(async (ok) => {
      const cookie = await h.login("42");
      const tok = (await (await fetch(`${h.base}/api/ws/token`, { method: "POST", headers: { cookie } })).json()).token;
      const ws = new WebSocket(`${h.wsUrl}?token=${tok}`);
      ws.on("message", () => {
        ws.close();
        ok(tok);
      });
    });
    const r = await client(h, "42", {}, (n, real) => (n === 0 ? spent : real));
    const closes = [];
    r.client.onState((s, d) => d.code && closes.push(d.code));
    r.client.connect();
    await waitFor(() => r.stateIs("open"), 10000, "open");
    assert.equal(r.fetches, 2);
    assert.ok(!r.saw((s) => s.state === "waiting"), "it waited before reconnecting");
    stopAll(r);
  });

  test("4002 (token invalid): one retry, then stop", async () => {
    const h = await startHerald();
    const once = await client(h, "42", {}, (n, real) => (n === 0 ? "not.a.token" : real));
    once.client.connect();
    await waitFor(() => once.stateIs("open"), 10000, "open after one bad token");
    assert.equal(once.fetches, 2);

    const twice = await client(h, "43", {}, () => "not.a.token");
    twice.client.connect();
    await waitFor(() => twice.stateIs("stopped"), 10000, "stopped");
    assert.equal(twice.client.stateDetail.reason, "token_invalid");
    assert.equal(twice.client.stateDetail.code, 4002);
    assert.equal(twice.fetches, 2);
    stopAll(once, twice);
  });

  test("4008 (too many sockets): stop this tab, the others stay", async () => {
    const h = await startHerald(["--max-sockets-per-user", "1"]);
    const first = await client(h, "42");
    first.client.connect();
    await waitFor(() => first.stateIs("open"));
    const second = await client(h, "42");
    second.client.connect();
    await waitFor(() => second.stateIs("stopped"), 10000, "stopped");
    assert.equal(second.client.stateDetail.code, 4008);
    assert.equal(second.client.stateDetail.reason, "too_many_connections");
    assert.equal(second.fetches, 1);
    assert.equal(first.client.state, "open");
    stopAll(first, second);
  });

  test("a reconnect sends since= and gets what it missed from the inbox", async () => {
    const h = await startHerald();
    const win = new EventTarget();
    const saved = { add: globalThis.addEventListener, remove: globalThis.removeEventListener };
    globalThis.addEventListener = win.addEventListener.bind(win);
    globalThis.removeEventListener = win.removeEventListener.bind(win);
    const urls = [];
    class Recording extends WebSocket {
      constructor(url, ...rest) {
        urls.push(new URL(url));
        super(url, ...rest);
      }
    }
    try {
      const r = await client(h, "42", { WebSocket: Recording });
      r.client.connect();
      await waitFor(() => r.stateIs("open"));
      const welcome = r.messages.find((m) => m?.type === "welcome");
      assert.match(welcome.inbox_id, /^\d+-\d+$/);
      assert.equal(urls[0].searchParams.get("since"), null);
      await h.publish("user:42", { type: "friend_request", id: "a" });
      await waitFor(() => r.messages.some((m) => m?.id === "a"), 5000, "event a");
      const position = r.client.lastEventId;

      win.dispatchEvent(new Event("offline")); // the socket closes; events go on
      await waitFor(async () => (await h.online()).length === 0, 5000, "socket closed");
      await h.publish("user:42", { type: "friend_request", id: "b" });
      await h.publish("user:42", { type: "game_invite", id: "c" });
      const replays = r.replays;
      win.dispatchEvent(new Event("online"));
      await waitFor(() => replays.length === 1, 5000, "replay_complete");
      assert.equal(urls[1].searchParams.get("since"), position);
      assert.equal(replays[0].count, 2);
      const after = r.messages.slice(r.messages.findLastIndex((m) => m?.type === "welcome"));
      assert.deepEqual(after.map((m) => m?.type), ["welcome", "friend_request", "game_invite", "replay_complete"]);
      assert.deepEqual(after.slice(1, 3).map((m) => m.id), ["b", "c"]);
      assert.equal(r.client.lastEventId, replays[0].inbox_id);
      r.client.close();
    } finally {
      globalThis.addEventListener = saved.add;
      globalThis.removeEventListener = saved.remove;
    }
  });

  test("4029 (handshake rate): jittered backoff, then in", async () => {
    // One handshake every 2 s; herald waits for a turn up to half of the
    // 2 s handshake timeout and refuses those further away with 4029.
    const h = await startHerald(["--handshake-rate", "0.5", "--handshake-burst", "1", "--handshake-timeout", "2s"]);
    const rs = [];
    for (const u of ["1", "2", "3"]) rs.push(await client(h, u, { backoffBaseMs: 300 }));
    for (const r of rs) r.client.connect();
    await waitFor(() => rs.every((r) => r.stateIs("open")), 15000, "every client open");
    assert.ok(rs.some((r) => r.saw((s) => s.state === "waiting" && s.code === 4029)), "no client saw 4029");
    stopAll(...rs);
  });

  test("1012 after the reconnect frame: wait after_ms, then reconnect to the restarted herald", async () => {
    const h = await startHerald();
    const r = await client(h, "42", {
      backoffBaseMs: 100,
      backoffMaxMs: 500,
      // herald --dev makes new secrets when it starts again: log in again.
      onUnauthorized: async () => {
        r.jar.cookie = await h.login("42");
        return true;
      },
    });
    let hint = null;
    r.client.onFrame((f) => {
      if (f.dir === "in" && f.data.startsWith('{"type":"reconnect"')) hint = JSON.parse(f.data).after_ms;
    });
    r.client.connect();
    await waitFor(() => r.stateIs("open"));
    await h.stop("SIGTERM");
    const waiting = await waitFor(() => r.states.find((s) => s.state === "waiting" && s.code === 1012), 5000, "waiting after 1012");
    assert.equal(typeof hint, "number");
    assert.equal(waiting.delayMs, hint, "it did not wait the after_ms herald asked for");
    await h.start();
    await waitFor(() => r.stateIs("open"), 15000, "open on the restarted herald");
    const reopened = r.states.findLast((s) => s.state === "connecting");
    assert.ok(reopened.at - waiting.at >= hint - 5, "reconnected before after_ms");
    assert.deepEqual(await h.online(), ["42"]);
    stopAll(r);
  });

  test("1006 (herald killed): backoff until it is back", async () => {
    const h = await startHerald();
    const r = await client(h, "42", {
      backoffBaseMs: 100,
      backoffMaxMs: 400,
      onUnauthorized: async () => {
        r.jar.cookie = await h.login("42");
        return true;
      },
    });
    r.client.connect();
    await waitFor(() => r.stateIs("open"));
    await h.stop("SIGKILL");
    await waitFor(() => r.saw((s) => s.state === "waiting" && s.code === 1006), 5000, "waiting after 1006");
    await waitFor(() => r.states.filter((s) => s.state === "waiting").length >= 3, 5000, "several failed attempts");
    await h.start();
    await waitFor(() => r.stateIs("open"), 15000, "open on the restarted herald");
    stopAll(r);
  });

  test("a dead socket is noticed by the app-level ping", async () => {
    const h = await startHerald();
    const r = await client(h, "42", { pingIntervalMs: 200, pongTimeoutMs: 400, backoffBaseMs: 100, backoffMaxMs: 300 });
    r.client.connect();
    await waitFor(() => r.stateIs("open"));
    h.signal("SIGSTOP"); // the process freezes: no close, no pong
    try {
      await waitFor(() => r.saw((s) => s.state === "waiting" && s.reason === "ping_timeout"), 5000, "ping timeout");
    } finally {
      h.signal("SIGCONT");
    }
    await waitFor(() => r.stateIs("open"), 15000, "open again");
    stopAll(r);
  });

  test("401 from the token endpoint stops, unless onUnauthorized logs in again", async () => {
    const h = await startHerald();
    const r = await client(h, "42");
    r.jar.cookie = "access_token=expired";
    r.client.connect();
    await waitFor(() => r.stateIs("stopped"));
    assert.equal(r.client.stateDetail.reason, "unauthorized");
    assert.equal(r.client.stateDetail.status, 401);

    let asked = 0;
    const again = await client(h, "42", {
      onUnauthorized: async () => {
        asked++;
        again.jar.cookie = await h.login("42");
        return true;
      },
    });
    again.jar.cookie = "access_token=expired";
    again.client.connect();
    await waitFor(() => again.stateIs("open"));
    assert.equal(asked, 1);
    stopAll(r, again);
  });

  test("page hidden past closeWhenHiddenMs pauses; visible again reconnects; offline pauses", async () => {
    const h = await startHerald();
    // A minimal page: window events and document visibility.
    const win = new EventTarget();
    const doc = Object.assign(new EventTarget(), { visibilityState: "visible" });
    const saved = { add: globalThis.addEventListener, remove: globalThis.removeEventListener, document: globalThis.document };
    globalThis.addEventListener = win.addEventListener.bind(win);
    globalThis.removeEventListener = win.removeEventListener.bind(win);
    globalThis.document = doc;
    try {
      const r = await client(h, "42", { closeWhenHiddenMs: 100 });
      r.client.connect();
      await waitFor(() => r.stateIs("open"));
      doc.visibilityState = "hidden";
      doc.dispatchEvent(new Event("visibilitychange"));
      await waitFor(() => r.stateIs("paused"), 5000, "paused while hidden");
      assert.equal(r.client.stateDetail.reason, "hidden");
      await waitFor(async () => (await h.online()).length === 0, 5000, "socket closed");
      doc.visibilityState = "visible";
      doc.dispatchEvent(new Event("visibilitychange"));
      await waitFor(() => r.stateIs("open"), 5000, "open when visible");

      win.dispatchEvent(new Event("offline"));
      assert.equal(r.client.state, "paused");
      assert.equal(r.client.stateDetail.reason, "offline");
      win.dispatchEvent(new Event("online"));
      await waitFor(() => r.stateIs("open"), 5000, "open when online");
      stopAll(r);
    } finally {
      globalThis.addEventListener = saved.add;
      globalThis.removeEventListener = saved.remove;
      globalThis.document = saved.document;
    }
  });
});

describe("the client's API", () => {
  test("herald's frames are the client's: never app events, and on() refuses their types", async () => {
    const h = await startHerald();
    const r = await client(h, "42", { pingIntervalMs: 100 });
    const seen = [];
    r.client.on("*", (m) => seen.push(m?.type));
    for (const t of ["welcome", "pong", "reconnect", "resync", "replay_complete"]) {
      assert.throws(() => r.client.on(t, () => {}), /herald's own frames/, t);
      assert.throws(() => r.client.once(t, () => {}), /herald's own frames/, t);
    }
    r.client.connect();
    await waitFor(() => r.messages.filter((m) => m?.type === "pong").length >= 2, 5000, "two pongs");
    await h.publish("user:42", { type: "note", id: "n1" });
    await waitFor(() => seen.includes("note"), 5000, "the note");
    assert.deepEqual(seen, ["note"], "an app listener saw herald's frames");
    stopAll(r);
  });

  test("the position is herald's inbox_id only, never one inside a payload", async () => {
    const h = await startHerald();
    const r = await client(h, "42");
    const got = [];
    r.client.on("x", (m) => got.push(m));
    r.client.connect();
    await r.client.ready();
    const start = r.client.lastEventId;
    assert.match(start, /^\d+-\d+$/);
    // Not through the inbox: a broadcast's inbox_id is the payload's.
    await h.publish("broadcast", { type: "x", n: 1, inbox_id: "9999999999999-0" });
    await waitFor(() => got.length === 1, 5000, "the broadcast");
    assert.equal(r.client.lastEventId, start);
    // Through the inbox: herald's id comes first; a second one (if this
    // herald accepts such a payload at all) is not the position.
    await h.publish("user:42", { type: "x", n: 2, inbox_id: "9999999999999-1" }).catch(() => {});
    await h.publish("user:42", { type: "x", n: 3 });
    await waitFor(() => got.some((m) => m.n === 3), 5000, "the event");
    assert.ok(r.client.lastEventId > start, "an inbox event did not move the position");
    assert.notEqual(r.client.lastEventId.slice(0, 4), "9999", `position ${r.client.lastEventId} came from a payload`);
    stopAll(r);
  });

  test("a reconnect frame's after_ms is capped at backoffMaxMs", async () => {
    const h = await startHerald(["--drain-window", "20s"]);
    const r = await client(h, "42", { backoffMaxMs: 300 });
    const hints = [];
    r.client.onFrame((f) => f.dir === "in" && f.data.startsWith('{"type":"reconnect"') && hints.push(JSON.parse(f.data).after_ms));
    r.client.connect();
    await r.client.ready();
    const stopping = h.stop("SIGTERM");
    const waiting = await waitFor(() => r.states.find((s) => s.state === "waiting" && s.code === 1012), 25000, "waiting after 1012");
    await stopping;
    assert.equal(hints.length, 1);
    assert.ok(waiting.delayMs <= 300, `waits ${waiting.delayMs} ms, want at most backoffMaxMs`);
    assert.equal(waiting.delayMs, Math.min(hints[0], 300));
    stopAll(r);
  });

  test("once, off and removeAllListeners", async () => {
    const h = await startHerald();
    const r = await client(h, "42");
    const calls = { once: 0, on: 0, off: 0, all: 0, star: 0 };
    r.client.once("x", () => calls.once++);
    r.client.on("x", () => calls.on++);
    const offMe = () => calls.off++;
    r.client.on("x", offMe);
    r.client.off("x", offMe);
    const onceOff = () => calls.off++;
    r.client.once("x", onceOff);
    r.client.off("x", onceOff); // off() removes a once() listener by the function given
    r.client.on("y", () => calls.all++);
    r.client.on("*", () => calls.star++);
    assert.equal(r.client.listenerCount("x"), 2);
    r.client.connect();
    await r.client.ready();
    for (const n of [1, 2]) await h.publish("user:42", { type: "x", n });
    await waitFor(() => calls.on === 2, 5000, "two x");
    assert.deepEqual(calls, { once: 1, on: 2, off: 0, all: 0, star: 2 });
    r.client.removeAllListeners("y");
    assert.equal(r.client.listenerCount("y"), 0);
    assert.equal(r.client.listenerCount("x"), 1);
    r.client.removeAllListeners();
    assert.equal(r.client.listenerCount("x") + r.client.listenerCount("*"), 0);
    await h.publish("user:42", { type: "y" });
    await h.publish("user:42", { type: "x", n: 3 });
    await waitFor(() => r.messages.some((m) => m?.n === 3), 5000, "the last event");
    assert.deepEqual(calls, { once: 1, on: 2, off: 0, all: 0, star: 2 });
    stopAll(r);
  });

  test("ready() resolves when open, rejects when stopped or after its timeout", async () => {
    const h = await startHerald(["--max-sockets-per-user", "1"]);
    const r = await client(h, "42");
    await assert.rejects(r.client.ready(50), (e) => /not open within 50 ms/.test(e.message) && e.detail.state === "idle");
    r.client.connect();
    await r.client.ready();
    assert.equal(r.client.state, "open");
    await r.client.ready(); // at once when open
    const second = await client(h, "42");
    second.client.connect();
    await assert.rejects(second.client.ready(), (e) => e.detail.reason === "too_many_connections" && e.detail.code === 4008);
    stopAll(r, second);
  });

  test("send() says whether it sent; onFrame shows frames in and out and closes", async () => {
    const h = await startHerald();
    const r = await client(h, "42", { pingIntervalMs: 0 });
    const frames = [];
    r.client.onFrame((f) => frames.push(f));
    assert.equal(r.client.send({ type: "ping" }), false, "sent while idle");
    r.client.connect();
    assert.equal(r.client.send({ type: "ping" }), false, "sent while connecting");
    await r.client.ready();
    assert.equal(r.client.send({ type: "ping" }), true);
    await waitFor(() => frames.some((f) => f.dir === "in" && f.data === '{"type":"pong"}'), 5000, "the pong");
    await h.publish("herald:control", { op: "disconnect", user_id: "42", reason: "logout" });
    await waitFor(() => r.stateIs("stopped"), 5000, "stopped");
    assert.equal(r.client.send("x"), false, "sent while stopped");
    assert.deepEqual(
      frames.map((f) => (f.dir === "close" ? `close ${f.code} ${f.by}` : `${f.dir} ${JSON.parse(f.data).type}`)),
      ["in welcome", "out ping", "in pong", "close 4000 server"],
    );
    stopAll(r);
  });

  test("a new client with the same storage resumes: what was published meanwhile is replayed", async () => {
    const h = await startHerald();
    const storage = memoryStorage();
    const first = await client(h, "42", { storage, storageKey: "herald:42" });
    first.client.connect();
    await first.client.ready();
    await h.publish("user:42", { type: "x", n: 1 });
    await waitFor(() => first.messages.some((m) => m?.n === 1), 5000, "event 1");
    assert.equal(storage.map.get("herald:42"), first.client.lastEventId);
    first.client.close(); // the page unloads
    await waitFor(async () => (await h.online()).length === 0, 5000, "the socket closed");
    await h.publish("user:42", { type: "x", n: 2 });
    const second = await client(h, "42", { storage, storageKey: "herald:42" }); // the reloaded page
    const got = [];
    second.client.on("x", (m) => got.push(m.n));
    second.client.connect();
    await waitFor(() => second.replays.length === 1, 5000, "replay_complete");
    assert.deepEqual(got, [2]);
    assert.equal(second.replays[0].count, 1);
    stopAll(second);
  });

  test("in Node, relative URLs are an error at construction; so is a scheme that cannot work", () => {
    assert.equal(globalThis.location, undefined);
    assert.throws(() => new HeraldClient({ WebSocket }), /tokenUrl "\/api\/ws\/token" is not an absolute URL.*Node/);
    assert.throws(() => new HeraldClient({ WebSocket, tokenUrl: "http://127.0.0.1:1/api/ws/token" }), /options\.url "\/ws"/);
    assert.throws(() => new HeraldClient({ WebSocket, tokenUrl: "http://127.0.0.1:1/t", url: "ftp://127.0.0.1/ws" }), /options\.url "ftp:.*want ws:, wss:, http:, https:/);
    const c = new HeraldClient({ WebSocket, tokenUrl: "http://127.0.0.1:1/t", url: "ws://127.0.0.1:1/ws" });
    assert.equal(c.state, "idle");
  });
});
