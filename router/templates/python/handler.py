"""{{name}}: a router handler. For every `com.example.greeting.requested` event
whose data is `{"name": "..."}`, it emits `com.example.greeted` with a greeting
and how many times that name has been greeted (kept in the plugin's kv store).

Config: `salutation` (default `Hello`).
"""

from typing import List

from router_guest import Event, HandlerError, config, handler, kv, log

REQUESTED = "com.example.greeting.requested"
GREETED = "com.example.greeted"


@handler
def handle(event: Event) -> List[Event]:
    """Greets the name in `event`'s data."""
    if event.type != REQUESTED:
        return []
    # Data that is not JSON raises a fatal HandlerError naming the event.
    request = event.data_json()
    name = request.get("name") if isinstance(request, dict) else None
    if not isinstance(name, str):
        raise HandlerError.fatal(f"event {event.id}: data has no string `name`")
    salutation = config.get_or("salutation", "Hello")
    # A KvError left uncaught fails the event: retryable when the store is down.
    count = kv.increment(f"greeted:{name}", 1)
    log.info(f"greeting {name} (time {count})")
    reply = (
        Event(f"{event.id}-greeted", "/{{name}}", GREETED)
        .with_subject(name)
        .with_json_data({"greeting": f"{salutation}, {name}!", "count": count})
    )
    return [reply]
