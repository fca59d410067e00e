//! The e-commerce example's Catalog service: keeps one view per product (stock
//! from the Warehouse service, price from the Pricing service) in the plugin's
//! key-value store, tells the storefront when a view changes, and answers
//! queries for a view.
//!
//! - `warehouse.stock.updated` and `pricing.price.updated` update their half of
//!   the view of `sku` and emit `catalog.product.updated` with the merged view.
//!   Each half carries the producer's `version` (a counter per SKU that only
//!   grows) and `updatedAt`: an update whose version is not newer than the one
//!   the view holds arrived out of order (or was published twice) and is
//!   ignored, so a late stock level never overwrites a newer one.
//! - `catalog.product.requested` (`{"sku"}`) emits `catalog.product.viewed` with
//!   `found` and the current view (or `null`).
//!
//! Idempotent, as the ADR asks of every handler: emitted ids derive from the
//! incoming id (`<id>-view`, `<id>-viewed`), and the outcome of each update is
//! remembered for 24 hours (the dedup window) under its `source` and `id`, so a
//! redelivered update changes nothing and emits the same event again. An update
//! whose view was written but whose outcome was not (a crash in between) is
//! recognised by the event id stored with its half of the view.
//!
//! The read-modify-write of a view is safe when one product's updates are
//! routed one at a time: producers set the `partitionkey` extension to the SKU,
//! which durable mode routes in order, one entry after the other.
//!
//! Config: `source`, the source of emitted events (default `/catalog`).
//!
//! Keys: `product:SKU` (the view, JSON), `outcome:SOURCE:ID` (`stale`, or the
//! emitted view).

use router_guest::{Event, HandlerError, config, handler, kv, log, serde_json};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Warehouse: the stock of a product changed.
pub const STOCK_UPDATED: &str = "warehouse.stock.updated";
/// Pricing: the price of a product changed.
pub const PRICE_UPDATED: &str = "pricing.price.updated";
/// Storefront: asks for the view of a product.
pub const PRODUCT_REQUESTED: &str = "catalog.product.requested";
/// Emitted: the merged view of a product changed.
pub const PRODUCT_UPDATED: &str = "catalog.product.updated";
/// Emitted: the answer to a `catalog.product.requested`.
pub const PRODUCT_VIEWED: &str = "catalog.product.viewed";
/// `$id` of the schema of [`PRODUCT_UPDATED`], set as the emitted `dataschema`.
pub const UPDATED_SCHEMA: &str =
    "https://schemas.example.com/ecommerce/catalog.product.updated/v1.json";
/// `$id` of the schema of [`PRODUCT_VIEWED`].
pub const VIEWED_SCHEMA: &str =
    "https://schemas.example.com/ecommerce/catalog.product.viewed/v1.json";
/// How long the outcome of an update is remembered: the ADR's dedup window.
const OUTCOME_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// The outcome recorded for an update that was ignored.
const STALE: &[u8] = b"stale";

/// `warehouse.stock.updated` data; other fields (`warehouseId`...) are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StockUpdated {
    sku: String,
    quantity: i64,
    version: u64,
    updated_at: Option<String>,
}

/// `pricing.price.updated` data; `amount` is in minor units (cents).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PriceUpdated {
    sku: String,
    amount: i64,
    currency: String,
    version: u64,
    updated_at: Option<String>,
}

/// `catalog.product.requested` data.
#[derive(Deserialize)]
struct ProductRequested {
    sku: String,
}

/// The view of one product, as stored and as emitted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductView {
    /// The product.
    pub sku: String,
    /// The last stock level applied, if any.
    pub stock: Option<Stock>,
    /// The last price applied, if any.
    pub price: Option<Price>,
    /// In stock and priced: the storefront may sell it.
    pub available: bool,
    /// Grows by one with every applied update, so that the storefront can drop a
    /// `catalog.product.updated` that reaches it after a newer one.
    pub revision: u64,
}

/// The stock half of a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stock {
    /// Units on hand.
    pub quantity: i64,
    /// The warehouse's version of this level.
    pub version: u64,
    /// When the warehouse changed it, as it said.
    pub updated_at: Option<String>,
    /// The id of the event that set it.
    pub event_id: String,
}

/// The price half of a view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Price {
    /// In minor units (cents).
    pub amount: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// The pricing service's version of this price.
    pub version: u64,
    /// When pricing changed it, as it said.
    pub updated_at: Option<String>,
    /// The id of the event that set it.
    pub event_id: String,
}

/// What an update does to a view.
enum Applied {
    /// Newer than what the view holds: the view changed.
    Changed,
    /// This very event set the half already (its outcome was not recorded).
    Already,
    /// Not newer: ignored.
    Stale {
        /// The version the view holds.
        held: u64,
    },
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.ty() {
        STOCK_UPDATED | PRICE_UPDATED => update(&event),
        PRODUCT_REQUESTED => answer(&event),
        _ => Ok(vec![]),
    }
}

/// Applies a stock or price update to its product's view.
fn update(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let outcome_key = format!("outcome:{}:{}", event.source(), event.id());
    // Seen before (a redelivery): the same answer, and nothing applied twice.
    if let Some(done) = kv::get(&outcome_key)? {
        if done == STALE {
            return Ok(vec![]);
        }
        let view: ProductView = serde_json::from_slice(&done).map_err(|e| {
            HandlerError::fatal(format!("the outcome stored for {}: {e}", event.id()))
        })?;
        return Ok(vec![updated(event, &view)?]);
    }
    let update = Update::parse(event)?;
    let sku = update.sku().to_owned();
    let mut view = load(&sku)?.unwrap_or_else(|| ProductView {
        sku: sku.clone(),
        ..ProductView::default()
    });
    match update.apply(&mut view, event.id()) {
        Applied::Stale { held } => {
            log::info(format!(
                "{} {} for {sku} is stale (version {held} is newer or the same); ignored",
                event.ty(),
                event.id()
            ));
            kv::set(&outcome_key, STALE, Some(OUTCOME_MEMORY))?;
            Ok(vec![])
        }
        applied => {
            if matches!(applied, Applied::Changed) {
                view.revision += 1;
                view.available =
                    view.price.is_some() && view.stock.as_ref().is_some_and(|s| s.quantity > 0);
                // The view first, then the outcome: a crash in between leaves an
                // update that `Applied::Already` recognises, never one half-done.
                kv::set(&view_key(&sku), &encode(&view)?, None)?;
            }
            kv::set(&outcome_key, &encode(&view)?, Some(OUTCOME_MEMORY))?;
            Ok(vec![updated(event, &view)?])
        }
    }
}

/// A stock or a price update, checked.
enum Update {
    /// From the warehouse.
    Stock(StockUpdated),
    /// From pricing.
    Price(PriceUpdated),
}

impl Update {
    /// Reads and checks the data of a stock or price event.
    fn parse(event: &Event) -> Result<Self, HandlerError> {
        let bad =
            |what: String| HandlerError::fatal(format!("{} {}: {what}", event.ty(), event.id()));
        let update = if event.ty() == STOCK_UPDATED {
            let stock: StockUpdated = event.data_json()?;
            if stock.quantity < 0 {
                return Err(bad(format!("quantity {} is negative", stock.quantity)));
            }
            Self::Stock(stock)
        } else {
            let price: PriceUpdated = event.data_json()?;
            if price.amount < 0 || price.currency.len() != 3 {
                return Err(bad(format!(
                    "price {} {:?} is not a price",
                    price.amount, price.currency
                )));
            }
            Self::Price(price)
        };
        check_sku(event, update.sku())?;
        Ok(update)
    }

    fn sku(&self) -> &str {
        match self {
            Self::Stock(s) => &s.sku,
            Self::Price(p) => &p.sku,
        }
    }

    /// Sets its half of `view` when it is newer than what the view holds.
    fn apply(self, view: &mut ProductView, id: &str) -> Applied {
        match self {
            Self::Stock(s) => {
                let held = view
                    .stock
                    .as_ref()
                    .map(|h| (h.version, h.event_id.as_str()));
                let applied = decide(held, s.version, id);
                if matches!(applied, Applied::Changed) {
                    view.stock = Some(Stock {
                        quantity: s.quantity,
                        version: s.version,
                        updated_at: s.updated_at,
                        event_id: id.to_owned(),
                    });
                }
                applied
            }
            Self::Price(p) => {
                let held = view
                    .price
                    .as_ref()
                    .map(|h| (h.version, h.event_id.as_str()));
                let applied = decide(held, p.version, id);
                if matches!(applied, Applied::Changed) {
                    view.price = Some(Price {
                        amount: p.amount,
                        currency: p.currency,
                        version: p.version,
                        updated_at: p.updated_at,
                        event_id: id.to_owned(),
                    });
                }
                applied
            }
        }
    }
}

/// Whether an update of version `version` from event `id` replaces the half
/// that holds `held` (its version and the id of the event that set it): only a
/// newer version does; the same version from the same event was applied already.
fn decide(held: Option<(u64, &str)>, version: u64, id: &str) -> Applied {
    match held {
        Some((v, by)) if v == version && by == id => Applied::Already,
        Some((v, _)) if v >= version => Applied::Stale { held: v },
        _ => Applied::Changed,
    }
}

/// Answers a query with the current view of the product.
fn answer(event: &Event) -> Result<Vec<Event>, HandlerError> {
    let query: ProductRequested = event.data_json()?;
    check_sku(event, &query.sku)?;
    let view = load(&query.sku)?;
    let reply = Event::new(
        format!("{}-viewed", event.id()),
        config::get_or("source", "/catalog"),
        PRODUCT_VIEWED,
    )
    .with_subject(query.sku.clone())
    .with_dataschema(VIEWED_SCHEMA)
    .with_json_data(&serde_json::json!({
        "sku": query.sku,
        "found": view.is_some(),
        "view": view,
    }))?;
    Ok(vec![reply])
}

/// The `catalog.product.updated` event for `view`, caused by `event`.
fn updated(event: &Event, view: &ProductView) -> Result<Event, HandlerError> {
    Event::new(
        format!("{}-view", event.id()),
        config::get_or("source", "/catalog"),
        PRODUCT_UPDATED,
    )
    .with_subject(view.sku.clone())
    .with_dataschema(UPDATED_SCHEMA)
    .with_json_data(view)
}

fn check_sku(event: &Event, sku: &str) -> Result<(), HandlerError> {
    if sku.is_empty() {
        return Err(HandlerError::fatal(format!(
            "{} {} has an empty sku",
            event.ty(),
            event.id()
        )));
    }
    Ok(())
}

fn view_key(sku: &str) -> String {
    format!("product:{sku}")
}

/// The stored view of `sku`, if any.
fn load(sku: &str) -> Result<Option<ProductView>, HandlerError> {
    match kv::get(&view_key(sku))? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            HandlerError::fatal(format!("the stored view of {sku} is not a view: {e}"))
        }),
    }
}

fn encode(view: &ProductView) -> Result<Vec<u8>, HandlerError> {
    serde_json::to_vec(view)
        .map_err(|e| HandlerError::fatal(format!("cannot encode the view of {}: {e}", view.sku)))
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::{Value, json};

    fn stock(id: &str, sku: &str, quantity: i64, version: u64) -> Event {
        Event::new(id, "/warehouse", STOCK_UPDATED)
            .with_json_data(&json!({
                "sku": sku, "warehouseId": "wh-1", "quantity": quantity,
                "version": version, "updatedAt": "2025-11-17T10:00:00Z",
            }))
            .expect("JSON")
    }

    fn price(id: &str, sku: &str, amount: i64, version: u64) -> Event {
        Event::new(id, "/pricing", PRICE_UPDATED)
            .with_json_data(&json!({
                "sku": sku, "amount": amount, "currency": "EUR", "version": version,
            }))
            .expect("JSON")
    }

    fn request(id: &str, sku: &str) -> Event {
        Event::new(id, "/storefront", PRODUCT_REQUESTED)
            .with_json_data(&json!({ "sku": sku }))
            .expect("JSON")
    }

    /// The one event emitted, with its data.
    fn only(events: Vec<Event>) -> (Event, Value) {
        assert_eq!(events.len(), 1, "{events:?}");
        let event = events.into_iter().next().expect("one event");
        let data = event.data_json().expect("JSON data");
        (event, data)
    }

    #[test]
    fn merges_stock_and_price_into_one_view() {
        router_guest::testing::clear_kv();
        let (event, data) = only(handle(stock("s-1", "SKU-1", 7, 1)).expect("handled"));
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.subject()),
            ("s-1-view", "/catalog", PRODUCT_UPDATED, Some("SKU-1"))
        );
        assert_eq!(event.dataschema(), Some(UPDATED_SCHEMA));
        assert_eq!(data["available"], false, "no price yet: {data}");
        assert_eq!(data["price"], Value::Null);
        let (_, data) = only(handle(price("p-1", "SKU-1", 1999, 1)).expect("handled"));
        assert_eq!(
            data,
            json!({
                "sku": "SKU-1",
                "stock": {"quantity": 7, "version": 1, "updatedAt": "2025-11-17T10:00:00Z", "eventId": "s-1"},
                "price": {"amount": 1999, "currency": "EUR", "version": 1, "updatedAt": null, "eventId": "p-1"},
                "available": true,
                "revision": 2,
            })
        );
        let (_, data) = only(handle(stock("s-2", "SKU-1", 0, 2)).expect("handled"));
        assert_eq!(data["available"], false, "sold out: {data}");
    }

    #[test]
    fn an_out_of_order_update_is_ignored() {
        router_guest::testing::clear_kv();
        let _ = only(handle(stock("s-3", "SKU-2", 3, 3)).expect("handled"));
        assert_eq!(handle(stock("s-2", "SKU-2", 50, 2)), Ok(vec![]), "older");
        assert_eq!(
            handle(stock("s-9", "SKU-2", 60, 3)),
            Ok(vec![]),
            "same version"
        );
        let _ = only(handle(price("p-5", "SKU-2", 500, 5)).expect("handled"));
        assert_eq!(handle(price("p-4", "SKU-2", 400, 4)), Ok(vec![]));
        let (_, data) = only(handle(request("q-1", "SKU-2")).expect("handled"));
        assert_eq!(data["view"]["stock"]["quantity"], 3);
        assert_eq!(data["view"]["price"]["amount"], 500);
        assert_eq!(data["view"]["revision"], 2, "two updates applied");
    }

    #[test]
    fn a_redelivered_update_changes_nothing_and_emits_the_same_event() {
        router_guest::testing::clear_kv();
        let (first, data) = only(handle(stock("s-1", "SKU-3", 4, 1)).expect("handled"));
        let _ = only(handle(stock("s-2", "SKU-3", 9, 2)).expect("handled"));
        let (again, replayed) = only(handle(stock("s-1", "SKU-3", 4, 1)).expect("handled"));
        assert_eq!(again.id(), first.id());
        assert_eq!(replayed, data, "the outcome of the first delivery");
        let (_, view) = only(handle(request("q-1", "SKU-3")).expect("handled"));
        assert_eq!(view["view"]["stock"]["quantity"], 9, "not rolled back");
        assert_eq!(view["view"]["revision"], 2);
        // A stale update stays ignored when delivered again.
        assert_eq!(handle(stock("s-0", "SKU-3", 1, 0)), Ok(vec![]));
        assert_eq!(handle(stock("s-0", "SKU-3", 1, 0)), Ok(vec![]));
    }

    #[test]
    fn an_update_applied_before_its_outcome_was_recorded_is_emitted_again() {
        router_guest::testing::clear_kv();
        let (_, data) = only(handle(price("p-1", "SKU-4", 100, 1)).expect("handled"));
        // As after a crash between writing the view and writing the outcome.
        kv::delete("outcome:/pricing:p-1").expect("delete");
        let (again, replayed) = only(handle(price("p-1", "SKU-4", 100, 1)).expect("handled"));
        assert_eq!(again.id(), "p-1-view");
        assert_eq!(replayed, data);
        assert_eq!(replayed["revision"], 1, "applied once");
    }

    #[test]
    fn answers_queries_for_known_and_unknown_products() {
        router_guest::testing::clear_kv();
        router_guest::testing::set_config("source", "/shop/catalog");
        let (event, data) = only(handle(request("q-1", "SKU-none")).expect("handled"));
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.subject()),
            (
                "q-1-viewed",
                "/shop/catalog",
                PRODUCT_VIEWED,
                Some("SKU-none")
            )
        );
        assert_eq!(
            data,
            json!({"sku": "SKU-none", "found": false, "view": null})
        );
        let _ = only(handle(stock("s-1", "SKU-5", 2, 1)).expect("handled"));
        let (_, data) = only(handle(request("q-2", "SKU-5")).expect("handled"));
        assert_eq!(data["found"], true);
        assert_eq!(data["view"]["stock"]["quantity"], 2);
        router_guest::testing::clear_config();
    }

    #[test]
    fn bad_data_is_fatal() {
        router_guest::testing::clear_kv();
        for (event, problem) in [
            (Event::new("e-1", "/w", STOCK_UPDATED), "no data"),
            (stock("e-2", "", 1, 1), "empty sku"),
            (stock("e-3", "SKU-1", -1, 1), "negative"),
            (price("e-4", "SKU-1", -5, 1), "not a price"),
            (
                Event::new("e-5", "/p", PRICE_UPDATED)
                    .with_json_data(&json!({"sku": "SKU-1", "amount": 1}))
                    .expect("JSON"),
                "currency",
            ),
            (request("e-6", ""), "empty sku"),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
    }

    #[test]
    fn ignores_other_types() {
        assert_eq!(
            handle(Event::new("e-1", "/o", "payment.processed")),
            Ok(vec![])
        );
    }
}
