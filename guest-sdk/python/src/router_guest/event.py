"""The event plugins receive and emit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional, Tuple, Union

if TYPE_CHECKING:
    from . import schema

from . import _host, _serde_json, serde_json
from .errors import HandlerError

#: The media type `Event.with_json_data` sets.
JSON = "application/json"

# CloudEvents 1.0 allows only lowercase letters a-z and digits 0-9 in attribute
# names; the router rejects an emitted event whose names break that rule.
_EXTENSION_NAME = re.compile(r"[a-z0-9]+")
# Names already checked: a plugin sets the same few on every event, and a set
# lookup costs a fraction of the regex. Bounded, in case names come from data.
_CHECKED_NAMES: set = set()

if _host.IN_COMPONENT:
    # The record the generated bindings hand over and take back: an Event wraps
    # it as it is, so receiving and emitting an event copies nothing.
    _Record = _host.wit_types.Event
else:

    @dataclass
    class _Record:  # the same fields as the generated `types.Event`
        id: str
        source: str
        specversion: str
        type: str
        datacontenttype: Optional[str]
        dataschema: Optional[str]
        subject: Optional[str]
        time: Optional[str]
        extensions: List[Tuple[str, str]]
        data: Optional[bytes]


class Event:
    """A CloudEvent 1.0, as a plugin receives it and as it builds new ones.

    Read attributes as properties (`event.id`, `event.type`, `event.subject`...);
    build new events with `Event(id, source, type)` and the `with_*` methods,
    which change the event and return it, so they chain::

        reply = (
            Event(f"{event.id}-reserved", "/inventory", "com.example.inventory.reserved")
            .with_subject("order-1")
            .with_extension("tenant", "acme")
            .with_json_data({"orderId": "order-1"})
        )

    The `with_*` methods change the event they are called on (as the Rust SDK's
    consume it): to emit a changed copy of the event being handled while keeping
    the original, start from `event.derive(id, type)`.
    """

    __slots__ = ("_r",)

    def __init__(self, id: str, source: str, type: str) -> None:
        """A new event with its required attributes and specversion "1.0".

        `id` must be unique per `source`: derive it from the event being handled
        (for example `f"{event.id}-reserved"`) so that a redelivered event yields
        the same id and consumers can deduplicate.
        """
        self._r = _Record(id, source, "1.0", type, None, None, None, None, [], None)

    @classmethod
    def _wrap(cls, record: Any) -> "Event":
        # The per-call path: no __init__, no copy.
        event = object.__new__(cls)
        event._r = record
        return event

    # --- attributes -----------------------------------------------------------

    @property
    def id(self) -> str:
        """The `id` attribute."""
        return self._r.id

    @property
    def source(self) -> str:
        """The `source` attribute."""
        return self._r.source

    @property
    def specversion(self) -> str:
        """The `specversion` attribute: "1.0" for every event the router delivers."""
        return self._r.specversion

    @property
    def type(self) -> str:
        """The `type` attribute."""
        return self._r.type

    @property
    def subject(self) -> Optional[str]:
        """The `subject` attribute, if set."""
        return self._r.subject

    @property
    def time(self) -> Optional[str]:
        """The `time` attribute (RFC 3339), if set."""
        return self._r.time

    @property
    def datacontenttype(self) -> Optional[str]:
        """The `datacontenttype` attribute, if set."""
        return self._r.datacontenttype

    @property
    def dataschema(self) -> Optional[str]:
        """The `dataschema` attribute, if set."""
        return self._r.dataschema

    @property
    def data(self) -> Optional[bytes]:
        """The payload, if any."""
        return self._r.data

    def extension(self, name: str) -> Optional[str]:
        """The value of extension attribute `name`, if set."""
        for key, value in self._r.extensions:
            if key == name:
                return value
        return None

    def extensions(self) -> List[Tuple[str, str]]:
        """Every extension attribute, as (name, value) pairs, in order."""
        return list(self._r.extensions)

    def data_json(self) -> Any:
        """Parses the payload as JSON.

        The payload is parsed whatever `datacontenttype` says, because senders
        often leave it out. A missing payload or one that is not JSON raises a
        fatal `HandlerError` naming the event and the problem, with serde_json's
        wording, as the Rust SDK's message has it: delivering the same bytes again
        cannot fix it. Accepts what serde_json accepts: strict UTF-8 JSON, no NaN.
        """
        r = self._r
        if r.data is None:
            raise HandlerError.fatal(f"event {r.id} ({r.type}) has no data, expected JSON")
        try:
            return serde_json.loads(r.data)
        except serde_json.Error as e:
            raise self.invalid_data(str(e)) from None

    def data_as(self, shape: "schema.Type") -> Any:
        """Parses the payload as JSON of `shape` (see `router_guest.schema`): the
        Rust SDK's `data_json::<T>()` for a serde struct `T`, with its checks and
        messages. Returns the value read (structs as dicts of their fields)."""
        from . import schema

        r = self._r
        if r.data is None:
            raise HandlerError.fatal(f"event {r.id} ({r.type}) has no data, expected JSON")
        try:
            return schema.read(shape, r.data)
        except _serde_json.SerdeError as e:
            raise self.invalid_data(str(e)) from None

    def invalid_data(self, problem: str) -> HandlerError:
        """The fatal error saying this event's data is not the expected JSON,
        because of `problem`: worded as `data_json`'s own, for checks a plugin
        makes after parsing."""
        r = self._r
        return HandlerError.fatal(f"data of event {r.id} ({r.type}) is not the expected JSON: {problem}")

    # --- builders ---------------------------------------------------------------

    def copy(self) -> "Event":
        """An independent copy of this event."""
        r = self._r
        return Event._wrap(
            _Record(
                r.id, r.source, r.specversion, r.type, r.datacontenttype,
                r.dataschema, r.subject, r.time, list(r.extensions), r.data,
            )
        )

    def derive(self, id: str, type: str) -> "Event":
        """A copy of this event under a new `id` and `type`, keeping everything else
        (source, subject, time, extensions, data): the usual start of an enriched
        or translated event. The original is left as it was."""
        return self.copy().with_id(id).with_type(type)

    def with_id(self, id: str) -> "Event":
        """Replaces the `id`."""
        self._r.id = id
        return self

    def with_source(self, source: str) -> "Event":
        """Replaces the `source`."""
        self._r.source = source
        return self

    def with_type(self, type: str) -> "Event":
        """Replaces the `type`."""
        self._r.type = type
        return self

    def with_subject(self, subject: str) -> "Event":
        """Sets the `subject`."""
        self._r.subject = subject
        return self

    def with_time(self, time: str) -> "Event":
        """Sets the `time` (RFC 3339, for example `2026-01-31T12:00:00Z`)."""
        self._r.time = time
        return self

    def with_dataschema(self, schema: str) -> "Event":
        """Sets the `dataschema`."""
        self._r.dataschema = schema
        return self

    def with_datacontenttype(self, content_type: str) -> "Event":
        """Sets the `datacontenttype` alone, keeping the payload."""
        self._r.datacontenttype = content_type
        return self

    def with_extension(self, name: str, value: str) -> "Event":
        """Sets extension attribute `name`, replacing an earlier value.

        CloudEvents allows only lowercase letters a-z and digits 0-9 in the name;
        the router would reject the emitted event, so a bad name raises
        `ValueError` here, where the traceback shows the culprit.
        """
        if name not in _CHECKED_NAMES:
            if type(name) is not str or not _EXTENSION_NAME.fullmatch(name):
                raise ValueError(
                    f"extension name {name!r}: CloudEvents allows only lowercase a-z and 0-9"
                )
            if len(_CHECKED_NAMES) < 256:
                _CHECKED_NAMES.add(name)
        if type(value) is not str:
            value = str(value)
        extensions = self._r.extensions
        for i, (key, _) in enumerate(extensions):
            if key == name:
                extensions[i] = (name, value)
                return self
        extensions.append((name, value))
        return self

    def with_data(self, data: Union[bytes, bytearray, memoryview, str], content_type: str) -> "Event":
        """Sets the payload (bytes, or a str sent as UTF-8) and its media type."""
        self._r.data = data.encode() if isinstance(data, str) else bytes(data)
        self._r.datacontenttype = content_type
        return self

    def with_json_data(self, value: Any) -> "Event":
        """Sets the payload to `value` encoded as JSON, and
        `datacontenttype` to `application/json`. The bytes are those serde_json
        writes for a Rust struct with the dict's keys as fields, in order (see
        `router_guest.serde_json.dumps`).

        Raises a fatal `HandlerError` only for values JSON cannot represent, such
        as a set or a dict with tuple keys. NaN and infinities are written as
        null, as serde_json does.
        """
        try:
            data = serde_json.dumps(value)
        except (TypeError, ValueError) as e:
            raise HandlerError.fatal(
                f"cannot encode the data of event {self._r.id} as JSON: {e}"
            ) from None
        return self.with_data(data, JSON)

    def with_data_from(self, other: "Event") -> "Event":
        """Copies the payload of `other` as it is: its data, `datacontenttype` and
        `dataschema`, each present or absent as in `other`.

        For plugins that pass a payload on under new attributes.
        """
        r, o = self._r, other._r
        r.data, r.datacontenttype, r.dataschema = o.data, o.datacontenttype, o.dataschema
        return self

    # --- the rest -------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        a, b = self._r, other._r
        return (
            a.id, a.source, a.specversion, a.type, a.datacontenttype, a.dataschema,
            a.subject, a.time, list(a.extensions), a.data,
        ) == (
            b.id, b.source, b.specversion, b.type, b.datacontenttype, b.dataschema,
            b.subject, b.time, list(b.extensions), b.data,
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        r = self._r
        return f"Event(id={r.id!r}, source={r.source!r}, type={r.type!r}, subject={r.subject!r})"
