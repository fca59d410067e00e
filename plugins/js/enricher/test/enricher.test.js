// The Rust enricher's unit test (plugins/enricher/src/lib.rs), ported.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event } from "router-guest";
import * as testing from "router-guest/testing";
import { handle } from "../app.js";

beforeEach(() => testing.reset());

test("emits an enriched copy", () => {
  testing.setConfig("region", "eu-west-1");
  const event = new Event("e-1", "/shop", "com.example.order.created")
    .withSubject("o-1")
    .withExtension("tenant", "acme")
    .withData('{"orderId":"o-1"}', "application/json");
  const original = event.clone();

  const out = handle(event);

  assert.equal(out.length, 1);
  const [enriched] = out;
  assert.equal(enriched.id, "e-1-enriched");
  assert.equal(enriched.type, "com.example.order.created.enriched");
  assert.equal(enriched.extension("enrichedby"), "enricher");
  assert.equal(enriched.extension("region"), "eu-west-1");
  assert.deepEqual(enriched.extensions, [["tenant", "acme"], ["enrichedby", "enricher"], ["region", "eu-west-1"]]);
  assert.equal(enriched.source, original.source);
  assert.equal(enriched.subject, original.subject);
  assert.deepEqual(enriched.data, original.data);
  assert.equal(enriched.datacontenttype, original.datacontenttype);
});

test("the name comes from config, the region has a default", () => {
  testing.setConfig("name", "demo-enricher");
  const [enriched] = handle(new Event("e-2", "/shop", "t"));
  assert.equal(enriched.extension("enrichedby"), "demo-enricher");
  assert.equal(enriched.extension("region"), "unknown");
  assert.equal(enriched.data, undefined);
});
