// The typed event plugins receive and emit; the JavaScript face of the WIT
// record `event` (guest-sdk/src/event.rs is the Rust one, with the same surface).

import { HandlerError } from "./error.js";

/** The media type {@link Event#withJsonData} sets. */
const JSON_TYPE = "application/json";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Names that are context attributes, so the router refuses them as extensions. */
const CONTEXT_ATTRIBUTES = new Set([
  "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time",
]);

/**
 * A CloudEvent 1.0, as a plugin receives it and as it builds new ones.
 *
 * Read attributes through the getters (`event.id`, `event.type`, ...); build
 * events with `new Event(id, source, type)` and the `with*` methods, which change
 * the event and return it, so they chain. To emit a changed copy of the event
 * being handled, start from {@link Event#derive} (or {@link Event#clone}).
 */
export class Event {
  #id;
  #source;
  #specversion;
  #type;
  #datacontenttype;
  #dataschema;
  #subject;
  #time;
  /** @type {[string, string][]} */
  #extensions;
  /** @type {Uint8Array | undefined} */
  #data;

  /**
   * A new event with its required attributes and specversion "1.0".
   *
   * `id` must be unique per `source`: derive it from the event being handled
   * (`${event.id}-reserved`) so that a redelivered event yields the same id and
   * consumers can deduplicate.
   */
  constructor(id, source, type) {
    this.#id = String(id);
    this.#source = String(source);
    this.#specversion = "1.0";
    this.#type = String(type);
    this.#datacontenttype = undefined;
    this.#dataschema = undefined;
    this.#subject = undefined;
    this.#time = undefined;
    this.#extensions = [];
    this.#data = undefined;
  }

  /** The `id` attribute. */
  get id() { return this.#id; }
  /** The `source` attribute. */
  get source() { return this.#source; }
  /** The `specversion` attribute: "1.0" for every event the router delivers. */
  get specversion() { return this.#specversion; }
  /** The `type` attribute. */
  get type() { return this.#type; }
  /** The `subject` attribute, or undefined. */
  get subject() { return this.#subject; }
  /** The `time` attribute (RFC 3339), or undefined. */
  get time() { return this.#time; }
  /** The `datacontenttype` attribute, or undefined. */
  get datacontenttype() { return this.#datacontenttype; }
  /** The `dataschema` attribute, or undefined. */
  get dataschema() { return this.#dataschema; }
  /** The payload as bytes, or undefined. The array is the event's own: copy it before changing it. */
  get data() { return this.#data; }

  /** Every extension attribute, as [name, value] pairs (a copy). */
  get extensions() {
    return this.#extensions.map(([name, value]) => [name, value]);
  }

  /** The value of extension attribute `name`, or undefined. */
  extension(name) {
    const found = this.#extensions.find(([key]) => key === name);
    return found === undefined ? undefined : found[1];
  }

  /** The payload decoded as UTF-8 text, or undefined. */
  dataText() {
    return this.#data === undefined ? undefined : decoder.decode(this.#data);
  }

  /**
   * The payload parsed as JSON.
   *
   * Parsed whatever `datacontenttype` says, because senders often leave it out.
   * A missing payload or one that is not JSON throws a fatal HandlerError naming
   * the event and the problem (the messages of the Rust SDK): delivering the
   * same bytes again cannot fix it. Checking the shape is the caller's job.
   */
  dataJson() {
    if (this.#data === undefined) {
      throw HandlerError.fatal(`event ${this.#id} (${this.#type}) has no data, expected JSON`);
    }
    try {
      return JSON.parse(decoder.decode(this.#data));
    } catch (e) {
      throw HandlerError.fatal(
        `data of event ${this.#id} (${this.#type}) is not the expected JSON: ${e.message}`,
      );
    }
  }

  /** A copy of this event: changing one does not change the other. */
  clone() {
    const copy = new Event(this.#id, this.#source, this.#type);
    copy.#specversion = this.#specversion;
    copy.#datacontenttype = this.#datacontenttype;
    copy.#dataschema = this.#dataschema;
    copy.#subject = this.#subject;
    copy.#time = this.#time;
    copy.#extensions = this.extensions;
    copy.#data = this.#data === undefined ? undefined : this.#data.slice();
    return copy;
  }

  /**
   * A copy of this event under a new `id` and `type`, keeping everything else
   * (source, subject, time, extensions, data): the usual start of an enriched or
   * translated event.
   */
  derive(id, type) {
    return this.clone().withId(id).withType(type);
  }

  /** Replaces the `id`; returns this event. */
  withId(id) { this.#id = String(id); return this; }
  /** Replaces the `source`; returns this event. */
  withSource(source) { this.#source = String(source); return this; }
  /** Replaces the `type`; returns this event. */
  withType(type) { this.#type = String(type); return this; }
  /** Sets the `subject`; returns this event. */
  withSubject(subject) { this.#subject = String(subject); return this; }
  /** Sets the `time` (RFC 3339, for example `2026-01-31T12:00:00Z`); returns this event. */
  withTime(time) { this.#time = String(time); return this; }
  /** Sets the `dataschema` (an absolute URI); returns this event. */
  withDataschema(schema) { this.#dataschema = String(schema); return this; }
  /** Sets the `datacontenttype` alone, keeping the payload; returns this event. */
  withDatacontenttype(contentType) { this.#datacontenttype = String(contentType); return this; }

  /**
   * Sets extension attribute `name`, replacing an earlier value; returns this event.
   *
   * The name must be lowercase letters a-z and digits 0-9 and not a context
   * attribute: the router refuses an emitted event that breaks those rules, so
   * this throws a fatal HandlerError at once, naming the culprit, rather than
   * letting the whole batch fail later.
   */
  withExtension(name, value) {
    name = String(name);
    if (!/^[a-z0-9]+$/.test(name)) {
      throw HandlerError.fatal(
        `extension name ${JSON.stringify(name)}: extension names may only contain lowercase letters a-z and digits 0-9`,
      );
    }
    if (CONTEXT_ATTRIBUTES.has(name)) {
      throw HandlerError.fatal(
        `extension name ${JSON.stringify(name)}: a context attribute cannot be set as an extension`,
      );
    }
    value = String(value);
    const slot = this.#extensions.find(([key]) => key === name);
    if (slot === undefined) this.#extensions.push([name, value]);
    else slot[1] = value;
    return this;
  }

  /**
   * Sets the payload and its media type; returns this event. `data` is a string
   * (encoded as UTF-8), a Uint8Array (kept as it is, not copied), an ArrayBuffer
   * or an array of byte values.
   */
  withData(data, contentType) {
    this.#data = toBytes(data);
    this.#datacontenttype = String(contentType);
    return this;
  }

  /**
   * Sets the payload to `value` encoded as JSON, and `datacontenttype` to
   * `application/json`; returns this event. Keys keep their insertion order.
   *
   * Throws a fatal HandlerError for values JSON cannot hold (a BigInt, a cycle,
   * undefined at the top).
   */
  withJsonData(value) {
    let text;
    try {
      text = JSON.stringify(value);
    } catch (e) {
      throw HandlerError.fatal(`cannot encode the data of event ${this.#id} as JSON: ${e.message}`);
    }
    if (text === undefined) {
      throw HandlerError.fatal(
        `cannot encode the data of event ${this.#id} as JSON: ${typeof value} has no JSON form`,
      );
    }
    return this.withData(text, JSON_TYPE);
  }

  /**
   * Copies the payload of `other` as it is: its data, `datacontenttype` and
   * `dataschema`, each present or absent as in `other`; returns this event.
   */
  withDataFrom(other) {
    this.#data = other.#data === undefined ? undefined : other.#data.slice();
    this.#datacontenttype = other.#datacontenttype;
    this.#dataschema = other.#dataschema;
    return this;
  }

  /** A plain object for logs and test assertions (data as text when it is UTF-8). */
  toJSON() {
    const out = { id: this.#id, source: this.#source, specversion: this.#specversion, type: this.#type };
    for (const [key, value] of [
      ["datacontenttype", this.#datacontenttype],
      ["dataschema", this.#dataschema],
      ["subject", this.#subject],
      ["time", this.#time],
    ]) {
      if (value !== undefined) out[key] = value;
    }
    for (const [name, value] of this.#extensions) out[name] = value;
    if (this.#data !== undefined) out.data = this.dataText();
    return out;
  }

  /**
   * The event the router delivered, as the component bindings give it (the WIT
   * record). Not for plugin code: the export glue calls it.
   * @internal
   */
  static fromWit(record) {
    const event = new Event(record.id, record.source, record.type);
    event.#specversion = record.specversion;
    event.#datacontenttype = record.datacontenttype ?? undefined;
    event.#dataschema = record.dataschema ?? undefined;
    event.#subject = record.subject ?? undefined;
    event.#time = record.time ?? undefined;
    event.#extensions = record.extensions.map(([name, value]) => [name, value]);
    event.#data = record.data ?? undefined;
    return event;
  }

  /**
   * This event as the WIT record the bindings take. Not for plugin code.
   * @internal
   */
  toWit() {
    return {
      id: this.#id,
      source: this.#source,
      specversion: this.#specversion,
      type: this.#type,
      datacontenttype: this.#datacontenttype,
      dataschema: this.#dataschema,
      subject: this.#subject,
      time: this.#time,
      extensions: this.#extensions,
      data: this.#data,
    };
  }
}

/** The bytes of a payload given as a string, bytes, a buffer or an array of byte values. */
export function toBytes(data) {
  if (typeof data === "string") return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new TypeError(`event data must be a string, a Uint8Array, an ArrayBuffer or an array of bytes, not ${typeof data}`);
}
