"""Enriches every event, in Python: emits a copy typed `<type>.enriched`, with id
`<id>-enriched`, that carries two more extension attributes. Everything else
(source, subject, time, other extensions, data and its content type) is kept.
The same output as the Rust plugin (`plugins/enricher`); used for benchmarks.

Config: `name`, the value of extension `enrichedby` (default `enricher`), and
`region`, the value of extension `region` (default `unknown`).
"""

from typing import List

from router_guest import Event, config, handler


@handler
def handle(event: Event) -> List[Event]:
    """Emits the enriched copy of `event`."""
    # The event is ours: renamed in place, its data and attributes go into the
    # copy as they are (`derive` would copy them).
    return [
        event.with_id(f"{event.id}-enriched")
        .with_type(f"{event.type}.enriched")
        .with_extension("enrichedby", config.get_or("name", "enricher"))
        .with_extension("region", config.get_or("region", "unknown"))
    ]
