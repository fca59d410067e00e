// Types of router-guest/testing: the stand-in host for plugin tests under node.

import type { KvErrorKind } from "./index.js";

/** Sets the value config.get returns for `key`. */
export function setConfig(key: string, value: string | number | boolean): void;
/** Removes every value set with setConfig. */
export function clearConfig(): void;
/** Empties the stand-in kv store. */
export function clearKv(): void;
/** The live kv entries: value as text, and the milliseconds left before expiry (undefined: none). */
export function kvEntries(): Map<string, { value: string; expiresInMs: number | undefined }>;
/** Moves the stand-in clock on by `ms`, so that TTLs expire without waiting (it stands still otherwise). */
export function advanceClock(ms: number): void;
/** Makes every kv call throw a KvError of `kind` (no argument: stop). */
export function failKv(kind?: KvErrorKind, message?: string): void;
/** The log lines written so far, oldest first. */
export function logs(): { level: "trace" | "debug" | "info" | "warn" | "error"; message: string }[];
/** Forgets the captured log lines. */
export function clearLogs(): void;
/** Also writes log lines to stderr (default when ROUTER_GUEST_LOG is set). */
export function printLogs(on?: boolean): void;
/** Resets config, kv, clock, kv failure and captured logs. */
export function reset(): void;
