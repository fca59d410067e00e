"""A key-value store private to the plugin: no other plugin can read or change
its keys. It outlives instances and reloads, so it is where state between events
belongs (a stock level, a projection, "already seen")::

    from router_guest import kv

    kv.set("greeting", b"hello")
    assert kv.get("greeting") == b"hello"
    assert kv.increment("visits", 2) == 2
    assert kv.delete("greeting")

Every call raises a `KvError` when it fails; its subclass says whether the same
call can succeed later. Left uncaught in a handler, it becomes the matching
`HandlerError` (as `?` does in the Rust SDK): a bad key or value is fatal, a full
or unavailable store retryable.

Outside a component (a plugin's tests) the store is the in-memory one of
`router_guest.testing`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional, Union

from . import _host
from .errors import HandlerError


class KvError(Exception):
    """Why a key-value operation failed. Catch a subclass to tell the cases apart:
    `InvalidKey`, `InvalidValue`, `QuotaExceeded`, `Unavailable`."""

    #: The WIT case name (`invalid-key`, ...).
    kind = "kv-error"
    #: Whether the same call may succeed later.
    _retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        #: The message, without the kind.
        self.message = str(message)

    def is_retryable(self) -> bool:
        """Whether the same call may succeed later."""
        return self._retryable

    def __str__(self) -> str:
        # As the Rust SDK's Display: the text a converted HandlerError carries.
        return f"key-value store: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KvError):
            return NotImplemented
        return (type(self), self.message) == (type(other), other.message)

    def __hash__(self) -> int:
        return hash((type(self), self.message))

    def to_handler_error(self) -> HandlerError:
        """The `HandlerError` an uncaught `KvError` becomes: retryable when the
        same call may succeed later, fatal otherwise."""
        return HandlerError(str(self), retryable=self._retryable)


class InvalidKey(KvError):
    """The key is empty or longer than 1024 bytes. The same call will fail again."""

    kind = "invalid-key"


class InvalidValue(KvError):
    """The value cannot be used: over 1 MiB for `set`, or for `increment` not a
    decimal integer or past the 64-bit range. The same call will fail again."""

    kind = "invalid-value"


class QuotaExceeded(KvError):
    """The plugin holds as many keys, or bytes, as it may: the call may succeed
    once keys expire or are deleted."""

    kind = "quota-exceeded"
    _retryable = True


class Unavailable(KvError):
    """The store did not answer, or failed: the call may succeed later."""

    kind = "unavailable"
    _retryable = True


def _ttl_ms(ttl: Union[None, int, float, timedelta]) -> Optional[int]:
    if ttl is None:
        return None
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if seconds < 0:
        raise ValueError(f"ttl must not be negative, got {ttl!r}")
    # As the Rust SDK saturates a Duration: a u64 of milliseconds.
    return min(int(seconds * 1000), (1 << 64) - 1)


def _bytes(value: Union[bytes, bytearray, memoryview, str]) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return bytes(value)


if _host.IN_COMPONENT:
    _Err = _host.WitErr
    _w = _host.wit_kv
    _WIT_ERRORS = {
        _w.KvError_InvalidKey: InvalidKey,
        _w.KvError_InvalidValue: InvalidValue,
        _w.KvError_QuotaExceeded: QuotaExceeded,
        _w.KvError_Unavailable: Unavailable,
    }

    def _error(err) -> KvError:
        case = err.value
        return _WIT_ERRORS[type(case)](case.value)

    def get(key: str) -> Optional[bytes]:
        """The value of `key`, if it is set and has not expired."""
        try:
            return _w.get(key)
        except _Err as err:
            raise _error(err) from None

    def set(key: str, value: Union[bytes, str], ttl: Union[None, int, float, timedelta] = None) -> None:
        """Sets `key` to `value` (bytes, or a str stored as UTF-8), expiring after
        `ttl` (seconds, or a `timedelta`) when given."""
        try:
            _w.set(key, _bytes(value), _ttl_ms(ttl))
        except _Err as err:
            raise _error(err) from None

    def delete(key: str) -> bool:
        """Removes `key`; True when it was set."""
        try:
            return _w.delete(key)
        except _Err as err:
            raise _error(err) from None

    def increment(key: str, delta: int) -> int:
        """Adds `delta` to the integer at `key` (0 when unset), atomically, and
        returns the new value."""
        try:
            return _w.increment(key, delta)
        except _Err as err:
            raise _error(err) from None

else:

    def get(key: str) -> Optional[bytes]:
        """The value of `key`, if it is set and has not expired."""
        from . import testing

        return testing._kv.get(key)

    def set(key: str, value: Union[bytes, str], ttl: Union[None, int, float, timedelta] = None) -> None:
        """Sets `key` to `value` (bytes, or a str stored as UTF-8), expiring after
        `ttl` (seconds, or a `timedelta`) when given."""
        from . import testing

        testing._kv.set(key, _bytes(value), _ttl_ms(ttl))

    def delete(key: str) -> bool:
        """Removes `key`; True when it was set."""
        from . import testing

        return testing._kv.delete(key)

    def increment(key: str, delta: int) -> int:
        """Adds `delta` to the integer at `key` (0 when unset), atomically, and
        returns the new value."""
        from . import testing

        return testing._kv.increment(key, delta)
