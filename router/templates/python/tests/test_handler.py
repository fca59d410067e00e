"""The handler's tests, run natively: the SDK stands in for the router."""

import pytest

from router_guest import Event, HandlerError, testing
from {{file}} import GREETED, REQUESTED, handle


def request(name: str) -> Event:
    return Event("e-1", "/test", REQUESTED).with_json_data({"name": name})


def test_greets_with_the_configured_salutation_and_counts():
    testing.set_config("salutation", "Bonjour")
    first = handle(request("Ada"))
    again = handle(request("Ada"))
    assert len(first) == 1
    assert (first[0].id, first[0].type, first[0].subject) == ("e-1-greeted", GREETED, "Ada")
    assert again[0].data_json() == {"greeting": "Bonjour, Ada!", "count": 2}


def test_data_that_is_not_a_request_is_fatal():
    event = Event("e-1", "/test", REQUESTED).with_data("nope", "text/plain")
    with pytest.raises(HandlerError) as error:
        handle(event)
    assert not error.value.is_retryable()


def test_ignores_other_types():
    assert handle(Event("e-1", "/test", "com.example.other")) == []
