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

from ._serde_json import Parser, SerdeError

__all__ = ["Type", "String", "I64", "F64", "Bool", "List", "Optional", "Struct"]

_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1


class Type:
    """A shape JSON data must have; see the module's documentation."""

    #: What serde says it expected ("a string", "i64", "struct Order").
    expected = "?"

    def check(self, value: Any) -> bool:
        """Whether `value` (from `json.loads`) fits: the fast path."""
        raise NotImplementedError

    def convert(self, value: Any) -> Any:
        """What a fitting `value` reads as (structs: their fields, in order)."""
        return value

    def read(self, p: Parser) -> Any:
        """Reads a value of this type from `p` as serde_json would, or raises
        its error: the slow path."""
        raise NotImplementedError


class _String(Type):
    expected = "a string"

    def check(self, value: Any) -> bool:
        return type(value) is str

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

    def check(self, value: Any) -> bool:
        return type(value) is int and _I64_MIN <= value <= _I64_MAX

    def accept(self, p: Parser, value: Any, start: int) -> Any:
        if type(value) is float:
            p.i = start
            raise p.invalid_type(self.expected)
        if value > _I64_MAX:
            raise p.error(f"invalid value: integer `{value}`, expected i64")
        return value


class _F64(_Number):
    expected = "f64"

    def check(self, value: Any) -> bool:
        return type(value) in (int, float)

    def convert(self, value: Any) -> Any:
        return float(value)

    def accept(self, p: Parser, value: Any, start: int) -> Any:
        return float(value)


class _Bool(Type):
    expected = "a boolean"

    def check(self, value: Any) -> bool:
        return type(value) is bool

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

    def check(self, value: Any) -> bool:
        check = self.item.check
        return type(value) is list and all(check(v) for v in value)

    def convert(self, value: Any) -> Any:
        convert = self.item.convert
        return [convert(v) for v in value]

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

    def check(self, value: Any) -> bool:
        return value is None or self.inner.check(value)

    def convert(self, value: Any) -> Any:
        return None if value is None else self.inner.convert(value)

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

    def check(self, value: Any) -> bool:
        if type(value) is not dict:
            return False
        for key, kind in self.fields.items():
            if key in value:
                if not kind.check(value[key]):
                    return False
            elif not isinstance(kind, Optional):
                return False
        return True

    def convert(self, value: Any) -> Any:
        return {
            key: kind.convert(value[key]) if key in value else None
            for key, kind in self.fields.items()
        }

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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_decode = _json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant).decode


def read(shape: Type, data: bytes) -> Any:
    """`data` read as `shape`; raises `SerdeError` with serde_json's message."""
    from .serde_json import _SUSPECT

    try:
        value = _decode(data.decode("utf-8"))
        if _SUSPECT.search(data) is None and shape.check(value):
            return shape.convert(value)
    except (ValueError, RecursionError, _Duplicate):
        pass
    return Parser(bytes(data)).document(shape)
