"""The Rust plugin's unit tests (plugins/inventory/src/lib.rs), ported, and a few
more on what parity with it means: exact bytes, messages and kv contents."""

import json

import pytest

from inventory import ORDER_CREATED, REJECTED, RESERVED, handle
from router_guest import Event, HandlerError, kv, testing


def order_created(data) -> Event:
    testing.clear_kv()
    return Event("e-1", "/shop", ORDER_CREATED).with_json_data(data)


def only(events):
    assert len(events) == 1
    event = events[0]
    return event, event.data_json()


def test_reserves_every_item():
    order = {
        "orderId": "o-1",
        "customerId": "c-1",
        "items": [{"productId": "p-1", "quantity": 2}, {"productId": "p-2", "quantity": 1}],
    }
    event, data = only(handle(order_created(order)))
    assert (event.id, event.source, event.type, event.subject) == (
        "e-1-reserved", "/inventory", RESERVED, "o-1",
    )
    assert data == {
        "orderId": "o-1",
        "items": [
            {"productId": "p-1", "quantity": 2, "reservationId": "res-o-1-p-1"},
            {"productId": "p-2", "quantity": 1, "reservationId": "res-o-1-p-2"},
        ],
    }
    # The bytes serde_json writes for the Rust plugin's structs: compact, in
    # field order.
    assert event.data == (
        b'{"orderId":"o-1","items":[{"productId":"p-1","quantity":2,"reservationId":"res-o-1-p-1"},'
        b'{"productId":"p-2","quantity":1,"reservationId":"res-o-1-p-2"}]}'
    )
    assert event.datacontenttype == "application/json"
    assert event.specversion == "1.0"
    assert kv.get("order:o-1") == b"reserved"
    assert kv.get("reserved:p-1") == b"2" and kv.get("reserved:p-2") == b"1"


@pytest.mark.parametrize(
    "items, reason",
    [
        ([], "no items"),
        ([{"productId": "p-1", "quantity": 1}, {"productId": "p-2", "quantity": 0}], "item p-2 has quantity 0"),
        ([{"productId": "p-3", "quantity": -4}], "item p-3 has quantity -4"),
    ],
)
def test_rejects_an_order_without_items_or_with_a_bad_quantity(items, reason):
    event, data = only(handle(order_created({"orderId": "o-1", "items": items})))
    assert (event.id, event.type, event.subject) == ("e-1-rejected", REJECTED, "o-1")
    assert data == {"orderId": "o-1", "reason": reason}
    assert event.data == json.dumps({"orderId": "o-1", "reason": reason}, separators=(",", ":")).encode()
    assert kv.get("order:o-1") is None, "a rejected order is not stored"
    assert testing.logs()[-1] == ("warn", f"order o-1 rejected: {reason}")


@pytest.mark.parametrize(
    "event, problem",
    [
        (Event("e-1", "/shop", ORDER_CREATED).with_data("nope", "text/plain"), "not the expected JSON"),
        (Event("e-1", "/shop", ORDER_CREATED), "no data"),
        (Event("e-1", "/shop", ORDER_CREATED).with_json_data({"items": []}), "orderId"),
        (Event("e-1", "/shop", ORDER_CREATED).with_json_data({"orderId": "o-1"}), "items"),
        (Event("e-1", "/shop", ORDER_CREATED).with_json_data({"orderId": "", "items": []}), "empty orderId"),
    ],
)
def test_data_that_is_not_an_order_is_fatal(event, problem):
    with pytest.raises(HandlerError) as raised:
        handle(event)
    assert not raised.value.is_retryable(), raised.value
    assert problem in raised.value.message, raised.value


@pytest.mark.parametrize(
    "data, message",
    [
        # What the Rust plugin answers for the same bytes (serde_json's words
        # and positions), checked against it through the router.
        (b"nope", "expected ident at line 1 column 2"),
        (b'{"items":[]}', "missing field `orderId` at line 1 column 12"),
        (b'{"orderId":"o-1"}', "missing field `items` at line 1 column 17"),
        (b'{"orderId":"o-1","items":[{"productId":"p-1","quantity":"2"}]}',
         'invalid type: string "2", expected i64 at line 1 column 59'),
        (b'{"orderId":"o-1","items":[{"productId":"p-1","quantity":2.5}]}',
         "invalid type: floating point `2.5`, expected i64 at line 1 column 59"),
        (b'{"orderId":7,"items":[]}', "invalid type: integer `7`, expected a string at line 1 column 12"),
        (b'{"orderId":"o-1","items":{}}', "invalid type: map, expected a sequence at line 1 column 25"),
        (b'{"orderId":"o-1","items":[{"quantity":1}]}', "missing field `productId` at line 1 column 40"),
        (b"[]", "invalid length 0, expected struct Order with 2 elements at line 1 column 2"),
        (b'"o-1"', 'invalid type: string "o-1", expected struct Order at line 1 column 5'),
    ],
)
def test_bad_data_gets_the_rust_plugins_message(data, message):
    event = Event("e-1", "/shop", ORDER_CREATED).with_data(data, "application/json")
    with pytest.raises(HandlerError) as raised:
        handle(event)
    assert raised.value == HandlerError.fatal(
        f"data of event e-1 ({ORDER_CREATED}) is not the expected JSON: {message}"
    )


def test_an_order_as_an_array_is_read_as_serde_reads_it():
    event = Event("e-1", "/shop", ORDER_CREATED).with_data(b'["o-1",[["p-1",2]]]', "application/json")
    reply, data = only(handle(event))
    assert reply.type == RESERVED
    assert data["items"] == [{"productId": "p-1", "quantity": 2, "reservationId": "res-o-1-p-1"}]


def test_stock_runs_out_and_a_redelivery_reserves_nothing_twice():
    testing.set_config("stock", "5")

    def order(oid, qty):
        data = {"orderId": oid, "items": [{"productId": "p-9", "quantity": qty}]}
        return Event(f"e-{oid}", "/shop", ORDER_CREATED).with_json_data(data)

    testing.clear_kv()
    first, _ = only(handle(order("o-1", 3)))
    assert first.type == RESERVED
    again, _ = only(handle(order("o-1", 3)))
    assert again.type == RESERVED, "the same answer for a redelivery"
    assert again.id == first.id and again.data == first.data
    second, data = only(handle(order("o-2", 3)))
    assert second.type == REJECTED
    assert data["reason"] == "insufficient stock of p-9: 2 left, 3 ordered", "o-1 was reserved once only"
    third, _ = only(handle(order("o-3", 2)))
    assert third.type == RESERVED, "the rejected order gave its units back"
    assert kv.get("reserved:p-9") == b"5"


def test_a_partial_order_gives_back_what_it_took():
    testing.set_config("stock.p-2", "1")
    data = {"orderId": "o-1", "items": [{"productId": "p-1", "quantity": 4}, {"productId": "p-2", "quantity": 2}]}
    _, out = only(handle(order_created(data)))
    assert out["reason"] == "insufficient stock of p-2: 1 left, 2 ordered"
    assert kv.get("reserved:p-1") == b"0" and kv.get("reserved:p-2") == b"0"


def test_a_stock_that_is_not_an_integer_is_fatal():
    testing.set_config("stock", "lots")
    with pytest.raises(HandlerError) as raised:
        handle(order_created({"orderId": "o-1", "items": [{"productId": "p-1", "quantity": 1}]}))
    assert raised.value == HandlerError.fatal('plugin config: stock "lots" is not an integer')


def test_an_older_rejection_in_the_store_is_still_understood():
    event = order_created({"orderId": "o-1", "items": [{"productId": "p-1", "quantity": 1}]})
    kv.set("order:o-1", b"rejected:out of luck")
    reply, data = only(handle(event))
    assert (reply.type, data["reason"]) == (REJECTED, "out of luck")


def test_an_unavailable_store_is_retryable():
    event = order_created({"orderId": "o-1", "items": [{"productId": "p-1", "quantity": 1}]})
    testing.fail_kv(kv.Unavailable("no answer"))
    with pytest.raises(kv.Unavailable):
        handle(event)


def test_source_comes_from_config():
    testing.set_config("source", "/elsewhere")
    reply, _ = only(handle(order_created({"orderId": "o-1", "items": [{"productId": "p", "quantity": 1}]})))
    assert reply.source == "/elsewhere"


def test_ignores_other_types():
    assert handle(Event("e-1", "/shop", "com.example.order.shipped")) == []
