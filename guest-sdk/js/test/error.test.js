// HandlerError and KvError, and how one becomes the other (Rust: error.rs, kv.rs).

import { test } from "node:test";
import assert from "node:assert/strict";
import { HandlerError, KvError } from "router-guest";

test("helpers build the matching kind", () => {
  const retry = HandlerError.retryable("database is down");
  assert.equal(retry.kind, "retryable");
  assert.ok(retry.isRetryable());
  assert.equal(retry.message, "database is down");
  assert.equal(retry.toString(), "retryable: database is down");
  assert.ok(retry instanceof Error);

  const fatal = HandlerError.fatal("no orderId");
  assert.ok(!fatal.isRetryable());
  assert.equal(fatal.toString(), "fatal: no orderId");
  assert.throws(() => new HandlerError("maybe", "x"), TypeError);
});

test("kv errors say whether a retry can help, as Rust's From<KvError>", () => {
  for (const [kind, retryable] of [
    ["invalid-key", false], ["invalid-value", false], ["quota-exceeded", true], ["unavailable", true],
  ]) {
    const error = new KvError(kind, "why");
    assert.equal(error.isRetryable(), retryable, kind);
    const handlerError = HandlerError.from(error);
    assert.equal(handlerError.kind, retryable ? "retryable" : "fatal", kind);
    assert.equal(handlerError.message, "key-value store: why");
  }
  assert.throws(() => new KvError("gone", "x"), TypeError);
});

test("anything else thrown is fatal, with its message", () => {
  assert.equal(HandlerError.from(new TypeError("x is undefined")).toString(), "fatal: TypeError: x is undefined");
  assert.equal(HandlerError.from("plain").message, "uncaught exception: plain");
  assert.equal(HandlerError.from({ code: 7 }).message, 'uncaught exception: {"code":7}');
  const same = HandlerError.retryable("r");
  assert.equal(HandlerError.from(same), same);
});
