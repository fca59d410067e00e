// The transform's tests, run natively with node --test (`npm test`): the SDK
// stands in for the router's config.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event } from "router-guest";
import * as testing from "router-guest/testing";
import { stamp } from "../app.js";

beforeEach(() => testing.reset());

test("stamps an event with the configured value", () => {
  testing.setConfig("stamp", "edge-1");
  const event = stamp(new Event("e-1", "/test", "com.example.thing"));
  assert.equal(event.extension("stampedby"), "edge-1");
  assert.equal(event.id, "e-1");
});

test("drops a private event", () => {
  const event = new Event("e-1", "/test", "com.example.thing").withExtension("private", "true");
  assert.equal(stamp(event), null);
});
