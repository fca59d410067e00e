//! Routing policies over HTTP: data filters combined with attribute filters.

use crate::common::*;
use axum::http::StatusCode;

#[tokio::test]
async fn data_filters_route_on_the_json_payload() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        r#"
[[route]]
name = "big-orders"
filter = {{ all = [
  {{ exact = {{ type = "order" }} }},
  {{ data = {{ pointer = "/total", numeric = [">", 100] }} }},
  {{ not = {{ data = {{ pointer = "/status", in = ["cancelled", "refunded"] }} }} }},
] }}
forward = "{}"
"#,
        sink.url()
    ))
    .await;
    let orders = [
        ("o-small", r#"{"total": 50, "status": "paid"}"#, false),
        ("o-big", r#"{"total": 150, "status": "paid"}"#, true),
        (
            "o-cancelled",
            r#"{"total": 500, "status": "cancelled"}"#,
            false,
        ),
        ("o-not-json", "total=900", false),
    ];
    for (id, data, routed) in orders {
        let (status, body) =
            post_binary(&router.events_url(), &ce_headers(id, "order"), data).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let matched = body["events"][0]["routes"]
            .as_array()
            .is_some_and(|r| !r.is_empty());
        assert_eq!(matched, routed, "{id}: {body}");
    }
    let got = sink.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].ce("id").as_deref(), Some("o-big"));
}
