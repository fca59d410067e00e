"""The demo's inventory service, in Python: reserves stock for new orders,
keeping the stock in the plugin's key-value store. It answers every event as
the Rust plugin (`plugins/inventory`) does, byte for byte: the same events, ids,
subjects, JSON data, errors, kv keys and values, and config keys.

On `com.example.order.created` it emits `com.example.inventory.reserved` when the
order has items, every quantity is positive and every product has the stock
left, `com.example.order.rejected` with the reason otherwise. Ids derive from
the incoming event and the order, so a redelivered order yields the same events
and reservation ids, and reserves nothing twice: a reservation is remembered.
A rejection is not: it took no stock, so a redelivery is simply judged again,
and a flood of invalid orders cannot fill the store.

Config: `source`, the source of emitted events (default `/inventory`);
`stock`, the stock of every product (default 1000), and `stock.PRODUCT` for one
product.

Keys: `reserved:PRODUCT` (units reserved so far), `order:ORDER` (`reserved`;
older versions also stored `rejected:` and the reason, still understood).
"""

import re
from typing import List, Optional

from router_guest import Event, HandlerError, config, handler, kv, log
from router_guest.schema import I64, List as ListOf, String, Struct

ORDER_CREATED = "com.example.order.created"
RESERVED = "com.example.inventory.reserved"
REJECTED = "com.example.order.rejected"
#: How long a reservation is remembered, in seconds.
ORDER_MEMORY = 24 * 3600

#: The part of an order this plugin reads; other fields are ignored. The names
#: are the Rust structs', which serde's messages cite ("expected struct Order").
ORDER = Struct(
    "Order",
    {
        "orderId": String,
        "items": ListOf(Struct("OrderItem", {"productId": String, "quantity": I64})),
    },
)

# What Rust's `str::parse::<i64>` accepts.
_INTEGER = re.compile(r"[+-]?[0-9]+")


@handler
def handle(event: Event) -> List[Event]:
    """Answers an order with a reservation or a rejection; ignores other types."""
    if event.type != ORDER_CREATED:
        return []
    order = event.data_as(ORDER)
    order_id = order["orderId"]
    if not order_id:
        raise HandlerError.fatal(f"order event {event.id} has an empty orderId")
    source = config.get_or("source", "/inventory")

    done = kv.get(order_key(order))
    if done is not None:
        # Seen before (a redelivery): the same answer, and no second reservation.
        text = done.decode("utf-8", errors="replace")
        outcome = text[len("rejected:"):] if text.startswith("rejected:") else None
    else:
        outcome = rejection(order)
        if outcome is None:
            outcome = take_stock(order)
        # A reservation is remembered for a day, like a dedup window, so the
        # keys do not pile up; a rejection took nothing and is not kept.
        if outcome is None:
            kv.set(order_key(order), b"reserved", ttl=ORDER_MEMORY)

    if outcome is not None:
        log.warn(f"order {order_id} rejected: {outcome}")
        reply = Event(f"{event.id}-rejected", source, REJECTED).with_json_data(
            {"orderId": order_id, "reason": outcome}
        )
    else:
        reply = Event(f"{event.id}-reserved", source, RESERVED).with_json_data(reserve(order))
    return [reply.with_subject(order_id)]


def order_key(order: dict) -> str:
    """The key that remembers a reserved order."""
    return f"order:{order['orderId']}"


def _rust_debug(text: str) -> str:
    # `{text:?}` in Rust: quoted, with quotes, backslashes and controls escaped.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{escaped}"'


def stock_of(product: str) -> int:
    """The stock of `product`: its own `stock.PRODUCT`, else `stock`, else 1000."""
    text = config.get(f"stock.{product}")
    if text is None:
        text = config.get("stock")
    if text is None:
        text = "1000"
    if _INTEGER.fullmatch(text) and -(1 << 63) <= int(text) < (1 << 63):
        return int(text)
    raise HandlerError.fatal(f"plugin config: stock {_rust_debug(text)} is not an integer")


def take_stock(order: dict) -> Optional[str]:
    """Reserves every item, or none: the reason when a product lacks stock. Each
    reservation is one atomic increment, undone when the order cannot be served
    whole, so that concurrent orders never oversell."""
    taken = []
    for item in order["items"]:
        key = f"reserved:{item['productId']}"
        reserved = kv.increment(key, item["quantity"])
        stock = stock_of(item["productId"])
        if reserved > stock:
            kv.increment(key, -item["quantity"])
            for done in taken:
                kv.increment(f"reserved:{done['productId']}", -done["quantity"])
            left = max(stock - (reserved - item["quantity"]), 0)
            return (
                f"insufficient stock of {item['productId']}: "
                f"{left} left, {item['quantity']} ordered"
            )
        taken.append(item)
    return None


def rejection(order: dict) -> Optional[str]:
    """Why `order` cannot be reserved, or None when it can."""
    if not order["items"]:
        return "no items"
    for item in order["items"]:
        if item["quantity"] <= 0:
            return f"item {item['productId']} has quantity {item['quantity']}"
    return None


def reserve(order: dict) -> dict:
    """One reservation per item. The id depends only on the order and the
    product, so a redelivered order yields the same ids and the stock keeper can
    tell a repeat from a new reservation."""
    order_id = order["orderId"]
    return {
        "orderId": order_id,
        "items": [
            {
                "productId": item["productId"],
                "quantity": item["quantity"],
                "reservationId": f"res-{order_id}-{item['productId']}",
            }
            for item in order["items"]
        ],
    }
