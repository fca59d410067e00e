// The demo's inventory service: reserves stock for new orders, keeping the stock
// in the plugin's key-value store. A port of plugins/inventory (Rust) that
// behaves the same: same events, ids, subjects, data (key order included),
// errors, kv keys and values, and config keys.
//
// On `com.example.order.created` it emits `com.example.inventory.reserved` when
// the order has items, every quantity is positive and every product has the stock
// left, `com.example.order.rejected` with the reason otherwise. Ids derive from
// the incoming event and the order, so a redelivered order yields the same events
// and reservation ids, and reserves nothing twice: a reservation is remembered.
// A rejection is not: it took no stock, so a redelivery is judged again.
//
// Config: `source`, the source of emitted events (default `/inventory`);
// `stock`, the stock of every product (default 1000), and `stock.PRODUCT` for one
// product.
//
// Keys: `reserved:PRODUCT` (units reserved so far), `order:ORDER` (`reserved`;
// older versions also stored `rejected:` and the reason, still understood).

import { Event, HandlerError, config, handler, kv, log } from "router-guest";
import { readOrder } from "./order.js";

export const ORDER_CREATED = "com.example.order.created";
export const RESERVED = "com.example.inventory.reserved";
export const REJECTED = "com.example.order.rejected";
/** How long a reservation is remembered, in milliseconds (a day, like a dedup window). */
const ORDER_MEMORY_MS = 24 * 3600 * 1000;

export const handle = handler((event) => {
  if (event.type !== ORDER_CREATED) return [];
  const order = readOrder(event);
  if (order.orderId === "") {
    throw HandlerError.fatal(`order event ${event.id} has an empty orderId`);
  }
  const source = config.getOr("source", "/inventory");

  let outcome;
  const done = kv.getText(orderKey(order));
  if (done !== undefined) {
    // Seen before (a redelivery): the same answer, and no second reservation.
    outcome = done.startsWith("rejected:") ? done.slice("rejected:".length) : null;
  } else {
    outcome = rejection(order) ?? takeStock(order);
    // A rejection took nothing and is not kept, so invalid orders cannot fill the store.
    if (outcome === null) kv.set(orderKey(order), "reserved", ORDER_MEMORY_MS);
  }
  let reply;
  if (outcome !== null) {
    log.warn(`order ${order.orderId} rejected: ${outcome}`);
    reply = new Event(`${event.id}-rejected`, source, REJECTED).withJsonData({
      orderId: order.orderId,
      reason: outcome,
    });
  } else {
    reply = new Event(`${event.id}-reserved`, source, RESERVED).withData(reserve(order), "application/json");
  }
  return [reply.withSubject(order.orderId)];
});

function orderKey(order) {
  return `order:${order.orderId}`;
}

/** The stock of `product` (a BigInt): its own `stock.PRODUCT`, else `stock`, else 1000. */
function stockOf(product) {
  const text = config.get(`stock.${product}`) ?? config.get("stock") ?? "1000";
  // As Rust's i64::from_str: an optional sign and ASCII digits, within 64 bits.
  const value = /^[+-]?[0-9]+$/.test(text) ? BigInt(text) : undefined;
  if (value === undefined || value < -(2n ** 63n) || value >= 2n ** 63n) {
    throw HandlerError.fatal(`plugin config: stock ${JSON.stringify(text)} is not an integer`);
  }
  return value;
}

/**
 * Reserves every item, or none: the reason when a product lacks stock, null
 * otherwise. Each reservation is one atomic increment, undone when the order
 * cannot be served whole, so that concurrent orders never oversell. BigInts
 * throughout, as the store's integers are 64-bit.
 */
function takeStock(order) {
  const taken = [];
  for (const item of order.items) {
    const key = `reserved:${item.productId}`;
    const reserved = kv.increment(key, item.quantity);
    const stock = stockOf(item.productId);
    if (reserved > stock) {
      kv.increment(key, -item.quantity);
      for (const done of taken) kv.increment(`reserved:${done.productId}`, -done.quantity);
      let left = stock - (reserved - item.quantity);
      if (left < 0n) left = 0n;
      return `insufficient stock of ${item.productId}: ${left} left, ${item.quantity} ordered`;
    }
    taken.push(item);
  }
  return null;
}

/** Why `order` cannot be reserved, or null when it can. */
function rejection(order) {
  if (order.items.length === 0) return "no items";
  const bad = order.items.find((item) => item.quantity <= 0n);
  return bad === undefined ? null : `item ${bad.productId} has quantity ${bad.quantity}`;
}

/**
 * One reservation per item, as the JSON text serde writes for the Rust plugin's
 * struct (field order included). Written by hand because quantities are 64-bit
 * integers (BigInt), which JSON.stringify cannot write; strings are escaped by
 * JSON.stringify, which escapes what serde_json escapes. The id depends only on
 * the order and the product, so a redelivered order yields the same ids.
 */
function reserve(order) {
  const items = order.items.map(
    (item) =>
      `{"productId":${JSON.stringify(item.productId)},"quantity":${item.quantity},` +
      `"reservationId":${JSON.stringify(`res-${order.orderId}-${item.productId}`)}}`,
  );
  return `{"orderId":${JSON.stringify(order.orderId)},"items":[${items.join(",")}]}`;
}
