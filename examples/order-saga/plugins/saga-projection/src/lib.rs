//! The order saga's read side: the seed's event store and saga repository in
//! one plugin. It keeps every event of an order's saga in its key-value store and
//! answers queries by replaying them, like the seed's `EventStore.replay`.
//!
//! - The saga's events (`order.created`, `inventory.reserved`,
//!   `inventory.reservation-failed`, `payment.processed`, `payment.failed`,
//!   `inventory.released`, `order.shipped`, `order.cancelled`) are appended under
//!   `order:ORDER:TYPE`, with their id, `correlationid` (the saga id) and
//!   `causationid`. The first event of a type for an order is kept: a redelivery,
//!   or the same order sent again under a new id, changes nothing.
//! - `order.state-requested` (`{"orderId": ...}`) emits `order.state`: the status
//!   (`created`, `reserved`, `paid`, `shipped`; or `reservation_failed`,
//!   `payment_failed`, `released`, `cancelled`; `unknown` for an order never
//!   seen), the steps seen in saga order, and what the events said (items,
//!   amount, payment id, tracking number, reason...).
//!
//! One key per event type rather than one document per order: the router runs
//! the routes of an event and of the events it caused concurrently, so the
//! events of one order can arrive at the same time, and separate keys need no
//! read-modify-write that could lose an update. The replay puts them in saga
//! order whatever order they arrived in.
//!
//! Config: `source` (default `/order-projection`); `retention_hours`, how long
//! an order's events are kept (default 336, the seed's 14 days of retention).

use router_guest::serde_json::{Map, Value, json};
use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The query this plugin answers.
const STATE_REQUESTED: &str = "order.state-requested";
/// The answer.
const STATE: &str = "order.state";

/// The saga's events in the order they happen, and the status each one means.
/// The last one present is the order's status.
const STEPS: &[(&str, &str)] = &[
    ("order.created", "created"),
    ("inventory.reserved", "reserved"),
    ("inventory.reservation-failed", "reservation_failed"),
    ("payment.processed", "paid"),
    ("payment.failed", "payment_failed"),
    ("inventory.released", "released"),
    ("order.shipped", "shipped"),
    ("order.cancelled", "cancelled"),
];

/// One stored event of an order.
#[derive(Serialize, Deserialize)]
struct Stored {
    /// The event's id.
    id: String,
    /// The saga id.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlationid: Option<String>,
    /// The event that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    causationid: Option<String>,
    /// Its data.
    data: Map<String, Value>,
}

/// The part of every saga event and query this plugin needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderRef {
    /// The order.
    order_id: String,
}

/// Answers queries and stores the saga's events; ignores everything else.
fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() == STATE_REQUESTED {
        return answer(&event);
    }
    if STEPS.iter().any(|(ty, _)| *ty == event.ty()) {
        append(&event)?;
    }
    Ok(vec![])
}

/// Stores a saga event, unless one of its type is stored for the order already.
fn append(event: &Event) -> Result<(), HandlerError> {
    let data: Map<String, Value> = event.data_json()?;
    let order_id = order_id(event, &data)?;
    let key = format!("order:{order_id}:{}", event.ty());
    if kv::get(&key)?.is_some() {
        log::debug(format!("order {order_id}: {} already recorded", event.ty()));
        return Ok(());
    }
    let stored = Stored {
        id: event.id().to_owned(),
        correlationid: event.extension("correlationid").map(str::to_owned),
        causationid: event.extension("causationid").map(str::to_owned),
        data,
    };
    kv::set(
        &key,
        &router_guest::serde_json::to_vec(&stored)?,
        Some(retention()?),
    )?;
    Ok(())
}

/// The order an event belongs to: a saga event without one is not a saga event.
fn order_id(event: &Event, data: &Map<String, Value>) -> Result<String, HandlerError> {
    match data.get("orderId").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => Ok(id.to_owned()),
        _ => Err(HandlerError::fatal(format!(
            "event {} ({}) has no orderId",
            event.id(),
            event.ty()
        ))),
    }
}

/// How long an order's events are kept (`retention_hours`).
fn retention() -> Result<Duration, HandlerError> {
    let text = config::get_or("retention_hours", "336");
    let hours: u64 = text.parse().map_err(|_| {
        HandlerError::fatal(format!(
            "plugin config: retention_hours {text:?} is not a number"
        ))
    })?;
    Ok(Duration::from_secs(hours * 3600))
}

/// Answers `order.state-requested` by replaying the order's events.
fn answer(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let query: OrderRef = event.data_json()?;
    let mut state = Map::new();
    state.insert("orderId".into(), json!(query.order_id));
    let mut status = "unknown";
    let mut steps = Vec::new();
    let mut saga_id = None;
    for (ty, step) in STEPS {
        let Some(bytes) = kv::get(&format!("order:{}:{ty}", query.order_id))? else {
            continue;
        };
        let stored: Stored = router_guest::serde_json::from_slice(&bytes).map_err(|e| {
            HandlerError::fatal(format!(
                "stored {ty} of order {} is corrupt: {e}",
                query.order_id
            ))
        })?;
        status = step;
        // The saga id: the correlation id the router put on the saga's events, or
        // the id of the event that started the saga (the router's own rule).
        saga_id = saga_id.or_else(|| {
            stored
                .correlationid
                .clone()
                .or_else(|| Some(stored.id.clone()))
        });
        steps.push(json!({
            "step": step,
            "type": ty,
            "eventId": stored.id,
            "causationId": stored.causationid,
            "correlationId": stored.correlationid,
        }));
        apply(&mut state, ty, stored.data);
    }
    state.insert("sagaId".into(), json!(saga_id));
    state.insert("status".into(), json!(status));
    state.insert("steps".into(), Value::Array(steps));
    let source = config::get_or("source", "/order-projection");
    let reply = Event::new(format!("{}-state", event.id()), source, STATE)
        .with_subject(query.order_id)
        .with_json_data(&state)?;
    Ok(vec![reply])
}

/// What each event adds to the order's state (the seed's `applyEvent`).
fn apply(state: &mut Map<String, Value>, ty: &str, mut data: Map<String, Value>) {
    let fields: &[(&str, &str)] = match ty {
        "order.created" => &[
            ("userId", "userId"),
            ("items", "items"),
            ("totalAmount", "totalAmount"),
            ("currency", "currency"),
            ("paymentMethod", "paymentMethod"),
            ("shippingAddress", "shippingAddress"),
        ],
        "inventory.reserved" => &[("items", "reservations")],
        "payment.processed" => &[("paymentId", "paymentId")],
        "order.shipped" => &[
            ("trackingNumber", "trackingNumber"),
            ("carrier", "carrier"),
            ("estimatedDelivery", "estimatedDelivery"),
        ],
        _ => &[("reason", "reason")],
    };
    for (from, to) in fields {
        if let Some(value) = data.remove(*from) {
            state.insert((*to).to_owned(), value);
        }
    }
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    fn saga_event(id: &str, ty: &str, cause: &str, data: Value) -> Event {
        Event::new(id, "/t", ty)
            .with_extension("correlationid", "saga-1")
            .with_extension("causationid", cause)
            .with_json_data(&data)
            .expect("JSON")
    }

    fn state(order: &str, query_id: &str) -> Value {
        let query = Event::new(query_id, "/t", STATE_REQUESTED)
            .with_json_data(&json!({"orderId": order}))
            .expect("JSON");
        let answer = handle(query).expect("answered");
        assert_eq!(answer.len(), 1);
        assert_eq!((answer[0].ty(), answer[0].subject()), (STATE, Some(order)));
        assert_eq!(answer[0].id(), format!("{query_id}-state"));
        answer[0].data_json().expect("JSON")
    }

    fn step_names(state: &Value) -> Vec<&str> {
        state["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| s["step"].as_str().expect("step"))
            .collect()
    }

    #[test]
    fn a_shipped_order_in_any_arrival_order() {
        testing::clear_kv();
        // Arriving out of order, as concurrent routes may deliver them.
        let shipped = json!({"orderId": "o-1", "trackingNumber": "DHL-1", "carrier": "DHL", "estimatedDelivery": "2025-01-04"});
        assert_eq!(
            handle(saga_event("e-4", "order.shipped", "e-3", shipped)),
            Ok(vec![])
        );
        let created = json!({"orderId": "o-1", "userId": "u-1", "items": [{"productId": "SKU-1", "quantity": 1}], "totalAmount": 10, "currency": "EUR"});
        handle(saga_event("e-1", "order.created", "x", created)).expect("stored");
        assert_eq!(state("o-1", "q-1")["status"], "shipped");
        handle(saga_event("e-2", "inventory.reserved", "e-1", json!({"orderId": "o-1", "items": [{"productId": "SKU-1", "quantity": 1, "reservationId": "r"}]}))).expect("stored");
        handle(saga_event(
            "e-3",
            "payment.processed",
            "e-2",
            json!({"orderId": "o-1", "paymentId": "pay-o-1"}),
        ))
        .expect("stored");
        let state = state("o-1", "q-2");
        assert_eq!(
            step_names(&state),
            ["created", "reserved", "paid", "shipped"]
        );
        assert_eq!(state["status"], "shipped");
        assert_eq!(state["sagaId"], "saga-1");
        assert_eq!(state["paymentId"], "pay-o-1");
        assert_eq!(state["trackingNumber"], "DHL-1");
        assert_eq!(state["totalAmount"], 10);
        assert_eq!(state["reservations"][0]["reservationId"], "r");
        assert_eq!(state["steps"][2]["eventId"], "e-3");
        assert_eq!(state["steps"][2]["causationId"], "e-2");
    }

    #[test]
    fn a_compensated_order_and_the_first_event_of_a_type_wins() {
        testing::clear_kv();
        let created =
            json!({"orderId": "o-2", "items": [], "totalAmount": 5000, "currency": "EUR"});
        handle(saga_event("e-1", "order.created", "x", created)).expect("stored");
        handle(saga_event(
            "e-2",
            "inventory.reserved",
            "e-1",
            json!({"orderId": "o-2", "items": []}),
        ))
        .expect("stored");
        handle(saga_event(
            "e-3",
            "payment.failed",
            "e-2",
            json!({"orderId": "o-2", "reason": "declined"}),
        ))
        .expect("stored");
        handle(saga_event(
            "e-5",
            "inventory.released",
            "e-4",
            json!({"orderId": "o-2", "reason": "declined"}),
        ))
        .expect("stored");
        assert_eq!(state("o-2", "q-1")["status"], "released");
        handle(saga_event(
            "e-6",
            "order.cancelled",
            "e-5",
            json!({"orderId": "o-2", "reason": "declined"}),
        ))
        .expect("stored");
        // The same order again under another id: nothing changes.
        handle(saga_event(
            "e-9",
            "order.created",
            "y",
            json!({"orderId": "o-2", "totalAmount": 1}),
        ))
        .expect("ignored");
        let state = state("o-2", "q-2");
        assert_eq!(
            step_names(&state),
            [
                "created",
                "reserved",
                "payment_failed",
                "released",
                "cancelled"
            ]
        );
        assert_eq!(state["status"], "cancelled");
        assert_eq!(state["reason"], "declined");
        assert_eq!(state["totalAmount"], 5000);
        assert_eq!(state["steps"][0]["eventId"], "e-1");
    }

    #[test]
    fn an_unknown_order_and_bad_events() {
        testing::clear_kv();
        let state = state("o-none", "q-1");
        assert_eq!(
            state,
            json!({"orderId": "o-none", "sagaId": null, "status": "unknown", "steps": []})
        );
        let error = handle(
            Event::new("e-1", "/t", "order.created").with_data("not an order", "text/plain"),
        )
        .unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        let error = handle(saga_event(
            "e-1",
            "payment.failed",
            "x",
            json!({"reason": "r"}),
        ))
        .unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("orderId"),
            "{error}"
        );
        assert_eq!(
            handle(Event::new("e-1", "/t", "inventory.stock")),
            Ok(vec![])
        );
    }
}
