"""{{name}}: a router transform (a `wasm` step of a route's `transform`). It
drops events marked private (extension `private` = `true`) and stamps every
other event with the extension `stampedby`.

Config: `stamp`, the value of `stampedby` (default `{{name}}`).
"""

from typing import Optional

from router_guest import Event, config, transform


@transform
def stamp(event: Event) -> Optional[Event]:
    """The event with `stampedby`, or None to drop it."""
    if event.extension("private") == "true":
        return None
    return event.with_extension("stampedby", config.get_or("stamp", "{{name}}"))
