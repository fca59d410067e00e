"""The SDK for writing router plugins in Python.

A plugin is a WebAssembly component of the router's `handler` world (or
`transform` world), built from a Python module with `router-py build`. This
package hides the generated bindings behind a small API::

    from router_guest import Event, HandlerError, config, handler, kv, log

    @handler
    def handle(event: Event) -> list[Event]:
        ...

- `Event`: the CloudEvent, with properties for its attributes, `data_json()`
  and `with_*` builders.
- `HandlerError.retryable(msg)` / `HandlerError.fatal(msg)`: raise one when an
  event cannot be handled.
- `log`, `config`, `kv`: the router's host interfaces.
- `handler` / `transform`: decorators that export the plugin's function.
- `testing`: the stand-in host used when the code runs outside a component.
"""

from . import config, kv, log
from ._export import handler, transform
from .errors import HandlerError
from .event import Event
from .kv import KvError

__all__ = [
    "Event",
    "HandlerError",
    "KvError",
    "config",
    "handler",
    "kv",
    "log",
    "transform",
]

#: The version of this SDK (the distribution `router-guest`).
__version__ = "0.2.0"
#: The WIT package this SDK targets, shipped as `router_guest/wit/router.wit`.
WIT_PACKAGE = "router:plugin@0.2.0"
