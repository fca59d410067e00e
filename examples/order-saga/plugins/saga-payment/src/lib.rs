//! The order saga's payment service: the second step, run once the stock is
//! reserved.
//!
//! On `inventory.reserved` it charges the order's `totalAmount`: at most
//! `max_amount` is accepted (`payment.processed`, with the seed's `OrderPaidEvent`
//! data and the items and address that shipping needs); above it the charge is
//! declined (`payment.failed`, with the reason and the reserved items, so that the
//! saga can have them released). A stand-in for a payment provider whose only rule
//! is a limit, so the example can take both branches on purpose.
//!
//! Idempotent: the outcome of each order is remembered, so a redelivered
//! reservation charges nothing twice and gets the same answer (same `paymentId`);
//! emitted ids derive from the incoming id.
//!
//! Config: `source` (default `/payment-service`); `max_amount`, the largest amount
//! accepted (default 1000).
//!
//! Keys: `payment:ORDER` (the outcome, as JSON).

use router_guest::serde_json::{Map, Value, json};
use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The event this step runs on.
const RESERVED: &str = "inventory.reserved";
/// The order is paid.
const PROCESSED: &str = "payment.processed";
/// The charge was declined: the saga compensates.
const FAILED: &str = "payment.failed";
/// How long the outcome of an order is remembered.
const ORDER_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// `inventory.reserved`, as far as payment reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reserved {
    /// The order.
    order_id: String,
    /// What to charge.
    total_amount: f64,
    /// The currency of `total_amount`.
    currency: String,
    /// How the customer pays (the seed's `paymentMethod`).
    #[serde(default)]
    payment_method: Option<String>,
    /// The reservations, passed on (to shipping, or back to inventory).
    #[serde(default)]
    items: Vec<Value>,
    /// Where the order goes, passed on to shipping.
    #[serde(default)]
    shipping_address: Option<Value>,
}

/// What this plugin remembers of an order.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Outcome {
    /// Charged, under this payment id.
    Processed(String),
    /// Declined, for this reason.
    Failed(String),
}

/// Charges a reserved order, or replays the outcome of an earlier delivery.
fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != RESERVED {
        return Ok(vec![]);
    }
    let order: Reserved = event.data_json()?;
    if order.order_id.is_empty() || !order.total_amount.is_finite() || order.total_amount < 0.0 {
        return Err(HandlerError::fatal(format!(
            "reservation {} has no orderId or an invalid totalAmount {}",
            event.id(),
            order.total_amount
        )));
    }
    let key = format!("payment:{}", order.order_id);
    let outcome = match kv::get(&key)? {
        Some(bytes) => router_guest::serde_json::from_slice(&bytes).map_err(|e| {
            HandlerError::fatal(format!(
                "the payment record of {} is corrupt: {e}",
                order.order_id
            ))
        })?,
        None => {
            let outcome = charge(&order)?;
            kv::set(
                &key,
                &router_guest::serde_json::to_vec(&outcome)?,
                Some(ORDER_MEMORY),
            )?;
            outcome
        }
    };
    let source = config::get_or("source", "/payment-service");
    let reply = match outcome {
        Outcome::Processed(payment_id) => {
            log::info(format!(
                "order {}: paid {} {}",
                order.order_id, order.total_amount, order.currency
            ));
            let mut data = Map::new();
            data.insert("orderId".into(), json!(order.order_id));
            data.insert("paymentId".into(), json!(payment_id));
            data.insert("amount".into(), json!(order.total_amount));
            data.insert("currency".into(), json!(order.currency));
            data.insert("paymentMethod".into(), json!(order.payment_method));
            data.insert("items".into(), json!(order.items));
            if let Some(address) = &order.shipping_address {
                data.insert("shippingAddress".into(), address.clone());
            }
            Event::new(format!("{}-paid", event.id()), source, PROCESSED).with_json_data(&data)?
        }
        Outcome::Failed(reason) => {
            log::warn(format!(
                "order {}: payment declined: {reason}",
                order.order_id
            ));
            Event::new(format!("{}-payment-failed", event.id()), source, FAILED).with_json_data(
                &json!({
                    "orderId": order.order_id,
                    "amount": order.total_amount,
                    "currency": order.currency,
                    "reason": reason,
                    "items": order.items,
                }),
            )?
        }
    };
    Ok(vec![reply.with_subject(order.order_id)])
}

/// The payment provider's decision: a limit on the amount.
fn charge(order: &Reserved) -> Result<Outcome, HandlerError> {
    let text = config::get_or("max_amount", "1000");
    let limit: f64 = text.parse().map_err(|_| {
        HandlerError::fatal(format!(
            "plugin config: max_amount {text:?} is not a number"
        ))
    })?;
    Ok(if order.total_amount > limit {
        Outcome::Failed(format!(
            "amount {} {} is over the limit of {limit}",
            order.total_amount, order.currency
        ))
    } else {
        Outcome::Processed(format!("pay-{}", order.order_id))
    })
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    fn reserved(id: &str, order: &str, amount: f64) -> Event {
        Event::new(id, "/inventory-service", RESERVED)
            .with_json_data(&json!({
                "orderId": order,
                "items": [{"productId": "SKU-1", "quantity": 2, "reservationId": "res-o-1-SKU-1"}],
                "totalAmount": amount,
                "currency": "EUR",
                "paymentMethod": "card",
                "shippingAddress": {"city": "Berlin"},
                "userId": "u-1",
            }))
            .expect("JSON")
    }

    fn only(events: Vec<Event>) -> (Event, Value) {
        assert_eq!(events.len(), 1);
        let event = events.into_iter().next().expect("one event");
        let data = event.data_json().expect("JSON data");
        (event, data)
    }

    fn setup() {
        testing::clear_kv();
        testing::clear_config();
        testing::set_config("max_amount", "500");
    }

    #[test]
    fn an_amount_within_the_limit_is_paid() {
        setup();
        let (event, data) = only(handle(reserved("r-1", "o-1", 500.0)).expect("handled"));
        assert_eq!(
            (event.id(), event.ty(), event.subject()),
            ("r-1-paid", PROCESSED, Some("o-1"))
        );
        assert_eq!(
            data,
            json!({
                "orderId": "o-1",
                "paymentId": "pay-o-1",
                "amount": 500.0,
                "currency": "EUR",
                "paymentMethod": "card",
                "items": [{"productId": "SKU-1", "quantity": 2, "reservationId": "res-o-1-SKU-1"}],
                "shippingAddress": {"city": "Berlin"},
            })
        );
    }

    #[test]
    fn an_amount_over_the_limit_fails_with_the_items_to_release() {
        setup();
        let (event, data) = only(handle(reserved("r-1", "o-1", 500.01)).expect("handled"));
        assert_eq!((event.id(), event.ty()), ("r-1-payment-failed", FAILED));
        assert_eq!(data["reason"], "amount 500.01 EUR is over the limit of 500");
        assert_eq!(data["items"][0]["reservationId"], "res-o-1-SKU-1");
    }

    #[test]
    fn a_redelivery_gets_the_remembered_outcome() {
        setup();
        let first = handle(reserved("r-1", "o-1", 10.0)).expect("handled");
        // Even if the limit changed in between: the order was charged already.
        testing::set_config("max_amount", "1");
        assert_eq!(
            handle(reserved("r-1", "o-1", 10.0)).expect("handled"),
            first
        );
        let (event, _) = only(handle(reserved("r-2", "o-2", 10.0)).expect("handled"));
        assert_eq!(event.ty(), FAILED, "a new order sees the new limit");
    }

    #[test]
    fn bad_data_and_bad_config_are_fatal() {
        setup();
        let error = handle(Event::new("r-1", "/i", RESERVED).with_data("{}", "application/json"))
            .unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("orderId"),
            "{error}"
        );
        let error = handle(reserved("r-1", "o-1", -1.0)).unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("totalAmount"),
            "{error}"
        );
        testing::set_config("max_amount", "lots");
        let error = handle(reserved("r-2", "o-2", 1.0)).unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("max_amount"),
            "{error}"
        );
        assert_eq!(handle(Event::new("x", "/t", "order.created")), Ok(vec![]));
    }
}
