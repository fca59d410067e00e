//! The demo's inventory service: reserves stock for new orders, keeping the stock
//! in the plugin's key-value store.
//!
//! On `com.example.order.created` it emits `com.example.inventory.reserved` when the
//! order has items, every quantity is positive and every product has the stock
//! left, `com.example.order.rejected` with the reason otherwise. Ids derive from
//! the incoming event and the order, so a redelivered order yields the same events
//! and reservation ids, and reserves nothing twice: a reservation is remembered.
//! A rejection is not: it took no stock, so a redelivery is simply judged again,
//! and a flood of invalid orders cannot fill the store.
//!
//! Config: `source`, the source of emitted events (default `/inventory`);
//! `stock`, the stock of every product (default 1000), and `stock.PRODUCT` for one
//! product.
//!
//! Keys: `reserved:PRODUCT` (units reserved so far), `order:ORDER` (`reserved`;
//! older versions also stored `rejected:` and the reason, still understood).

use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};

const ORDER_CREATED: &str = "com.example.order.created";
const RESERVED: &str = "com.example.inventory.reserved";
const REJECTED: &str = "com.example.order.rejected";
/// How long a reservation is remembered.
const ORDER_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The part of an order this plugin reads; other fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    items: Vec<OrderItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem {
    product_id: String,
    quantity: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reserved<'a> {
    order_id: &'a str,
    items: Vec<Reservation<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reservation<'a> {
    product_id: &'a str,
    quantity: i64,
    reservation_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rejected<'a> {
    order_id: &'a str,
    reason: String,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != ORDER_CREATED {
        return Ok(vec![]);
    }
    let order: Order = event.data_json()?;
    if order.order_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "order event {} has an empty orderId",
            event.id()
        )));
    }
    let source = config::get_or("source", "/inventory");

    let outcome = match kv::get(&order_key(&order))? {
        // Seen before (a redelivery): the same answer, and no second reservation.
        Some(done) => String::from_utf8_lossy(&done)
            .strip_prefix("rejected:")
            .map(str::to_owned),
        None => {
            let outcome = match rejection(&order) {
                Some(reason) => Some(reason),
                None => take_stock(&order)?,
            };
            // A reservation is remembered for a day, like a dedup window, so the
            // keys do not pile up; a rejection took nothing and is not kept.
            if outcome.is_none() {
                kv::set(&order_key(&order), b"reserved", Some(ORDER_MEMORY))?;
            }
            outcome
        }
    };
    let reply = match outcome {
        Some(reason) => {
            log::warn(format!("order {} rejected: {reason}", order.order_id));
            Event::new(format!("{}-rejected", event.id()), source, REJECTED).with_json_data(
                &Rejected {
                    order_id: &order.order_id,
                    reason,
                },
            )?
        }
        None => Event::new(format!("{}-reserved", event.id()), source, RESERVED)
            .with_json_data(&reserve(&order))?,
    };
    Ok(vec![reply.with_subject(order.order_id)])
}

fn order_key(order: &Order) -> String {
    format!("order:{}", order.order_id)
}

/// The stock of `product`: its own `stock.PRODUCT`, else `stock`, else 1000.
fn stock_of(product: &str) -> Result<i64, HandlerError> {
    let text = config::get(&format!("stock.{product}"))
        .or_else(|| config::get("stock"))
        .unwrap_or_else(|| "1000".to_owned());
    text.parse().map_err(|_| {
        HandlerError::fatal(format!("plugin config: stock {text:?} is not an integer"))
    })
}

/// Reserves every item, or none: `Some(reason)` when a product lacks stock. Each
/// reservation is one atomic increment, undone when the order cannot be served
/// whole, so that concurrent orders never oversell.
fn take_stock(order: &Order) -> Result<Option<String>, HandlerError> {
    let mut taken: Vec<&OrderItem> = Vec::new();
    for item in &order.items {
        let key = format!("reserved:{}", item.product_id);
        let reserved = kv::increment(&key, item.quantity)?;
        let stock = stock_of(&item.product_id)?;
        if reserved > stock {
            kv::increment(&key, -item.quantity)?;
            for done in taken {
                kv::increment(&format!("reserved:{}", done.product_id), -done.quantity)?;
            }
            let left = (stock - (reserved - item.quantity)).max(0);
            return Ok(Some(format!(
                "insufficient stock of {}: {left} left, {} ordered",
                item.product_id, item.quantity
            )));
        }
        taken.push(item);
    }
    Ok(None)
}

/// Why `order` cannot be reserved, or `None` when it can.
fn rejection(order: &Order) -> Option<String> {
    if order.items.is_empty() {
        return Some("no items".to_owned());
    }
    order
        .items
        .iter()
        .find(|item| item.quantity <= 0)
        .map(|item| format!("item {} has quantity {}", item.product_id, item.quantity))
}

/// One reservation per item. The id depends only on the order and the product,
/// so a redelivered order yields the same ids and the stock keeper can tell a
/// repeat from a new reservation.
fn reserve(order: &Order) -> Reserved<'_> {
    Reserved {
        order_id: &order.order_id,
        items: order
            .items
            .iter()
            .map(|item| Reservation {
                product_id: &item.product_id,
                quantity: item.quantity,
                reservation_id: format!("res-{}-{}", order.order_id, item.product_id),
            })
            .collect(),
    }
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::{Value, json};

    fn order_created(data: Value) -> Event {
        router_guest::testing::clear_kv();
        Event::new("e-1", "/shop", ORDER_CREATED)
            .with_json_data(&data)
            .expect("JSON")
    }

    fn only(events: Vec<Event>) -> (Event, Value) {
        assert_eq!(events.len(), 1);
        let event = events.into_iter().next().expect("one event");
        let data = event.data_json().expect("JSON data");
        (event, data)
    }

    #[test]
    fn reserves_every_item() {
        let order = json!({
            "orderId": "o-1",
            "customerId": "c-1",
            "items": [{"productId": "p-1", "quantity": 2}, {"productId": "p-2", "quantity": 1}],
        });
        let (event, data) = only(handle(order_created(order)).expect("handled"));
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.subject()),
            ("e-1-reserved", "/inventory", RESERVED, Some("o-1"))
        );
        assert_eq!(
            data,
            json!({"orderId": "o-1", "items": [
                {"productId": "p-1", "quantity": 2, "reservationId": "res-o-1-p-1"},
                {"productId": "p-2", "quantity": 1, "reservationId": "res-o-1-p-2"},
            ]})
        );
    }

    #[test]
    fn rejects_an_order_without_items_or_with_a_bad_quantity() {
        for (items, reason) in [
            (json!([]), "no items"),
            (
                json!([{"productId": "p-1", "quantity": 1}, {"productId": "p-2", "quantity": 0}]),
                "item p-2 has quantity 0",
            ),
            (
                json!([{"productId": "p-3", "quantity": -4}]),
                "item p-3 has quantity -4",
            ),
        ] {
            let order = json!({"orderId": "o-1", "items": items});
            let (event, data) = only(handle(order_created(order)).expect("handled"));
            assert_eq!((event.id(), event.ty()), ("e-1-rejected", REJECTED));
            assert_eq!(data, json!({"orderId": "o-1", "reason": reason}));
            assert_eq!(
                kv::get("order:o-1").expect("kv"),
                None,
                "a rejected order is not stored"
            );
        }
    }

    #[test]
    fn data_that_is_not_an_order_is_fatal() {
        for (event, problem) in [
            (
                Event::new("e-1", "/shop", ORDER_CREATED).with_data("nope", "text/plain"),
                "not the expected JSON",
            ),
            (Event::new("e-1", "/shop", ORDER_CREATED), "no data"),
            (order_created(json!({"items": []})), "orderId"),
            (order_created(json!({"orderId": "o-1"})), "items"),
            (
                order_created(json!({"orderId": "", "items": []})),
                "empty orderId",
            ),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
    }

    #[test]
    fn stock_runs_out_and_a_redelivery_reserves_nothing_twice() {
        router_guest::testing::set_config("stock", "5");
        let order = |id: &str, qty: i64| {
            let data = json!({"orderId": id, "items": [{"productId": "p-9", "quantity": qty}]});
            Event::new(format!("e-{id}"), "/shop", ORDER_CREATED)
                .with_json_data(&data)
                .expect("JSON")
        };
        router_guest::testing::clear_kv();
        let (first, _) = only(handle(order("o-1", 3)).expect("handled"));
        assert_eq!(first.ty(), RESERVED);
        let (again, _) = only(handle(order("o-1", 3)).expect("handled"));
        assert_eq!(again.ty(), RESERVED, "the same answer for a redelivery");
        let (second, data) = only(handle(order("o-2", 3)).expect("handled"));
        assert_eq!(second.ty(), REJECTED);
        assert_eq!(
            data["reason"], "insufficient stock of p-9: 2 left, 3 ordered",
            "o-1 was reserved once only"
        );
        let (third, _) = only(handle(order("o-3", 2)).expect("handled"));
        assert_eq!(
            third.ty(),
            RESERVED,
            "the rejected order gave its units back"
        );
        router_guest::testing::clear_config();
    }

    #[test]
    fn ignores_other_types() {
        let event = Event::new("e-1", "/shop", "com.example.order.shipped");
        assert_eq!(handle(event), Ok(vec![]));
    }
}
