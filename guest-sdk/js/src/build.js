// `router-js build`: a plugin project (package.json + modules) -> a component of
// the router's `handler` or `transform` world. Three steps, hidden from authors:
//  1. generate the entry module that adapts the author's export to the WIT
//     export (src/export.js);
//  2. bundle it with esbuild into one ES module, resolving `router-guest` to the
//     SDK running the build (a plugin project needs no node_modules of its own)
//     and the SDK's `#host` to the WIT imports (condition `router-wasm`);
//  3. componentize it with @bytecodealliance/componentize-js, called as a library
//     (not through `jco componentize`, which fails on this toolchain).

import { mkdtemp, readFile, rm, writeFile, mkdir, stat } from "node:fs/promises";
import { existsSync, promises as fsPromises } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The SDK's own directory (the package root). */
export const SDK_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The WIT shipped with the SDK: a byte-identical copy of the repository's wit/router.wit. */
export const WIT_PATH = join(SDK_ROOT, "wit", "router.wit");

/** The worlds of router:plugin@0.2.0 a plugin can target, with their export. */
const WORLDS = { handler: "handle", transform: "transform" };

/**
 * WASI features of the JS engine that `router-js build` leaves out by default.
 *
 * None: measured (README.md, "Choices"), disabling them changes neither the
 * size (~12 MB either way) nor the per-call time measurably, while it breaks
 * what authors expect (`console.log` output, `Date.now()`, `Math.random()`,
 * `fetch`). The router governs the remaining WASI imports itself.
 */
export const DEFAULT_DISABLED = [];

const FEATURES = ["stdio", "random", "clocks", "http", "fetch-event"];

/** A build failure to report in one line, without a stack. */
export class BuildError extends Error {}

/**
 * Reads the plugin project at `projectDir`: its world, entry module and name.
 * package.json: `{"name": ..., "router": {"world": "handler", "main": "app.js"}}`
 * (`main` defaults to the package's own "main", then index.js).
 */
export async function readProject(projectDir) {
  const manifestPath = join(projectDir, "package.json");
  let manifest;
  try {
    manifest = JSON.parse(await readFile(manifestPath, "utf8"));
  } catch (e) {
    throw new BuildError(`cannot read ${manifestPath}: ${e.message}`);
  }
  const router = manifest.router ?? {};
  const world = router.world ?? "handler";
  if (!(world in WORLDS)) {
    throw new BuildError(
      `${manifestPath}: "router.world" is ${JSON.stringify(world)}; it must be one of ${Object.keys(WORLDS).join(", ")}`,
    );
  }
  const main = router.main ?? manifest.main ?? "index.js";
  const entry = resolve(projectDir, main);
  if (!existsSync(entry)) {
    throw new BuildError(`${manifestPath}: the entry module ${main} does not exist (${entry})`);
  }
  const disable = router.disable ?? DEFAULT_DISABLED;
  for (const feature of disable) {
    if (!FEATURES.includes(feature)) {
      throw new BuildError(
        `${manifestPath}: "router.disable" lists ${JSON.stringify(feature)}; known features: ${FEATURES.join(", ")}`,
      );
    }
  }
  const name = String(manifest.name ?? basename(projectDir)).replace(/^@[^/]+\//, "");
  return { name, world, entry, disable };
}

/** Imports a toolchain package from the SDK's own dependencies, or explains what is missing. */
async function toolchain(specifier) {
  try {
    return await import(specifier);
  } catch (e) {
    if (e && (e.code === "ERR_MODULE_NOT_FOUND" || e.code === "MODULE_NOT_FOUND")) {
      throw new BuildError(
        `the JavaScript plugin toolchain is incomplete: ${specifier} is not installed next to router-guest (${SDK_ROOT}).\n` +
          `Install the SDK with its dependencies, for example:\n` +
          `  npm install --prefix <dir> --install-links <repo>/guest-sdk/js\n` +
          `and run <dir>/node_modules/.bin/router-js build <project>`,
      );
    }
    throw e;
  }
}

/** The esbuild plugin that makes `router-guest` mean the SDK running the build. */
function sdkResolver() {
  const targets = {
    "router-guest": join(SDK_ROOT, "src", "index.js"),
    "router-guest/internal": join(SDK_ROOT, "src", "export.js"),
    "router-guest/testing": join(SDK_ROOT, "src", "testing.js"),
  };
  return {
    name: "router-guest",
    setup(build) {
      build.onResolve({ filter: /^router-guest(\/.*)?$/ }, (args) => {
        const path = targets[args.path];
        if (path === undefined) {
          return { errors: [{ text: `router-guest has no module ${JSON.stringify(args.path)}` }] };
        }
        return { path };
      });
    },
  };
}

/**
 * Bundles the project into one ES module whose only imports are the WIT
 * interfaces; returns its text and the names the author's module exports.
 */
export async function bundle(project) {
  const imported = await toolchain("esbuild");
  const esbuild = imported.build ? imported : imported.default;
  const common = {
    bundle: true,
    write: false,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    // The SDK's `#host` import resolves to the WIT imports in a component.
    conditions: ["router-wasm"],
    mainFields: ["module", "main"],
    external: ["router:*", "wasi:*"],
    plugins: [sdkResolver()],
    logLevel: "silent",
    legalComments: "none",
  };
  let exportsOfEntry;
  try {
    const probe = await esbuild.build({ ...common, entryPoints: [project.entry], metafile: true, outdir: "out" });
    exportsOfEntry = Object.values(probe.metafile.outputs)[0].exports;
  } catch (e) {
    throw new BuildError(`cannot bundle ${project.entry}:\n${formatEsbuild(e)}`);
  }
  const wanted = WORLDS[project.world];
  if (!exportsOfEntry.includes(wanted) && !exportsOfEntry.includes("default")) {
    throw new BuildError(
      `${project.entry} exports neither \`${wanted}\` nor a default function, so there is nothing to ` +
        `export for world \`${project.world}\` (it exports: ${exportsOfEntry.join(", ") || "nothing"}).\n` +
        `Write for example: export const ${wanted} = ${project.world}((event) => ...)`,
    );
  }
  const adapter = project.world === "handler" ? "exportHandle" : "exportTransform";
  const glue =
    `import * as plugin from ${JSON.stringify(project.entry)};\n` +
    `import { ${adapter} } from "router-guest/internal";\n` +
    `export const ${wanted} = ${adapter}(plugin);\n`;
  try {
    const result = await esbuild.build({
      ...common,
      stdin: { contents: glue, resolveDir: dirname(project.entry), sourcefile: "router-entry.js", loader: "js" },
    });
    return { code: result.outputFiles[0].text, exports: exportsOfEntry };
  } catch (e) {
    throw new BuildError(`cannot bundle ${project.entry}:\n${formatEsbuild(e)}`);
  }
}

/**
 * Works around ComponentizeJS issue #343 (0.19 to 0.23 at least): a negative
 * BigInt passed to an imported function's `s64` parameter traps the guest
 * ("Internal bindgen error in coreabi_from_bigint64 validation"), so
 * `kv.increment(key, -1)` could not work. The generated bindings convert s64
 * arguments with `BigInt.asIntN(64, v)`; the engine's core call accepts the
 * same 64 bits as an unsigned BigInt (u64 arguments with bit 63 set pass), so
 * the patch makes that conversion `BigInt.asUintN(64, v)`: the host receives the
 * identical i64. componentize-js writes the bindings to `initializer.js` with
 * `fs/promises.writeFile` before pre-initialising; the patch rewrites that one
 * file on its way to disk, and `applied` says whether it found the code.
 */
function patchS64Lowering() {
  const original = fsPromises.writeFile;
  const state = { applied: false, undo() {} };
  const needle = /(function toInt64\(val\) \{[^}]*?return BigInt\.)asIntN(\(64, converted\);)/;
  fsPromises.writeFile = function writeFile(path, data, ...rest) {
    if (typeof path === "string" && path.endsWith("initializer.js") && typeof data === "string") {
      if (needle.test(data)) {
        data = data.replace(needle, "$1asUintN$2");
        state.applied = true;
      } else if (!/function toInt64\(/.test(data)) {
        // No s64 in the world: nothing to patch.
        state.applied = true;
      }
    }
    return original.call(this, path, data, ...rest);
  };
  syncBuiltinESMExports();
  state.undo = () => {
    fsPromises.writeFile = original;
    syncBuiltinESMExports();
  };
  return state;
}

function formatEsbuild(e) {
  if (Array.isArray(e?.errors) && e.errors.length > 0) {
    return e.errors
      .map((m) => (m.location ? `  ${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : `  ${m.text}`))
      .join("\n");
  }
  return `  ${e?.message ?? e}`;
}

/**
 * Builds the component for the project at `projectDir` into `out` (default
 * `<projectDir>/dist/<name>.wasm`). Returns { out, bytes, project, ms }.
 * `options.disable` overrides the project's list of disabled WASI features;
 * `options.keepBundle` writes the bundled module next to the component.
 */
export async function build(projectDir, out, options = {}) {
  const started = performance.now();
  projectDir = resolve(projectDir);
  const project = await readProject(projectDir);
  if (options.disable) project.disable = options.disable;
  out = out ? resolve(out) : join(projectDir, "dist", `${project.name}.wasm`);
  const { code } = await bundle(project);
  const { componentize } = await toolchain("@bytecodealliance/componentize-js");

  // componentize-js wants a file; keep it out of the project.
  const work = await mkdtemp(join(tmpdir(), "router-js-"));
  try {
    const source = join(work, `${project.name}.js`);
    await writeFile(source, code);
    await mkdir(dirname(out), { recursive: true });
    if (options.keepBundle) await writeFile(out.replace(/\.wasm$/, "") + ".bundle.js", code);
    let component;
    const patch = patchS64Lowering();
    try {
      ({ component } = await componentize({
        sourcePath: source,
        witPath: WIT_PATH,
        worldName: project.world,
        disableFeatures: project.disable,
      }));
    } catch (e) {
      const message = String(e?.message ?? e);
      const imported = /attempted to call an unknown imported function: '([^']+)' '([^']+)'/.exec(message);
      if (imported) {
        // Wizer runs the module's top level at build time, where no host exists.
        throw new BuildError(
          `${project.entry} calls ${imported[1]} ${imported[2]} at its top level, which runs at build ` +
            `time, without the router: move the call (config, kv, log) into the ${project.world}`,
        );
      }
      throw new BuildError(`componentize-js failed for ${project.entry}: ${message}`);
    } finally {
      patch.undo();
    }
    if (!patch.applied) {
      throw new BuildError(
        "componentize-js generated bindings without the s64 lowering this build patches " +
          "(ComponentizeJS issue #343); check whether the new version fixed it and update src/build.js",
      );
    }
    await writeFile(out, component);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const { size } = await stat(out);
  return { out, bytes: size, project, ms: Math.round(performance.now() - started) };
}

