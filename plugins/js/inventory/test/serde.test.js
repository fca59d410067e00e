// serde-cases.json holds what the Rust inventory answered, through the router,
// for each of these payloads: "OK" when serde_json read an Order, "NO DATA" for
// no payload, else serde_json's message with its position. serde.js must agree.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { orderFromSlice } from "../serde.js";

const cases = JSON.parse(readFileSync(new URL("./serde-cases.json", import.meta.url), "utf8"));

test("reads orders and fails exactly as serde_json does", () => {
  assert.ok(cases.length > 50);
  for (const [data, rust] of cases) {
    if (rust === "NO DATA") continue;
    let js = "OK";
    try {
      // The payloads were sent as these bytes (latin1 keeps each code unit a byte).
      orderFromSlice(Buffer.from(data, "latin1"));
    } catch (e) {
      js = String(e);
    }
    assert.equal(js, rust, JSON.stringify(data));
  }
});
