// Example transform plugin: removes personal fields from an event's JSON data
// before a route forwards it, and drops events marked `private`. A port of
// plugins/redactor (Rust) that writes the same bytes: see ./json.js for why it
// does not use JSON.parse/JSON.stringify.
//
// Config: `fields`, a comma-separated list of JSON Pointers to remove
// (default `/customer/email,/customer/phone`).

import { config, transform } from "router-guest";
import { parse, pointer, serialize } from "./json.js";

export const redact = transform((event) => {
  if (event.extension("private") === "true") return null;
  if (event.data === undefined) return event;
  const json = parse(event.data);
  // Not JSON: nothing this plugin knows how to redact.
  if (json === undefined) return event;
  const fields = config.getOr("fields", "/customer/email,/customer/phone");
  let removed = 0;
  for (const field of fields.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const slash = field.lastIndexOf("/");
    if (slash === -1) continue;
    // As Rust's rsplit_once: the key is taken as written, the parent is a pointer.
    const parent = pointer(json, field.slice(0, slash));
    const key = field.slice(slash + 1);
    if (parent instanceof Map && parent.delete(key)) removed += 1;
  }
  const contentType = event.datacontenttype ?? "application/json";
  return event.withData(serialize(json), contentType).withExtension("redacted", String(removed));
});

export { redact as transform };
