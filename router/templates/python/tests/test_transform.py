"""The transform's tests, run natively: the SDK stands in for the router."""

from router_guest import Event, testing
from {{file}} import stamp


def test_stamps_an_event_with_the_configured_value():
    testing.set_config("stamp", "edge-1")
    event = stamp(Event("e-1", "/test", "com.example.thing"))
    assert event is not None
    assert event.extension("stampedby") == "edge-1"
    assert event.id == "e-1"


def test_drops_a_private_event():
    event = Event("e-1", "/test", "com.example.thing").with_extension("private", "true")
    assert stamp(event) is None
