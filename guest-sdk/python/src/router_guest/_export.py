"""Exporting the author's function as the component's `handle` or `transform`.

`@handler` and `@transform` only record the function (and return it unchanged,
so tests call it directly). The module `router-py build` generates imports the
author's module, then asks `exported(world, module)` for the adapter its
`WitWorld` class calls: the function is looked up once, when the component is
built (componentize-py snapshots the imported modules), not on every call.
"""

from __future__ import annotations

import re
import traceback
from typing import Callable, Dict, List, Optional

from . import _host, log
from .errors import HandlerError
from .event import Event
from .kv import KvError

#: world -> the functions decorated for it (one is allowed)
_registered: Dict[str, List[Callable]] = {"handler": [], "transform": []}


def handler(fn: Callable[[Event], List[Event]]) -> Callable[[Event], List[Event]]:
    """Exports `fn(event) -> list[Event]` as the plugin's `handle` function (the
    `handler` world). Use it once per plugin.

    Return the events to emit (an empty list for event types the plugin does not
    care about); raise `HandlerError.retryable(...)` or `.fatal(...)` when the
    event cannot be handled. Any other exception becomes a fatal error carrying
    its text, and is logged with its traceback.
    """
    _registered["handler"].append(fn)
    return fn


def transform(fn: Callable[[Event], Optional[Event]]) -> Callable[[Event], Optional[Event]]:
    """Exports `fn(event) -> Event | None` as the plugin's `transform` function
    (the `transform` world: a `wasm` step of a route's `transform` list). Return
    the event to deliver, changed or not, or None to drop it. Use it once per
    plugin."""
    _registered["transform"].append(fn)
    return fn


def _where(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    # componentize-py mounts each python-path directory as /0, /1, ...: the
    # path inside the project is what its author knows.
    filename = re.sub(r"^/[0-9]+/", "", last.filename)
    return f" at {filename}:{last.lineno} in {last.name}"


def _unexpected(error: BaseException) -> HandlerError:
    # A Rust panic traps the instance; a Python exception need not: it is fatal
    # (the same event would raise it again), carries the exception's text, and
    # the traceback goes to the router's log, where its author will look.
    text = f"unhandled {type(error).__name__}{_where(error)}: {error}"
    log.error(text)
    log.debug("".join(traceback.format_exception(error)).rstrip())
    return HandlerError.fatal(text)


def _bad_return(what: str, value: object) -> HandlerError:
    return _unexpected(TypeError(f"the {what} returned {value!r}"))


def _as_wit(error: HandlerError):
    t = _host.wit_types
    if error.is_retryable():
        return _host.WitErr(t.HandlerError_Retryable(error.message))
    return _host.WitErr(t.HandlerError_Fatal(error.message))


def _handler_error(error: BaseException) -> HandlerError:
    if isinstance(error, HandlerError):
        return error
    if isinstance(error, KvError):
        # As `?` on a KvError in the Rust SDK.
        return error.to_handler_error()
    return _unexpected(error)


def _adapt_handler(fn: Callable) -> Callable:
    wrap = Event._wrap

    def handle(record):
        try:
            out = fn(wrap(record))
        except (Exception, SystemExit) as e:
            raise _as_wit(_handler_error(e)) from None
        try:
            return [event._r for event in out]
        except (TypeError, AttributeError):
            raise _as_wit(_bad_return("handler", out)) from None

    return handle


def _adapt_transform(fn: Callable) -> Callable:
    wrap = Event._wrap

    def transform(record):
        try:
            out = fn(wrap(record))
        except (Exception, SystemExit) as e:
            raise _as_wit(_handler_error(e)) from None
        if out is None:
            return None
        try:
            return out._r
        except AttributeError:
            raise _as_wit(_bad_return("transform", out)) from None

    return transform


_ADAPTERS = {"handler": _adapt_handler, "transform": _adapt_transform}


def exported(world: str, module: str) -> Callable:
    """The adapter the generated `WitWorld` calls: the one function of `module`
    decorated for `world`, wrapped to convert events and errors. Raises (and so
    fails the build) when there is not exactly one."""
    found = _registered[world]
    other = "transform" if world == "handler" else "handler"
    if not found:
        hint = (
            f"; it has a @{other} function: set `world = \"{other}\"` under [tool.router]"
            if _registered[other]
            else ""
        )
        raise RuntimeError(
            f"module {module!r} has no @router_guest.{world} function{hint}"
        )
    if len(found) > 1:
        names = ", ".join(f"{f.__module__}.{f.__qualname__}" for f in found)
        raise RuntimeError(f"more than one @router_guest.{world} function: {names}")
    return _ADAPTERS[world](found[0])
