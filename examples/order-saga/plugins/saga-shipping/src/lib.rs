//! The order saga's shipping service: the last step, run once the order is paid.
//!
//! On `payment.processed` it books a shipment and emits `order.shipped` with the
//! seed's `OrderShippedEvent` data: `orderId`, `trackingNumber`, `carrier` and
//! `estimatedDelivery` (a date, `delivery_days` after the booking). The tracking
//! number derives from the carrier and the order, so it is stable.
//!
//! Idempotent: the shipment of each order is remembered, so a redelivered payment
//! books nothing twice and gets the same tracking number and date; emitted ids
//! derive from the incoming id.
//!
//! Config: `source` (default `/shipping-service`); `carrier` (default `DHL`);
//! `delivery_days` (default 3).
//!
//! Keys: `shipment:ORDER` (the shipment, as JSON).

use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The event this step runs on.
const PROCESSED: &str = "payment.processed";
/// The saga's happy end.
const SHIPPED: &str = "order.shipped";
/// How long a shipment is remembered.
const ORDER_MEMORY: Duration = Duration::from_secs(7 * 24 * 3600);

/// `payment.processed`, as far as shipping reads it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paid {
    /// The order.
    order_id: String,
}

/// `order.shipped`, and what this plugin remembers of a shipment.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Shipment {
    /// The order.
    order_id: String,
    /// The carrier's number for the parcel.
    tracking_number: String,
    /// Who carries it.
    carrier: String,
    /// When it should arrive, `YYYY-MM-DD`.
    estimated_delivery: String,
}

/// Ships a paid order, or replays the shipment of an earlier delivery.
fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != PROCESSED {
        return Ok(vec![]);
    }
    let paid: Paid = event.data_json()?;
    if paid.order_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "payment {} has an empty orderId",
            event.id()
        )));
    }
    let key = format!("shipment:{}", paid.order_id);
    let shipment = match kv::get(&key)? {
        Some(bytes) => router_guest::serde_json::from_slice(&bytes).map_err(|e| {
            HandlerError::fatal(format!("the shipment of {} is corrupt: {e}", paid.order_id))
        })?,
        None => {
            let shipment = book(paid.order_id)?;
            kv::set(
                &key,
                &router_guest::serde_json::to_vec(&shipment)?,
                Some(ORDER_MEMORY),
            )?;
            log::info(format!(
                "order {}: shipped with {} as {}",
                shipment.order_id, shipment.carrier, shipment.tracking_number
            ));
            shipment
        }
    };
    let source = config::get_or("source", "/shipping-service");
    let shipped = Event::new(format!("{}-shipped", event.id()), source, SHIPPED)
        .with_subject(shipment.order_id.clone())
        .with_json_data(&shipment)?;
    Ok(vec![shipped])
}

/// Books a shipment with the configured carrier.
fn book(order_id: String) -> Result<Shipment, HandlerError> {
    let carrier = config::get_or("carrier", "DHL");
    let text = config::get_or("delivery_days", "3");
    let days: u64 = text.parse().map_err(|_| {
        HandlerError::fatal(format!(
            "plugin config: delivery_days {text:?} is not a number"
        ))
    })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| HandlerError::retryable(format!("the clock is before 1970: {e}")))?;
    Ok(Shipment {
        tracking_number: tracking_number(&carrier, &order_id),
        estimated_delivery: date(now.as_secs() / 86_400 + days),
        carrier,
        order_id,
    })
}

/// `CARRIER-` and ten digits from a hash (FNV-1a) of the order: the same order
/// always gets the same number.
fn tracking_number(carrier: &str, order_id: &str) -> String {
    let hash = order_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let prefix: String = carrier
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    format!("{prefix}-{:010}", hash % 10_000_000_000)
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn date(days_since_epoch: u64) -> String {
    let z = days_since_epoch as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::{Value, json};
    use router_guest::testing;

    fn paid(id: &str, order: &str) -> Event {
        Event::new(id, "/payment-service", PROCESSED)
            .with_json_data(&json!({"orderId": order, "paymentId": format!("pay-{order}"), "amount": 12.5, "currency": "EUR"}))
            .expect("JSON")
    }

    #[test]
    fn a_paid_order_is_shipped_once() {
        testing::clear_kv();
        testing::clear_config();
        testing::set_config("carrier", "UPS");
        let events = handle(paid("p-1", "o-1")).expect("handled");
        assert_eq!(events.len(), 1);
        let shipped = &events[0];
        assert_eq!(
            (shipped.id(), shipped.ty(), shipped.subject()),
            ("p-1-shipped", SHIPPED, Some("o-1"))
        );
        let data: Value = shipped.data_json().expect("JSON");
        assert_eq!(data["orderId"], "o-1");
        assert_eq!(data["carrier"], "UPS");
        let tracking = data["trackingNumber"].as_str().expect("tracking number");
        assert!(
            tracking.starts_with("UPS-") && tracking.len() == 14,
            "{tracking}"
        );
        let delivery = data["estimatedDelivery"].as_str().expect("date");
        assert!(
            delivery.len() == 10 && delivery.as_bytes()[4] == b'-',
            "{delivery}"
        );

        // A redelivery, even with another carrier configured by now: the same parcel.
        testing::set_config("carrier", "DHL");
        assert_eq!(handle(paid("p-1", "o-1")).expect("handled"), events);
        let other: Value = handle(paid("p-2", "o-2")).expect("handled")[0]
            .data_json()
            .expect("JSON");
        assert_eq!(other["carrier"], "DHL");
        assert_ne!(other["trackingNumber"], data["trackingNumber"]);
    }

    #[test]
    fn dates_are_civil_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(11_016), "2000-02-29");
        assert_eq!(date(20_089), "2025-01-01");
        assert_eq!(
            tracking_number("d h l", "o-1"),
            tracking_number("DHL", "o-1")
        );
    }

    #[test]
    fn bad_data_and_bad_config_are_fatal() {
        testing::clear_kv();
        testing::clear_config();
        let error = handle(Event::new("p-1", "/p", PROCESSED).with_data("[]", "application/json"))
            .unwrap_err();
        assert!(!error.is_retryable(), "{error}");
        testing::set_config("delivery_days", "soon");
        let error = handle(paid("p-1", "o-1")).unwrap_err();
        assert!(
            !error.is_retryable() && error.message().contains("delivery_days"),
            "{error}"
        );
        assert_eq!(handle(Event::new("x", "/t", "payment.failed")), Ok(vec![]));
    }
}
