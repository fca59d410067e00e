// router-guest/testing: the stand-in host for a plugin's unit tests under node.
// Outside a component the SDK's host interfaces are these in-memory ones (see
// host/native.js), so a handler is a plain function a test calls directly.
// Mirrors the Rust SDK's `testing` module.

import { state, now } from "./host/native.js";
import { KvError } from "./error.js";

/** Sets the value config.get returns for `key`. */
export function setConfig(key, value) {
  state.config.set(String(key), String(value));
}

/** Removes every value set with setConfig. */
export function clearConfig() {
  state.config.clear();
}

/** Empties the stand-in kv store. */
export function clearKv() {
  state.kv.clear();
}

/**
 * The live entries of the stand-in kv store: key -> { value (UTF-8 text),
 * expiresInMs (undefined without a TTL) }.
 */
export function kvEntries() {
  const decoder = new TextDecoder();
  const out = new Map();
  for (const [key, { value, expires }] of state.kv) {
    if (expires !== undefined && expires <= now()) continue;
    out.set(key, { value: decoder.decode(value), expiresInMs: expires === undefined ? undefined : expires - now() });
  }
  return out;
}

/** Moves the stand-in store's clock on by `ms`, so that TTLs expire without waiting. */
export function advanceClock(ms) {
  state.clock += Number(ms);
}

/**
 * Makes every kv call throw a KvError of `kind` with `message` (until called
 * with no kind), to test how a handler meets a full or unavailable store.
 */
export function failKv(kind, message = `stand-in ${kind}`) {
  state.kvFailure = kind === undefined ? undefined : new KvError(kind, message);
}

/** The log lines written so far: { level, message }, oldest first. */
export function logs() {
  return state.logs.slice();
}

/** Forgets the captured log lines. */
export function clearLogs() {
  state.logs.length = 0;
}

/** Also writes log lines to stderr (on by default when ROUTER_GUEST_LOG is set). */
export function printLogs(on = true) {
  state.print = Boolean(on);
}

/** Resets the stand-in host: config, kv, clock, kv failure and captured logs. */
export function reset() {
  clearConfig();
  clearKv();
  clearLogs();
  state.clock = Date.now();
  state.kvFailure = undefined;
}
