// {{name}}: a router handler. For every `com.example.greeting.requested` event
// whose data is `{"name": "..."}`, it emits `com.example.greeted` with a
// greeting and how many times that name has been greeted (kept in the plugin's
// kv store).
//
// Config: `salutation` (default `Hello`).

import { Event, HandlerError, config, handler, kv, log } from "router-guest";

export const REQUESTED = "com.example.greeting.requested";
export const GREETED = "com.example.greeted";

/** @param {Event} event */
export const handle = handler((event) => {
  if (event.type !== REQUESTED) {
    return [];
  }
  // Data that is not JSON throws a fatal HandlerError naming the event.
  const request = event.dataJson();
  if (typeof request?.name !== "string") {
    throw HandlerError.fatal(`event ${event.id}: data has no string \`name\``);
  }
  const salutation = config.getOr("salutation", "Hello");
  // A KvError left uncaught fails the event: retryable when the store is down.
  const count = kv.increment(`greeted:${request.name}`, 1);
  log.info(`greeting ${request.name} (time ${count})`);
  const reply = new Event(`${event.id}-greeted`, "/{{name}}", GREETED)
    .withSubject(request.name)
    .withJsonData({ greeting: `${salutation}, ${request.name}!`, count });
  return [reply];
});
