"""Example transform plugin, in Python: removes personal fields from an event's
JSON data before a route forwards it, and drops events marked `private`. Its
output is byte for byte that of the Rust plugin (`plugins/redactor`), which
writes the data back as a `serde_json::Value`: keys sorted, serde_json's number
format.

Config: `fields`, a comma-separated list of JSON Pointers to remove
(default `/customer/email,/customer/phone`).
"""

import re
from typing import Any, Optional

from router_guest import Event, config, serde_json, transform

_INDEX = re.compile(r"0|[1-9][0-9]*")


def pointer(value: Any, path: str) -> Optional[Any]:
    """The value at JSON Pointer `path`, or None: serde_json's `Value::pointer`."""
    if path == "":
        return value
    if not path.startswith("/"):
        return None
    for token in path.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                return None
            value = value[token]
        elif isinstance(value, list):
            if not _INDEX.fullmatch(token) or int(token) >= len(value):
                return None
            value = value[int(token)]
        else:
            return None
    return value


@transform
def redact(event: Event) -> Optional[Event]:
    """Drops a private event; removes the configured fields from JSON data."""
    if event.extension("private") == "true":
        return None
    data = event.data
    if data is None:
        return event
    try:
        value = serde_json.loads(data)
    except serde_json.Error:
        # Not JSON: nothing this plugin knows how to redact.
        return event
    fields = config.get_or("fields", "/customer/email,/customer/phone")
    removed = 0
    for path in (p.strip() for p in fields.split(",")):
        if not path or "/" not in path:
            continue
        # As Rust's rsplit_once: the last segment is the key, as written.
        parent, key = path.rsplit("/", 1)
        target = pointer(value, parent)
        if isinstance(target, dict) and key in target:
            del target[key]
            removed += 1
    content_type = event.datacontenttype or "application/json"
    return event.with_data(serde_json.dumps(value, sort_keys=True), content_type).with_extension(
        "redacted", str(removed)
    )
