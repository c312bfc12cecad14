// The herald --dev demo: users log in, see who is online, send friend
// requests and game invites (to someone offline too: it waits in their
// inbox), and answer them. Every notification travels through herald: this
// page publishes with POST /dev/publish (what a backend service does with
// PUBLISH) and receives on its socket, through the herald.js client. The
// Wire card shows the frames in and out, as a debug console would.
import { HeraldClient } from "/herald.js";

const $ = (id) => document.getElementById(id);
const STORE = "herald-demo-user";
const GAME_TTL_MS = 60_000;

let me = null;
let client = null;
let onlineTimer = null;
let online = [];
let known = [];
let openedAt = 0; // when the current socket opened: events sent before it were replayed from the inbox
const toasts = new Map(); // request id → its toast, removed once answered
const inbox = new Map(); // request id → { el, msg, status }
const sent = new Map(); // request id → { el, kind, to, game, status }

// --- logging in and out ----------------------------------------------------

/** Each demo user's session cookie lives under /dev/as/<user>/, so that one
 * browser can hold several users in several tabs. A real app has one user per
 * browser and calls /api/ws/token directly. */
const scope = (user) => `/dev/as/${encodeURIComponent(user)}`;

async function login(user) {
  const r = await fetch(`${scope(user)}/login`, { method: "POST" });
  return r.ok;
}

async function start(user) {
  $("login-note").hidden = true;
  if (!(await login(user))) {
    showLogin(`Could not log in as ${user}.`);
    return;
  }
  me = user;
  sessionStorage.setItem(STORE, user);
  $("me-name").textContent = user;
  paintAvatar($("me-avatar"), user);
  $("me").hidden = false;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("fact-user").textContent = user;

  client = new HeraldClient({
    tokenUrl: `${scope(user)}/api/ws/token`,
    // The inbox position survives a reload and a new login in this browser:
    // what was sent meanwhile (while this user was offline) is replayed.
    storage: localStorage,
    storageKey: `herald-demo:position:${user}`,
    // herald --dev makes new secrets at every start: after a restart the
    // old session is refused, so log in again and carry on.
    onUnauthorized: async () => {
      note("step", "session refused (401), as expected after a restart: logging in again");
      return login(user);
    },
    onResync: () => toast("sync", "Back, with a gap", "herald could not replay everything this tab missed; a real app refetches its notification list here."),
    // After a reconnect, herald replays from its inbox what this tab missed.
    onReplayComplete: (m) => {
      if (m.count > 0) toast("sync", `Caught up: ${m.count} missed while away`, "herald replayed them from its inbox on reconnect.");
    },
  });
  client.onState(renderState);
  client.onFrame(logFrame);
  client.on("friend_request", (m) => receiveRequest(m, "friend_request"));
  client.on("game_invite", (m) => receiveRequest(m, "game_invite"));
  client.on("invite_answer", receiveAnswer);
  client.on("invite_handled", (m) => markHandled(m.data?.request_id, m.data?.accepted));
  client.connect();
  onlineTimer = setInterval(refreshOnline, 2000);
}

function showLogin(note) {
  clearInterval(onlineTimer);
  client?.close();
  client = null;
  me = null;
  sessionStorage.removeItem(STORE);
  for (const id of ["inbox", "sent", "online", "timeline", "frames"]) $(id).replaceChildren();
  inbox.clear();
  sent.clear();
  online = [];
  known = [];
  $("frames-count").textContent = "0";
  refreshEmpty();
  $("me").hidden = true;
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-note").hidden = !note;
  $("login-note").textContent = note || "";
  renderConn("idle", {});
  $("login-user").focus();
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  start($("login-user").value.trim());
});
for (const b of document.querySelectorAll("[data-user]")) b.addEventListener("click", () => start(b.dataset.user));
$("logout").addEventListener("click", async () => {
  // Logging out clears the cookie and publishes a disconnect on
  // herald:control: every tab of this user closes with 4000.
  await fetch(`${scope(me)}/logout`, { method: "POST" });
});
$("retry").addEventListener("click", () => client?.retryNow());

// --- connection state ----------------------------------------------------

const STOP_TEXT = {
  disconnected: "Logged out",
  too_many_connections: "Too many tabs for this user",
  token_invalid: "Token refused",
  unauthorized: "Not logged in",
  forbidden: "Origin not allowed",
  closed: "Disconnected",
};

let countdown = null;

function renderState(state, detail) {
  renderConn(state, detail);
  $("fact-state").textContent = state;
  $("fact-socket").textContent = state === "open" ? detail.socketId : "–";
  addTimeline(state, detail);
  if (state === "open") {
    openedAt = Date.now();
    refreshOnline();
  }
  if (state === "stopped" && (detail.reason === "disconnected" || detail.reason === "unauthorized")) {
    showLogin(detail.reason === "disconnected"
      ? `You were logged out: herald closed every tab of ${me} with 4000, and they stay closed.`
      : "Your session is gone. Log in again.");
  }
}

function renderConn(state, detail) {
  clearInterval(countdown);
  const conn = $("conn");
  conn.dataset.state = state;
  conn.dataset.reason = detail.reason || "";
  const text = $("conn-text");
  $("retry").hidden = !(state === "waiting" || state === "paused");
  switch (state) {
    case "open":
      text.textContent = "Connected";
      break;
    case "connecting":
      text.textContent = "Connecting…";
      break;
    case "waiting": {
      const until = Date.now() + (detail.delayMs || 0);
      const lead = detail.code === 1012 ? "herald is restarting · back in" : "Reconnecting in";
      const tick = () => {
        const s = Math.max(0, (until - Date.now()) / 1000);
        text.textContent = `${lead} ${s.toFixed(1)} s`;
      };
      tick();
      countdown = setInterval(tick, 100);
      break;
    }
    case "paused":
      text.textContent = detail.reason === "offline" ? "Offline · waiting for the network" : "Paused while hidden";
      break;
    case "stopped":
      text.textContent = STOP_TEXT[detail.reason] || "Stopped";
      break;
    default:
      text.textContent = "Not connected";
  }
}

function addTimeline(state, detail) {
  let what;
  switch (state) {
    case "open":
      what = "connected";
      break;
    case "connecting":
      what = "connecting: token, then socket";
      break;
    case "waiting": {
      const wait = `${(detail.delayMs / 1000).toFixed(1)} s`;
      if (detail.code === 1012) what = `herald restarting (1012): back in ${wait}, as it asked`;
      else if (detail.code) what = `closed ${detail.code}${detail.reason ? " " + detail.reason : ""}: retry in ${wait}`;
      else if (detail.reason === "token_fetch_failed") {
        // herald is not back yet: the next step of reconnecting, not a fault.
        note("step", `herald not reachable yet (token request failed): next try in ${wait}`);
        return;
      } else what = `${(detail.reason || "failed").replaceAll("_", " ")}: retry in ${wait}`;
      break;
    }
    case "paused":
      what = `paused (${detail.reason})`;
      break;
    case "stopped":
      what = `stopped: ${detail.code ? detail.code + " " : ""}${detail.reason}`;
      break;
    default:
      return;
  }
  note(state, what);
}

/** Adds a line to the connection timeline. */
function note(state, what) {
  const li = el("li", { "data-state": state }, [el("time", {}, clock()), what]);
  const tl = $("timeline");
  tl.prepend(li);
  while (tl.children.length > 10) tl.lastChild.remove();
}

// --- people: online now, and known users who are offline ------------------

async function refreshOnline() {
  if (!client || client.state !== "open" || document.visibilityState === "hidden") return;
  let users, all;
  try {
    ({ users = [], known: all = [] } = await (await fetch("/dev/online", { cache: "no-store" })).json());
  } catch {
    return;
  }
  if (!me) return;
  if (users.join() === online.join() && all.join() === known.join()) return;
  online = users;
  known = all;
  // Everyone who logged in since herald started, online first.
  const people = [...new Set([...users, ...all, me])].sort((a, b) => (users.includes(b) - users.includes(a)) || a.localeCompare(b));
  const others = people.filter((u) => u !== me);
  $("online-count").textContent = String(users.length);
  $("online").replaceChildren(...people.map((u) => {
    const on = users.includes(u);
    const a = el("span", { class: "avatar" });
    paintAvatar(a, u);
    const name = el("span", { class: "name" }, [u, u === me ? el("span", { class: "you" }, " (you)") : on ? "" : el("span", { class: "you" }, " offline")]);
    const actions = u === me ? [] : [
      button("Add friend", "small-btn", () => send(u, "friend_request")),
      button("Invite", "small-btn", () => send(u, "game_invite", $("send-game").value)),
    ];
    return el("li", { "data-user": u, "data-online": String(on) }, [el("span", { class: on ? "online-dot" : "online-dot off" }), a, name, ...actions]);
  }));
  $("online-empty").hidden = others.length > 0;
  const select = $("send-to");
  const chosen = select.value;
  select.replaceChildren(...(others.length
    ? others.map((u) => el("option", { value: u }, users.includes(u) ? u : `${u} (offline: waits in the inbox)`))
    : [el("option", { value: "" }, "nobody else yet")]));
  if (others.includes(chosen)) select.value = chosen;
  $("send-btn").disabled = others.length === 0;
}

// --- sending ---------------------------------------------------------------

for (const r of document.querySelectorAll("input[name=kind]")) {
  r.addEventListener("change", () => ($("game-row").hidden = !document.querySelector("input[name=kind][value=game_invite]").checked));
}

$("send-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const to = $("send-to").value;
  if (!to) return;
  const kind = document.querySelector("input[name=kind]:checked").value;
  send(to, kind, $("send-game").value);
});

/** Publishes on user:<to>, as a backend service would. */
function publish(to, msg) {
  return fetch(`/dev/publish?channel=${encodeURIComponent("user:" + to)}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(msg),
  });
}

async function send(to, kind, game) {
  const id = uuid();
  const msg = { type: kind, id, ts: Date.now(), data: { from: { id: me, name: me } } };
  if (kind === "game_invite") {
    msg.data.game_id = "g-" + id.slice(0, 6);
    msg.data.game = game;
    msg.data.expires_at = Date.now() + GAME_TTL_MS;
  }
  const r = await publish(to, msg);
  if (!r.ok) {
    toast("warn", "Not sent", `herald answered ${r.status}.`);
    return;
  }
  const item = { kind, to, game, status: "pending", offline: !online.includes(to) };
  item.el = el("li", { class: "item", "data-id": id, "data-kind": kind });
  sent.set(id, item);
  $("sent").prepend(item.el);
  paintSent(id);
  refreshEmpty();
}

function paintSent(id) {
  const s = sent.get(id);
  const what = s.kind === "game_invite" ? `Game invite · ${s.game}` : "Friend request";
  s.el.dataset.status = s.status;
  s.el.replaceChildren(
    icon(s.kind),
    el("div", { class: "body" }, [
      el("div", { class: "title" }, [`${what} to ${s.to}`, el("span", { class: `badge ${s.status}` }, s.status)]),
      el("div", { class: "meta" }, s.status !== "pending" ? `answered at ${clock()}`
        : s.offline ? `${s.to} is offline: it waits in their inbox until they log in` : "waiting for an answer"),
    ]),
  );
}

// --- receiving -------------------------------------------------------------

function receiveRequest(m, kind) {
  const from = m.data?.from?.name || m.data?.from?.id || "someone";
  if (!m.id || inbox.has(m.id)) return;
  const item = { msg: m, kind, status: "pending", replayed: typeof m.ts === "number" && m.ts < openedAt };
  item.el = el("li", { class: "item", "data-id": m.id, "data-kind": kind });
  inbox.set(m.id, item);
  $("inbox").prepend(item.el);
  paintRequest(m.id);
  refreshEmpty();
  const t = kind === "game_invite"
    ? toast("game_invite", `${from} invites you to ${m.data.game || "a game"}`, "Accept it in the inbox within a minute.")
    : toast("friend_request", `${from} wants to be friends`, "Accept or decline in the inbox.");
  t.dataset.request = m.id;
  toasts.set(m.id, t);
}

/** Draws a request's card once, then updates it in place (the invite's
 * countdown ticks every second; rebuilding the buttons would swallow clicks). */
function paintRequest(id) {
  const it = inbox.get(id);
  const m = it.msg;
  const from = m.data?.from?.name || m.data?.from?.id;
  const isGame = it.kind === "game_invite";
  if (!it.parts) {
    const badge = el("span", { class: "badge" });
    const title = el("div", { class: "title" }, [isGame ? `${from} invites you to ${m.data.game || "a game"}` : `${from} sent you a friend request`, badge]);
    const meta = el("div", { class: "meta" });
    const actions = el("div", { class: "actions" }, [
      button("Accept", "small-btn accept", () => answer(id, true)),
      button("Decline", "small-btn", () => answer(id, false)),
    ]);
    it.el.replaceChildren(icon(it.kind), el("div", { class: "body" }, [title, meta, actions]));
    it.parts = { badge, meta, actions };
  }
  if (isGame && it.status === "pending" && Date.now() > m.data.expires_at) it.status = "expired";
  const pending = it.status === "pending";
  it.el.dataset.status = it.status;
  it.el.classList.toggle("answered", !pending);
  it.parts.badge.hidden = pending;
  it.parts.badge.className = `badge ${it.status}`;
  it.parts.badge.textContent = it.status;
  it.parts.actions.hidden = !pending;
  it.parts.meta.textContent = isGame
    ? pending ? `game ${m.data.game_id} · expires in ${Math.ceil((m.data.expires_at - Date.now()) / 1000)} s` : `game ${m.data.game_id}`
    : it.replayed ? `sent at ${new Date(m.ts).toLocaleTimeString()} while you were offline: replayed from your inbox`
    : `received at ${new Date(m.ts || Date.now()).toLocaleTimeString()}`;
}

async function answer(id, accepted) {
  const it = inbox.get(id);
  if (!it || it.status !== "pending") return;
  const m = it.msg;
  const to = m.data.from.id;
  const reply = {
    type: "invite_answer",
    id: uuid(),
    ts: Date.now(),
    data: { from: { id: me, name: me }, kind: it.kind, request_id: id, accepted, game_id: m.data.game_id, game: m.data.game },
  };
  const r = await publish(to, reply);
  if (!r.ok) {
    toast("warn", "Not sent", `herald answered ${r.status}.`);
    return;
  }
  // Tell this user's other tabs that the request is answered.
  await publish(me, { type: "invite_handled", id: uuid(), ts: Date.now(), data: { request_id: id, accepted } });
  markHandled(id, accepted);
  if (accepted && it.kind === "game_invite") toast("ok", `${m.data.game} with ${to}`, `Game ${m.data.game_id} is starting.`);
}

function markHandled(id, accepted) {
  dismiss(toasts.get(id));
  toasts.delete(id);
  const it = inbox.get(id);
  if (!it || it.status !== "pending") return;
  it.status = accepted ? "accepted" : "declined";
  paintRequest(id);
}

function receiveAnswer(m) {
  const d = m.data || {};
  const who = d.from?.name || d.from?.id;
  const s = sent.get(d.request_id);
  if (s && s.status === "pending") {
    s.status = d.accepted ? "accepted" : "declined";
    paintSent(d.request_id);
  }
  const what = d.kind === "game_invite" ? "game invite" : "friend request";
  if (d.accepted && d.kind === "game_invite") {
    toast("ok", `${who} accepted your game invite`, `${d.game || "The game"} is starting · ${d.game_id}`);
  } else if (d.accepted) {
    toast("ok", `${who} accepted your friend request`, "You are now friends.");
  } else {
    toast("no", `${who} declined your ${what}`, "Maybe next time.");
  }
}

// Invites expire: repaint their countdowns.
setInterval(() => {
  for (const [id, it] of inbox) if (it.kind === "game_invite" && it.status === "pending") paintRequest(id);
}, 1000);

// --- little helpers --------------------------------------------------------

function refreshEmpty() {
  $("inbox-empty").hidden = inbox.size > 0;
  $("sent-empty").hidden = sent.size > 0;
}

function toast(kind, title, text) {
  const t = el("div", { class: "toast", role: "status" }, [
    icon(kind),
    el("div", {}, [el("div", { class: "t-title" }, title), el("div", { class: "t-text" }, text)]),
  ]);
  $("toasts").append(t);
  while ($("toasts").children.length > 4) $("toasts").firstChild.remove();
  setTimeout(() => dismiss(t), 6000);
  return t;
}

function dismiss(t) {
  if (!t?.isConnected || t.classList.contains("leaving")) return;
  t.classList.add("leaving");
  setTimeout(() => t.remove(), 300);
}

// --- the wire: every frame in and out, and the close codes -------------------

const FRAMES_MAX = 200;

function logFrame(f) {
  let arrow, text, kind;
  if (f.dir === "close") {
    arrow = "×";
    kind = "close";
    text = `close ${f.code}${f.reason ? " " + f.reason : ""} (by the ${f.by})`;
  } else {
    arrow = f.dir === "in" ? "↓" : "↑";
    kind = f.dir;
    text = f.data;
  }
  const li = el("li", { "data-dir": kind, title: text }, [el("time", {}, clock()), el("span", { class: "arrow" }, arrow), el("code", {}, text)]);
  const list = $("frames");
  list.prepend(li);
  while (list.children.length > FRAMES_MAX) list.lastChild.remove();
  $("frames-count").textContent = String(Number($("frames-count").textContent) + 1);
}

// Icons: inline SVG (constant strings), so that the page needs no font or file.
const SVG = {
  friend: '<path d="M15 19v-1.5a3.5 3.5 0 0 0-3.5-3.5h-5A3.5 3.5 0 0 0 3 17.5V19"/><circle cx="9" cy="7.5" r="3.5"/><path d="M19 8v6M22 11h-6"/>',
  game: '<rect x="2.5" y="7" width="19" height="11" rx="4"/><path d="M7 11v3M5.5 12.5h3"/><circle cx="15.5" cy="11.5" r=".6" fill="currentColor"/><circle cx="17.5" cy="13.5" r=".6" fill="currentColor"/>',
  ok: '<path d="M5 12.5l4.5 4.5L19 7.5"/>',
  no: '<path d="M6 6l12 12M18 6L6 18"/>',
  sync: '<path d="M20 11a8 8 0 0 0-14.7-4.4M4 4v4h4M4 13a8 8 0 0 0 14.7 4.4M20 20v-4h-4"/>',
  warn: '<path d="M12 3l9.5 17h-19z"/><path d="M12 10v4M12 17v.5"/>',
};

function svg(name) {
  const span = document.createElement("span");
  span.className = "svg";
  span.innerHTML = `<svg viewBox="0 0 24 24" width="18" height="18" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">${SVG[name]}</svg>`;
  return span;
}

function icon(kind) {
  const cls = { game_invite: "game", friend_request: "friend", ok: "ok", no: "no", sync: "sync", warn: "warn" }[kind];
  const name = { game: "game", friend: "friend", ok: "ok", no: "no", sync: "sync", warn: "warn" }[cls];
  return el("div", { class: `icon ${cls}` }, svg(name));
}

function button(label, cls, onClick) {
  const b = el("button", { class: cls, type: "button" }, label);
  b.addEventListener("click", onClick);
  return b;
}

function el(tag, attrs = {}, children = []) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  n.append(...[].concat(children));
  return n;
}

function paintAvatar(node, name) {
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
  node.style.background = `hsl(${h} 55% 52%)`;
  node.textContent = name.slice(0, 1);
}

function clock() {
  return new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) => (c ^ (Math.random() * 16) >> (c / 4)).toString(16));
}

// A reload keeps the tab's user.
const saved = sessionStorage.getItem(STORE);
if (saved) start(saved);
