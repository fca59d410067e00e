// Enriches every event: emits a copy typed `<type>.enriched`, with id
// `<id>-enriched`, that carries two more extension attributes. Everything else
// (source, subject, time, other extensions, data and its content type) is kept.
// A port of plugins/enricher (Rust), used to compare the two in benchmarks.
//
// Config: `name`, the value of extension `enrichedby` (default `enricher`), and
// `region`, the value of extension `region` (default `unknown`).

import { config, handler } from "router-guest";

export const handle = handler((event) => {
  // The event is ours: renamed in place rather than copied (`derive` would copy
  // the data), as the Rust plugin moves it.
  const enriched = event
    .withId(`${event.id}-enriched`)
    .withType(`${event.type}.enriched`)
    .withExtension("enrichedby", config.getOr("name", "enricher"))
    .withExtension("region", config.getOr("region", "unknown"));
  return [enriched];
});
