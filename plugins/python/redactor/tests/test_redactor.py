"""What plugins/redactor does, checked on the Python port."""

from redactor import redact
from router_guest import Event, testing

ORDER = (
    b'{"orderId":"o-1","customer":{"name":"Ann","email":"ann@example.com","phone":"555"},'
    b'"total":1e-5,"items":[{"sku":"a","email":"x"}]}'
)


def order(data=ORDER, content_type="application/json") -> Event:
    return Event("e-1", "/shop", "com.example.order.created").with_data(data, content_type)


def test_removes_the_default_fields_and_writes_the_data_as_serde_json_does():
    out = redact(order())
    # Keys sorted (a serde_json Value), 1e-5 as Rust prints it.
    assert out.data == (
        b'{"customer":{"name":"Ann"},"items":[{"email":"x","sku":"a"}],"orderId":"o-1","total":0.00001}'
    )
    assert out.extension("redacted") == "2"
    assert out.datacontenttype == "application/json"
    assert (out.id, out.type) == ("e-1", "com.example.order.created")


def test_configured_pointers_reach_into_arrays_and_skip_what_is_missing():
    testing.set_config("fields", " /items/0/email , /nothing/here,, no-slash, /orderId, /items/01/sku")
    out = redact(order())
    assert out.extension("redacted") == "2"
    data = out.data_json()
    assert "orderId" not in data and data["items"] == [{"sku": "a"}]
    assert data["customer"]["email"] == "ann@example.com"


def test_private_events_are_dropped():
    assert redact(order().with_extension("private", "true")) is None
    kept = redact(order().with_extension("private", "false"))
    assert kept is not None and kept.extension("redacted") == "2"


def test_data_that_is_not_json_or_missing_passes_unchanged():
    for event in (order(b"not json", "text/plain"), order(b'{"a":NaN}'), Event("e-1", "/s", "t")):
        before = event.copy()
        assert redact(event) == before


def test_a_missing_content_type_becomes_json():
    event = Event("e-1", "/s", "t").with_data(b'{"customer":{"email":"e"}}', "x").with_datacontenttype("")
    event._r.datacontenttype = None
    out = redact(event)
    assert out.datacontenttype == "application/json"
    assert out.data == b'{"customer":{}}'
