// The README's React hook, run as documented: its TypeScript transpiled by
// the pinned typescript, React 18 from the dev dependencies (UMD build),
// herald.js from a herald --dev process, in headless Chromium. React is a
// dev dependency of these tests only; the package does not depend on it.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";
import ts from "typescript";

import { Herald, waitFor } from "../test/herald-process.mjs";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The README's ```ts block that defines useHerald, as a browser module. */
function hookModule(origin) {
  const readme = readFileSync(join(pkg, "README.md"), "utf8");
  const block = [...readme.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]).find((c) => c.includes("function useHerald"));
  assert.ok(block, "no useHerald example in README.md");
  const js = ts.transpileModule(block, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  const out = js
    .replace(/^import \{([^}]*)\} from "react";$/m, "const {$1} = window.React;")
    .replace(/from "@herald-gw\/client";$/m, `from "${origin}/herald.js";`);
  assert.ok(!/from "react"|@herald-gw/.test(out), `imports left in:\n${out}`);
  return out;
}

let browser;
let h;
before(async () => {
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  h = await Herald.start();
});
after(async () => {
  await browser?.close();
  await h?.stop("SIGKILL");
});

test("the README's useHerald hook: subscribes while mounted, follows its type, unsubscribes on unmount", async () => {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(h.base + "/healthz"); // the origin, without the demo's CSP
  await page.addScriptTag({ path: join(pkg, "node_modules/react/umd/react.development.js") });
  await page.addScriptTag({ path: join(pkg, "node_modules/react-dom/umd/react-dom.development.js") });
  await page.evaluate(async (code) => {
    await fetch("/dev/login?user=rhea", { method: "POST" });
    const mod = await import(URL.createObjectURL(new Blob([code], { type: "text/javascript" })));
    const { createElement: el, useState } = window.React;
    function Inbox({ type }) {
      const [got, setGot] = useState([]);
      mod.useHerald(type, (m) => setGot((g) => [...g, `${m.type}:${m.id}`]));
      return el("ul", { id: "got" }, got.map((x) => el("li", { key: x }, x)));
    }
    const root = window.ReactDOM.createRoot(document.body.appendChild(document.createElement("div")));
    window.__t = { mod, render: (type) => root.render(el(Inbox, { type })), unmount: () => root.unmount() };
    window.__t.render("friend_request");
    await mod.herald.ready();
  }, hookModule(h.base));
  const count = (type) => page.evaluate((t) => window.__t.mod.herald.listenerCount(t), type);
  assert.equal(await count("friend_request"), 1);

  await h.publish("user:rhea", { type: "friend_request", id: "a" });
  await h.publish("user:rhea", { type: "game_invite", id: "b" });
  await page.waitForSelector("#got li >> text=friend_request:a", { timeout: 5000 });

  await page.evaluate(() => window.__t.render("game_invite"));
  await waitFor(async () => (await count("friend_request")) === 0 && (await count("game_invite")) === 1, 5000, "the listener moved to game_invite");
  await h.publish("user:rhea", { type: "friend_request", id: "c" });
  await h.publish("user:rhea", { type: "game_invite", id: "d" });
  await page.waitForSelector("#got li >> text=game_invite:d", { timeout: 5000 });
  assert.deepEqual(await page.$$eval("#got li", (lis) => lis.map((li) => li.textContent)), ["friend_request:a", "game_invite:d"]);

  await page.evaluate(() => window.__t.unmount());
  assert.equal(await count("game_invite"), 0);
  await page.evaluate(() => window.__t.mod.herald.close());
  await ctx.close();
});
