// The examples users copy must compile: every ```ts block of this
// package's README, of the browser-client section of herald's README, and
// of herald.d.ts's @example comments, under tsc --strict against
// herald.d.ts (the pinned typescript dev dependency).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repo = resolve(pkg, "..", "..");

/** The ```ts (or ```js, when ts is false) blocks of a Markdown text. */
function fenced(text, langs) {
  const out = [];
  const re = /^```(\w+)\n([\s\S]*?)^```$/gm;
  for (let m; (m = re.exec(text)); ) if (langs.includes(m[1])) out.push(m[2]);
  return out;
}

/** The snippets to check, named by where they come from. */
export function snippets() {
  const found = [];
  fenced(readFileSync(join(pkg, "README.md"), "utf8"), ["ts"]).forEach((code, i) => found.push([`README.md #${i + 1}`, code]));
  const top = readFileSync(join(repo, "README.md"), "utf8");
  const section = top.slice(top.indexOf("## The browser client"), top.indexOf("\n## ", top.indexOf("## The browser client") + 5));
  fenced(section, ["ts", "js"]).forEach((code, i) => found.push([`../../README.md (browser client) #${i + 1}`, code]));
  const dts = readFileSync(join(pkg, "herald.d.ts"), "utf8");
  // @example blocks: comment lines " * …" between ```ts and ```.
  const unstarred = dts.replace(/^\s*\* ?/gm, "");
  fenced(unstarred, ["ts"]).forEach((code, i) => found.push([`herald.d.ts @example #${i + 1}`, code]));
  return found;
}

test("the README and herald.d.ts examples type-check with tsc --strict", () => {
  const found = snippets();
  assert.ok(found.filter(([n]) => n.startsWith("README.md")).length >= 3, "too few examples found in README.md");
  assert.ok(found.some(([n]) => n.startsWith("../../README.md")), "no example found in herald's README");
  assert.ok(found.filter(([n]) => n.startsWith("herald.d.ts")).length >= 2, "too few @example blocks found in herald.d.ts");

  // Under node_modules, so that imports of react and ws resolve to the
  // package's dev dependencies; "@herald-gw/client" maps to herald.d.ts.
  const dir = join(pkg, "node_modules", ".herald-examples");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const files = found.map(([name, code], i) => {
    const f = join(dir, `example${i + 1}.ts`);
    writeFileSync(f, `// ${name}\n${code}\nexport {};\n`);
    return [f, name];
  });
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: "es2022",
        module: "esnext",
        moduleResolution: "bundler",
        lib: ["es2022", "dom"],
        types: [],
        skipLibCheck: true,
        isolatedModules: true,
        paths: { "@herald-gw/client": [join(pkg, "herald.d.ts")] },
      },
      files: [join(pkg, "herald.d.ts"), ...files.map(([f]) => f)],
    }),
  );
  const tsc = join(pkg, "node_modules", "typescript", "bin", "tsc");
  let out = "";
  try {
    execFileSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  } catch (err) {
    out = String(err.stdout || err.message);
  }
  for (const [f, name] of files) out = out.replaceAll(f, name);
  assert.equal(out, "", `tsc --strict:\n${out}`);
  rmSync(dir, { recursive: true, force: true });
});

test("tsc refuses what the types are there to catch", () => {
  const dir = join(pkg, "node_modules", ".herald-examples-bad");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // Each line must fail on its own.
  const bad = {
    "a typo in a declared event type": `h.on("friend_requets", (m) => m);`,
    "a wrong field of declared data": `h.on("friend_request", (m) => m.data.from.nmae);`,
    "data is unknown without a type": `new HeraldClient().on("x", (m) => m.data.from);`,
    "send takes no number": `h.send(42);`,
  };
  const files = Object.entries(bad).map(([name, line], i) => {
    const f = join(dir, `bad${i + 1}.ts`);
    writeFileSync(f, `import { HeraldClient } from "@herald-gw/client";\nconst h = new HeraldClient<{ friend_request: { from: { name: string } } }>();\n${line}\nexport {};\n`);
    return [f, name];
  });
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext", moduleResolution: "bundler", lib: ["es2022", "dom"], types: [], paths: { "@herald-gw/client": [join(pkg, "herald.d.ts")] } },
      files: files.map(([f]) => f),
    }),
  );
  let out = "";
  try {
    execFileSync(process.execPath, [join(pkg, "node_modules", "typescript", "bin", "tsc"), "-p", join(dir, "tsconfig.json")], { encoding: "utf8" });
  } catch (err) {
    out = String(err.stdout);
  }
  for (const [f, name] of files) assert.ok(out.includes(`${f.slice(pkg.length + 1)}(3,`), `tsc accepted ${name}:\n${out}`);
  rmSync(dir, { recursive: true, force: true });
});
