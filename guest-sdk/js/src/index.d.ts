// Types of router-guest, the SDK for router plugins in JavaScript/TypeScript.

/** Bytes a payload or a kv value may be given as; strings are UTF-8 encoded. */
export type Bytes = string | Uint8Array | ArrayBuffer | ArrayBufferView | readonly number[];

/**
 * A CloudEvent 1.0, as a plugin receives it and as it builds new ones. Read
 * attributes through the getters; `with*` builders change the event and return
 * it, so they chain.
 */
export class Event {
  /** A new event with its required attributes and specversion "1.0". */
  constructor(id: string, source: string, type: string);
  /** The `id` attribute. */
  readonly id: string;
  /** The `source` attribute. */
  readonly source: string;
  /** The `specversion` attribute: "1.0" for every event the router delivers. */
  readonly specversion: string;
  /** The `type` attribute. */
  readonly type: string;
  /** The `subject` attribute, if set. */
  readonly subject: string | undefined;
  /** The `time` attribute (RFC 3339), if set. */
  readonly time: string | undefined;
  /** The `datacontenttype` attribute, if set. */
  readonly datacontenttype: string | undefined;
  /** The `dataschema` attribute, if set. */
  readonly dataschema: string | undefined;
  /** The payload as bytes, if any (the event's own array). */
  readonly data: Uint8Array | undefined;
  /** Every extension attribute as [name, value] pairs (a copy). */
  readonly extensions: [string, string][];
  /** The value of extension attribute `name`, if set. */
  extension(name: string): string | undefined;
  /** The payload decoded as UTF-8, if any. */
  dataText(): string | undefined;
  /**
   * The payload parsed as JSON, whatever `datacontenttype` says. Throws a fatal
   * HandlerError when there is no payload or it is not JSON. The type parameter
   * is an unchecked assertion: check the shape before trusting it.
   */
  dataJson<T = unknown>(): T;
  /** A copy of this event. */
  clone(): Event;
  /** A copy under a new `id` and `type`, keeping everything else. */
  derive(id: string, type: string): Event;
  /** Replaces the `id`. */
  withId(id: string): this;
  /** Replaces the `source`. */
  withSource(source: string): this;
  /** Replaces the `type`. */
  withType(type: string): this;
  /** Sets the `subject`. */
  withSubject(subject: string): this;
  /** Sets the `time` (RFC 3339). */
  withTime(time: string): this;
  /** Sets the `dataschema` (an absolute URI). */
  withDataschema(schema: string): this;
  /** Sets the `datacontenttype`, keeping the payload. */
  withDatacontenttype(contentType: string): this;
  /**
   * Sets extension `name` (lowercase a-z and 0-9, not a context attribute, else
   * a fatal HandlerError is thrown), replacing an earlier value.
   */
  withExtension(name: string, value: string | number | boolean | bigint): this;
  /** Sets the payload and its media type. */
  withData(data: Bytes, contentType: string): this;
  /** Sets the payload to `value` as JSON and `datacontenttype` to application/json. */
  withJsonData(value: unknown): this;
  /** Copies the data, datacontenttype and dataschema of `other`, present or absent. */
  withDataFrom(other: Event): this;
  /** A plain object for logs and assertions. */
  toJSON(): Record<string, string>;
  /** @internal The event as the component bindings give it. */
  static fromWit(record: WitEvent): Event;
  /** @internal The event as the component bindings take it. */
  toWit(): WitEvent;
}

/** @internal The WIT record `event` as the component bindings shape it. */
export interface WitEvent {
  id: string;
  source: string;
  specversion: string;
  type: string;
  datacontenttype?: string;
  dataschema?: string;
  subject?: string;
  time?: string;
  extensions: [string, string][];
  data?: Uint8Array;
}

/** Why a plugin could not handle an event: throw it from a handler. */
export class HandlerError extends Error {
  constructor(kind: "retryable" | "fatal", message: string);
  readonly name: "HandlerError";
  /** retryable: the router may deliver the event again; fatal: it may not. */
  readonly kind: "retryable" | "fatal";
  /** A transient failure: the router may deliver the same event again later. */
  static retryable(message: string): HandlerError;
  /** A permanent failure: delivering the same event again cannot help. */
  static fatal(message: string): HandlerError;
  /** What the router receives for anything thrown (KvError by its kind, the rest fatal). */
  static from(thrown: unknown): HandlerError;
  /** Whether the router may deliver the event again. */
  isRetryable(): boolean;
}

/** The kinds of KvError, as the WIT variant `kv-error` names them. */
export type KvErrorKind = "invalid-key" | "invalid-value" | "quota-exceeded" | "unavailable";

/** Why a key-value operation failed. Uncaught, it is fatal or retryable as isRetryable() says. */
export class KvError extends Error {
  constructor(kind: KvErrorKind, message: string);
  readonly name: "KvError";
  readonly kind: KvErrorKind;
  /** Whether the same call may succeed later (quota-exceeded, unavailable). */
  isRetryable(): boolean;
}

/** Logging into the router's log, tagged with the plugin's name. */
export * as log from "./log.js";
/** The plugin's `config` table from the router's TOML (cached per instance). */
export * as config from "./config.js";
/** The plugin's own key-value store; every function throws KvError on failure. */
export * as kv from "./kv.js";

/** What a handler returns: the events to emit (an array, or any iterable). */
export type HandlerResult = Iterable<Event>;

/** A function the router calls once per event (world `handler`). */
export type Handler = (event: Event) => HandlerResult;

/** A function that rewrites an event, or drops it with null (world `transform`). */
export type Transform = (event: Event) => Event | null;

/** Marks `fn` as the plugin's handler; export it as `handle` or as the default. */
export function handler<F extends Handler>(fn: F): F;

/** Marks `fn` as the plugin's transform; export it as `transform` or as the default. */
export function transform<F extends Transform>(fn: F): F;
