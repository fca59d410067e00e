//! The demo of `config/router.toml` (the order flow), end to end: real config
//! file, real plugins, a real sink.

use crate::common::*;
use axum::http::StatusCode;
use router::config::{Config, Source};
use serde_json::json;

const DEMO: &str = "../config/router.toml";

/// The demo configuration, with `SINK_URL` pointing at `sink` and the journal
/// in `journal`'s folder.
fn demo_config(sink: &Sink, journal: &Journal) -> Config {
    let text = std::fs::read_to_string(DEMO).expect("config/router.toml exists");
    let url = sink.url();
    let path = journal.path().to_str().expect("UTF-8 path").to_owned();
    Config::parse(Source::new(DEMO, text), |name| match name {
        "SINK_URL" => Some(url.clone()),
        "DEMO_JOURNAL" => Some(path.clone()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The demo's journal file, in a temporary folder of its own.
struct Journal(tempfile::TempDir);

impl Journal {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self) -> std::path::PathBuf {
        self.0.path().join("demo-events.jsonl")
    }

    /// The events appended so far (written before the answer).
    fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.path())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

#[tokio::test]
async fn an_order_is_reserved_and_the_reservation_is_journaled() {
    let sink = Sink::start().await;
    let journal = Journal::new();
    let router = TestRouter::start_config(&demo_config(&sink, &journal)).await;
    let headers = ce_headers("order-1", "com.example.order.created");
    let (status, body) = post_binary(
        &router.events_url(),
        &headers,
        order("o-1", &[("p-1", 2), ("p-2", 1)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let routes: Vec<_> = body["events"][0]["routes"]
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| r["route"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(routes, ["reserve-stock", "enrich", "audit"]);
    let reserved = &body["events"][0]["routes"][0]["emitted"][0];
    assert_eq!(reserved["type"], "com.example.inventory.reserved");

    // Nothing else needs to run: the reservation is in the journal, and the
    // webhook only hears of rejections.
    let events = journal.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["type"], "com.example.inventory.reserved");
    assert_eq!(event["causationid"], "order-1");
    assert_eq!(event["correlationid"], "order-1");
    assert!(sink.received().is_empty());
    let data = &event["data"];
    assert_eq!(data["orderId"], "o-1");
    let items = data["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["productId"], "p-1");
    assert_eq!(items[0]["quantity"], 2);
    assert!(
        items
            .iter()
            .all(|i| i["reservationId"].as_str().is_some_and(|r| !r.is_empty()))
    );
}

#[tokio::test]
async fn an_invalid_order_is_rejected_to_the_sink_and_the_journal() {
    let sink = Sink::start().await;
    let journal = Journal::new();
    let router = TestRouter::start_config(&demo_config(&sink, &journal)).await;
    for (id, items) in [("o-empty", vec![]), ("o-zero", vec![("p-1", 0)])] {
        let (status, body) = post_binary(
            &router.events_url(),
            &ce_headers(id, "com.example.order.created"),
            order(id, &items),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let got = sink.wait_for(2).await;
    for r in &got {
        assert_eq!(r.ce("type").as_deref(), Some("com.example.order.rejected"));
        assert!(r.json()["reason"].as_str().is_some_and(|s| !s.is_empty()));
    }
    let mut orders: Vec<_> = got.iter().map(|r| r.json()["orderId"].clone()).collect();
    orders.sort_by_key(|v| v.to_string());
    assert_eq!(orders, [json!("o-empty"), json!("o-zero")]);
    let journaled: Vec<_> = journal.events().iter().map(|e| e["type"].clone()).collect();
    assert_eq!(journaled, vec![json!("com.example.order.rejected"); 2]);
}

/// Without a webhook listening, a rejection cannot be delivered: 502 naming
/// the route, so the sender retries (the quickstart shows it on purpose).
#[tokio::test]
async fn a_rejection_without_a_webhook_is_a_502_naming_the_route() {
    let sink = Sink::start().await;
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let journal = Journal::new();
    let router = TestRouter::start_config(&demo_config(&sink, &journal)).await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("o-none", "com.example.order.created"),
        order("o-none", &[]),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("notify-shop")),
        "{body}"
    );
}

#[tokio::test]
async fn data_without_content_type_still_reaches_the_plugin() {
    // What the official Python SDK sends for dict data in binary mode.
    let sink = Sink::start().await;
    let journal = Journal::new();
    let router = TestRouter::start_config(&demo_config(&sink, &journal)).await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("py-1", "com.example.order.created"),
        order("o-py", &[("p-9", 1)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(journal.events()[0]["data"]["orderId"], "o-py");
}

#[tokio::test]
async fn data_that_is_not_an_order_is_a_fatal_error_naming_the_route() {
    let sink = Sink::start().await;
    let journal = Journal::new();
    let router = TestRouter::start_config(&demo_config(&sink, &journal)).await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("junk-1", "com.example.order.created"),
        "this is not json",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("reserve-stock")),
        "{body}"
    );
    let route = &body["events"][0]["routes"][0];
    assert_eq!(
        (route["route"].as_str(), route["outcome"].as_str()),
        (Some("reserve-stock"), Some("failed"))
    );
    assert_eq!(route["retryable"], false);
    assert!(
        route["errors"][0]
            .as_str()
            .is_some_and(|e| e.contains("inventory")),
        "{body}"
    );
    assert!(sink.received().is_empty());
}
