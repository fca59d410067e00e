// The redactor's behaviour, with the bytes the Rust plugin (serde_json) writes.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event } from "router-guest";
import * as testing from "router-guest/testing";
import { transform } from "../app.js";
import { formatNumber, parse, serialize } from "../json.js";

beforeEach(() => testing.reset());

const order = (data, contentType = "application/json") =>
  new Event("e-1", "/shop", "com.example.order.created").withData(data, contentType);

test("drops events marked private", () => {
  assert.equal(transform(order("{}").withExtension("private", "true")), null);
  assert.notEqual(transform(order("{}").withExtension("private", "yes")), null);
});

test("removes the default fields and counts them, keys sorted as serde_json writes them", () => {
  const out = transform(
    order('{"orderId":"o-1","customer":{"name":"Ada","email":"a@x","phone":"1"},"amount":12.50,"n":1e2}'),
  );
  assert.equal(out.dataText(), '{"amount":12.5,"customer":{"name":"Ada"},"n":100.0,"orderId":"o-1"}');
  assert.equal(out.extension("redacted"), "2");
  assert.equal(out.datacontenttype, "application/json");
});

test("configured pointers, the root included; missing ones count nothing", () => {
  testing.setConfig("fields", " /secret , /a~1b/c,/list/0/x, nopointer,/missing/field,");
  const out = transform(order('{"secret":1,"a/b":{"c":2,"d":3},"list":[{"x":1,"y":2}],"keep":true}', "text/json"));
  assert.equal(out.dataText(), '{"a/b":{"d":3},"keep":true,"list":[{"y":2}]}');
  assert.equal(out.extension("redacted"), "3");
  assert.equal(out.datacontenttype, "text/json", "the content type is kept");
});

test("data that is not JSON, or no data, passes unchanged", () => {
  for (const data of ["not json", '{"a":1,}', '"\\ud800"', "[".repeat(129) + "]".repeat(129)]) {
    const out = transform(order(data, "text/plain"));
    assert.equal(out.dataText(), data);
    assert.equal(out.extension("redacted"), undefined);
  }
  const none = transform(new Event("e-2", "/shop", "t"));
  assert.equal(none.data, undefined);
  assert.equal(none.extension("redacted"), undefined);
});

test("a missing content type becomes application/json", () => {
  const event = order("{}").withDatacontenttype("x");
  const bare = Event.fromWit({ ...event.toWit(), datacontenttype: undefined });
  assert.equal(transform(bare).datacontenttype, "application/json");
});

// Expected values are what the Rust redactor wrote through the router (serde_json
// 1.0.154): its float parsing is not correctly rounded for long numbers.
test("numbers are written as serde_json writes them", () => {
  const cases = [
    ["0", "0"], ["-0", "-0.0"], ["1.0", "1.0"], ["1.5", "1.5"], ["100", "100"], ["1e2", "100.0"],
    ["18446744073709551615", "18446744073709551615"], ["-9223372036854775808", "-9223372036854775808"],
    ["18446744073709551616", "1.8446744073709552e+19"], ["1e21", "1e+21"], ["1.5e-7", "1.5e-7"],
    ["0.0001", "0.0001"], ["0.00001", "0.00001"], ["0.000001", "1e-6"],
    ["1234567890123456.7", "1234567890123456.8"], ["12345678901234567.0", "1.2345678901234566e+16"], ["123456789012345678901234", "1.2345678901234567e+23"],
  ];
  for (const [input, written] of cases) {
    assert.equal(serialize(parse(new TextEncoder().encode(input))), written, input);
  }
  assert.equal(formatNumber(0.1), "0.1");
  assert.equal(parse(new TextEncoder().encode("1e400")), undefined, "out of range is not JSON to serde");
});
