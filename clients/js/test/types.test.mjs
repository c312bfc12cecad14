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

/** Wrong uses, each of which tsc must refuse (on line 3 of its file). */
const wrong = {
  "a typo in a declared event type": `h.on("friend_requets", (m) => m);`,
  "a wrong field of declared data": `h.on("friend_request", (m) => m.data.from.nmae);`,
  "data is unknown without a type": `new HeraldClient().on("x", (m) => m.data.from);`,
  "send takes no number": `h.send(42);`,
};

test("tsc --strict: the README and herald.d.ts examples compile, and wrong uses do not", () => {
  const found = snippets();
  assert.ok(found.filter(([n]) => n.startsWith("README.md")).length >= 3, "too few examples found in README.md");
  assert.ok(found.some(([n]) => n.startsWith("../../README.md")), "no example found in herald's README");
  assert.ok(found.filter(([n]) => n.startsWith("herald.d.ts")).length >= 2, "too few @example blocks found in herald.d.ts");

  // Under node_modules, so that imports of react and ws resolve to the
  // package's dev dependencies; "@herald-gw/client" maps to herald.d.ts.
  // One tsc run for both kinds, each file a module of its own.
  const dir = join(pkg, "node_modules", ".herald-examples");
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const write = (file, text) => {
    writeFileSync(join(dir, file), text);
    return `node_modules/.herald-examples/${file}`;
  };
  const good = found.map(([name, code], i) => [write(`example${i + 1}.ts`, `// ${name}\n${code}\nexport {};\n`), name]);
  const bad = Object.entries(wrong).map(([name, line], i) => [
    write(`wrong${i + 1}.ts`, `import { HeraldClient } from "@herald-gw/client";\nconst h = new HeraldClient<{ friend_request: { from: { name: string } } }>();\n${line}\nexport {};\n`),
    name,
  ]);
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
      files: [...good, ...bad].map(([f]) => join(pkg, f)),
    }),
  );
  let out = "";
  try {
    execFileSync(process.execPath, [join(pkg, "node_modules", "typescript", "bin", "tsc"), "-p", join(dir, "tsconfig.json")], { cwd: pkg, encoding: "utf8" });
  } catch (err) {
    out = String(err.stdout || err.message);
  }
  const errors = out.split("\n").filter((l) => /^\S.*\(\d+,\d+\): error/.test(l));
  const inGood = errors.filter((l) => good.some(([f]) => l.startsWith(f)));
  let report = inGood.join("\n");
  for (const [f, name] of good) report = report.replaceAll(f, name);
  assert.equal(report, "", `tsc --strict on the examples:\n${report}`);
  for (const [f, name] of bad) assert.ok(errors.some((l) => l.startsWith(`${f}(3,`)), `tsc accepted ${name}:\n${out}`);
  rmSync(dir, { recursive: true, force: true });
});
