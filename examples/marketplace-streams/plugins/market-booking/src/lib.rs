//! The marketplace's booking service: keeps each booking and its payment in its
//! key-value store.
//!
//! - `booking.created`: `booking:BOOKINGID:created` holds the booking (project,
//!   freelancer).
//! - `payment.completed`: `booking:BOOKINGID:paid` holds the payment.
//!
//! A booking is `paid` once its `paid` key exists, `pending` when only `created`
//! does. Each event writes its own key and nothing else, so the two events of a
//! booking may be handled in either order, or at the same time by two router
//! processes, and the outcome is the same: there is no read-modify-write to lose
//! an update in (the seed's "events may arrive out of order"). A redelivered event
//! writes the same value again.

use router_guest::serde::Deserialize;
use router_guest::serde_json::json;
use router_guest::{Event, HandlerError, handler, kv};

/// The fields of the two events this plugin reads.
#[derive(Deserialize)]
#[serde(crate = "router_guest::serde", rename_all = "camelCase")]
struct BookingEvent {
    booking_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    payment_id: Option<String>,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let fact = match event.ty() {
        "booking.created" => "created",
        "payment.completed" => "paid",
        _ => return Ok(vec![]),
    };
    let data: BookingEvent = event.data_json()?;
    if data.booking_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "{} event {} has an empty bookingId",
            event.ty(),
            event.id()
        )));
    }
    let value = json!({
        "projectId": data.project_id,
        "paymentId": data.payment_id,
        "event": event.id(),
    });
    kv::set(
        &format!("booking:{}:{fact}", data.booking_id),
        value.to_string().as_bytes(),
        None,
    )?;
    Ok(vec![])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::Value;

    fn event(ty: &str, data: Value) -> Event {
        Event::new("e-1", "/booking-service", ty)
            .with_json_data(&data)
            .expect("JSON")
    }

    /// `paid`, `pending` or `unknown`, as a reader of the store derives it.
    fn status(id: &str) -> &'static str {
        let has = |fact: &str| {
            kv::get(&format!("booking:{id}:{fact}"))
                .expect("kv")
                .is_some()
        };
        if has("paid") {
            "paid"
        } else if has("created") {
            "pending"
        } else {
            "unknown"
        }
    }

    #[test]
    fn a_booking_is_pending_then_paid() {
        router_guest::testing::clear_kv();
        handle(event(
            "booking.created",
            json!({"bookingId": "bk_1", "projectId": "prj_1"}),
        ))
        .expect("handled");
        assert_eq!(status("bk_1"), "pending");
        handle(event(
            "payment.completed",
            json!({"bookingId": "bk_1", "paymentId": "pay_1"}),
        ))
        .expect("handled");
        assert_eq!(status("bk_1"), "paid");
        let paid: Value = router_guest::serde_json::from_slice(
            &kv::get("booking:bk_1:paid").expect("kv").expect("stored"),
        )
        .expect("JSON");
        assert_eq!(paid["paymentId"], "pay_1");
    }

    #[test]
    fn the_order_of_the_two_events_does_not_matter() {
        router_guest::testing::clear_kv();
        handle(event(
            "payment.completed",
            json!({"bookingId": "bk_2", "paymentId": "pay_2"}),
        ))
        .expect("handled");
        handle(event(
            "booking.created",
            json!({"bookingId": "bk_2", "projectId": "prj_2"}),
        ))
        .expect("handled");
        assert_eq!(status("bk_2"), "paid");
    }

    #[test]
    fn an_event_without_a_booking_id_is_fatal() {
        let error = handle(event("booking.created", json!({"projectId": "p"}))).unwrap_err();
        assert!(!error.is_retryable());
    }
}
