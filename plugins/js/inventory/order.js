// Reading an order from an event's data, with the checks (and the messages) that
// serde's derived Deserialize gives the Rust inventory: the same fields are
// required, other fields are ignored, and a wrong shape is a fatal error
// "data of event ID (TYPE) is not the expected JSON: REASON". Differences: serde
// appends "at line L column C" to REASON, this port does not track positions;
// syntax errors are the JS engine's text after the same prefix; a repeated key
// is an error for serde ("duplicate field") and the last value here.

import { HandlerError } from "router-guest";

/**
 * @typedef {{ productId: string, quantity: bigint }} OrderItem
 * @typedef {{ orderId: string, items: OrderItem[] }} Order
 */

/** The order in `event`'s data, or a thrown fatal HandlerError. */
export function readOrder(event) {
  const json = event.dataJson();
  try {
    return order(json);
  } catch (e) {
    if (!(e instanceof ShapeError)) throw e;
    throw HandlerError.fatal(
      `data of event ${event.id} (${event.type}) is not the expected JSON: ${e.message}`,
    );
  }
}

class ShapeError extends Error {}

/** What serde names a JSON value it did not expect (serde::de::Unexpected). */
function unexpected(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "sequence";
  switch (typeof value) {
    case "string":
      return `string ${JSON.stringify(value)}`;
    case "boolean":
      return `boolean \`${value}\``;
    case "number":
      return Number.isInteger(value) ? `integer \`${value}\`` : `floating point \`${value}\``;
    default:
      return "map";
  }
}

function invalidType(value, expected) {
  return new ShapeError(`invalid type: ${unexpected(value)}, expected ${expected}`);
}

/**
 * Checks an object's fields in document order, then the missing ones in
 * declaration order. Like serde's derive, a struct may also come as an array of
 * its fields in declaration order (`["o-1", [["p-1", 2]]]`).
 */
function struct(value, name, fields) {
  const names = Object.keys(fields);
  if (Array.isArray(value)) {
    if (value.length < names.length) {
      throw new ShapeError(`invalid length ${value.length}, expected struct ${name} with ${names.length} elements`);
    }
    if (value.length > names.length) throw new ShapeError("trailing characters");
    return Object.fromEntries(names.map((key, i) => [key, fields[key](value[i])]));
  }
  if (value === null || typeof value !== "object") {
    throw invalidType(value, `struct ${name}`);
  }
  const out = {};
  for (const [key, field] of Object.entries(value)) {
    if (key in fields) out[key] = fields[key](field);
  }
  for (const key of names) {
    if (!(key in out)) throw new ShapeError(`missing field \`${key}\``);
  }
  return out;
}

function string(value) {
  if (typeof value !== "string") throw invalidType(value, "a string");
  return value;
}

/** An i64, as a BigInt. Integers past 2^53 lose precision in JSON.parse, so they are refused. */
function i64(value) {
  if (typeof value !== "number" || !Number.isInteger(value)) throw invalidType(value, "i64");
  if (!Number.isSafeInteger(value)) {
    throw new ShapeError(`invalid value: integer \`${value}\` is too large for this port, expected i64`);
  }
  return BigInt(value);
}

function sequence(item) {
  return (value) => {
    if (!Array.isArray(value)) throw invalidType(value, "a sequence");
    return value.map(item);
  };
}

const orderItem = (value) => struct(value, "OrderItem", { productId: string, quantity: i64 });

/** @returns {Order} */
function order(value) {
  return struct(value, "Order", { orderId: string, items: sequence(orderItem) });
}
