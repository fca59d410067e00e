// The plugin's configuration: the `config` table of its `[[plugin]]` entry in the
// router's TOML, for example `config = { source = "/inventory" }`. Values arrive
// as strings (a TOML number or boolean as its text), `${VAR:-default}` already
// interpolated. Inside a component each key is asked of the host once per
// instance (see host/wasm.js); under node the values come from testing.setConfig.

import { configGet } from "#host";
import { HandlerError } from "./error.js";

/** The value configured for `key`, or undefined. */
export function get(key) {
  return configGet(String(key));
}

/** The value configured for `key`, or `fallback` when there is none. */
export function getOr(key, fallback) {
  const value = get(key);
  return value === undefined ? fallback : value;
}

/**
 * The value configured for `key`, or a thrown fatal HandlerError naming the
 * missing key: without it the plugin cannot handle any event, and redelivery will
 * not add it.
 */
export function require(key) {
  const value = get(key);
  if (value === undefined) {
    throw HandlerError.fatal(`missing plugin config \`${key}\`: set it in the plugin's \`config\` table`);
  }
  return value;
}
