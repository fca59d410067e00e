"""A JSON parser that fails like serde_json, for the error path only.

The Rust SDK's `data_json` puts serde_json's error in its message ("expected
value at line 1 column 1"), and the Rust plugins' errors reach the router's log,
the sender's 422 answer and dead letters. So that a plugin ported to Python
answers the same bytes with the same text, data that the fast C parser
(`json.loads`) refuses, or that a schema refuses, is parsed again here: slowly,
byte by byte as serde_json 1.0.154 does, to find its error and its position
(line, and column in bytes of the last byte read).

serde_json reads typed data as a stream: a field of the wrong type is reported
before a syntax error further on, a missing field once the object's `}` is read.
So a schema (`router_guest.schema`) is checked during the parse, through each
type's `read(parser)`; without one (`shape=None`) the parser reads a `Value`.
The behaviours copied here were checked against serde_json itself on a corpus of
good and bad documents (see the SDK's tests).
"""

from __future__ import annotations

from typing import Any, List, Optional

_RECURSION_LIMIT = 128
_WS = b" \t\n\r"
_HEX = b"0123456789abcdefABCDEF"
_ESCAPES = {
    ord('"'): '"', ord("\\"): "\\", ord("/"): "/", ord("b"): "\b",
    ord("f"): "\f", ord("n"): "\n", ord("r"): "\r", ord("t"): "\t",
}


class SerdeError(Exception):
    """A serde_json-style error: `message at line L column C`."""

    def __init__(self, code: str, data: bytes, index: int) -> None:
        line, column = self.position(data, index)
        super().__init__(f"{code} at line {line} column {column}")

    @staticmethod
    def position(data: bytes, index: int):
        """serde_json's (line, column) after the first `index` bytes."""
        return data.count(b"\n", 0, index) + 1, index - (data.rfind(b"\n", 0, index) + 1)

    @classmethod
    def at(cls, code: str, line: int, column: int) -> "SerdeError":
        """An error at a position computed by the caller."""
        error = cls.__new__(cls)
        Exception.__init__(error, f"{code} at line {line} column {column}")
        return error


class Parser:
    """serde_json's `Deserializer` over a byte slice."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.i = 0
        self.depth = _RECURSION_LIMIT

    # serde_json's two positions: after the bytes read (`error`), and after the
    # byte peeked as well (`peek_error`).
    def error(self, code: str) -> SerdeError:
        return SerdeError(code, self.data, self.i)

    def peek_error(self, code: str) -> SerdeError:
        return SerdeError(code, self.data, min(len(self.data), self.i + 1))

    def ws(self) -> Optional[int]:
        """Skips whitespace; the next byte (not consumed), or None at the end."""
        data, i = self.data, self.i
        while i < len(data) and data[i] in _WS:
            i += 1
        self.i = i
        return data[i] if i < len(data) else None

    def next(self) -> Optional[int]:
        if self.i < len(self.data):
            self.i += 1
            return self.data[self.i - 1]
        return None

    def document(self, shape: Any = None) -> Any:
        """The whole input as one value of `shape`, with nothing after it."""
        value = self.value(shape)
        if self.ws() is not None:
            raise self.peek_error("trailing characters")
        return value

    def value(self, shape: Any = None) -> Any:
        if shape is not None:
            return shape.read(self)
        peek = self.ws()
        if peek is None:
            raise self.peek_error("EOF while parsing a value")
        if peek == 0x6E:  # n
            self.i += 1
            self.ident(b"ull")
            return None
        if peek == 0x74:  # t
            self.i += 1
            self.ident(b"rue")
            return True
        if peek == 0x66:  # f
            self.i += 1
            self.ident(b"alse")
            return False
        if peek == 0x2D:  # -
            self.i += 1
            return self.number(False)
        if 0x30 <= peek <= 0x39:
            return self.number(True)
        if peek == 0x22:  # "
            self.i += 1
            return self.string()
        if peek == 0x5B:  # [
            self.enter()
            self.i += 1
            items = []
            while self.has_next_element(not items):
                items.append(self.value())
            self.end_seq()
            self.depth += 1
            return items
        if peek == 0x7B:  # {
            self.enter()
            self.i += 1
            members = {}
            first = True
            while self.has_next_key(first):
                first = False
                key = self.key()
                members[key] = self.value()
            self.end_map()
            self.depth += 1
            return members
        raise self.peek_error("expected value")

    def ignore(self) -> None:
        """A value serde skips (an unknown field), as serde_json's `ignore_value`
        does: iteratively (no depth limit), strings unchecked for UTF-8 and
        surrogates, numbers unchecked for range, and its own error codes."""
        stack: List[int] = []
        enclosing: Optional[int] = None
        while True:
            peek = self.ws()
            if peek is None:
                raise self.peek_error("EOF while parsing a value")
            frame = None
            if peek in (0x6E, 0x74, 0x66):
                self.i += 1
                self.ident({0x6E: b"ull", 0x74: b"rue", 0x66: b"alse"}[peek])
            elif peek == 0x2D:
                self.i += 1
                self.ignore_integer()
            elif 0x30 <= peek <= 0x39:
                self.ignore_integer()
            elif peek == 0x22:
                self.i += 1
                self.skip_string()
            elif peek in (0x5B, 0x7B):
                if enclosing is not None:
                    stack.append(enclosing)
                    enclosing = None
                self.i += 1
                frame = peek
            else:
                raise self.peek_error("expected value")
            if frame is not None:
                accept_comma = False
            elif enclosing is not None:
                accept_comma, frame, enclosing = True, enclosing, None
            elif stack:
                accept_comma, frame = True, stack.pop()
            else:
                return
            while True:
                p = self.ws()
                if p == 0x2C and accept_comma:
                    self.i += 1
                    break
                if (p == 0x5D and frame == 0x5B) or (p == 0x7D and frame == 0x7B):
                    pass
                elif p is not None:
                    if accept_comma:
                        raise self.peek_error("expected `,` or `]`" if frame == 0x5B else "expected `,` or `}`")
                    break
                else:
                    raise self.peek_error("EOF while parsing a list" if frame == 0x5B else "EOF while parsing an object")
                self.i += 1
                if not stack:
                    return
                frame = stack.pop()
                accept_comma = True
            if frame == 0x7B:
                p = self.ws()
                if p is None:
                    raise self.peek_error("EOF while parsing an object")
                if p != 0x22:
                    raise self.peek_error("key must be a string")
                self.i += 1
                self.skip_string()
                p = self.ws()
                if p is None:
                    raise self.peek_error("EOF while parsing an object")
                if p != 0x3A:
                    raise self.peek_error("expected `:`")
                self.i += 1
            enclosing = frame

    def ignore_integer(self) -> None:
        c = self.next()
        if c == 0x30:
            if self._digit():
                raise self.peek_error("invalid number")
        elif c is not None and 0x31 <= c <= 0x39:
            while self._digit():
                self.i += 1
        else:
            raise self.error("invalid number")
        if self.i < len(self.data) and self.data[self.i] == 0x2E:
            self.i += 1
            if not self._digit():
                raise self.peek_error("invalid number")
            while self._digit():
                self.i += 1
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            self.i += 1
            if self.i < len(self.data) and self.data[self.i] in b"+-":
                self.i += 1
            c = self.next()
            if c is None or not 0x30 <= c <= 0x39:
                raise self.error("invalid number")
            while self._digit():
                self.i += 1

    def enter(self) -> None:
        self.depth -= 1
        if self.depth == 0:
            raise self.peek_error("recursion limit exceeded")

    def ident(self, rest: bytes) -> None:
        for expected in rest:
            c = self.next()
            if c is None:
                raise self.error("EOF while parsing a value")
            if c != expected:
                raise self.error("expected ident")

    def _digit(self) -> bool:
        return self.i < len(self.data) and 0x30 <= self.data[self.i] <= 0x39

    def number(self, positive: bool) -> Any:
        """A number whose sign was consumed: an int, or a float as serde_json
        reads it (past the 64-bit ranges, "-0", and any fraction or exponent)."""
        start = self.i
        c = self.next()
        if c is None:
            raise self.error("EOF while parsing a value")
        if not 0x30 <= c <= 0x39:
            raise self.error("invalid number")
        if c == 0x30 and self._digit():
            raise self.peek_error("invalid number")
        while self._digit():
            self.i += 1
        is_float = False
        if self.i < len(self.data) and self.data[self.i] == 0x2E:  # .
            is_float = True
            self.i += 1
            if not self._digit():
                raise self.peek_error("invalid number" if self.i < len(self.data) else "EOF while parsing a value")
            while self._digit():
                self.i += 1
        if self.i < len(self.data) and self.data[self.i] in b"eE":
            is_float = True
            self.i += 1
            if self.i < len(self.data) and self.data[self.i] in b"+-":
                self.i += 1
            c = self.next()
            if c is None:
                raise self.error("EOF while parsing a value")
            if not 0x30 <= c <= 0x39:
                raise self.error("invalid number")
            while self._digit():
                self.i += 1
        text = self.data[start:self.i].decode()
        if not is_float:
            n = int(text)
            if not positive and n == 0:
                return -0.0  # serde_json reads "-0" as a float
            n = n if positive else -n
            # Past u64 (or below i64), serde_json reads an integer as f64.
            if n > (1 << 64) - 1 or n < -(1 << 63):
                return float(n)
            return n
        f = float(text)
        if f in (float("inf"), float("-inf")):
            raise self.error("number out of range")
        return f if positive else -f

    def string(self) -> str:
        """The rest of a string whose opening quote was consumed."""
        data = self.data
        buf = bytearray()
        run = self.i
        while True:
            if self.i >= len(data):
                raise self.error("EOF while parsing a string")
            c = data[self.i]
            if c == 0x22:
                buf += data[run:self.i]
                self.i += 1
                return self.utf8(buf)
            if c == 0x5C:
                buf += data[run:self.i]
                self.i += 1
                buf += self.escape().encode("utf-8")
                run = self.i
                continue
            if c < 0x20:
                self.i += 1
                raise self.error("control character (\\u0000-\\u001F) found while parsing a string")
            self.i += 1

    def skip_string(self) -> None:
        data = self.data
        while True:
            if self.i >= len(data):
                raise self.error("EOF while parsing a string")
            c = data[self.i]
            if c == 0x22:
                self.i += 1
                return
            if c == 0x5C:
                self.i += 1
                c = self.next()
                if c is None:
                    raise self.error("EOF while parsing a string")
                if c == 0x75:
                    self.hex4()
                elif c not in _ESCAPES:
                    raise self.error("invalid escape")
                continue
            if c < 0x20:
                raise self.error("control character (\\u0000-\\u001F) found while parsing a string")
            self.i += 1

    def utf8(self, content: bytearray) -> str:
        """The content of a string just read; invalid UTF-8 is reported as
        serde_json's `as_str` does: back from the closing quote by the bytes
        from the first invalid one (approximate when there were escapes)."""
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as e:
            here = SerdeError.position(self.data, self.i)
            column = max(0, here[1] - (len(content) - e.start))
            raise SerdeError.at("invalid unicode code point", here[0], column) from None

    def hex4(self) -> int:
        if self.i + 4 > len(self.data):
            self.i = len(self.data)
            raise self.error("EOF while parsing a string")
        digits = self.data[self.i:self.i + 4]
        self.i += 4
        if any(b not in _HEX for b in digits):
            raise self.error("invalid escape")
        return int(digits, 16)

    def escape(self) -> str:
        c = self.next()
        if c is None:
            raise self.error("EOF while parsing a string")
        if c in _ESCAPES:
            return _ESCAPES[c]
        if c != 0x75:
            raise self.error("invalid escape")
        n = self.hex4()
        if 0xDC00 <= n <= 0xDFFF:
            raise self.error("lone leading surrogate in hex escape")
        if 0xD800 <= n <= 0xDBFF:
            for expected in b"\\u":
                c = self.next()
                if c is None:
                    raise self.error("EOF while parsing a string")
                if c != expected:
                    raise self.error("unexpected end of hex escape")
            low = self.hex4()
            if not 0xDC00 <= low <= 0xDFFF:
                raise self.error("lone leading surrogate in hex escape")
            return chr(0x10000 + ((n - 0xD800) << 10) + (low - 0xDC00))
        return chr(n)

    # --- arrays and objects, as serde_json's SeqAccess and MapAccess ----------

    def has_next_element(self, first: bool) -> bool:
        peek = self.ws()
        if peek is None:
            raise self.peek_error("EOF while parsing a list")
        if peek == 0x5D:
            return False
        if first:
            return True
        if peek != 0x2C:
            raise self.peek_error("expected `,` or `]`")
        self.i += 1
        peek = self.ws()
        if peek == 0x5D:
            raise self.peek_error("trailing comma")
        if peek is None:
            raise self.peek_error("EOF while parsing a value")
        return True

    def end_seq(self) -> None:
        peek = self.ws()
        if peek == 0x5D:
            self.i += 1
            return
        if peek == 0x2C:
            self.i += 1
            raise self.peek_error("trailing comma" if self.ws() == 0x5D else "trailing characters")
        raise self.peek_error("EOF while parsing a list" if peek is None else "trailing characters")

    def has_next_key(self, first: bool) -> bool:
        peek = self.ws()
        if peek is None:
            raise self.peek_error("EOF while parsing an object")
        if peek == 0x7D:
            return False
        if not first:
            if peek != 0x2C:
                raise self.peek_error("expected `,` or `}`")
            self.i += 1
            peek = self.ws()
            if peek == 0x7D:
                raise self.peek_error("trailing comma")
            if peek is None:
                raise self.peek_error("EOF while parsing a value")
        if peek != 0x22:
            raise self.peek_error("key must be a string")
        return True

    def key(self) -> str:
        """A member's key (at its opening quote) and the colon after it."""
        self.i += 1
        key = self.string()
        self.colon()
        return key

    def colon(self) -> None:
        peek = self.ws()
        if peek is None:
            raise self.peek_error("EOF while parsing an object")
        if peek != 0x3A:
            raise self.peek_error("expected `:`")
        self.i += 1

    def end_map(self) -> None:
        peek = self.ws()
        if peek == 0x7D:
            self.i += 1
            return
        if peek == 0x2C:
            raise self.peek_error("trailing comma")
        raise self.peek_error("EOF while parsing an object" if peek is None else "trailing characters")

    # --- what a typed read needs ----------------------------------------------

    def invalid_type(self, expected: str) -> SerdeError:
        """serde_json's `peek_invalid_type`: reads a scalar to describe it (a
        container is described unread), then the error, at the position reached."""
        peek = self.ws()
        if peek is None:
            return self.peek_error("EOF while parsing a value")
        if peek == 0x5B:
            what = "sequence"
        elif peek == 0x7B:
            what = "map"
        elif peek == 0x22:
            self.i += 1
            what = f"string {rust_debug(self.string())}"
        elif peek in (0x6E, 0x74, 0x66, 0x2D) or 0x30 <= peek <= 0x39:
            what = unexpected(self.value())
        else:
            return self.peek_error("expected value")
        return self.error(f"invalid type: {what}, expected {expected}")


def unexpected(value: Any) -> str:
    """How serde's `Unexpected` names a scalar value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    from .serde_json import rust_float

    return f"floating point `{rust_float(value)}`"


def rust_debug(s: str) -> str:
    """`s` as Rust's `{:?}` writes a str: quoted, with quotes, backslashes and
    controls escaped."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\0":
            out.append("\\0")
        elif c.isprintable() or c == " ":
            out.append(c)
        else:
            out.append("\\u{%x}" % ord(c))
    out.append('"')
    return "".join(out)


def parse(data: bytes, shape: Any = None) -> Any:
    """Parses `data` as serde_json does (into `shape` when given), raising
    `SerdeError` with its message."""
    try:
        return Parser(bytes(data)).document(shape)
    except RecursionError:  # deeper than Python allows, short of serde's 128
        raise SerdeError("recursion limit exceeded", bytes(data), 0) from None
