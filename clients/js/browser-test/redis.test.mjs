// herald.js in Chromium against herald in its cluster mode: a real
// redis-server started by the test, herald without --dev on its own port,
// and the app's page on another origin (a tiny server here), as in a
// deployment where herald is ws.example.com and the app app.example.com.
// The session cookie is the main backend's (an HS256 JWT set on the
// browser); the client sends it cross-origin with credentials: "include".
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { freePort, Herald, hs256, Redis, repoRoot, waitFor } from "../test/herald-process.mjs";

const SESSION_SECRET = "s".repeat(32) + "-browser-test-session";
const WS_SECRET = "w".repeat(32) + "-browser-test-ws-token";

let browser, redis, herald, app;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  redis = await Redis.start();
  // The app's origin: a page that loads herald.js (the same file npm ships).
  const appPort = await freePort();
  const client = readFileSync(join(repoRoot, "clients", "js", "herald.js"));
  app = createServer((req, res) => {
    if (req.url === "/herald.js") {
      res.writeHead(200, { "Content-Type": "text/javascript" }).end(client);
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html" }).end("<!doctype html><title>app</title><p>app</p>");
  });
  await new Promise((ok) => app.listen(appPort, "127.0.0.1", ok));
  herald = await Herald.start(
    ["--redis-url", redis.url, "--allowed-origins", `http://127.0.0.1:${appPort}`],
    { dev: false, env: { HERALD_SESSION_SECRET: SESSION_SECRET, HERALD_WS_TOKEN_SECRET: WS_SECRET } },
  );
  app.base = `http://127.0.0.1:${appPort}`;
});

after(async () => {
  await browser?.close();
  await herald?.stop("SIGKILL");
  await redis?.stop();
  app?.close();
});

/** A tab on the app's origin whose client connects to herald; window.__log records it. */
async function appTab(ctx) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(app.base + "/");
  await page.evaluate(async (h) => {
    const { HeraldClient } = await import("/herald.js");
    const log = (window.__log = { states: [], messages: [], sockets: 0 });
    const Native = window.WebSocket;
    const client = new HeraldClient({
      tokenUrl: `${h}/api/ws/token`,
      url: `${h.replace("http", "ws")}/ws`,
      WebSocket: class extends Native {
        constructor(...a) {
          super(...a);
          log.sockets++;
        }
      },
    });
    client.onState((state, d) => log.states.push({ state, code: d.code, reason: d.reason }));
    client.on("*", (m) => log.messages.push(m));
    client.connect();
    window.__client = client;
  }, herald.base);
  await page.waitForFunction(() => window.__client.state === "open", null, { timeout: 10000 });
  return page;
}

const log = (page) => page.evaluate(() => window.__log);

test("cross-origin with credentials: two tabs receive a PUBLISH user:42; PUBLISH herald:control closes both with 4000 for good", async () => {
  const ctx = await browser.newContext();
  const now = Math.floor(Date.now() / 1000);
  await ctx.addCookies([{
    name: "access_token",
    value: hs256(SESSION_SECRET, { sub: "42", iat: now, exp: now + 600 }),
    domain: "127.0.0.1",
    path: "/",
    httpOnly: true,
    sameSite: "Lax",
  }]);
  const tabs = [await appTab(ctx), await appTab(ctx)];

  const receivers = await redis.command("PUBLISH", "user:42", JSON.stringify({ type: "friend_request", id: "r-1", data: { from: { id: "7", name: "alice" } } }));
  assert.equal(receivers, 1, "herald's replica is the one subscriber of user:42");
  for (const p of tabs) {
    await waitFor(async () => (await log(p)).messages.some((m) => m?.type === "friend_request" && m.id === "r-1"), 5000, "the friend request in both tabs");
  }

  const before = await Promise.all(tabs.map(log));
  await redis.command("PUBLISH", "herald:control", JSON.stringify({ op: "disconnect", user_id: "42", reason: "logout" }));
  for (const p of tabs) {
    await p.waitForFunction(() => window.__client.state === "stopped", null, { timeout: 5000 });
    const s = (await log(p)).states.at(-1);
    assert.deepEqual(s, { state: "stopped", code: 4000, reason: "disconnected" });
  }
  await new Promise((r) => setTimeout(r, 1500)); // time to reconnect, if it wrongly would
  const later = await Promise.all(tabs.map(log));
  for (let i = 0; i < tabs.length; i++) {
    assert.equal(later[i].sockets, before[i].sockets, "a tab opened a socket after 4000");
    assert.equal(later[i].states.at(-1).state, "stopped");
  }
  await ctx.close();
});
