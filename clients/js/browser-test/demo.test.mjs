// Real-browser tests: Debian's headless Chromium, driven by playwright-core,
// against a herald --dev process built from this repository. They drive the
// demo page (cmd/herald/demo) and, through it, herald.js in a real browser.
//
// CHROMIUM names the browser binary (default /usr/bin/chromium). The demo's
// screenshot (the offline-recipient flow, docs/demo.png) is written to the
// run's temporary directory, printed as "screenshot: <path>", and kept
// (HERALD_ARTIFACTS_DIR chooses the folder).
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, test } from "node:test";

import { chromium } from "playwright-core";

import { Herald, waitFor } from "../test/herald-process.mjs";

const artifacts = process.env.HERALD_ARTIFACTS_DIR || mkdtempSync(join(tmpdir(), "herald-browser-"));
mkdirSync(artifacts, { recursive: true });

let browser;
const running = new Set();

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Playwright starts every launch with a new, empty profile directory.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});
after(async () => {
  await browser?.close();
});
afterEach(async () => {
  for (const h of running) await h.stop("SIGKILL");
  running.clear();
});

async function startHerald(args = []) {
  const h = await Herald.start(args);
  running.add(h);
  return h;
}

/**
 * Records, in the page, every WebSocket the page opens, the close code of
 * each, and the time of each reconnect frame: window.__ws.
 */
function recordSockets() {
  const Native = window.WebSocket;
  const log = (window.__ws = { opened: [], closes: [], hints: [] });
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      log.opened.push(Date.now());
      this.addEventListener("close", (e) => log.closes.push(e.code));
      this.addEventListener("message", (e) => {
        try {
          const m = JSON.parse(e.data);
          if (m.type === "reconnect") log.hints.push({ at: Date.now(), after_ms: m.after_ms });
        } catch {
          // not JSON
        }
      });
    }
  };
}

/** A new tab (in ctx) on the demo, logged in as user through the form. page.failed lists the responses of 400 and more. */
async function tab(ctx, h, user) {
  const page = await ctx.newPage();
  page.failed = [];
  page.on("pageerror", (e) => console.error(`page error (${user}):`, e));
  page.on("response", (r) => r.status() >= 400 && page.failed.push(`${r.status()} ${new URL(r.url()).pathname}`));
  await page.addInitScript(recordSockets);
  await page.goto(h.base + "/");
  await logIn(page, user);
  return page;
}

async function logIn(page, user) {
  await page.fill("#login-user", user);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("#conn[data-state=open]", { timeout: 10000 });
}

const sockets = (page) => page.evaluate(() => window.__ws);

describe("in Chromium", () => {
  test("cookie → token → socket with the client's defaults; the cookie stays httpOnly", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(h.base + "/");
    const got = await page.evaluate(async () => {
      const { HeraldClient } = await import("/herald.js");
      const login = await fetch("/dev/login?user=dave", { method: "POST" });
      const client = new HeraldClient(); // POST /api/ws/token, then /ws, on this origin
      client.connect();
      await client.ready();
      const out = { login: login.status, state: client.state, user: client.userId, socket: client.socketId, cookie: document.cookie };
      client.close();
      return out;
    });
    assert.equal(got.login, 200);
    assert.equal(got.state, "open");
    assert.equal(got.user, "dave");
    assert.match(got.socket, /\./);
    assert.equal(got.cookie, "", "the session cookie is readable from script");
    const [cookie] = await ctx.cookies(h.base);
    assert.equal(cookie.name, "access_token");
    assert.equal(cookie.httpOnly, true);
    await ctx.close();
  });

  test("two tabs of one user both receive a friend request; a logout on herald:control closes both with 4000 for good", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const bob1 = await tab(ctx, h, "bob");
    const bob2 = await tab(ctx, h, "bob");
    const carol = await tab(ctx, h, "carol");
    await carol.waitForSelector("#send-to option[value=bob]", { state: "attached" });
    await carol.selectOption("#send-to", "bob");
    await carol.check("input[name=kind][value=friend_request]");
    await carol.click("#send-btn");
    for (const p of [bob1, bob2]) {
      const card = await p.waitForSelector("#inbox li[data-kind=friend_request]", { timeout: 5000 });
      assert.match(await card.textContent(), /carol sent you a friend request/);
    }
    // Accepting in one tab answers in carol's tab and updates bob's other tab.
    await bob1.click("#inbox li[data-kind=friend_request] >> text=Accept");
    await carol.waitForSelector("#sent li[data-status=accepted]", { timeout: 5000 });
    await bob2.waitForSelector("#inbox li[data-kind=friend_request][data-status=accepted]", { timeout: 5000 });

    const before = await Promise.all([bob1, bob2].map(sockets));
    await h.publish("herald:control", { op: "disconnect", user_id: "bob", reason: "logout" });
    for (const p of [bob1, bob2]) {
      await p.waitForSelector("#login-view:not([hidden])", { timeout: 5000 });
      assert.match(await p.textContent("#login-note"), /4000/);
      await waitFor(async () => (await sockets(p)).closes.includes(4000), 5000, "close 4000 in the page");
    }
    await waitFor(async () => !(await h.online()).includes("bob"), 5000, "bob offline");
    await new Promise((r) => setTimeout(r, 1500)); // time to reconnect, if it wrongly would
    const afterLogout = await Promise.all([bob1, bob2].map(sockets));
    for (let i = 0; i < 2; i++) assert.equal(afterLogout[i].opened.length, before[i].opened.length, "a tab reconnected after 4000");
    assert.deepEqual(await h.online(), ["carol"]);
    await ctx.close();
  });

  test("a replayed token is refused with 4003", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(h.base + "/");
    const got = await page.evaluate(async () => {
      await fetch("/dev/login?user=erin", { method: "POST" });
      const { token } = await (await fetch("/api/ws/token", { method: "POST" })).json();
      const open = (t) =>
        new Promise((ok) => {
          const ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(t)}`);
          const seen = [];
          ws.onmessage = (e) => {
            seen.push(JSON.parse(e.data).type);
            ws.close();
          };
          ws.onclose = (e) => ok({ seen, code: e.code, reason: e.reason });
        });
      const first = await open(token);
      const replay = await open(token);
      return { first, replay };
    });
    assert.deepEqual(got.first.seen, ["welcome"]);
    assert.deepEqual(got.replay.seen, []);
    assert.equal(got.replay.code, 4003);
    assert.equal(got.replay.reason, "token_reused");
    await ctx.close();
  });

  test("offline pauses the client; online reconnects it with since= and the inbox replays what it missed", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext();
    const page = await tab(ctx, h, "frank");
    const urls = [];
    page.on("websocket", (ws) => urls.push(new URL(ws.url())));
    await ctx.setOffline(true);
    await page.waitForSelector("#conn[data-state=paused][data-reason=offline]", { timeout: 5000 });
    await waitFor(async () => !(await h.online()).includes("frank"), 5000, "frank's socket closed");
    await h.publish("user:frank", { type: "friend_request", id: "missed-1", ts: Date.now(), data: { from: { id: "gina", name: "gina" } } });
    await ctx.setOffline(false);
    await page.waitForSelector("#conn[data-state=open]", { timeout: 10000 });
    const card = await page.waitForSelector("#inbox li[data-id=missed-1]", { timeout: 5000 });
    assert.match(await card.textContent(), /gina sent you a friend request/);
    assert.match(urls.at(-1).searchParams.get("since"), /^\d+-\d+$/);
    await ctx.close();
  });

  test("a graceful restart: the tabs wait for the hint, then reconnect, logging in again as a step", async () => {
    const h = await startHerald(["--drain-window", "1500ms"]);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const alice = await tab(ctx, h, "alice");
    const bob = await tab(ctx, h, "bob");

    // Some traffic first, so that the screenshot shows the app at work.
    await bob.waitForSelector("#online li[data-user=alice]");
    await bob.check("input[name=kind][value=game_invite]");
    await bob.selectOption("#send-to", "alice");
    await bob.click("#send-btn");
    await alice.waitForSelector("#inbox li[data-kind=game_invite]", { timeout: 5000 });
    await alice.click("#inbox li[data-kind=game_invite] >> text=Accept");
    await bob.waitForSelector("#sent li[data-status=accepted]", { timeout: 5000 });
    await alice.waitForSelector("#online li[data-user=bob]");
    await alice.click("#online li[data-user=bob] >> text=Add friend");
    await bob.waitForSelector("#inbox li[data-kind=friend_request]", { timeout: 5000 });

    await h.stop("SIGTERM");
    for (const p of [alice, bob]) {
      const hint = await waitFor(async () => (await sockets(p)).hints[0], 5000, "reconnect frame");
      assert.ok(hint.after_ms >= 0 && hint.after_ms < 1500, `after_ms ${hint.after_ms}`);
    }
    // While herald is down, the tabs back off, and show it as a step of reconnecting.
    for (const p of [alice, bob]) {
      await p.waitForSelector("#timeline li[data-state=step] >> text=/not reachable yet.*next try in/", { timeout: 10000 });
    }
    await h.start(); // new process, new secrets: the demo logs in again by itself
    for (const p of [alice, bob]) {
      await p.waitForSelector("#conn[data-state=open]", { timeout: 20000 });
      const log = await sockets(p);
      assert.ok(log.closes.includes(1012), `closes ${log.closes}, want 1012`);
      const hint = log.hints[0];
      const next = log.opened.find((t) => t > hint.at);
      assert.ok(next - hint.at >= hint.after_ms - 20, `reconnected ${next - hint.at} ms after the hint, asked ${hint.after_ms}`);
    }
    await waitFor(async () => (await h.online()).join() === "alice,bob", 5000, "both users online again");
    // The new login is a step, not a warning.
    for (const p of [alice, bob]) {
      assert.match(await p.textContent("#timeline li[data-state=step] >> text=/401/"), /session refused \(401\).*logging in again/);
      const warned = await p.$$eval("#timeline li:not([data-state=step])", (lis) => lis.map((li) => li.textContent).filter((t) => /401|token request/.test(t)));
      assert.deepEqual(warned, []);
    }
    // Inbox and history survive the reconnect.
    assert.equal(await bob.locator("#inbox li[data-kind=friend_request]").count(), 1);
    await ctx.close();
  });
});

describe("the demo, in Chromium", () => {
  test("a friend request to an offline user waits in their inbox and shows when they log in; the wire log; screenshot", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 960 } });
    const alice = await tab(ctx, h, "alice");
    const bob = await tab(ctx, h, "bob");
    await bob.click("#logout");
    await bob.waitForSelector("#login-view:not([hidden])", { timeout: 5000 });

    // bob is offline, and still someone alice can send to.
    await alice.waitForSelector("#online li[data-user=bob][data-online=false]", { timeout: 5000 });
    await alice.selectOption("#send-to", "bob");
    assert.match(await alice.textContent("#send-to option[value=bob]"), /offline/);
    await alice.check("input[name=kind][value=friend_request]");
    assert.equal(await alice.isEnabled("#send-btn"), true);
    await alice.click("#send-btn");
    await alice.waitForSelector("#sent li[data-kind=friend_request] >> text=/bob is offline: it waits in their inbox/", { timeout: 5000 });
    await alice.check("input[name=kind][value=game_invite]");
    await alice.click("#send-btn");
    await alice.waitForSelector("#sent li[data-kind=game_invite]", { timeout: 5000 });

    await logIn(bob, "bob");
    const card = await bob.waitForSelector("#inbox li[data-kind=friend_request]", { timeout: 5000 });
    assert.match(await card.textContent(), /alice sent you a friend request.*while you were offline: replayed from your inbox/);
    await bob.waitForSelector("#inbox li[data-kind=game_invite]", { timeout: 5000 });
    await bob.waitForSelector(".toast >> text=/Caught up: 2 missed while away/", { timeout: 5000 });

    // The wire: the welcome, the two replayed events, replay_complete; the logout's 4000 before them.
    await bob.click("#wire > summary");
    const frames = await bob.$$eval("#frames li", (lis) => lis.map((li) => li.textContent).reverse());
    const types = frames.map((t) => (t.match(/"type":"(\w+)"/) || [])[1]).filter(Boolean);
    assert.deepEqual(types, ["welcome", "friend_request", "game_invite", "replay_complete"]);
    assert.match(frames[0], /↓\{"type":"welcome"/);
    assert.match(frames[1], /↓\{"inbox_id":"\d+-\d+","type":"friend_request"/);

    await bob.waitForTimeout(400); // let the arrival animations end
    const shot = join(artifacts, "demo.png");
    await bob.screenshot({ path: shot, fullPage: true });
    console.log(`screenshot: ${shot}`);

    // Accepting: alice learns it; bob's toast for the request goes away.
    const id = await card.getAttribute("data-id");
    assert.equal(await bob.locator(`.toast[data-request="${id}"]`).count(), 1);
    await bob.click("#inbox li[data-kind=friend_request] >> text=Accept");
    await bob.waitForSelector(`.toast[data-request="${id}"]`, { state: "detached", timeout: 2000 });
    await alice.waitForSelector("#sent li[data-kind=friend_request][data-status=accepted]", { timeout: 5000 });
    // Logging out showed the close on the wire before the log was cleared for the next user.
    assert.ok((await sockets(bob)).closes.includes(4000));
    for (const p of [alice, bob]) assert.deepEqual(p.failed, [], "failed requests (the favicon among them?)");
    await ctx.close();
  });

  test("a reloaded page receives what was published while it reloaded", async () => {
    const h = await startHerald();
    const ctx = await browser.newContext();
    const page = await tab(ctx, h, "ivy");
    await h.publish("user:ivy", { type: "friend_request", id: "before", ts: Date.now(), data: { from: { id: "jo", name: "jo" } } });
    await page.waitForSelector("#inbox li[data-id=before]", { timeout: 5000 });
    const urls = [];
    page.on("websocket", (ws) => urls.push(new URL(ws.url())));
    // The reloaded page's token request waits until the old socket is gone
    // and a request was published: it happens while the page reloads.
    let published = false;
    await page.route("**/dev/as/ivy/api/ws/token", async (route) => {
      if (!published) {
        await waitFor(async () => !(await h.online()).includes("ivy"), 5000, "the old page's socket closed");
        await h.publish("user:ivy", { type: "friend_request", id: "during", ts: Date.now(), data: { from: { id: "kim", name: "kim" } } });
        published = true;
      }
      await route.continue();
    });
    await page.reload();
    const card = await page.waitForSelector("#inbox li[data-id=during]", { timeout: 10000 });
    assert.ok(published);
    assert.match(await card.textContent(), /kim sent you a friend request/);
    assert.match(urls.at(-1).searchParams.get("since"), /^\d+-\d+$/);
    assert.equal(await page.locator("#inbox li[data-id=before]").count(), 0, "the reload replayed from too far back");
    await ctx.close();
  });
});
