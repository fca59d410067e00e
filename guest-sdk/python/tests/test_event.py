"""Event: the Rust SDK's event.rs tests, ported, and the Python specifics."""

import pytest

from router_guest import Event, HandlerError
from router_guest.schema import I64, List, Optional, String, Struct


def order_event(data=None) -> Event:
    event = Event("e-1", "/shop", "com.example.order.created")
    return event if data is None else event.with_data(data, "text/plain")


def test_new_sets_the_required_attributes_and_specversion():
    event = Event("e-1", "/shop", "t")
    assert (event.id, event.source, event.type, event.specversion) == ("e-1", "/shop", "t", "1.0")
    assert event.subject is None and event.data is None and event.time is None
    assert event.extensions() == []


def test_builders_set_attributes_and_extensions_replace():
    event = (
        Event("e-1", "/shop", "t")
        .with_id("e-2")
        .with_source("/other")
        .with_type("u")
        .with_subject("s")
        .with_time("2026-01-31T12:00:00Z")
        .with_dataschema("https://example.com/schema")
        .with_extension("region", "eu")
        .with_extension("tenant", "acme")
        .with_extension("region", "us")
    )
    assert (event.id, event.source, event.type) == ("e-2", "/other", "u")
    assert event.subject == "s"
    assert event.time == "2026-01-31T12:00:00Z"
    assert event.dataschema == "https://example.com/schema"
    assert event.extension("region") == "us"
    assert event.extension("missing") is None
    assert event.extensions() == [("region", "us"), ("tenant", "acme")]


@pytest.mark.parametrize("name", ["Region", "re-gion", "", "ré", "a_b"])
def test_extension_names_outside_cloudevents_rules_are_refused(name):
    with pytest.raises(ValueError, match="lowercase"):
        Event("e-1", "/s", "t").with_extension(name, "x")


def test_data_json_parses_whatever_the_content_type():
    assert order_event(b'{"orderId":"o-1","other":true}').data_json() == {"orderId": "o-1", "other": True}


def test_data_json_names_missing_or_invalid_data():
    with pytest.raises(HandlerError) as missing:
        order_event().data_json()
    assert missing.value == HandlerError.fatal("event e-1 (com.example.order.created) has no data, expected JSON")

    with pytest.raises(HandlerError) as invalid:
        order_event(b"not json").data_json()
    assert not invalid.value.is_retryable()
    assert invalid.value.message == (
        "data of event e-1 (com.example.order.created) is not the expected JSON: "
        "expected ident at line 1 column 2"
    )


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "EOF while parsing a value at line 1 column 0"),
        (b"hello", "expected value at line 1 column 1"),
        (b"{", "EOF while parsing an object at line 1 column 1"),
        (b'{"a":1} x', "trailing characters at line 1 column 9"),
        (b"[1,]", "trailing comma at line 1 column 4"),
        (b'{"a" 1}', "expected `:` at line 1 column 6"),
        (b"01", "invalid number at line 1 column 2"),
        (b'{"a":NaN}', "expected value at line 1 column 6"),
        (b"1e999", "number out of range at line 1 column 5"),
        (b'"\\ud800"', "unexpected end of hex escape at line 1 column 8"),
        (b'"\xff"', "invalid unicode code point at line 1 column 2"),
        (b"\xef\xbb\xbf{}", "expected value at line 1 column 1"),
        (b'{\n  "a": [1,\n  2 3]}', "expected `,` or `]` at line 3 column 5"),
        (b"[" * 200, "recursion limit exceeded at line 1 column 128"),
    ],
)
def test_data_json_refuses_what_serde_json_refuses_with_its_words(data, problem):
    with pytest.raises(HandlerError) as raised:
        order_event(data).data_json()
    assert raised.value.message.endswith(": " + problem), raised.value


def test_data_json_reads_numbers_as_serde_json_does():
    assert order_event(b"[-0, 18446744073709551615, 18446744073709551616, 1e2]").data_json() == [
        -0.0, 18446744073709551615, 1.8446744073709552e19, 100.0,
    ]


ITEM = Struct("OrderItem", {"productId": String, "quantity": I64})
ORDER = Struct("Order", {"orderId": String, "items": List(ITEM), "note": Optional(String)})


def test_data_as_reads_declared_fields_in_order():
    event = order_event(b'{"extra":1,"items":[{"quantity":2,"productId":"p"}],"orderId":"o"}')
    assert event.data_as(ORDER) == {"orderId": "o", "items": [{"productId": "p", "quantity": 2}], "note": None}
    assert list(event.data_as(ORDER)) == ["orderId", "items", "note"]


@pytest.mark.parametrize(
    "data, problem",
    [
        (b'{"orderId":"o"}', "missing field `items` at line 1 column 15"),
        (b'{"orderId":"o","items":[{"productId":"p","quantity":true}]}', "invalid type: boolean `true`, expected i64 at line 1 column 56"),
        (b'{"orderId":"o","items":[{"productId":"p","quantity":9223372036854775808}]}', "invalid value: integer `9223372036854775808`, expected i64 at line 1 column 71"),
        (b'{"orderId":"o","items":[],"orderId":"p"}', "duplicate field `orderId` at line 1 column 35"),
        (b'{"orderId":"a\\"b\\n","items":null}', "invalid type: null, expected a sequence at line 1 column 32"),
        (b'{"orderId":["x"],"items":[]}', "invalid type: sequence, expected a string at line 1 column 11"),
        (b'["o"]', "invalid length 1, expected struct Order with 3 elements at line 1 column 5"),
    ],
)
def test_data_as_fails_as_serde_does(data, problem):
    with pytest.raises(HandlerError) as raised:
        order_event(data).data_as(ORDER)
    assert raised.value.message.endswith(": " + problem), raised.value


def test_with_json_data_sets_the_payload_and_content_type():
    event = Event("e-1", "/shop", "t").with_json_data({"orderId": "o-1", "name": "Zoë", "n": 1e-5, "x": float("nan")})
    assert event.datacontenttype == "application/json"
    assert event.data == '{"orderId":"o-1","name":"Zoë","n":0.00001,"x":null}'.encode()
    assert event.data_json()["orderId"] == "o-1"


def test_with_json_data_fails_for_values_json_cannot_hold():
    for value in ({(1, 2): "pair keys"}, {1, 2}, object()):
        with pytest.raises(HandlerError) as raised:
            Event("e-1", "/shop", "t").with_json_data(value)
        assert not raised.value.is_retryable()
        assert raised.value.message.startswith("cannot encode the data of event e-1 as JSON: ")


def test_with_data_from_copies_presence_and_absence():
    with_ = Event("a", "/a", "t").with_data("x", "text/plain").with_dataschema("s")
    without = Event("b", "/b", "t")
    copied = without.copy().with_data_from(with_)
    assert (copied.data, copied.datacontenttype, copied.dataschema) == (b"x", "text/plain", "s")
    cleared = with_.with_data_from(without)
    assert (cleared.data, cleared.datacontenttype, cleared.dataschema) == (None, None, None)


def test_derive_keeps_everything_but_id_and_type_and_leaves_the_original():
    original = Event("e-1", "/shop", "t").with_subject("s").with_extension("region", "eu").with_data("x", "text/plain")
    copy = original.derive("e-1-enriched", "t.enriched")
    assert (copy.id, copy.type) == ("e-1-enriched", "t.enriched")
    copy.with_extension("more", "1")
    assert original.extension("more") is None and original.id == "e-1"
    assert copy.with_id("e-1").with_type("t").with_data_from(original) != original  # has "more"
    assert original.derive("e-1", "t") == original
