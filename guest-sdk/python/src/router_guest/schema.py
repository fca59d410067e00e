"""Typed reading of JSON data, failing as a Rust plugin's serde types do.

A Rust plugin reads its data into a struct (`event.data_json::<Order>()`), and
serde_json says what does not fit: "missing field `orderId` at line 1 column 12",
"invalid type: string \\"2\\", expected i64 at line 1 column 40". The same shape
written here gives a Python plugin the same checks and the same messages::

    from router_guest.schema import I64, List, String, Struct

    ORDER = Struct("Order", {
        "orderId": String,
        "items": List(Struct("OrderItem", {"productId": String, "quantity": I64})),
    })

    order = event.data_as(ORDER)   # a dict with the declared fields, in order

Unknown fields are ignored, a duplicated known field is refused, and a struct
may also come as an array of its fields' values, all as serde does. Well-formed
data is read by the C `json` module and checked (fast); only data that fails is
read again byte by byte as serde_json does, to find its message and position.
"""

from __future__ import annotations

import json as _json
from typing import Any, Dict

from . import serde_json as _serde
from ._serde_json import Parser, SerdeError

__all__ = ["Type", "String", "I64", "F64", "Bool", "List", "Optional", "Struct"]

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class _No:
    """What `Type.fit` returns for a value that does not fit."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:  # `_NO in list` compares by identity first
        return other is self

    __hash__ = object.__hash__


_NO = _No()


class Type:
    """A shape JSON data must have; see the module's documentation."""

    #: What serde says it expected ("a string", "i64", "struct Order").
    expected = "?"

    def fit(self, value: Any) -> Any:
        """What `value` (from the C decoder) reads as (structs: their fields, in
        order), or `_NO` when it does not fit: the fast path, one pass."""
        raise NotImplementedError

    def read(self, p: Parser) -> Any:
        """Reads a value of this type from `p` as serde_json would, or raises
        its error: the slow path."""
        raise NotImplementedError


class _String(Type):
    expected = "a string"

    def fit(self, value: Any) -> Any:
        return value if type(value) is str else _NO

    def read(self, p: Parser) -> Any:
        if p.ws() == 0x22:
            p.i += 1
            return p.string()
        raise p.invalid_type(self.expected)


class _Number(Type):
    def read(self, p: Parser) -> Any:
        peek = p.ws()
        if peek == 0x2D or (peek is not None and 0x30 <= peek <= 0x39):
            start = p.i
            if peek == 0x2D:
                p.i += 1
            value = p.number(peek != 0x2D)
            return self.accept(p, value, start)
        raise p.invalid_type(self.expected)

    def accept(self, p: Parser, value: Any, start: int) -> Any:
        raise NotImplementedError


class _I64(_Number):
    expected = "i64"

    def fit(self, value: Any) -> Any:
        return value if type(value) is int and _I64_MIN <= value <= _I64_MAX else _NO

    def accept(self, p: Parser, value: Any, start: int) -> Any:
        if type(value) is float:
            p.i = start
            raise p.invalid_type(self.expected)
        if value > _I64_MAX:
            raise p.error(f"invalid value: integer `{value}`, expected i64")
        return value


class _F64(_Number):
    expected = "f64"

    def fit(self, value: Any) -> Any:
        return float(value) if type(value) in (int, float) else _NO

    def accept(self, p: Parser, value: Any, start: int) -> Any:
        return float(value)


class _Bool(Type):
    expected = "a boolean"

    def fit(self, value: Any) -> Any:
        return value if type(value) is bool else _NO

    def read(self, p: Parser) -> Any:
        peek = p.ws()
        if peek in (0x74, 0x66):
            p.i += 1
            p.ident(b"rue" if peek == 0x74 else b"alse")
            return peek == 0x74
        raise p.invalid_type(self.expected)


#: A JSON string (Rust `String`).
String: Type = _String()
#: A JSON integer in the signed 64-bit range (Rust `i64`).
I64: Type = _I64()
#: A JSON number (Rust `f64`); read as a float.
F64: Type = _F64()
#: true or false (Rust `bool`).
Bool: Type = _Bool()


class List(Type):
    """A JSON array of `item` (Rust `Vec<T>`)."""

    expected = "a sequence"

    def __init__(self, item: Type) -> None:
        self.item = item

    def fit(self, value: Any) -> Any:
        if type(value) is not list:
            return _NO
        fit = self.item.fit
        out = [fit(v) for v in value]
        return _NO if _NO in out else out

    def read(self, p: Parser) -> Any:
        if p.ws() != 0x5B:
            raise p.invalid_type(self.expected)
        p.enter()
        p.i += 1
        items = []
        try:
            while p.has_next_element(not items):
                items.append(self.item.read(p))
        finally:
            p.depth += 1
        p.end_seq()
        return items


class Optional(Type):
    """`inner` or null, and a struct field that may be missing (Rust `Option<T>`)."""

    def __init__(self, inner: Type) -> None:
        self.inner = inner
        self.expected = inner.expected

    def fit(self, value: Any) -> Any:
        return None if value is None else self.inner.fit(value)

    def read(self, p: Parser) -> Any:
        if p.ws() == 0x6E:
            p.i += 1
            p.ident(b"ull")
            return None
        return self.inner.read(p)


class Struct(Type):
    """A JSON object with the given fields (Rust `#[derive(Deserialize)] struct`),
    or, as serde also accepts, an array of the field values in order. `name` is
    the Rust struct's, which serde's messages cite ("expected struct Order")."""

    def __init__(self, name: str, fields: Dict[str, Type]) -> None:
        self.name = name
        self.fields = dict(fields)
        self.expected = f"struct {name}"
        self._required = [k for k, t in self.fields.items() if not isinstance(t, Optional)]
        self._kinds = list(self.fields.items())

    def fit(self, value: Any) -> Any:
        if type(value) is not dict:
            return _NO
        out = {}
        for key, kind in self._kinds:
            v = value.get(key, _NO)
            if v is _NO:
                if kind.__class__ is not Optional:
                    return _NO
                out[key] = None
            else:
                v = kind.fit(v)
                if v is _NO:
                    return _NO
                out[key] = v
        return out

    def read(self, p: Parser) -> Any:
        peek = p.ws()
        if peek == 0x7B:
            return self._read_map(p)
        if peek == 0x5B:
            return self._read_seq(p)
        raise p.invalid_type(self.expected)

    def _read_map(self, p: Parser) -> Any:
        p.enter()
        p.i += 1
        out: Dict[str, Any] = {}
        first = True
        try:
            while p.has_next_key(first):
                first = False
                p.i += 1
                key = p.string()
                kind = self.fields.get(key)
                if kind is not None and key in out:
                    p.ws()  # serde_json's end_map reads up to the colon first
                    raise p.error(f"duplicate field `{key}`")
                p.colon()
                if kind is None:
                    p.ignore()
                else:
                    out[key] = kind.read(p)
        finally:
            p.depth += 1
        p.end_map()
        for key in self._required:
            if key not in out:
                raise p.error(f"missing field `{key}`")
        return {key: out.get(key) for key in self.fields}

    def _read_seq(self, p: Parser) -> Any:
        p.enter()
        p.i += 1
        out: Dict[str, Any] = {}
        kinds = list(self.fields.items())
        try:
            for n, (key, kind) in enumerate(kinds):
                if not p.has_next_element(n == 0):
                    p.end_seq()
                    raise p.error(
                        f"invalid length {n}, expected {self.expected} with {len(kinds)} elements"
                    )
                out[key] = kind.read(p)
        finally:
            p.depth += 1
        p.end_seq()
        return out


class _Duplicate(Exception):
    pass


def _no_duplicates(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        raise _Duplicate()  # serde refuses a repeated field: the slow path says so
    return value


_decode = _json.JSONDecoder(
    object_pairs_hook=_no_duplicates,
    parse_constant=_serde.DECODER.parse_constant,
    parse_int=_serde.DECODER.parse_int,
    parse_float=_serde.DECODER.parse_float,
).decode


def read(shape: Type, data: bytes) -> Any:
    """`data` read as `shape`; raises `SerdeError` with serde_json's message."""
    try:
        value = _decode(data.decode("utf-8"))
        if not _serde._suspect(data):
            value = shape.fit(value)
            if value is not _NO:
                return value
    except (ValueError, RecursionError, _Duplicate):
        pass
    return Parser(bytes(data)).document(shape)
