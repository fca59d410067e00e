// The host interfaces inside a component: the WIT imports of router:plugin@0.2.0.
// `router-js build` resolves the SDK's `#host` import here (the `router-wasm`
// condition of package.json "imports"); node resolves it to ./native.js.
// Every function has the signature of its twin in ./native.js.

import { log as hostLog } from "router:plugin/log@0.2.0";
import { get as hostConfigGet } from "router:plugin/config@0.2.0";
import * as hostKv from "router:plugin/kv@0.2.0";
import { KvError } from "../error.js";

/** Whether this is the stand-in host (false here: the router answers). */
export const native = false;

/** Writes `message` to the router's log at `level` ("trace" ... "error"). */
export function log(level, message) {
  hostLog(level, message);
}

// An instance's configuration never changes (a reload brings new instances), so
// each key is asked of the host once per instance, as in the Rust SDK: a plugin
// that reads its configuration for every event then makes no host call for it.
// The map lives in the component's heap, which stays warm between calls.
const configCache = new Map();

/** The configured value of `key`, or undefined. */
export function configGet(key) {
  if (configCache.has(key)) return configCache.get(key);
  const value = hostConfigGet(key) ?? undefined;
  configCache.set(key, value);
  return value;
}

/**
 * Calls a kv import, turning its error into a KvError. The bindings throw an
 * object whose `payload` is the WIT variant `{tag, val}`.
 */
function kvCall(call) {
  try {
    return call();
  } catch (e) {
    const variant = e && typeof e === "object" && "payload" in e ? e.payload : undefined;
    if (variant && typeof variant.tag === "string") throw new KvError(variant.tag, variant.val);
    throw e;
  }
}

/** The bytes at `key` (a Uint8Array), or undefined. */
export function kvGet(key) {
  return kvCall(() => hostKv.get(key)) ?? undefined;
}

/** Sets `key` to `bytes`, expiring after `ttlMs` (a BigInt) when given. */
export function kvSet(key, bytes, ttlMs) {
  kvCall(() => hostKv.set(key, bytes, ttlMs));
}

/** Removes `key`; true when it was set. */
export function kvDelete(key) {
  return kvCall(() => hostKv.delete(key));
}

/** Adds `delta` (a BigInt) to the integer at `key`; the new value, a BigInt. */
export function kvIncrement(key, delta) {
  return kvCall(() => hostKv.increment(key, delta));
}
