// The stand-in host for running a plugin's code under node (its unit tests):
// the twin of ./wasm.js, with the router's behaviour and limits, in memory.
// `router-guest/testing` controls it. Mirrors guest-sdk/src/testing.rs.

import { KvError } from "../error.js";

/** Whether this is the stand-in host (true here). */
export const native = true;

/** The host's limits, so that a unit test meets the errors the router would give. */
const MAX_KEY_BYTES = 1024;
const MAX_VALUE_BYTES = 1 << 20;
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Everything a test can set or inspect; see ../testing.js. */
export const state = {
  /** @type {Map<string, string>} */
  config: new Map(),
  /** @type {Map<string, {value: Uint8Array, expires: number | undefined}>} */
  kv: new Map(),
  /** @type {{level: string, message: string}[]} */
  logs: [],
  /**
   * The stand-in clock, in ms: it stands still and moves only with
   * testing.advanceClock, so that a test of a TTL cannot fail because real
   * time passed between two of its lines.
   */
  clock: Date.now(),
  /** Whether log lines also go to stderr (testing.printLogs). */
  print: typeof process !== "undefined" && Boolean(process.env?.ROUTER_GUEST_LOG),
  /** A KvError every kv call throws (testing.failKv), to test the error paths. */
  kvFailure: undefined,
};

/** The stand-in clock (see `state.clock`). */
export function now() {
  return state.clock;
}

/** Captures the line (and prints it when asked). */
export function log(level, message) {
  state.logs.push({ level, message });
  if (state.print) process.stderr.write(`${level}: ${message}\n`);
}

/** The value testing.setConfig gave `key`, or undefined (no cache: tests change it). */
export function configGet(key) {
  return state.config.get(key);
}

function checkKey(key) {
  if (state.kvFailure) throw state.kvFailure;
  const bytes = encoder.encode(key).length;
  if (bytes === 0 || bytes > MAX_KEY_BYTES) {
    throw new KvError("invalid-key", `key of ${bytes} bytes: keys are 1 to ${MAX_KEY_BYTES} bytes`);
  }
}

/** The live entry at `key`, dropping it when it has expired. */
function entry(key) {
  const found = state.kv.get(key);
  if (found && found.expires !== undefined && found.expires <= now()) {
    state.kv.delete(key);
    return undefined;
  }
  return found;
}

/** The bytes at `key` (a copy), or undefined. */
export function kvGet(key) {
  checkKey(key);
  const found = entry(key);
  return found === undefined ? undefined : found.value.slice();
}

/** Sets `key` to `bytes`, expiring after `ttlMs` (a BigInt) when given. */
export function kvSet(key, bytes, ttlMs) {
  checkKey(key);
  if (bytes.length > MAX_VALUE_BYTES) {
    throw new KvError(
      "invalid-value",
      `value of ${bytes.length} bytes is over the ${MAX_VALUE_BYTES}-byte limit`,
    );
  }
  const expires = ttlMs === undefined ? undefined : now() + Number(ttlMs);
  state.kv.set(key, { value: bytes.slice(), expires });
}

/** Removes `key`; true when it was set. */
export function kvDelete(key) {
  checkKey(key);
  const found = entry(key);
  state.kv.delete(key);
  return found !== undefined;
}

/** Adds `delta` (a BigInt) to the integer at `key`; the new value, a BigInt. The expiry is kept. */
export function kvIncrement(key, delta) {
  checkKey(key);
  const found = entry(key);
  let current = 0n;
  if (found !== undefined) {
    // As Rust's i64::from_str: an optional sign, then ASCII digits only.
    const text = decoder.decode(found.value);
    if (!/^[+-]?[0-9]+$/.test(text) || BigInt(text) < I64_MIN || BigInt(text) > I64_MAX) {
      throw new KvError("invalid-value", `the value of ${JSON.stringify(key)} is not an integer`);
    }
    current = BigInt(text);
  }
  const next = current + delta;
  if (next < I64_MIN || next > I64_MAX) {
    throw new KvError("invalid-value", `incrementing ${JSON.stringify(key)} overflows 64 bits`);
  }
  state.kv.set(key, { value: encoder.encode(next.toString()), expires: found?.expires });
  return next;
}
