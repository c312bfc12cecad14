// Test helpers: build the herald binary from this repository, run it in
// --dev mode on a free loopback port, and talk to it.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createHmac } from "node:crypto";
import { connect, createServer } from "node:net";
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
  /** args follow --dev, unless opts.dev is false; opts.env adds variables. */
  constructor(port, args = [], opts = {}) {
    this.port = port;
    this.args = args;
    this.dev = opts.dev ?? true;
    this.env = opts.env ?? {};
    this.base = `http://127.0.0.1:${port}`;
    this.wsUrl = `ws://127.0.0.1:${port}/ws`;
    this.proc = null;
    this.logs = "";
    this.exited = null;
  }

  static async start(args = [], opts = {}) {
    const h = new Herald(await freePort(), args, opts);
    await h.start();
    return h;
  }

  async start() {
    const args = [...(this.dev ? ["--dev"] : []), "--addr", `127.0.0.1:${this.port}`, "--drain-window", "300ms", ...this.args];
    const proc = spawn(heraldBinary(), args, { env: { PATH: process.env.PATH, ...this.env }, stdio: ["ignore", "pipe", "pipe"] });
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

/** A redis-server on a free loopback port, started by the test; nothing on disk. */
export class Redis {
  static async start() {
    const r = new Redis();
    r.port = await freePort();
    r.proc = spawn("redis-server", ["--port", String(r.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    spawned.add(r.proc);
    r.proc.on("exit", () => spawned.delete(r.proc));
    await waitFor(async () => (await r.command("PING").catch(() => null)) === "PONG", 10000, "redis-server");
    return r;
  }

  get url() {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Sends one command and returns its reply (a string or an integer). */
  command(...args) {
    return new Promise((ok, fail) => {
      const sock = connect(this.port, "127.0.0.1");
      let buf = "";
      sock.on("error", fail);
      sock.on("data", (d) => {
        buf += d;
        if (!buf.endsWith("\r\n")) return;
        sock.end();
        const line = buf.slice(1, -2);
        if (buf[0] === "-") fail(new Error(line));
        else ok(buf[0] === ":" ? Number(line) : line);
      });
      sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(""));
    });
  }

  async stop() {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise((r) => this.proc.on("exit", r));
    this.proc.kill("SIGKILL");
    await exited;
  }
}

/** An HS256 JWT, as a main backend would issue the session. */
export function hs256(secret, claims) {
  const b64 = (v) => Buffer.from(JSON.stringify(v)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}
