// Logging into the router's log. The router tags every line with the plugin's
// name and filters by level as its own log configuration says. Under node (unit
// tests) lines are captured by the stand-in host: see `router-guest/testing`.

import { log as write } from "#host";

/** Logs `message` at error level: something failed. */
export function error(message) { write("error", String(message)); }
/** Logs `message` at warn level: something unexpected that the plugin recovered from. */
export function warn(message) { write("warn", String(message)); }
/** Logs `message` at info level: normal operation. */
export function info(message) { write("info", String(message)); }
/** Logs `message` at debug level: diagnostics for developers. */
export function debug(message) { write("debug", String(message)); }
/** Logs `message` at trace level: very detailed diagnostics. */
export function trace(message) { write("trace", String(message)); }
