#!/usr/bin/env node
// router-js: builds and tests router plugins written in JavaScript/TypeScript.
//   router-js build [PROJECT_DIR] [-o OUT.wasm] [--disable FEATURE,...] [--keep-bundle]
//   router-js test  [PROJECT_DIR] [-- NODE_TEST_ARGS...]

import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const USAGE = `usage:
  router-js build [PROJECT_DIR] [-o OUT.wasm] [--disable stdio,random,clocks,http,fetch-event] [--keep-bundle]
      builds the project's component; its package.json says what:
      {"router": {"world": "handler" | "transform", "main": "app.js"}}
      (default output: PROJECT_DIR/dist/NAME.wasm)
  router-js test [PROJECT_DIR] [-- NODE_TEST_ARGS...]
      runs the project's tests with node --test, \`router-guest\` resolving to this SDK`;

function fail(message) {
  process.stderr.write(`router-js: ${message}\n`);
  process.exit(1);
}

async function buildCommand(args) {
  let dir;
  let out;
  let disable;
  let keepBundle = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "-o" || arg === "--out") {
      out = args[++i];
      if (!out) fail("-o needs a file name");
    } else if (arg === "--disable") {
      const list = args[++i];
      if (list === undefined) fail("--disable needs a comma-separated list (or '' for none)");
      disable = list.split(",").map((s) => s.trim()).filter(Boolean);
    } else if (arg === "--keep-bundle") {
      keepBundle = true;
    } else if (arg === "-h" || arg === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return;
    } else if (arg.startsWith("-")) {
      fail(`unknown option ${arg}\n${USAGE}`);
    } else if (dir === undefined) {
      dir = arg;
    } else {
      fail(`more than one project directory (${dir}, ${arg})`);
    }
  }
  const { build, BuildError } = await import("../src/build.js");
  try {
    const result = await build(dir ?? ".", out, { disable, keepBundle });
    const mb = (result.bytes / 1e6).toFixed(1);
    process.stderr.write(
      `router-js: built ${result.project.name} (world ${result.project.world}) -> ${result.out} (${mb} MB, ${(result.ms / 1000).toFixed(1)} s)\n`,
    );
  } catch (e) {
    if (e instanceof BuildError) fail(e.message);
    throw e;
  }
}

function testCommand(args) {
  const split = args.indexOf("--");
  const own = split === -1 ? args : args.slice(0, split);
  const rest = split === -1 ? [] : args.slice(split + 1);
  if (own.length > 1) fail(`more than one project directory (${own.join(", ")})`);
  const dir = resolve(own[0] ?? ".");
  const register = fileURLToPath(new URL("../src/register.js", import.meta.url));
  const run = spawnSync(process.execPath, ["--import", register, "--test", ...rest], {
    cwd: dir,
    stdio: "inherit",
  });
  if (run.error) fail(`cannot run node: ${run.error.message}`);
  process.exit(run.status ?? 1);
}

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case "build":
    await buildCommand(args);
    break;
  case "test":
    testCommand(args);
    break;
  case undefined:
  case "-h":
  case "--help":
  case "help":
    process.stdout.write(`${USAGE}\n`);
    break;
  default:
    // `router-js DIR -o OUT` builds, as `router-js build DIR -o OUT` does: a
    // directory is never a command name, and callers that forget `build` work.
    if (existsSync(command) && statSync(command).isDirectory()) {
      await buildCommand([command, ...args]);
      break;
    }
    fail(`unknown command ${command}\n${USAGE}`);
}
