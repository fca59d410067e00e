//! The order saga's inventory service: the first step of the saga and its
//! compensation, with the stock kept in the plugin's key-value store.
//!
//! - `order.created`: reserves every item of the order, or none (all or nothing),
//!   and emits `inventory.reserved` (the seed's `InventoryReservedEvent`, plus the
//!   order's amount, currency, payment method and address, which the later steps
//!   need and cannot read from this plugin's private store), or
//!   `inventory.reservation-failed` with the reason.
//! - `inventory.release-requested` (the saga's compensation): gives back what this
//!   plugin reserved for the order, by its own record, never by what the request
//!   claims, and emits `inventory.released`.
//! - `inventory.stock-requested` (`{"productIds": [...]}`): emits `inventory.stock`
//!   with the total, reserved and available units of each product.
//!
//! Idempotent: the outcome of each order is remembered, so a redelivered order
//! reserves nothing twice and a repeated release gives nothing back twice; emitted
//! ids derive from the incoming id. An atomic claim per order makes two deliveries
//! of the same order that run at once reserve once: the second is answered
//! retryable until the first has recorded its outcome.
//!
//! Config: `source` (default `/inventory-service`); `stock`, the stock of a product
//! not listed (default 0: unknown products cannot be reserved); `stock.PRODUCT`,
//! the stock of one product.
//!
//! Keys: `reserved:PRODUCT` (units reserved now), `order:ORDER` (the outcome, as
//! JSON), `claim:ORDER` and `release:ORDER` (atomic claims).

use router_guest::serde_json::{Map, Value};
use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The event that starts the saga.
const ORDER_CREATED: &str = "order.created";
/// The compensation the saga asks for when a later step failed.
const RELEASE_REQUESTED: &str = "inventory.release-requested";
/// A query for stock levels.
const STOCK_REQUESTED: &str = "inventory.stock-requested";
/// Every item of the order is reserved.
const RESERVED: &str = "inventory.reserved";
/// Nothing is reserved, and why.
const RESERVATION_FAILED: &str = "inventory.reservation-failed";
/// The reservation of an order is given back.
const RELEASED: &str = "inventory.released";
/// The answer to a stock query.
const STOCK: &str = "inventory.stock";
/// How long the outcome of an order is remembered: longer than any saga runs,
/// short enough that the keys do not pile up.
const ORDER_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a claim holds off other deliveries of the same order: long enough
/// for one delivery to finish, short enough that a delivery that died half way
/// (a trap, a crashed router) does not block the order for long. A delivery that
/// fails gives its claim back at once.
const CLAIM_TTL: Duration = Duration::from_secs(30);

/// An order as `order.created` carries it: the fields this plugin needs, and
/// the rest kept as it came, to travel on with the reservation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    /// The order, the saga's business key.
    order_id: String,
    /// What to reserve.
    items: Vec<OrderItem>,
    /// What payment charges later.
    total_amount: f64,
    /// The currency of `total_amount`.
    currency: String,
    /// Everything else (`userId`, `shippingAddress`, `paymentMethod`...).
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// One line of an order.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderItem {
    /// The product.
    product_id: String,
    /// Units ordered.
    quantity: i64,
}

/// One reserved line: the seed's `InventoryReservedEvent` item.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    /// The product.
    product_id: String,
    /// Units reserved.
    quantity: i64,
    /// Derived from the order and the product, so a redelivery yields the same.
    reservation_id: String,
}

/// What this plugin remembers of an order (`order:ORDER`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    /// `reserved`, `rejected` or `released`.
    status: String,
    /// What was reserved (empty when rejected).
    items: Vec<Reservation>,
    /// Why it was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `inventory.reserved`: the reservation and the order's data the saga needs next.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reserved<'a> {
    /// The order.
    order_id: &'a str,
    /// One reservation per item.
    items: &'a [Reservation],
    /// For payment.
    total_amount: f64,
    /// For payment.
    currency: &'a str,
    /// The rest of the order, as it came.
    #[serde(flatten)]
    rest: &'a Map<String, Value>,
}

/// `inventory.release-requested`: only the order is needed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReleaseRequest {
    /// The order whose reservation to give back.
    order_id: String,
    /// Why, passed on.
    #[serde(default)]
    reason: Option<String>,
}

/// `inventory.stock-requested`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StockRequest {
    /// The products to report.
    product_ids: Vec<String>,
}

/// One product's line of `inventory.stock`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StockLevel {
    /// The product.
    product_id: String,
    /// Units in the warehouse (configured).
    total: i64,
    /// Units reserved by orders.
    reserved: i64,
    /// `total - reserved`.
    available: i64,
}

/// Dispatches on the event type; other types are not this plugin's business.
fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.ty() {
        ORDER_CREATED => reserve(&event),
        RELEASE_REQUESTED => release(&event),
        STOCK_REQUESTED => stock(&event),
        _ => Ok(vec![]),
    }
}

/// Reserves the order's items, or replays the outcome of an earlier delivery.
fn reserve(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let order: Order = event.data_json()?;
    if order.order_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "order event {} has an empty orderId",
            event.id()
        )));
    }
    let record = match read_record(&order.order_id)? {
        Some(record) => record,
        None => {
            let claim = format!("claim:{}", order.order_id);
            if kv::increment(&claim, 1)? > 1 {
                // Another delivery of this order is reserving (or has just done it).
                return match read_record(&order.order_id)? {
                    Some(record) => reply_to_order(event, &order, &record),
                    None => Err(HandlerError::retryable(format!(
                        "order {} is being reserved by another delivery",
                        order.order_id
                    ))),
                };
            }
            kv::set(&claim, b"1", Some(CLAIM_TTL))?;
            let outcome = match rejection(&order) {
                Some(reason) => Ok(rejected(reason)),
                None => take_stock(&order),
            }
            .and_then(|record| write_record(&order.order_id, &record).map(|()| record));
            outcome.inspect_err(|_| {
                let _ = kv::delete(&claim);
            })?
        }
    };
    reply_to_order(event, &order, &record)
}

/// The answer to `order.created` for an order whose outcome is `record`.
fn reply_to_order(
    event: &Event,
    order: &Order,
    record: &Record,
) -> Result<Vec<Event>, HandlerError> {
    let source = config::get_or("source", "/inventory-service");
    let reply = match &record.reason {
        Some(reason) => {
            log::warn(format!(
                "order {}: nothing reserved: {reason}",
                order.order_id
            ));
            Event::new(
                format!("{}-reservation-failed", event.id()),
                source,
                RESERVATION_FAILED,
            )
            .with_json_data(&failure_data(&order.order_id, reason))?
        }
        None => {
            log::info(format!(
                "order {}: {} item(s) reserved",
                order.order_id,
                record.items.len()
            ));
            Event::new(format!("{}-reserved", event.id()), source, RESERVED).with_json_data(
                &Reserved {
                    order_id: &order.order_id,
                    items: &record.items,
                    total_amount: order.total_amount,
                    currency: &order.currency,
                    rest: &order.rest,
                },
            )?
        }
    };
    Ok(vec![reply.with_subject(order.order_id.clone())])
}

/// The data of `inventory.reservation-failed`.
fn failure_data(order_id: &str, reason: &str) -> Value {
    router_guest::serde_json::json!({ "orderId": order_id, "reason": reason })
}

/// The record of an order that reserved nothing, and why.
fn rejected(reason: String) -> Record {
    Record {
        status: "rejected".into(),
        items: Vec::new(),
        reason: Some(reason),
    }
}

/// Why `order` cannot be reserved at all, or `None` when it may be.
fn rejection(order: &Order) -> Option<String> {
    if order.items.is_empty() {
        return Some("no items".to_owned());
    }
    order
        .items
        .iter()
        .find(|item| item.quantity <= 0 || item.product_id.is_empty())
        .map(|item| format!("item {:?} has quantity {}", item.product_id, item.quantity))
}

/// The configured stock of `product`: `stock.PRODUCT`, else `stock`, else 0.
fn stock_of(product: &str) -> Result<i64, HandlerError> {
    let text = config::get(&format!("stock.{product}"))
        .or_else(|| config::get("stock"))
        .unwrap_or_else(|| "0".to_owned());
    text.parse().map_err(|_| {
        HandlerError::fatal(format!(
            "plugin config: stock {text:?} of {product} is not an integer"
        ))
    })
}

/// Reserves every item or none. Each item is one atomic increment of the units
/// reserved, undone (with the items before it) when it passes the stock, so that
/// concurrent orders never oversell.
fn take_stock(order: &Order) -> Result<Record, HandlerError> {
    let mut taken: Vec<Reservation> = Vec::new();
    for item in &order.items {
        let key = reserved_key(&item.product_id);
        let stock = stock_of(&item.product_id)?;
        let reserved = kv::increment(&key, item.quantity)?;
        if reserved > stock {
            kv::increment(&key, -item.quantity)?;
            for done in &taken {
                kv::increment(&reserved_key(&done.product_id), -done.quantity)?;
            }
            let left = (stock - (reserved - item.quantity)).max(0);
            return Ok(rejected(format!(
                "insufficient stock of {}: {left} available, {} ordered",
                item.product_id, item.quantity
            )));
        }
        taken.push(Reservation {
            product_id: item.product_id.clone(),
            quantity: item.quantity,
            reservation_id: format!("res-{}-{}", order.order_id, item.product_id),
        });
    }
    Ok(Record {
        status: "reserved".into(),
        items: taken,
        reason: None,
    })
}

/// Gives back what was reserved for the order, once.
fn release(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let request: ReleaseRequest = event.data_json()?;
    let order_id = request.order_id;
    let mut record = read_record(&order_id)?;
    if let Some(held) = record.as_mut().filter(|r| r.status == "reserved") {
        let claim = format!("release:{order_id}");
        if kv::increment(&claim, 1)? > 1 {
            return Err(HandlerError::retryable(format!(
                "the reservation of order {order_id} is being released by another delivery"
            )));
        }
        kv::set(&claim, b"1", Some(CLAIM_TTL))?;
        let outcome = held
            .items
            .iter()
            .try_for_each(|item| {
                kv::increment(&reserved_key(&item.product_id), -item.quantity).map(drop)
            })
            .map_err(HandlerError::from)
            .and_then(|()| {
                held.status = "released".into();
                write_record(&order_id, held)
            });
        outcome.inspect_err(|_| {
            let _ = kv::delete(&claim);
        })?;
        log::info(format!("order {order_id}: reservation released"));
    }
    // Nothing reserved (rejected, or unknown): nothing to give back, and the saga
    // may still finish its compensation.
    let items = record.map(|r| r.items).unwrap_or_default();
    let source = config::get_or("source", "/inventory-service");
    let released = Event::new(format!("{}-released", event.id()), source, RELEASED)
        .with_subject(order_id.clone())
        .with_json_data(&router_guest::serde_json::json!({
            "orderId": order_id,
            "items": items,
            "reason": request.reason,
        }))?;
    Ok(vec![released])
}

/// Answers a stock query.
fn stock(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let request: StockRequest = event.data_json()?;
    let mut levels = Vec::with_capacity(request.product_ids.len());
    for product_id in request.product_ids {
        let total = stock_of(&product_id)?;
        let reserved = match kv::get(&reserved_key(&product_id))? {
            Some(bytes) => String::from_utf8_lossy(&bytes).parse().unwrap_or(0),
            None => 0,
        };
        levels.push(StockLevel {
            product_id,
            total,
            reserved,
            available: total - reserved,
        });
    }
    let source = config::get_or("source", "/inventory-service");
    let answer = Event::new(format!("{}-stock", event.id()), source, STOCK)
        .with_json_data(&router_guest::serde_json::json!({ "stock": levels }))?;
    Ok(vec![answer])
}

/// The key counting the units of `product` reserved now.
fn reserved_key(product: &str) -> String {
    format!("reserved:{product}")
}

/// What this plugin remembers of the order, if anything.
fn read_record(order_id: &str) -> Result<Option<Record>, HandlerError> {
    match kv::get(&format!("order:{order_id}"))? {
        Some(bytes) => router_guest::serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| {
                HandlerError::fatal(format!("the record of order {order_id} is corrupt: {e}"))
            }),
        None => Ok(None),
    }
}

/// Remembers the order's outcome, for as long as a saga may still need it.
fn write_record(order_id: &str, record: &Record) -> Result<(), HandlerError> {
    let bytes = router_guest::serde_json::to_vec(record)?;
    kv::set(&format!("order:{order_id}"), &bytes, Some(ORDER_MEMORY))?;
    Ok(())
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::json;
    use router_guest::testing;

    fn setup() {
        testing::clear_kv();
        testing::clear_config();
        testing::set_config("stock.SKU-1", "10");
        testing::set_config("stock.SKU-2", "5");
    }

    fn order_created(id: &str, order: &str, items: Value) -> Event {
        Event::new(id, "/order-service", ORDER_CREATED)
            .with_json_data(&json!({
                "orderId": order,
                "userId": "u-1",
                "items": items,
                "totalAmount": 120.5,
                "currency": "EUR",
                "paymentMethod": "card",
                "shippingAddress": {"city": "Berlin"},
            }))
            .expect("JSON")
    }

    fn only(events: Vec<Event>) -> (Event, Value) {
        assert_eq!(events.len(), 1);
        let event = events.into_iter().next().expect("one event");
        let data = event.data_json().expect("JSON data");
        (event, data)
    }

    fn available(product: &str) -> i64 {
        let query = Event::new("q", "/t", STOCK_REQUESTED)
            .with_json_data(&json!({"productIds": [product]}))
            .expect("JSON");
        let (_, data) = only(handle(query).expect("stock"));
        data["stock"][0]["available"].as_i64().expect("available")
    }

    #[test]
    fn reserves_every_item_and_carries_the_order_on() {
        setup();
        let items =
            json!([{"productId": "SKU-1", "quantity": 2}, {"productId": "SKU-2", "quantity": 1}]);
        let (event, data) = only(handle(order_created("e-1", "o-1", items)).expect("handled"));
        assert_eq!(
            (event.id(), event.ty(), event.subject()),
            ("e-1-reserved", RESERVED, Some("o-1"))
        );
        assert_eq!(
            data,
            json!({
                "orderId": "o-1",
                "items": [
                    {"productId": "SKU-1", "quantity": 2, "reservationId": "res-o-1-SKU-1"},
                    {"productId": "SKU-2", "quantity": 1, "reservationId": "res-o-1-SKU-2"},
                ],
                "totalAmount": 120.5,
                "currency": "EUR",
                "userId": "u-1",
                "paymentMethod": "card",
                "shippingAddress": {"city": "Berlin"},
            })
        );
        assert_eq!((available("SKU-1"), available("SKU-2")), (8, 4));
    }

    #[test]
    fn all_or_nothing_when_one_product_lacks_stock() {
        setup();
        let items =
            json!([{"productId": "SKU-1", "quantity": 2}, {"productId": "SKU-2", "quantity": 6}]);
        let (event, data) = only(handle(order_created("e-1", "o-1", items)).expect("handled"));
        assert_eq!(event.ty(), RESERVATION_FAILED);
        assert_eq!(
            data,
            json!({"orderId": "o-1", "reason": "insufficient stock of SKU-2: 5 available, 6 ordered"})
        );
        assert_eq!(
            (available("SKU-1"), available("SKU-2")),
            (10, 5),
            "SKU-1 given back"
        );
        let unknown = json!([{"productId": "SKU-404", "quantity": 1}]);
        let (event, _) = only(handle(order_created("e-2", "o-2", unknown)).expect("handled"));
        assert_eq!(
            event.ty(),
            RESERVATION_FAILED,
            "unknown products have no stock"
        );
    }

    #[test]
    fn a_redelivered_order_reserves_nothing_twice() {
        setup();
        let items = json!([{"productId": "SKU-2", "quantity": 3}]);
        let first = handle(order_created("e-1", "o-1", items.clone())).expect("handled");
        let again = handle(order_created("e-1", "o-1", items.clone())).expect("handled");
        assert_eq!(first, again, "the same answer, same ids");
        assert_eq!(available("SKU-2"), 2);
        // The same order under a new event id (a client's retry): same reservation.
        let (event, data) = only(handle(order_created("e-9", "o-1", items)).expect("handled"));
        assert_eq!((event.id(), event.ty()), ("e-9-reserved", RESERVED));
        assert_eq!(data["items"][0]["reservationId"], "res-o-1-SKU-2");
        assert_eq!(available("SKU-2"), 2);
    }

    #[test]
    fn a_delivery_racing_another_is_retried_until_the_outcome_is_known() {
        setup();
        // What a concurrent delivery leaves behind before it records the outcome.
        kv::increment("claim:o-1", 1).expect("claim");
        let items = json!([{"productId": "SKU-1", "quantity": 1}]);
        let error = handle(order_created("e-1", "o-1", items)).unwrap_err();
        assert!(error.is_retryable(), "{error}");
        assert_eq!(available("SKU-1"), 10);
    }

    #[test]
    fn release_gives_back_what_was_reserved_once() {
        setup();
        let items = json!([{"productId": "SKU-1", "quantity": 4}]);
        handle(order_created("e-1", "o-1", items)).expect("reserved");
        assert_eq!(available("SKU-1"), 6);
        // The request's items are not trusted: the plugin's own record is.
        let request = |id: &str| {
            Event::new(id, "/saga", RELEASE_REQUESTED)
                .with_json_data(&json!({"orderId": "o-1", "items": [{"productId": "SKU-1", "quantity": 99}], "reason": "declined"}))
                .expect("JSON")
        };
        let (event, data) = only(handle(request("r-1")).expect("released"));
        assert_eq!(
            (event.id(), event.ty(), event.subject()),
            ("r-1-released", RELEASED, Some("o-1"))
        );
        assert_eq!(data["items"][0]["quantity"], 4);
        assert_eq!(data["reason"], "declined");
        assert_eq!(available("SKU-1"), 10);
        let (_, again) = only(handle(request("r-1")).expect("released again"));
        assert_eq!(again, data);
        handle(request("r-2")).expect("a new request id");
        assert_eq!(available("SKU-1"), 10, "given back once only");
    }

    #[test]
    fn releasing_an_order_without_reservation_gives_nothing_back() {
        setup();
        let request = Event::new("r-1", "/saga", RELEASE_REQUESTED)
            .with_json_data(&json!({"orderId": "o-unknown"}))
            .expect("JSON");
        let (_, data) = only(handle(request).expect("released"));
        assert_eq!(
            data,
            json!({"orderId": "o-unknown", "items": [], "reason": null})
        );
    }

    #[test]
    fn data_that_is_not_an_order_is_fatal() {
        setup();
        for (event, problem) in [
            (
                Event::new("e-1", "/shop", ORDER_CREATED).with_data("nope", "text/plain"),
                "not the expected JSON",
            ),
            (Event::new("e-1", "/shop", ORDER_CREATED), "no data"),
            (
                Event::new("e-1", "/shop", ORDER_CREATED)
                    .with_json_data(&json!({"orderId": "o-1", "items": []}))
                    .expect("JSON"),
                "totalAmount",
            ),
            (
                Event::new("e-1", "/shop", ORDER_CREATED)
                    .with_json_data(
                        &json!({"orderId": "", "items": [], "totalAmount": 1, "currency": "EUR"}),
                    )
                    .expect("JSON"),
                "empty orderId",
            ),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
    }

    #[test]
    fn bad_quantities_are_a_failed_reservation_and_other_types_are_ignored() {
        setup();
        let items = json!([{"productId": "SKU-1", "quantity": 0}]);
        let (event, data) = only(handle(order_created("e-1", "o-1", items)).expect("handled"));
        assert_eq!(event.ty(), RESERVATION_FAILED);
        assert_eq!(data["reason"], "item \"SKU-1\" has quantity 0");
        assert_eq!(handle(Event::new("x", "/t", "order.shipped")), Ok(vec![]));
    }
}
