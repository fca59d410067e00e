"""JSON read and written as the Rust SDK's serde_json does, byte for byte.

A plugin ported from Rust answers with the same bytes when it uses these:

- `loads(data)` accepts exactly what `serde_json::from_slice::<Value>` accepts
  (strict UTF-8; no NaN or Infinity; no lone surrogate escapes; no number past
  f64), reads integers past the 64-bit ranges and `-0` as floats as serde_json
  does, and raises `Error` with serde_json's message ("expected value at line 1
  column 1") for the rest.
- `dumps(value)` writes what `serde_json::to_vec` writes: compact, non-ASCII as
  UTF-8, floats as Rust prints them (`1e16`, `0.00001`, `1.0`), NaN and
  infinities as `null`. `sort_keys=True` gives the key order of a
  `serde_json::Value` (a sorted map, as the Rust plugins build serde_json);
  the default keeps the dict's order, which is a serde struct's field order.

Both run the C `json` module and fall back to slower, exact code only for the
rare data where the two differ.
"""

from __future__ import annotations

import json as _json
import math
import re
from decimal import Decimal
from typing import Any, List

from . import _serde_json

__all__ = ["Error", "dumps", "loads"]


class Error(ValueError):
    """Data serde_json refuses; the message is serde_json's."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_U64_MAX, _I64_MIN = (1 << 64) - 1, -(1 << 63)


def _int(text: str) -> Any:
    # serde_json reads "-0" and integers past the 64-bit ranges as f64.
    n = int(text)
    if n == 0 and text[0] == "-":
        return -0.0
    if n > _U64_MAX or n < _I64_MIN:
        return float(n)
    return n


def _float(text: str) -> float:
    f = float(text)
    if f in (math.inf, -math.inf):
        raise ValueError("past f64")  # serde_json: "number out of range"
    return f


#: The C decoder, reading numbers as serde_json does and refusing NaN and
#: Infinity as it does. The hooks cost one call per number.
DECODER = _json.JSONDecoder(parse_constant=_no_constant, parse_int=_int, parse_float=_float)
_decode = DECODER.decode
# The one thing the C decoder takes that serde_json refuses: a lone surrogate
# escape. Looked for only when the data has an escape at all.
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")


def _suspect(data: bytes) -> bool:
    return b"\\u" in data and _SURROGATE.search(data) is not None


def loads(data: bytes) -> Any:
    """Parses `data` (bytes) as serde_json parses a `Value`; raises `Error`."""
    data = bytes(data)
    try:
        value = _decode(data.decode("utf-8"))
        if not _suspect(data):
            return value
    except (ValueError, RecursionError):
        pass
    try:
        return _serde_json.parse(data)
    except _serde_json.SerdeError as e:
        raise Error(str(e)) from None


def rust_float(f: float) -> str:
    """`f` as serde_json 1.0.154 writes an f64: the shortest digits that read
    back, as a decimal from 1e-5 to below 1e16 and with an exponent otherwise
    (`1e+16`, `1e-6`); non-finite values as `null`."""
    if not math.isfinite(f):
        return "null"
    if f == 0:
        return "-0.0" if math.copysign(1.0, f) < 0 else "0.0"
    sign, digits, exp = Decimal(repr(f)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0")
    exp += len(digits) - len(text)
    length, kk = len(text), len(text) + exp
    if 0 <= exp and kk <= 16:
        out = text + "0" * exp + ".0"
    elif 0 < kk <= 16:
        out = text[:kk] + "." + text[kk:]
    elif -5 < kk <= 0:
        out = "0." + "0" * -kk + text
    else:
        mantissa = text if length == 1 else f"{text[0]}.{text[1:]}"
        out = f"{mantissa}e{'+' if kk > 0 else '-'}{abs(kk - 1)}"
    return ("-" if sign else "") + out


# repr and serde_json write the same shortest digits, and the same layout but for
# small numbers: repr pads a negative exponent ("1e-05", "1e-06") where serde_json
# writes "0.00001" and "1e-6". Output that may hold one is written the slow way.
_REPR_EXPONENT = re.compile(rb"[0-9]e-0[0-9]")
_encode_str = _json.encoder.encode_basestring  # escapes as serde_json does


def _slow(value: Any, sort_keys: bool, out: List[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(rust_float(value))
    elif isinstance(value, str):
        out.append(_encode_str(value))
    elif isinstance(value, dict):
        items = [(_key(k), v) for k, v in value.items()]
        if sort_keys:
            items.sort(key=lambda kv: kv[0])
        out.append("{")
        for i, (k, v) in enumerate(items):
            if i:
                out.append(",")
            out.append(_encode_str(k))
            out.append(":")
            _slow(v, sort_keys, out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _slow(v, sort_keys, out)
        out.append("]")
    else:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(k: Any) -> str:
    if isinstance(k, str):
        return k
    if k is True or k is False:
        return "true" if k else "false"
    if isinstance(k, int):
        return str(k)
    if isinstance(k, float):
        return rust_float(k)
    raise TypeError(f"keys must be str, int, float or bool, not {type(k).__name__}")


def dumps(value: Any, sort_keys: bool = False) -> bytes:
    """`value` as serde_json writes it (see the module's documentation). Raises
    TypeError for values JSON cannot hold (a set, a tuple as a key)."""
    try:
        data = _json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=sort_keys
        ).encode()
        if _REPR_EXPONENT.search(data) is None:
            return data
    except ValueError:  # NaN or an infinity: serde_json writes null
        pass
    out: List[str] = []
    _slow(value, sort_keys, out)
    return "".join(out).encode()
