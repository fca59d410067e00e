// Marking a function as the plugin's export, and adapting it to the component's
// export (what `router-js build` generates calls `exportHandle` or
// `exportTransform` once, when the component is pre-initialised).

import { Event } from "./event.js";
import { HandlerError, KvError } from "./error.js";
import * as log from "./log.js";

const KIND = Symbol.for("router-guest.kind");

function mark(kind, fn) {
  if (typeof fn !== "function") {
    throw new TypeError(`${kind}() takes the function that handles an event, not ${typeof fn}`);
  }
  fn[KIND] = kind;
  return fn;
}

/**
 * Marks `fn(event) => Event[]` as the plugin's handler (world `handler`); returns
 * `fn` itself, so tests call it directly. Export it as `handle` or as the default
 * export: `export const handle = handler((event) => [...])`.
 */
export function handler(fn) {
  return mark("handler", fn);
}

/**
 * Marks `fn(event) => Event | null` as the plugin's transform (world
 * `transform`): return the event to deliver, changed or not, or null to drop it.
 * Export it as `transform` or as the default export.
 */
export function transform(fn) {
  return mark("transform", fn);
}

/** The function the author exported for `world`, checked. */
function pick(module, world) {
  const fn = module[world === "handler" ? "handle" : "transform"] ?? module.default;
  const name = world === "handler" ? "handle" : "transform";
  if (typeof fn !== "function") {
    throw new TypeError(
      `the plugin exports no \`${name}\` function (nor a default one) for world \`${world}\``,
    );
  }
  if (fn[KIND] !== undefined && fn[KIND] !== world) {
    throw new TypeError(
      `the plugin's export is marked ${fn[KIND]}() but its package.json says world \`${world}\``,
    );
  }
  return fn;
}

/**
 * Turns whatever the plugin threw into the WIT `handler-error` the bindings throw
 * back to the router. An exception that is not a HandlerError or KvError is a bug
 * the author did not plan for: it is logged with its stack (the router shows only
 * the message), and it is fatal, since the same event will throw the same way.
 */
function toWitError(thrown) {
  if (!(thrown instanceof HandlerError) && !(thrown instanceof KvError)) {
    const detail = thrown instanceof Error && thrown.stack ? `\n${thrown.stack}` : "";
    const error = HandlerError.from(thrown);
    log.error(`uncaught ${error.message}${detail}`);
    return { tag: "fatal", val: error.message };
  }
  const error = HandlerError.from(thrown);
  return { tag: error.kind, val: error.message };
}

function refuseThenable(value, world) {
  if (value && typeof value.then === "function") {
    throw new TypeError(`the ${world} returned a Promise: plugins are synchronous, drop async/await`);
  }
}

/** The component's `handle` export, calling the author's handler. */
export function exportHandle(module) {
  const fn = pick(module, "handler");
  return function handle(record) {
    let result;
    try {
      const out = fn(Event.fromWit(record));
      refuseThenable(out, "handler");
      if (out === undefined || out === null) {
        throw new TypeError("the handler returned nothing: return [] to emit no event");
      }
      result = [];
      for (const event of out) {
        if (!(event instanceof Event)) {
          throw new TypeError(`the handler returned ${describeValue(event)} where an Event belongs`);
        }
        result.push(event.toWit());
      }
    } catch (thrown) {
      throw toWitError(thrown);
    }
    return result;
  };
}

/** The component's `transform` export, calling the author's transform. */
export function exportTransform(module) {
  const fn = pick(module, "transform");
  return function transform(record) {
    let result;
    try {
      const out = fn(Event.fromWit(record));
      refuseThenable(out, "transform");
      if (out === undefined) {
        throw new TypeError("the transform returned undefined: return the event, or null to drop it");
      }
      if (out !== null && !(out instanceof Event)) {
        throw new TypeError(`the transform returned ${describeValue(out)} where an Event or null belongs`);
      }
      result = out === null ? undefined : out.toWit();
    } catch (thrown) {
      throw toWitError(thrown);
    }
    return result;
  };
}

function describeValue(value) {
  if (value === null) return "null";
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "no class"})`;
  return `a ${typeof value}`;
}
