// The Rust SDK's Event tests (guest-sdk/src/event.rs), ported, and the JS additions.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Event, HandlerError } from "router-guest";

const orderEvent = (data) => {
  const event = new Event("e-1", "/shop", "com.example.order.created");
  return data === undefined ? event : event.withData(data, "text/plain");
};

test("new sets the required attributes and specversion", () => {
  const event = new Event("e-1", "/shop", "t");
  assert.deepEqual([event.id, event.source, event.type, event.specversion], ["e-1", "/shop", "t", "1.0"]);
  assert.equal(event.subject, undefined);
  assert.equal(event.data, undefined);
  assert.deepEqual(event.extensions, []);
});

test("builders set attributes, return the event, and extensions replace", () => {
  const event = new Event("e-1", "/shop", "t")
    .withId("e-2")
    .withSource("/other")
    .withType("u")
    .withSubject("s")
    .withTime("2026-01-31T12:00:00Z")
    .withDataschema("https://example.com/schema")
    .withExtension("region", "eu")
    .withExtension("tenant", "acme")
    .withExtension("region", "us");
  assert.deepEqual([event.id, event.source, event.type], ["e-2", "/other", "u"]);
  assert.equal(event.subject, "s");
  assert.equal(event.time, "2026-01-31T12:00:00Z");
  assert.equal(event.dataschema, "https://example.com/schema");
  assert.equal(event.extension("region"), "us");
  assert.equal(event.extension("missing"), undefined);
  assert.deepEqual(event.extensions, [["region", "us"], ["tenant", "acme"]]);
  event.extensions[0][1] = "changed";
  assert.equal(event.extension("region"), "us", "extensions is a copy");
});

test("extension names are checked as the router checks them", () => {
  for (const [name, problem] of [
    ["Region", "lowercase letters a-z and digits 0-9"],
    ["my-ext", "lowercase letters a-z and digits 0-9"],
    ["", "lowercase letters a-z and digits 0-9"],
    ["subject", "context attribute"],
  ]) {
    assert.throws(() => new Event("e", "/s", "t").withExtension(name, "v"), (e) => {
      assert.ok(e instanceof HandlerError && e.kind === "fatal");
      assert.ok(e.message.includes(problem), e.message);
      assert.ok(e.message.includes(JSON.stringify(name)), e.message);
      return true;
    });
  }
  assert.equal(new Event("e", "/s", "t").withExtension("abc123", 7).extension("abc123"), "7");
});

test("dataJson parses whatever the content type", () => {
  const event = orderEvent('{"orderId":"o-1","other":true}');
  assert.deepEqual(event.dataJson(), { orderId: "o-1", other: true });
});

test("dataJson names missing or invalid data, with the Rust SDK's messages", () => {
  assert.throws(() => orderEvent().dataJson(), {
    name: "HandlerError",
    kind: "fatal",
    message: "event e-1 (com.example.order.created) has no data, expected JSON",
  });
  assert.throws(() => orderEvent("not json").dataJson(), (e) => {
    assert.equal(e.kind, "fatal");
    assert.ok(
      e.message.startsWith("data of event e-1 (com.example.order.created) is not the expected JSON: "),
      e.message,
    );
    return true;
  });
});

test("withJsonData sets the payload and content type", () => {
  const event = new Event("e-1", "/shop", "t").withJsonData({ orderId: "o-1", n: 2 });
  assert.equal(event.datacontenttype, "application/json");
  assert.equal(event.dataText(), '{"orderId":"o-1","n":2}');
  assert.deepEqual(event.data, new TextEncoder().encode('{"orderId":"o-1","n":2}'));
  assert.deepEqual(event.dataJson(), { orderId: "o-1", n: 2 });
});

test("withJsonData fails fatally for values JSON cannot hold", () => {
  const cycle = {};
  cycle.self = cycle;
  for (const value of [{ n: 1n }, cycle, undefined, () => 1]) {
    assert.throws(() => new Event("e-1", "/shop", "t").withJsonData(value), (e) => {
      assert.ok(e instanceof HandlerError && !e.isRetryable());
      assert.ok(e.message.startsWith("cannot encode the data of event e-1 as JSON: "), e.message);
      return true;
    });
  }
});

test("withData takes text, bytes, buffers and byte arrays", () => {
  const bytes = new Uint8Array([104, 105]);
  assert.equal(new Event("e", "/s", "t").withData("hi", "text/plain").dataText(), "hi");
  assert.equal(new Event("e", "/s", "t").withData(bytes, "x/y").data, bytes);
  assert.equal(new Event("e", "/s", "t").withData(bytes.buffer, "x/y").dataText(), "hi");
  assert.equal(new Event("e", "/s", "t").withData([104, 105], "x/y").dataText(), "hi");
  assert.throws(() => new Event("e", "/s", "t").withData(42, "x/y"), TypeError);
});

test("withDataFrom copies presence and absence", () => {
  const withData = new Event("a", "/a", "t").withData("x", "text/plain").withDataschema("s");
  const without = new Event("b", "/b", "t");

  const copied = without.clone().withDataFrom(withData);
  assert.equal(copied.dataText(), "x");
  assert.equal(copied.datacontenttype, "text/plain");
  assert.equal(copied.dataschema, "s");

  const cleared = withData.withDataFrom(without);
  assert.equal(cleared.data, undefined);
  assert.equal(cleared.datacontenttype, undefined);
  assert.equal(cleared.dataschema, undefined);
});

test("derive keeps everything but id and type, and copies", () => {
  const original = new Event("e-1", "/shop", "t")
    .withSubject("s")
    .withExtension("region", "eu")
    .withData("x", "text/plain");
  const copy = original.derive("e-1-enriched", "t.enriched");
  assert.deepEqual([copy.id, copy.type], ["e-1-enriched", "t.enriched"]);
  assert.deepEqual(copy.withId("e-1").withType("t").toJSON(), original.toJSON());
  copy.withExtension("region", "us").data[0] = 0;
  assert.equal(original.extension("region"), "eu", "the original keeps its extensions");
  assert.equal(original.dataText(), "x", "and its data");
});

test("the WIT record round-trips", () => {
  const record = {
    id: "e-1", source: "/s", specversion: "1.0", type: "t",
    datacontenttype: "text/plain", dataschema: undefined, subject: "s", time: undefined,
    extensions: [["a", "1"]], data: new Uint8Array([1, 2]),
  };
  assert.deepEqual(Event.fromWit(record).toWit(), record);
});
