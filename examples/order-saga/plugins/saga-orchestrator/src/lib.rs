//! The order saga's compensation: the seed's `OrderSaga.compensate`, as a
//! table of steps instead of a loop over a repository.
//!
//! The saga's steps, in order: `reserve-inventory` (compensated by
//! `inventory.release-requested`, done when `inventory.released` arrives),
//! `process-payment` and `ship-order`. When a step fails (`payment.failed`,
//! `inventory.reservation-failed`), the completed steps before it are
//! compensated in reverse order, one after the other: the orchestrator emits
//! the compensation of the nearest compensable step before the failed one, and
//! when that compensation is done, the next one below it; when none is left it
//! emits `order.cancelled` with the failure's reason.
//!
//! Stateless on purpose: which steps completed follows from which step failed
//! (a step runs only after the one before it succeeded), so no saga repository
//! is read, and no read can race the events of the same saga. The saga's state
//! is kept by the projection (`saga-projection`). Emitted ids derive from the
//! incoming id, and the compensations themselves are idempotent where their
//! effect happens (inventory releases an order once), so a redelivery is
//! harmless. The router carries the saga id (`correlationid`) onto every event
//! emitted here.
//!
//! Config: `source` (default `/order-saga`).

use router_guest::serde_json::{Value, json};
use router_guest::{Event, HandlerError, config, handler, log};
use serde::Deserialize;

/// The saga is over: everything done before the failure was undone.
const CANCELLED: &str = "order.cancelled";

/// One step of the saga.
struct Step {
    /// Its name, as in the seed's `executeStep`.
    name: &'static str,
    /// The event that says it failed, if it can fail.
    failed: Option<&'static str>,
    /// How to undo it: the request, and the event that says it is undone.
    compensation: Option<(&'static str, &'static str)>,
}

/// The saga's steps, in the order they run. `process-payment` has no
/// compensation here: it is the last step that can fail, so a refund is never
/// needed (see the README, "Not covered").
const STEPS: &[Step] = &[
    Step {
        name: "reserve-inventory",
        failed: Some("inventory.reservation-failed"),
        compensation: Some(("inventory.release-requested", "inventory.released")),
    },
    Step {
        name: "process-payment",
        failed: Some("payment.failed"),
        compensation: None,
    },
    Step {
        name: "ship-order",
        failed: None,
        compensation: None,
    },
];

/// What the orchestrator reads of a failure or a compensation.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outcome {
    /// The order.
    order_id: String,
    /// Why the saga is compensating.
    #[serde(default)]
    reason: Option<String>,
    /// The reserved items, passed on to the compensation.
    #[serde(default)]
    items: Vec<Value>,
}

/// Reacts to a failed step or a finished compensation; ignores everything else.
fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    // Where the compensation starts: below the step that failed, or below the
    // step whose compensation is now done.
    let below = STEPS.iter().position(|s| {
        s.failed == Some(event.ty()) || s.compensation.is_some_and(|(_, done)| done == event.ty())
    });
    let Some(below) = below else {
        return Ok(vec![]);
    };
    let outcome: Outcome = event.data_json()?;
    if outcome.order_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "event {} has an empty orderId",
            event.id()
        )));
    }
    let reason = outcome
        .reason
        .unwrap_or_else(|| format!("{} failed", STEPS[below].name));
    let source = config::get_or("source", "/order-saga");
    let next = STEPS[..below]
        .iter()
        .rev()
        .find_map(|s| s.compensation.map(|(request, _)| (s.name, request)));
    let emitted = match next {
        Some((step, request)) => {
            log::info(format!(
                "order {}: compensating {step}: {reason}",
                outcome.order_id
            ));
            let suffix = request.rsplit('.').next().unwrap_or(request);
            Event::new(format!("{}-{suffix}", event.id()), source, request).with_json_data(
                &json!({
                    "orderId": outcome.order_id,
                    "items": outcome.items,
                    "reason": reason,
                }),
            )?
        }
        None => {
            log::warn(format!("order {} cancelled: {reason}", outcome.order_id));
            Event::new(format!("{}-cancelled", event.id()), source, CANCELLED)
                .with_json_data(&json!({ "orderId": outcome.order_id, "reason": reason }))?
        }
    };
    Ok(vec![emitted.with_subject(outcome.order_id)])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, ty: &str, data: Value) -> Event {
        Event::new(id, "/t", ty)
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
    fn a_failed_payment_releases_the_stock_then_cancels() {
        let items =
            json!([{"productId": "SKU-1", "quantity": 2, "reservationId": "res-o-1-SKU-1"}]);
        let failed = event(
            "p-1",
            "payment.failed",
            json!({"orderId": "o-1", "amount": 5000, "reason": "declined", "items": items}),
        );
        let (request, data) = only(handle(failed).expect("handled"));
        assert_eq!(
            (
                request.id(),
                request.ty(),
                request.subject(),
                request.source()
            ),
            (
                "p-1-release-requested",
                "inventory.release-requested",
                Some("o-1"),
                "/order-saga"
            )
        );
        assert_eq!(
            data,
            json!({"orderId": "o-1", "items": items, "reason": "declined"})
        );

        let released = event(
            "r-1",
            "inventory.released",
            json!({"orderId": "o-1", "items": items, "reason": "declined"}),
        );
        let (cancelled, data) = only(handle(released).expect("handled"));
        assert_eq!(
            (cancelled.id(), cancelled.ty()),
            ("r-1-cancelled", CANCELLED)
        );
        assert_eq!(data, json!({"orderId": "o-1", "reason": "declined"}));
    }

    #[test]
    fn a_failed_reservation_has_nothing_to_compensate() {
        let failed = event(
            "i-1",
            "inventory.reservation-failed",
            json!({"orderId": "o-2", "reason": "no stock"}),
        );
        let (cancelled, data) = only(handle(failed).expect("handled"));
        assert_eq!(
            (cancelled.id(), cancelled.ty()),
            ("i-1-cancelled", CANCELLED)
        );
        assert_eq!(data, json!({"orderId": "o-2", "reason": "no stock"}));
        let failed = event(
            "i-2",
            "inventory.reservation-failed",
            json!({"orderId": "o-3"}),
        );
        let (_, data) = only(handle(failed).expect("handled"));
        assert_eq!(data["reason"], "reserve-inventory failed");
    }

    #[test]
    fn other_events_are_ignored_and_bad_data_is_fatal() {
        for ty in [
            "order.created",
            "inventory.reserved",
            "payment.processed",
            "order.shipped",
        ] {
            assert_eq!(
                handle(event("x", ty, json!({"orderId": "o-1"}))),
                Ok(vec![]),
                "{ty}"
            );
        }
        let error = handle(event("x", "payment.failed", json!({"reason": "r"}))).unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("orderId"),
            "{error}"
        );
        let error = handle(event("x", "payment.failed", json!({"orderId": ""}))).unwrap_err();
        assert!(!error.is_retryable(), "{error}");
    }
}
