"""Running a plugin's handler natively, in its pytest tests.

The host interfaces exist only inside the router, so outside a component the SDK
stands in for them: `config.get` reads the values set here, `kv` is an in-memory
store (with expiry, and the router's key and value limits), and `log` lines are
captured here (and echoed to stderr). A handler is a plain function, so a test
calls it directly::

    from router_guest import Event, testing
    from app import handle

    def test_region_comes_from_config():
        testing.set_config("region", "eu-west-1")
        out = handle(Event("e-1", "/test", "t"))
        assert out[0].extension("region") == "eu-west-1"

The stand-in is active whenever the generated bindings cannot be imported, that
is everywhere but inside a component. State is per process: call `reset()`
between tests, or let the autouse fixture do it: put
`from router_guest.pytest_plugin import router_host` in the project's conftest.py.
"""

from __future__ import annotations

import sys
import time as _time
from typing import Dict, List, Optional, Tuple

from .kv import InvalidKey, InvalidValue, KvError

#: The host's limits, so that a test meets the errors the router would give.
MAX_KEY_BYTES = 1024
MAX_VALUE_BYTES = 1 << 20
_I64 = (-(1 << 63), (1 << 63) - 1)

_config: Dict[str, str] = {}
_logs: List[Tuple[str, str]] = []
#: When set, every kv call raises it (see `fail_kv`).
_kv_failure: Optional[KvError] = None
#: Whether log lines are echoed to stderr.
echo_logs = True


def set_config(key: str, value: str) -> None:
    """Sets the value `config.get` returns for `key`."""
    _config[str(key)] = str(value)


def clear_config() -> None:
    """Removes every value set with `set_config`."""
    _config.clear()


def logs() -> List[Tuple[str, str]]:
    """The log lines written so far, as (level, message) pairs; level is one of
    `trace`, `debug`, `info`, `warn`, `error`."""
    return list(_logs)


def clear_logs() -> None:
    """Forgets the captured log lines."""
    _logs.clear()


def _log(level: str, message: str) -> None:
    _logs.append((level, message))
    if echo_logs:
        print(f"{level.upper()}: {message}", file=sys.stderr)


class _Store:
    """The stand-in key-value store: bytes, optional expiry, atomic increment."""

    def __init__(self) -> None:
        # key -> (value, expiry on the monotonic clock or None)
        self._items: Dict[str, Tuple[bytes, Optional[float]]] = {}

    def _check(self, key: str) -> None:
        if _kv_failure is not None:
            raise _kv_failure
        size = len(key.encode())
        if size == 0 or size > MAX_KEY_BYTES:
            raise InvalidKey(f"key of {size} bytes: keys are 1 to {MAX_KEY_BYTES} bytes")

    def _live(self, key: str) -> Optional[Tuple[bytes, Optional[float]]]:
        item = self._items.get(key)
        if item is not None and item[1] is not None and item[1] <= _time.monotonic():
            del self._items[key]
            return None
        return item

    def get(self, key: str) -> Optional[bytes]:
        self._check(key)
        item = self._live(key)
        return None if item is None else item[0]

    def set(self, key: str, value: bytes, ttl_ms: Optional[int]) -> None:
        self._check(key)
        if len(value) > MAX_VALUE_BYTES:
            raise InvalidValue(
                f"value of {len(value)} bytes is over the {MAX_VALUE_BYTES}-byte limit"
            )
        expiry = None if ttl_ms is None else _time.monotonic() + ttl_ms / 1000
        self._items[key] = (value, expiry)

    def delete(self, key: str) -> bool:
        self._check(key)
        return self._items.pop(key, None) is not None and True

    def increment(self, key: str, delta: int) -> int:
        self._check(key)
        item = self._live(key)
        if item is None:
            current, expiry = 0, None
        else:
            try:
                current = int(item[0].decode("ascii"), 10)
            except ValueError:
                raise InvalidValue(f"the value of {key!r} is not an integer") from None
            expiry = item[1]  # an expiry set on the key is kept, as in the router
        nxt = current + delta
        if not _I64[0] <= nxt <= _I64[1]:
            raise InvalidValue(f"incrementing {key!r} overflows 64 bits")
        self._items[key] = (str(nxt).encode(), expiry)
        return nxt

    def clear(self) -> None:
        self._items.clear()

    def keys(self) -> List[str]:
        return [k for k in list(self._items) if self._live(k) is not None]


_kv = _Store()


def clear_kv() -> None:
    """Empties the stand-in `kv` store."""
    _kv.clear()


def kv_keys() -> List[str]:
    """The keys set (and not expired) in the stand-in store, to assert what a
    handler left behind."""
    return _kv.keys()


def fail_kv(error: Optional[KvError]) -> None:
    """Makes every following `kv` call raise `error` (for example
    `kv.Unavailable("down")`), to test a handler's failure path; `None` heals
    the store."""
    global _kv_failure
    _kv_failure = error


def reset() -> None:
    """Clears config, kv, captured logs and an injected kv failure."""
    clear_config()
    clear_kv()
    clear_logs()
    fail_kv(None)
