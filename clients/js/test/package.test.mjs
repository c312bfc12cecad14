// What `npm pack` ships: exactly the module, its types, the README and the
// changelog (and package.json), and the entry points resolve to them.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");

test("npm pack --dry-run lists exactly the files meant to ship", () => {
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: pkg, encoding: "utf8" });
  const [packed] = JSON.parse(out);
  const files = packed.files.map((f) => f.path).sort();
  assert.deepEqual(files, ["CHANGELOG.md", "README.md", "herald.d.ts", "herald.js", "package.json"]);
  const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
  assert.equal(packed.version, manifest.version);
  assert.match(readFileSync(join(pkg, "CHANGELOG.md"), "utf8"), new RegExp(`^## ${manifest.version.replaceAll(".", "\\.")}$`, "m"), "CHANGELOG.md has no entry for this version");
});

test("the package's exports resolve to the ESM module and its types", async () => {
  const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
  const root = manifest.exports["."];
  assert.equal(manifest.type, "module");
  assert.equal(root.types, "./herald.d.ts");
  assert.equal(root.import, "./herald.js");
  // Imported by its package name, as a dependent would (self-reference through exports).
  const mod = await import("@herald-gw/client");
  assert.equal(typeof mod.HeraldClient, "function");
  assert.deepEqual(Object.keys(mod).sort(), ["CloseCode", "HeraldClient", "RESERVED_TYPES", "backoffDelay", "closeAction"]);
});
