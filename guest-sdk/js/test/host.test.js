// The stand-in host: config, kv (limits, TTL, integers) and logs, as
// router-guest/testing controls them (Rust: testing.rs).

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { HandlerError, KvError, config, kv, log } from "router-guest";
import * as testing from "router-guest/testing";

beforeEach(() => testing.reset());

test("config reads what the test set", () => {
  assert.equal(config.get("source"), undefined);
  assert.equal(config.getOr("source", "/default"), "/default");
  assert.throws(() => config.require("source"), (e) => e instanceof HandlerError && e.message.includes("`source`"));
  testing.setConfig("source", "/configured");
  assert.equal(config.get("source"), "/configured");
  assert.equal(config.require("source"), "/configured");
  testing.clearConfig();
  assert.equal(config.get("source"), undefined);
});

test("kv stores bytes and text, deletes, and counts", () => {
  kv.set("greeting", "hello");
  assert.deepEqual(kv.get("greeting"), new TextEncoder().encode("hello"));
  assert.equal(kv.getText("greeting"), "hello");
  kv.set("bytes", new Uint8Array([0, 255]));
  assert.deepEqual(kv.get("bytes"), new Uint8Array([0, 255]));
  assert.equal(kv.increment("visits", 2), 2);
  assert.equal(kv.increment("visits", -5), -3);
  assert.equal(kv.getText("visits"), "-3");
  assert.equal(kv.delete("greeting"), true);
  assert.equal(kv.delete("greeting"), false);
  assert.equal(kv.get("greeting"), undefined);
});

test("increment answers in the type of its delta", () => {
  assert.equal(kv.increment("n", 1n), 1n);
  assert.equal(kv.increment("n", 1), 2);
  assert.equal(kv.increment("big", 2n ** 62n), 2n ** 62n);
  assert.throws(() => kv.increment("big", 1), (e) => e instanceof KvError && e.kind === "invalid-value");
  assert.throws(() => kv.increment("n", 1.5), RangeError);
  assert.throws(() => kv.increment("max", 2n ** 63n - 1n) && kv.increment("max", 1n), {
    name: "KvError",
    message: 'incrementing "max" overflows 64 bits',
  });
});

test("kv errors are those the router gives", () => {
  assert.throws(() => kv.get(""), { name: "KvError", kind: "invalid-key", message: "key of 0 bytes: keys are 1 to 1024 bytes" });
  assert.throws(() => kv.get("k".repeat(1025)), { kind: "invalid-key" });
  kv.get("é".repeat(512)); // 1024 bytes: allowed
  assert.throws(() => kv.set("v", new Uint8Array((1 << 20) + 1)), { kind: "invalid-value" });
  kv.set("word", "abc");
  assert.throws(() => kv.increment("word", 1), {
    kind: "invalid-value",
    message: 'the value of "word" is not an integer',
  });
  testing.failKv("unavailable", "no answer");
  assert.throws(() => kv.get("x"), (e) => e instanceof KvError && e.isRetryable() && e.message === "no answer");
  testing.failKv();
  assert.equal(kv.get("x"), undefined);
});

test("a TTL expires on the stand-in clock; increment keeps it", () => {
  kv.set("short", "1", 1000);
  kv.set("forever", "1");
  assert.ok(testing.kvEntries().get("short").expiresInMs <= 1000);
  assert.equal(testing.kvEntries().get("forever").expiresInMs, undefined);
  testing.advanceClock(500);
  assert.equal(kv.increment("short", 1), 2);
  testing.advanceClock(499);
  assert.equal(kv.getText("short"), "2");
  testing.advanceClock(1);
  assert.equal(kv.get("short"), undefined);
  assert.equal(kv.getText("forever"), "1");
  assert.throws(() => kv.set("k", "v", -1), RangeError);
  kv.set("big-ttl", "v", 10n);
});

test("log lines are captured with their level", () => {
  log.info("one");
  log.error(new Error("two"));
  log.trace("three");
  assert.deepEqual(testing.logs(), [
    { level: "info", message: "one" },
    { level: "error", message: "Error: two" },
    { level: "trace", message: "three" },
  ]);
  testing.clearLogs();
  assert.deepEqual(testing.logs(), []);
});
