// The export glue: what the component's `handle`/`transform` give the router for
// what the author's function returns or throws.

import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { Event, HandlerError, KvError, handler, transform } from "router-guest";
import * as testing from "router-guest/testing";
import { exportHandle, exportTransform } from "../src/export.js";

beforeEach(() => testing.reset());

const record = (type = "t") => new Event("e-1", "/s", type).withData("x", "text/plain").toWit();

/** What the bindings would hand the router: the value, or the thrown WIT variant. */
function call(fn, input) {
  try {
    return { ok: fn(input) };
  } catch (e) {
    return { err: e };
  }
}

test("a handler's events become WIT records", () => {
  const handle = exportHandle({ handle: handler((event) => [event.derive(`${event.id}-a`, "a"), new Event("b", "/b", "b")]) });
  const { ok } = call(handle, record());
  assert.equal(ok.length, 2);
  assert.equal(ok[0].id, "e-1-a");
  assert.deepEqual(ok[0].data, new TextEncoder().encode("x"));
  assert.equal(ok[1].specversion, "1.0");
  assert.deepEqual(call(handle, record()).ok.length, 2, "the export is reusable");
});

test("a default export works, and a Set of events too", () => {
  const handle = exportHandle({ default: (event) => new Set([event]) });
  assert.equal(call(handle, record()).ok[0].id, "e-1");
});

test("thrown errors become the WIT handler-error", () => {
  const cases = [
    [() => { throw HandlerError.retryable("later"); }, { tag: "retryable", val: "later" }],
    [() => { throw HandlerError.fatal("never"); }, { tag: "fatal", val: "never" }],
    [() => { throw new KvError("unavailable", "down"); }, { tag: "retryable", val: "key-value store: down" }],
    [() => { throw new KvError("invalid-key", "empty"); }, { tag: "fatal", val: "key-value store: empty" }],
  ];
  for (const [fn, expected] of cases) {
    assert.deepEqual(call(exportHandle({ handle: fn }), record()), { err: expected });
  }
  assert.deepEqual(testing.logs(), [], "expected errors are not logged by the glue");
});

test("an uncaught exception is fatal with its message, and logged with its stack", () => {
  const handle = exportHandle({ handle: (event) => event.nothing.here });
  const { err } = call(handle, record());
  assert.equal(err.tag, "fatal");
  assert.match(err.val, /^TypeError: .*here/);
  const [line] = testing.logs();
  assert.equal(line.level, "error");
  assert.ok(line.message.startsWith(`uncaught ${err.val}`), line.message);
  assert.match(line.message, /export\.test\.js/, "the stack says where");
});

test("mistakes in what a handler returns are fatal and explained", () => {
  for (const [fn, message] of [
    [() => undefined, "returned nothing"],
    [() => [{ id: "x" }], "where an Event belongs"],
    [async () => [], "returned a Promise"],
  ]) {
    const { err } = call(exportHandle({ handle: fn }), record());
    assert.equal(err.tag, "fatal");
    assert.ok(err.val.includes(message), err.val);
  }
});

test("a transform returns the event or drops it with null", () => {
  const keep = exportTransform({ transform: transform((event) => event.withExtension("seen", "yes")) });
  assert.deepEqual(call(keep, record()).ok.extensions, [["seen", "yes"]]);
  const drop = exportTransform({ default: () => null });
  assert.deepEqual(call(drop, record()), { ok: undefined });
  const forgot = exportTransform({ transform: () => {} });
  assert.match(call(forgot, record()).err.val, /returned undefined/);
});

test("the export must exist and match the world", () => {
  assert.throws(() => exportHandle({ other: () => [] }), /exports no `handle` function/);
  assert.throws(() => exportHandle({ handle: transform(() => null) }), /marked transform\(\)/);
  assert.throws(() => handler("nope"), TypeError);
});
