//! The demo's inventory service: reserves stock for new orders.
//!
//! `com.example.order.created` -> `com.example.inventory.reserved` when every item
//! has a positive quantity, `com.example.order.rejected` otherwise. Ids are derived
//! from the order, so a redelivered order yields the same reservation.

use router_guest::{Event, HandlerError, config, handler, log};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    order_id: String,
    #[serde(default)]
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    product_id: String,
    quantity: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    product_id: String,
    quantity: i64,
    reservation_id: String,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != "com.example.order.created" {
        return Ok(Vec::new());
    }
    let order: Order = event.data_json()?;
    let source = config::get_or("source", "/inventory");
    let problem = match order.items.iter().find(|i| i.quantity <= 0) {
        _ if order.items.is_empty() => Some("no items".to_owned()),
        Some(item) => Some(format!(
            "item {} has quantity {}",
            item.product_id, item.quantity
        )),
        None => None,
    };
    let reply = match problem {
        Some(reason) => {
            log::warn(&format!("order {} rejected: {reason}", order.order_id));
            Event::new(
                format!("{}-rejected", event.id()),
                source,
                "com.example.order.rejected",
            )
            .with_json_data(&serde_json::json!({ "orderId": order.order_id, "reason": reason }))?
        }
        None => {
            let items: Vec<Reservation> = order
                .items
                .into_iter()
                .map(|i| Reservation {
                    reservation_id: format!("res-{}-{}", order.order_id, i.product_id),
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect();
            Event::new(
                format!("{}-reserved", event.id()),
                source,
                "com.example.inventory.reserved",
            )
            .with_json_data(&serde_json::json!({ "orderId": order.order_id, "items": items }))?
        }
    };
    Ok(vec![reply.with_subject(order.order_id)])
}

handler!(handle);
