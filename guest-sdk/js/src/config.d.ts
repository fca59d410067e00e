/** The value configured for `key`, if any. */
export function get(key: string): string | undefined;
/** The value configured for `key`, or `fallback`. */
export function getOr<T = string>(key: string, fallback: T): string | T;
/** The value configured for `key`, or a thrown fatal HandlerError naming it. */
export function require(key: string): string;
