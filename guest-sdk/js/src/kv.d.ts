import type { Bytes } from "./index.js";
export { KvError } from "./index.js";

/** The value of `key` as bytes, if set and not expired. */
export function get(key: string): Uint8Array | undefined;
/** The value of `key` as UTF-8 text, if set and not expired. */
export function getText(key: string): string | undefined;
/** Sets `key` to `value`, expiring after `ttlMs` milliseconds when given. */
export function set(key: string, value: Bytes, ttlMs?: number | bigint): void;
/** Removes `key`; true when it was set. */
export function del(key: string): boolean;
export { del as delete };
/**
 * Adds `delta` to the integer at `key` (0 when unset) atomically and returns the
 * new value: a number for a number delta (a safe integer; a result beyond
 * Number.MAX_SAFE_INTEGER throws, after the increment), a BigInt for a BigInt.
 */
export function increment(key: string, delta: number): number;
export function increment(key: string, delta: bigint): bigint;
