// {{name}}: a router transform (a `wasm` step of a route's `transform`). It
// drops events marked private (extension `private` = `true`) and stamps every
// other event with the extension `stampedby`.
//
// Config: `stamp`, the value of `stampedby` (default `{{name}}`).

import { config, transform } from "router-guest";

/** Returns the event with `stampedby`, or null to drop it. */
export const stamp = transform((event) => {
  if (event.extension("private") === "true") {
    return null;
  }
  return event.withExtension("stampedby", config.getOr("stamp", "{{name}}"));
});

// The component's export is the module's `transform` (or its default).
export { stamp as transform };
