// The Rust inventory's unit tests (plugins/inventory/src/lib.rs), ported: run
// with `router-js test plugins/js/inventory` (node --test, stand-in host).

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event, HandlerError, kv } from "router-guest";
import * as testing from "router-guest/testing";
import { handle, ORDER_CREATED, RESERVED, REJECTED } from "../app.js";

beforeEach(() => testing.reset());

function orderCreated(data) {
  testing.clearKv();
  return new Event("e-1", "/shop", ORDER_CREATED).withJsonData(data);
}

function only(events) {
  assert.equal(events.length, 1);
  return [events[0], events[0].dataJson()];
}

test("reserves every item", () => {
  const order = {
    orderId: "o-1",
    customerId: "c-1",
    items: [{ productId: "p-1", quantity: 2 }, { productId: "p-2", quantity: 1 }],
  };
  const [event, data] = only(handle(orderCreated(order)));
  assert.deepEqual(
    [event.id, event.source, event.type, event.subject],
    ["e-1-reserved", "/inventory", RESERVED, "o-1"],
  );
  assert.deepEqual(data, {
    orderId: "o-1",
    items: [
      { productId: "p-1", quantity: 2, reservationId: "res-o-1-p-1" },
      { productId: "p-2", quantity: 1, reservationId: "res-o-1-p-2" },
    ],
  });
  // Byte for byte what serde writes for the Rust inventory: field order included.
  assert.equal(
    event.dataText(),
    '{"orderId":"o-1","items":[{"productId":"p-1","quantity":2,"reservationId":"res-o-1-p-1"},' +
      '{"productId":"p-2","quantity":1,"reservationId":"res-o-1-p-2"}]}',
  );
  assert.equal(event.datacontenttype, "application/json");
  assert.equal(kv.getText("order:o-1"), "reserved");
  assert.equal(kv.getText("reserved:p-1"), "2");
  const remembered = testing.kvEntries().get("order:o-1");
  assert.ok(remembered.expiresInMs > 24 * 3600 * 1000 - 5000, "a reservation is remembered for a day");
});

test("rejects an order without items or with a bad quantity", () => {
  for (const [items, reason] of [
    [[], "no items"],
    [[{ productId: "p-1", quantity: 1 }, { productId: "p-2", quantity: 0 }], "item p-2 has quantity 0"],
    [[{ productId: "p-3", quantity: -4 }], "item p-3 has quantity -4"],
  ]) {
    const [event, data] = only(handle(orderCreated({ orderId: "o-1", items })));
    assert.deepEqual([event.id, event.type, event.subject], ["e-1-rejected", REJECTED, "o-1"]);
    assert.deepEqual(data, { orderId: "o-1", reason });
    assert.equal(event.dataText(), JSON.stringify({ orderId: "o-1", reason }));
    assert.equal(kv.get("order:o-1"), undefined, "a rejected order is not stored");
    assert.deepEqual(testing.logs().at(-1), { level: "warn", message: `order o-1 rejected: ${reason}` });
  }
});

test("data that is not an order is fatal", () => {
  for (const [event, problem] of [
    [new Event("e-1", "/shop", ORDER_CREATED).withData("nope", "text/plain"), "not the expected JSON"],
    [new Event("e-1", "/shop", ORDER_CREATED), "no data"],
    [orderCreated({ items: [] }), "missing field `orderId` at line 1 column 12"],
    [orderCreated({ orderId: "o-1" }), "missing field `items` at line 1 column 17"],
    [orderCreated({ orderId: "", items: [] }), "empty orderId"],
    [orderCreated({ orderId: "o-1", items: [{ productId: "p", quantity: 1.5 }] }), "invalid type: floating point `1.5`, expected i64 at line 1 column 57"],
    [orderCreated({ orderId: 7, items: [] }), "invalid type: integer `7`, expected a string at line 1 column 12"],
    [new Event("e-1", "/shop", ORDER_CREATED).withData('{"orderId":"o","orderId":"p","items":[]}', "application/json"), "duplicate field `orderId` at line 1 column 24"],
    [orderCreated(["o-1"]), "invalid length 1, expected struct Order with 2 elements at line 1 column 7"],
    [orderCreated("o-1"), 'invalid type: string "o-1", expected struct Order at line 1 column 5'],
  ]) {
    assert.throws(
      () => handle(event),
      (error) => {
        assert.ok(error instanceof HandlerError, String(error));
        assert.equal(error.isRetryable(), false, String(error));
        assert.ok(error.message.includes(problem), `${error.message} should say ${problem}`);
        return true;
      },
    );
  }
  // serde_json's messages, positions included (checked against the Rust plugin).
  assert.throws(() => handle(orderCreated({ items: [] })), {
    message: "data of event e-1 (com.example.order.created) is not the expected JSON: missing field `orderId` at line 1 column 12",
  });
  assert.throws(() => handle(new Event("e-1", "/shop", ORDER_CREATED).withData("nope", "text/plain")), {
    message: "data of event e-1 (com.example.order.created) is not the expected JSON: expected ident at line 1 column 2",
  });
});

test("stock runs out and a redelivery reserves nothing twice", () => {
  testing.setConfig("stock", "5");
  const order = (id, quantity) =>
    new Event(`e-${id}`, "/shop", ORDER_CREATED).withJsonData({
      orderId: id,
      items: [{ productId: "p-9", quantity }],
    });
  const [first] = only(handle(order("o-1", 3)));
  assert.equal(first.type, RESERVED);
  const [again] = only(handle(order("o-1", 3)));
  assert.equal(again.type, RESERVED, "the same answer for a redelivery");
  const [second, data] = only(handle(order("o-2", 3)));
  assert.equal(second.type, REJECTED);
  assert.equal(data.reason, "insufficient stock of p-9: 2 left, 3 ordered", "o-1 was reserved once only");
  const [third] = only(handle(order("o-3", 2)));
  assert.equal(third.type, RESERVED, "the rejected order gave its units back");
  assert.equal(kv.getText("reserved:p-9"), "5");
});

test("an order that cannot be served whole gives back what it took", () => {
  testing.setConfig("stock", "5");
  testing.setConfig("stock.p-2", "1");
  const event = new Event("e-1", "/shop", ORDER_CREATED).withJsonData({
    orderId: "o-1",
    items: [{ productId: "p-1", quantity: 4 }, { productId: "p-2", quantity: 2 }],
  });
  const [reply, data] = only(handle(event));
  assert.equal(reply.type, REJECTED);
  assert.equal(data.reason, "insufficient stock of p-2: 1 left, 2 ordered");
  assert.equal(kv.getText("reserved:p-1"), "0");
  assert.equal(kv.getText("reserved:p-2"), "0");
});

test("a stock that is not an integer is a fatal config error", () => {
  testing.setConfig("stock", "lots");
  assert.throws(() => handle(orderCreated({ orderId: "o-1", items: [{ productId: "p", quantity: 1 }] })), {
    message: 'plugin config: stock "lots" is not an integer',
  });
});

test("a stored rejection from an older version is answered again", () => {
  kv.set("order:o-1", "rejected:no items");
  const [event, data] = only(
    handle(new Event("e-1", "/shop", ORDER_CREATED).withJsonData({ orderId: "o-1", items: [{ productId: "p", quantity: 1 }] })),
  );
  assert.equal(event.type, REJECTED);
  assert.equal(data.reason, "no items");
});

test("an unavailable store is retryable once it reaches the router", () => {
  testing.failKv("unavailable", "no answer");
  assert.throws(() => handle(orderCreated({ orderId: "o-1", items: [{ productId: "p", quantity: 1 }] })), (e) => {
    assert.equal(HandlerError.from(e).isRetryable(), true);
    assert.equal(HandlerError.from(e).message, "key-value store: no answer");
    return true;
  });
});

test("an order may come as arrays of fields, as serde reads structs", () => {
  const [event, data] = only(handle(orderCreated(["o-1", [["p-1", 2]]])));
  assert.equal(event.type, RESERVED);
  assert.deepEqual(data.items, [{ productId: "p-1", quantity: 2, reservationId: "res-o-1-p-1" }]);
});

test("quantities are 64-bit integers, written exactly", () => {
  testing.setConfig("stock", "9223372036854775807");
  const event = new Event("e-1", "/shop", ORDER_CREATED).withData(
    '{"orderId":"o-1","items":[{"productId":"p","quantity":9007199254740993}]}',
    "application/json",
  );
  const [reply] = handle(event);
  assert.equal(
    reply.dataText(),
    '{"orderId":"o-1","items":[{"productId":"p","quantity":9007199254740993,"reservationId":"res-o-1-p"}]}',
  );
  assert.equal(kv.getText("reserved:p"), "9007199254740993");
});

test("ignores other types", () => {
  assert.deepEqual(handle(new Event("e-1", "/shop", "com.example.order.shipped")), []);
});
