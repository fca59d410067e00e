// The handler's tests, run natively with node --test (`npm test`): the SDK
// stands in for the router's config, kv and log.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event, HandlerError } from "router-guest";
import * as testing from "router-guest/testing";
import { handle, GREETED, REQUESTED } from "../app.js";

beforeEach(() => testing.reset());

const request = (name) => new Event("e-1", "/test", REQUESTED).withJsonData({ name });

test("greets with the configured salutation and counts", () => {
  testing.setConfig("salutation", "Bonjour");
  const first = handle(request("Ada"));
  const again = handle(request("Ada"));
  assert.equal(first.length, 1);
  assert.deepEqual([first[0].id, first[0].type, first[0].subject], ["e-1-greeted", GREETED, "Ada"]);
  assert.deepEqual(again[0].dataJson(), { greeting: "Bonjour, Ada!", count: 2 });
});

test("data that is not a request is fatal", () => {
  const event = new Event("e-1", "/test", REQUESTED).withData("nope", "text/plain");
  assert.throws(
    () => handle(event),
    (error) => error instanceof HandlerError && !error.isRetryable(),
  );
});

test("ignores other types", () => {
  assert.deepEqual(handle(new Event("e-1", "/test", "com.example.other")), []);
});
