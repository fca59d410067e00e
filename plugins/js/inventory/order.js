// Reading an order from an event's data exactly as the Rust inventory does
// (`event.data_json::<Order>()` with serde): the same fields are required, other
// fields are ignored, a struct may also come as an array of its fields, and a
// wrong shape or bad JSON is a fatal error with serde_json's own message and
// position: "data of event ID (TYPE) is not the expected JSON: missing field
// `orderId` at line 1 column 12". See ./serde.js.

import { HandlerError } from "router-guest";
import { orderFromSlice, SerdeError } from "./serde.js";

/**
 * @typedef {{ productId: string, quantity: bigint }} OrderItem
 * @typedef {{ orderId: string, items: OrderItem[] }} Order
 */

/** The order in `event`'s data, or a thrown fatal HandlerError. @returns {Order} */
export function readOrder(event) {
  if (event.data === undefined) {
    throw HandlerError.fatal(`event ${event.id} (${event.type}) has no data, expected JSON`);
  }
  try {
    return orderFromSlice(event.data);
  } catch (e) {
    if (!(e instanceof SerdeError)) throw e;
    throw HandlerError.fatal(`data of event ${event.id} (${event.type}) is not the expected JSON: ${e}`);
  }
}
