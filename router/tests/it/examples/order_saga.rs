//! `examples/order-saga`: the order saga of ADR 007 (seed
//! `001_fceffe84c404913f.txt`), end to end, on the example's own `router.toml`
//! and plugins: an order reserved, paid and shipped; one whose payment is
//! declined, compensated in reverse (stock released, order cancelled); one that
//! cannot be reserved; redeliveries; and a poison event in the dead letters, as
//! `router dlq list` shows them.
//!
//! The plugins' key-value stores live in this process's memory, shared by every
//! router started here: each test uses order ids of its own, and only the first
//! test reserves stock.

use super::example_config;
use crate::common::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// The example's router with its outcomes and query answers going to sinks of
/// this test, and its dead letters in a fresh directory.
struct Saga {
    router: TestRouter,
    outcomes: Sink,
    replies: Sink,
    _dir: tempfile::TempDir,
}

impl Saga {
    async fn start() -> Self {
        let outcomes = Sink::start().await;
        let replies = Sink::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let dead_letters = dir.path().join("dead-letters.jsonl");
        let config = example_config(
            "order-saga",
            &[
                ("ORDER_EVENTS_URL", outcomes.url()),
                ("SAGA_REPLIES_URL", replies.url()),
                ("DEAD_LETTER_FILE", dead_letters.display().to_string()),
            ],
        );
        Self {
            router: TestRouter::start_config(&config).await,
            outcomes,
            replies,
            _dir: dir,
        }
    }

    /// POSTs an event in binary mode from the order service, with `extra`
    /// headers; returns the status and the report of the event.
    async fn send(
        &self,
        id: &str,
        ty: &str,
        data: &Value,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", "/order-service"),
            ("ce-type", ty),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        let (status, body) =
            post_binary(&self.router.events_url(), &headers, data.to_string()).await;
        (status, body["events"][0].clone())
    }

    /// Sends a query and returns the data of the answer the replies sink got.
    async fn ask(&self, id: &str, ty: &str, data: Value, answer_ty: &str) -> Value {
        let (status, report) = self.send(id, ty, &data, &[]).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let answer =
            find(&report, answer_ty).unwrap_or_else(|| panic!("{ty} got no {answer_ty}: {report}"));
        let answer_id = answer["id"].as_str().expect("id").to_owned();
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let got = self.replies.received();
            if let Some(reply) = got
                .iter()
                .find(|r| r.ce("id").as_deref() == Some(&answer_id))
            {
                assert_eq!(reply.ce("type").as_deref(), Some(answer_ty));
                return reply.json();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{answer_id} never reached the replies sink"
            );
            self.replies.wait_for(got.len() + 1).await;
        }
    }

    /// The order's state, as the projection answers `order.state-requested`.
    async fn state(&self, query_id: &str, order_id: &str) -> Value {
        self.ask(
            query_id,
            "order.state-requested",
            json!({ "orderId": order_id }),
            "order.state",
        )
        .await
    }

    /// Available units of each product, as inventory answers `inventory.stock-requested`.
    async fn available(&self, query_id: &str, products: &[&str]) -> Vec<i64> {
        let answer = self
            .ask(
                query_id,
                "inventory.stock-requested",
                json!({ "productIds": products }),
                "inventory.stock",
            )
            .await;
        let levels = answer["stock"].as_array().expect("stock").clone();
        assert_eq!(levels.len(), products.len(), "{answer}");
        levels
            .iter()
            .zip(products)
            .map(|(level, product)| {
                assert_eq!(level["productId"], *product);
                level["available"].as_i64().expect("available")
            })
            .collect()
    }
}

/// The report of the first emitted event of type `ty` anywhere in the tree.
fn find<'a>(report: &'a Value, ty: &str) -> Option<&'a Value> {
    report["routes"].as_array()?.iter().find_map(|route| {
        route["emitted"].as_array().and_then(|emitted| {
            emitted.iter().find_map(|e| {
                if e["type"] == ty {
                    Some(e)
                } else {
                    find(e, ty)
                }
            })
        })
    })
}

/// Every route of the tree with its outcome, `route:outcome`, depth first.
fn routes(report: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for route in report["routes"].as_array().into_iter().flatten() {
        all.push(format!(
            "{}:{}",
            route["route"].as_str().unwrap_or("?"),
            route["outcome"].as_str().unwrap_or("?")
        ));
        for emitted in route["emitted"].as_array().into_iter().flatten() {
            all.extend(routes(emitted));
        }
    }
    all
}

/// The types of every event emitted in the tree, depth first.
fn emitted_types(report: &Value) -> Vec<String> {
    let mut all = Vec::new();
    for route in report["routes"].as_array().into_iter().flatten() {
        for emitted in route["emitted"].as_array().into_iter().flatten() {
            all.push(emitted["type"].as_str().unwrap_or("?").to_owned());
            all.extend(emitted_types(emitted));
        }
    }
    all
}

/// An order as the seed's `OrderCreatedEvent` carries it.
fn order(order_id: &str, items: &[(&str, i64)], total: f64) -> Value {
    let items: Vec<_> = items
        .iter()
        .map(|(product, quantity)| json!({ "productId": product, "quantity": quantity }))
        .collect();
    json!({
        "orderId": order_id,
        "userId": "user-42",
        "items": items,
        "totalAmount": total,
        "currency": "EUR",
        "shippingAddress": { "street": "Hauptstr. 1", "city": "Berlin", "country": "DE" },
        "paymentMethod": "card",
    })
}

fn step_names(state: &Value) -> Vec<&str> {
    state["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps: {state}"))
        .iter()
        .map(|s| s["step"].as_str().unwrap_or("?"))
        .collect()
}

#[tokio::test]
async fn orders_are_shipped_or_compensated_and_the_stock_adds_up() {
    let saga = Saga::start().await;
    let stock = saga.available("saga-stock-0", &["SKU-1", "SKU-2"]).await;
    assert_eq!(stock, [10, 5], "the example's configured stock");

    // 1. Reserved, paid, shipped; the client names the saga (the seed's correlationId).
    let placed = order("ord-saga-ok", &[("SKU-1", 2), ("SKU-2", 1)], 149.9);
    let (status, report) = saga
        .send(
            "evt-saga-ok",
            "order.created",
            &placed,
            &[("ce-correlationid", "saga-ok")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        emitted_types(&report),
        ["inventory.reserved", "payment.processed", "order.shipped"],
        "{report}"
    );
    assert!(
        routes(&report).iter().all(|r| r.ends_with(":delivered")),
        "{report}"
    );
    let paid_id = find(&report, "payment.processed").expect("paid")["id"].clone();

    let outcomes = saga.outcomes.wait_for(1).await;
    let shipped = &outcomes[0];
    assert_eq!(shipped.ce("type").as_deref(), Some("order.shipped"));
    assert_eq!(shipped.ce("subject").as_deref(), Some("ord-saga-ok"));
    assert_eq!(shipped.ce("correlationid").as_deref(), Some("saga-ok"));
    assert_eq!(shipped.ce("causationid").as_deref(), paid_id.as_str());
    let shipment = shipped.json();
    assert_eq!(shipment["orderId"], "ord-saga-ok");
    assert_eq!(shipment["carrier"], "DHL");
    let tracking = shipment["trackingNumber"]
        .as_str()
        .expect("tracking number");
    assert!(tracking.starts_with("DHL-"), "{shipment}");
    assert_eq!(
        shipment["estimatedDelivery"].as_str().map(str::len),
        Some(10),
        "{shipment}"
    );

    let state = saga.state("saga-state-ok", "ord-saga-ok").await;
    assert_eq!(state["status"], "shipped", "{state}");
    assert_eq!(
        step_names(&state),
        ["created", "reserved", "paid", "shipped"]
    );
    assert_eq!(state["sagaId"], "saga-ok");
    assert!(
        state["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .all(|s| s["correlationId"] == "saga-ok"),
        "every event of the saga carries its id: {state}"
    );
    assert_eq!(state["paymentId"], "pay-ord-saga-ok");
    assert_eq!(state["trackingNumber"], tracking);
    assert_eq!(state["totalAmount"], 149.9);
    assert_eq!(
        state["reservations"][1]["reservationId"],
        "res-ord-saga-ok-SKU-2"
    );
    let after_ok = saga.available("saga-stock-1", &["SKU-1", "SKU-2"]).await;
    assert_eq!(after_ok, [8, 4], "the shipped order keeps its stock");

    // 2. Over the payment limit: compensated in reverse, the stock comes back.
    let declined = order("ord-saga-big", &[("SKU-1", 3), ("SKU-2", 2)], 5000.0);
    let (status, report) = saga
        .send("evt-saga-big", "order.created", &declined, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        emitted_types(&report),
        [
            "inventory.reserved",
            "payment.failed",
            "inventory.release-requested",
            "inventory.released",
            "order.cancelled"
        ],
        "{report}"
    );
    let outcomes = saga.outcomes.wait_for(2).await;
    let cancelled = &outcomes[1];
    assert_eq!(cancelled.ce("type").as_deref(), Some("order.cancelled"));
    // No correlationid came in: the saga id is the id of the order.created.
    assert_eq!(
        cancelled.ce("correlationid").as_deref(),
        Some("evt-saga-big")
    );
    let reason = cancelled.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("over the limit of 1000"), "{reason}");

    let state = saga.state("saga-state-big", "ord-saga-big").await;
    assert_eq!(state["status"], "cancelled", "{state}");
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
    assert_eq!(state["sagaId"], "evt-saga-big");
    assert_eq!(state["reason"], reason.as_str());
    assert!(state.get("paymentId").is_none() && state.get("trackingNumber").is_none());
    assert_eq!(
        saga.available("saga-stock-2", &["SKU-1", "SKU-2"]).await,
        after_ok,
        "the compensation gave the declined order's stock back"
    );

    // 3. Not enough stock: nothing reserved, nothing to compensate, no payment.
    let too_many = order("ord-saga-short", &[("SKU-1", 1), ("SKU-2", 99)], 10.0);
    let (status, report) = saga
        .send("evt-saga-short", "order.created", &too_many, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        emitted_types(&report),
        ["inventory.reservation-failed", "order.cancelled"],
        "{report}"
    );
    let state = saga.state("saga-state-short", "ord-saga-short").await;
    assert_eq!(
        step_names(&state),
        ["created", "reservation_failed", "cancelled"]
    );
    assert!(
        state["reason"]
            .as_str()
            .is_some_and(|r| r.contains("insufficient stock of SKU-2: 4 available")),
        "{state}"
    );
    assert_eq!(
        saga.available("saga-stock-3", &["SKU-1", "SKU-2"]).await,
        after_ok,
        "all or nothing: SKU-1 was given back"
    );

    // 4. A redelivery (same source and id) is a duplicate: not routed at all.
    let (status, report) = saga
        .send(
            "evt-saga-ok",
            "order.created",
            &placed,
            &[("ce-correlationid", "saga-ok")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["duplicate"], true, "{report}");
    assert!(emitted_types(&report).is_empty(), "{report}");

    // 5. The same order again under a new id (a client retrying on its own):
    // the plugins answer as the first time, and nothing is reserved or charged twice.
    let (status, report) = saga
        .send("evt-saga-ok-retry", "order.created", &placed, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        emitted_types(&report),
        ["inventory.reserved", "payment.processed", "order.shipped"],
        "{report}"
    );
    let outcomes = saga.outcomes.wait_for(4).await;
    let again = outcomes
        .iter()
        .skip(2)
        .find(|r| r.ce("type").as_deref() == Some("order.shipped"))
        .expect("the repeated order.shipped");
    assert_eq!(again.json()["trackingNumber"], tracking, "the same parcel");
    assert_eq!(
        saga.available("saga-stock-4", &["SKU-1", "SKU-2"]).await,
        after_ok,
        "reserved once only"
    );
    let state = saga.state("saga-state-ok-2", "ord-saga-ok").await;
    assert_eq!(
        step_names(&state),
        ["created", "reserved", "paid", "shipped"]
    );
    assert_eq!(
        state["steps"][0]["eventId"], "evt-saga-ok",
        "the event store keeps the first order.created"
    );
}

#[tokio::test]
async fn a_poison_order_is_dead_lettered_and_listed_by_the_cli() {
    let saga = Saga::start().await;
    // JSON, but not an order: no orderId, no items. Retrying cannot fix it.
    let (status, report) = saga
        .send(
            "evt-saga-poison",
            "order.created",
            &json!({ "hello": "world" }),
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "kept as a dead letter, the sender is done: {report}"
    );
    let mut outcomes = routes(&report);
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            "order-projection:dead_lettered",
            "reserve-inventory:dead_lettered"
        ],
        "{report}"
    );
    assert!(saga.outcomes.received().is_empty());

    let url = saga.router.admin_url();
    // tokio's Command: the router under test serves on this test's runtime.
    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &url, "list"])
        .output()
        .await
        .expect("router dlq list");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.starts_with("2 dead letters\n"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("route=reserve-inventory"))
        .unwrap_or_else(|| panic!("no dead letter of reserve-inventory: {stdout}"));
    assert!(line.contains("event=evt-saga-poison"), "{line}");
    assert!(line.contains("attempts=1"), "fatal: no retries: {line}");
    assert!(line.contains("reason=not_retryable"), "{line}");
    assert!(line.contains("missing field `orderId`"), "{line}");
}

/// The commands of the README's "Run it", as written, against a `router serve`
/// on this configuration and the README's own `router sink`: what the router
/// answers and what the sink prints are what the README shows, the failure
/// path included (sink stopped, dead letter, redrive).
#[tokio::test]
async fn the_readme_runs_as_written() {
    let readme = "examples/order-saga/README.md";
    let text = std::fs::read_to_string(crate::readme::repo_root().join(readme)).expect("README");
    assert!(text.contains("target/debug/router serve --config examples/order-saga/router.toml"));
    let dir = tempfile::tempdir().expect("tempdir");
    let dead_letters = dir.path().join("dead-letters.jsonl");
    let mut session = crate::readme::Session::start(
        readme,
        "examples/order-saga/router.toml",
        &[
            ("ORDER_EVENTS_URL", "http://{sink}/"),
            ("SAGA_REPLIES_URL", "http://{sink}/"),
            (
                "DEAD_LETTER_FILE",
                dead_letters.to_str().expect("UTF-8 path"),
            ),
        ],
        &[],
    );
    assert_eq!(session.run().await, 19, "the marked steps of the README");
    // What `dlq list` printed last: the two poison letters, the redriven
    // shipment gone from the file.
    let file = std::fs::read_to_string(&dead_letters).expect("dead letters");
    assert_eq!(file.lines().count(), 2, "{file}");
    assert!(!file.contains("evt-3-reserved-paid-shipped"), "{file}");
}
