// The error a handler throws when it cannot handle an event, and the error the
// key-value store throws. Both mirror the Rust SDK (guest-sdk/src/error.rs and
// kv.rs): same kinds, same messages, same mapping of one to the other.

/**
 * Why a plugin could not handle an event.
 *
 * The kind tells the router what to do next: a retryable error is retried as the
 * route's delivery policy says (the sender is answered 502 with Retry-After), a
 * fatal one goes straight to the dead-letter sink (answered 422). The message ends
 * up in the router's log and in the dead letter, so name the event and the
 * problem. Throw it from a handler: `throw HandlerError.fatal("no orderId")`.
 */
export class HandlerError extends Error {
  /**
   * @param {"retryable" | "fatal"} kind
   * @param {string} message
   */
  constructor(kind, message) {
    if (kind !== "retryable" && kind !== "fatal") {
      throw new TypeError(`HandlerError kind must be "retryable" or "fatal", not ${JSON.stringify(kind)}`);
    }
    super(String(message));
    this.name = "HandlerError";
    /** @type {"retryable" | "fatal"} */
    this.kind = kind;
  }

  /** A transient failure: the router may deliver the same event again later. */
  static retryable(message) {
    return new HandlerError("retryable", message);
  }

  /** A permanent failure: delivering the same event again cannot help. */
  static fatal(message) {
    return new HandlerError("fatal", message);
  }

  /**
   * The HandlerError that the router receives for anything a handler throws:
   * a HandlerError as it is; a KvError retryable when the same call may succeed
   * later and fatal otherwise (as Rust's `From<KvError>`); anything else fatal,
   * since the same event will throw the same way again.
   */
  static from(thrown) {
    if (thrown instanceof HandlerError) return thrown;
    if (thrown instanceof KvError) {
      return new HandlerError(thrown.isRetryable() ? "retryable" : "fatal", thrown.toString());
    }
    if (thrown instanceof Error) {
      return HandlerError.fatal(`${thrown.name}: ${thrown.message}`);
    }
    return HandlerError.fatal(`uncaught exception: ${describe(thrown)}`);
  }

  /** Whether the router may deliver the event again. */
  isRetryable() {
    return this.kind === "retryable";
  }

  /** `retryable: MESSAGE` or `fatal: MESSAGE`, as Rust's Display. */
  toString() {
    return `${this.kind}: ${this.message}`;
  }
}

/** The kinds of {@link KvError}, as the WIT variant `kv-error` names them. */
const KV_KINDS = ["invalid-key", "invalid-value", "quota-exceeded", "unavailable"];

/**
 * Why a key-value operation failed. `kind` says whether the same call can succeed
 * later ({@link KvError#isRetryable}); the message says why it failed.
 *
 * Left uncaught in a handler it becomes the matching HandlerError: a bad key or
 * value is fatal (delivering the event again makes the same call), a full or
 * unavailable store retryable. Catch it to do otherwise.
 */
export class KvError extends Error {
  /**
   * @param {"invalid-key" | "invalid-value" | "quota-exceeded" | "unavailable"} kind
   * @param {string} message
   */
  constructor(kind, message) {
    if (!KV_KINDS.includes(kind)) {
      throw new TypeError(`KvError kind must be one of ${KV_KINDS.join(", ")}, not ${JSON.stringify(kind)}`);
    }
    super(String(message));
    this.name = "KvError";
    /** @type {"invalid-key" | "invalid-value" | "quota-exceeded" | "unavailable"} */
    this.kind = kind;
  }

  /** Whether the same call may succeed later. */
  isRetryable() {
    return this.kind === "quota-exceeded" || this.kind === "unavailable";
  }

  /** `key-value store: MESSAGE`, as Rust's Display (and so the HandlerError's message). */
  toString() {
    return `key-value store: ${this.message}`;
  }
}

/** A short text for a thrown value that is not an Error. */
function describe(value) {
  if (typeof value === "string") return value;
  try {
    const json = JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v));
    if (json !== undefined) return json;
  } catch {
    // A cycle, or a getter that throws: fall back to String().
  }
  return String(value);
}
