/** Logs at error level: something failed. */
export function error(message: unknown): void;
/** Logs at warn level: something unexpected that the plugin recovered from. */
export function warn(message: unknown): void;
/** Logs at info level: normal operation. */
export function info(message: unknown): void;
/** Logs at debug level: diagnostics for developers. */
export function debug(message: unknown): void;
/** Logs at trace level: very detailed diagnostics. */
export function trace(message: unknown): void;
