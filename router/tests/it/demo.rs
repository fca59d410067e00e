//! The demo of `config/router.toml` (the order flow), end to end: real config
//! file, real plugins, a real sink.

use crate::common::*;
use axum::http::StatusCode;
use router::config::{Config, Source};
use serde_json::json;

const DEMO: &str = "../config/router.toml";

/// The demo configuration, with `SINK_URL` pointing at `sink`.
fn demo_config(sink: &Sink) -> Config {
    let text = std::fs::read_to_string(DEMO).expect("config/router.toml exists");
    let url = sink.url();
    Config::parse(Source::new(DEMO, text), |name| {
        (name == "SINK_URL").then(|| url.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn an_order_is_reserved_and_the_reservation_reaches_the_sink() {
    let sink = Sink::start().await;
    let router = TestRouter::start_config(&demo_config(&sink)).await;
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

    let got = sink.wait_for(1).await;
    let event = &got[0];
    assert_eq!(
        event.ce("type").as_deref(),
        Some("com.example.inventory.reserved")
    );
    assert_eq!(event.ce("causationid").as_deref(), Some("order-1"));
    assert_eq!(event.ce("correlationid").as_deref(), Some("order-1"));
    let data = event.json();
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
async fn an_invalid_order_is_rejected_to_the_sink() {
    let sink = Sink::start().await;
    let router = TestRouter::start_config(&demo_config(&sink)).await;
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
}

#[tokio::test]
async fn data_without_content_type_still_reaches_the_plugin() {
    // What the official Python SDK sends for dict data in binary mode.
    let sink = Sink::start().await;
    let router = TestRouter::start_config(&demo_config(&sink)).await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("py-1", "com.example.order.created"),
        order("o-py", &[("p-9", 1)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].json()["orderId"], "o-py");
}

#[tokio::test]
async fn data_that_is_not_an_order_is_a_fatal_error_naming_the_route() {
    let sink = Sink::start().await;
    let router = TestRouter::start_config(&demo_config(&sink)).await;
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
