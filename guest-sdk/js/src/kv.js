// A key-value store private to the plugin: no other plugin can read or change its
// keys. It outlives instances and reloads, so it is where state between events
// belongs. Values are bytes; strings are stored as UTF-8. Every function throws a
// KvError on failure, which a handler may leave uncaught (see HandlerError.from).
//
// Integers: WIT's s64 is a BigInt in JavaScript. `increment` accepts a number or
// a BigInt and answers in the same type, so plain numbers work for counters and
// stock levels; a number delta must be a safe integer, and a number answer
// beyond Number.MAX_SAFE_INTEGER throws (the increment has then been applied:
// use BigInt deltas for such values).

import * as host from "#host";
import { KvError } from "./error.js";
import { toBytes } from "./event.js";

const decoder = new TextDecoder();

export { KvError };

/** The value of `key` as bytes (a Uint8Array), or undefined when unset or expired. */
export function get(key) {
  return host.kvGet(String(key));
}

/** The value of `key` decoded as UTF-8 text, or undefined when unset or expired. */
export function getText(key) {
  const bytes = get(key);
  return bytes === undefined ? undefined : decoder.decode(bytes);
}

/**
 * Sets `key` to `value` (a string, stored as UTF-8, or bytes), expiring after
 * `ttlMs` milliseconds (a number or BigInt) when given.
 */
export function set(key, value, ttlMs) {
  let ttl;
  if (ttlMs !== undefined && ttlMs !== null) {
    if (typeof ttlMs === "number" && !(Number.isSafeInteger(ttlMs) && ttlMs >= 0)) {
      throw new RangeError(`ttlMs must be a non-negative integer, not ${ttlMs}`);
    }
    ttl = BigInt(ttlMs);
    if (ttl < 0n || ttl >= 2n ** 64n) throw new RangeError(`ttlMs ${ttlMs} is outside the u64 range`);
  }
  host.kvSet(String(key), toBytes(value), ttl);
}

/** Removes `key`; true when it was set. */
export function del(key) {
  return host.kvDelete(String(key));
}

export { del as delete };

/**
 * Adds `delta` to the decimal integer at `key` (0 when unset), atomically, and
 * returns the new value: a number for a number delta, a BigInt for a BigInt one.
 */
export function increment(key, delta) {
  if (typeof delta === "bigint") return host.kvIncrement(String(key), delta);
  if (!Number.isSafeInteger(delta)) {
    throw new RangeError(`increment delta must be a safe integer or a BigInt, not ${delta}`);
  }
  const next = host.kvIncrement(String(key), BigInt(delta));
  if (next > BigInt(Number.MAX_SAFE_INTEGER) || next < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new KvError(
      "invalid-value",
      `the value of ${JSON.stringify(String(key))} is ${next}, beyond a safe number: increment it by a BigInt`,
    );
  }
  return Number(next);
}
