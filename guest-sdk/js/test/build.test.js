// router-js build: project checks, the bundle, the shipped WIT, and (slow, about
// ten seconds) one real component.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, readFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { bundle, build, readProject, BuildError, WIT_PATH } from "../src/build.js";

const BIN = fileURLToPath(new URL("../bin/router-js.js", import.meta.url));

async function project(manifest, files) {
  const dir = await mkdtemp(join(tmpdir(), "router-js-test-"));
  await writeFile(join(dir, "package.json"), JSON.stringify(manifest));
  for (const [name, text] of Object.entries(files)) {
    await mkdir(join(dir, name, ".."), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

// That the shipped WIT is the repository's, byte for byte, is checked by the
// router's tests (every_sdk_ships_the_routers_wit_unchanged) for every SDK: the
// tests here also run in an installed copy, away from the repository.
test("the shipped WIT is the package router:plugin@0.2.0", async () => {
  const wit = await readFile(WIT_PATH, "utf8");
  assert.match(wit, /^package router:plugin@0\.2\.0;$/m);
});

test("the project's package.json says world and entry, with clear errors", async () => {
  const ok = await project({ name: "@acme/greeter", router: { world: "transform", main: "src/t.js" } }, { "src/t.js": "" });
  const read = await readProject(ok);
  assert.equal(read.name, "greeter");
  assert.equal(read.world, "transform");
  assert.ok(read.entry.endsWith("src/t.js"));

  const badWorld = await project({ router: { world: "both" } }, { "index.js": "" });
  await assert.rejects(readProject(badWorld), (e) => e instanceof BuildError && /must be one of handler, transform/.test(e.message));
  const noEntry = await project({ router: { main: "gone.js" } }, {});
  await assert.rejects(readProject(noEntry), /gone\.js does not exist/);
  await assert.rejects(readProject(join(noEntry, "nowhere")), /cannot read .*package\.json/);
});

test("the bundle is one module importing only the WIT interfaces, router-guest from this SDK", async () => {
  const dir = await project(
    { name: "p", router: { world: "handler", main: "app.ts" } },
    {
      "app.ts": 'import { handler, Event } from "router-guest";\nimport { suffix } from "./lib.ts";\n' +
        "export const handle = handler((event: Event): Event[] => [event.derive(event.id + suffix, 't')]);\n",
      "lib.ts": 'export const suffix: string = "-x";\n',
    },
  );
  const { code, exports } = await bundle(await readProject(dir));
  assert.deepEqual(exports, ["handle"]);
  const imports = [...code.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]).sort();
  assert.deepEqual(imports, ["router:plugin/config@0.2.0", "router:plugin/kv@0.2.0", "router:plugin/log@0.2.0"]);
  assert.match(code, /export \{\s*\w+ as handle\s*\}/);
  assert.doesNotMatch(code, /host\/native\.js/, "the stand-in host stays out of components");
});

test("a module without the world's export is refused before componentizing", async () => {
  const dir = await project({ router: { world: "transform" } }, { "index.js": "export const handle = () => [];" });
  await assert.rejects(bundle(await readProject(dir)), /exports neither `transform` nor a default function.*it exports: handle/s);
  const broken = await project({}, { "index.js": "export const handle = (" });
  await assert.rejects(bundle(await readProject(broken)), (e) => e instanceof BuildError && /index\.js:1:/.test(e.message));
});

test("router-js explains its usage and refuses unknown options", () => {
  const help = spawnSync(process.execPath, [BIN, "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /router-js build \[PROJECT_DIR\]/);
  const bad = spawnSync(process.execPath, [BIN, "build", "--fast"], { encoding: "utf8" });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown option --fast/);
});

test("builds a real component of the handler world", { timeout: 180_000 }, async () => {
  const dir = await project(
    { name: "probe", router: { world: "handler" } },
    { "index.js": 'import { handler, kv } from "router-guest";\nexport default handler((e) => { kv.increment("n", -1); return [e]; });\n' },
  );
  const out = join(dir, "out", "probe.wasm");
  const result = await build(dir, out);
  const bytes = await readFile(out);
  assert.equal(result.bytes, bytes.length);
  assert.ok(bytes.length > 1_000_000, "the engine is inside");
  // A component (layer 1), not a core module: magic, then version 0x0d, layer 1.
  assert.deepEqual([...bytes.subarray(0, 8)], [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]);
  const text = bytes.toString("latin1");
  assert.ok(text.includes("router:plugin/kv@0.2.0"), "imports the kv interface");
});

test("a host call at the top level is refused with the reason", { timeout: 180_000 }, async () => {
  const dir = await project(
    { name: "toplevel" },
    { "index.js": 'import { config, handler } from "router-guest";\nconst region = config.get("region");\nexport const handle = handler((e) => [e]);\n' },
  );
  await assert.rejects(build(dir, join(dir, "t.wasm")), (e) => {
    assert.ok(e instanceof BuildError, String(e));
    assert.match(e.message, /calls router:plugin\/config@0\.2\.0 get at its top level.*into the handler/s);
    return true;
  });
});

test("a missing toolchain is named, with the install command", async () => {
  const { cp } = await import("node:fs/promises");
  const bare = await mkdtemp(join(tmpdir(), "router-js-bare-"));
  for (const part of ["bin", "src", "wit", "package.json"]) {
    await cp(fileURLToPath(new URL(`../${part}`, import.meta.url)), join(bare, part), { recursive: true });
  }
  const dir = await project({}, { "index.js": "export const handle = () => [];" });
  const run = spawnSync(process.execPath, [join(bare, "bin", "router-js.js"), "build", dir], { encoding: "utf8" });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /toolchain is incomplete: esbuild is not installed next to router-guest/);
  assert.match(run.stderr, /npm install --prefix <dir> --install-links/);
});
