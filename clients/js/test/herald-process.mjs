// Test helpers: build the herald binary from this repository, run it in
// --dev mode on a free loopback port, and talk to it.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

let built = null;

// Every herald started here dies with the test process, even when a test
// fails half-way or the runner exits early.
const spawned = new Set();
process.on("exit", () => {
  for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

/** Builds ./cmd/herald once per test process and returns the binary's path. */
export function heraldBinary() {
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), "herald-js-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const bin = join(dir, "herald");
  execFileSync("go", ["build", "-o", bin, "./cmd/herald"], { cwd: repoRoot, stdio: ["ignore", "inherit", "inherit"] });
  built = bin;
  return bin;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Polls cond (sync or async) until it returns a truthy value, or throws after ms. */
export async function waitFor(cond, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A herald --dev process. start() runs it (again, on the same port after a
 * stop) and waits for /healthz.
 */
export class Herald {
  constructor(port, args = []) {
    this.port = port;
    this.args = args;
    this.base = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/ws`;
    this.proc = null;
    this.logs = "";
    this.exited = null;
  }

  static async start(args = []) {
    const h = new Herald(await freePort(), args);
    await h.start();
    return h;
  }

  async start() {
    const args = ["--dev", "--addr", `127.0.0.1:${this.port}`, "--drain-window", "300ms", ...this.args];
    const proc = spawn(heraldBinary(), args, { env: { PATH: process.env.PATH }, stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    spawned.add(proc);
    proc.on("exit", () => spawned.delete(proc));
    proc.stdout.on("data", (b) => (this.logs += b));
    proc.stderr.on("data", (b) => (this.logs += b));
    this.exited = new Promise((r) => proc.on("exit", (code, signal) => r({ code, signal })));
    await waitFor(async () => {
      if (proc.exitCode !== null) throw new Error(`herald exited at start:\n${this.logs}`);
      try {
        return (await fetch(`${this.base}/healthz`)).ok;
      } catch {
        return false;
      }
    }, 15000, "herald /healthz");
  }

  signal(sig) {
    this.proc?.kill(sig);
  }

  /** SIGTERM (graceful) or SIGKILL, and wait for the exit. */
  async stop(sig = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(sig);
    await this.exited;
  }

  /** A session cookie for user, from POST /dev/login. */
  async login(user) {
    const r = await fetch(`${this.base}/dev/login?user=${encodeURIComponent(user)}`, { method: "POST" });
    if (!r.ok) throw new Error(`dev login: ${r.status}`);
    return r.headers.get("set-cookie").split(";")[0];
  }

  /** PUBLISH channel payload, through herald's dev endpoint. */
  async publish(channel, payload) {
    const r = await fetch(`${this.base}/dev/publish?channel=${encodeURIComponent(channel)}`, {
      method: "POST",
      body: typeof payload === "string" ? payload : JSON.stringify(payload),
    });
    if (r.status !== 204) throw new Error(`publish: ${r.status} ${await r.text()}`);
  }

  async online() {
    return (await (await fetch(`${this.base}/dev/online`)).json()).users;
  }
}
