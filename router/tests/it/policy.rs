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

#[tokio::test]
async fn json_schemas_are_enforced_at_ingest_with_the_instance_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = dir.path().join("stock.json");
    std::fs::write(
        &schema,
        r#"{"type": "object", "required": ["sku", "quantity"],
            "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer", "minimum": 0}}}"#,
    )
    .expect("schema");
    let router = TestRouter::start(&format!(
        "[[schema]]\ntype_prefix = \"warehouse.stock.\"\npath = {:?}\n\n[[route]]\nname = \"all\"\nforward = \"http://127.0.0.1:9/\"\nfilter = {{ exact = {{ type = \"unrouted\" }} }}\n",
        schema.display().to_string()
    ))
    .await;
    let url = router.events_url();
    let (status, body) = post_binary(
        &url,
        &ce_headers("s-1", "warehouse.stock.updated"),
        r#"{"sku": "a", "quantity": 3}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_binary(
        &url,
        &ce_headers("s-2", "warehouse.stock.updated"),
        r#"{"sku": "a", "quantity": -1}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["instance_path"], "/quantity", "{body}");
    assert_eq!(body["attribute"], "data");
    let (status, body) = post_binary(
        &url,
        &ce_headers("s-3", "warehouse.stock.updated"),
        "not json",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Types without a schema pass untouched.
    let (status, _) = post_binary(
        &url,
        &ce_headers("s-4", "pricing.price.updated"),
        "anything",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // In a batch the answer names the event's index.
    let batch = serde_json::json!([
        {"specversion": "1.0", "id": "b-1", "source": "/s", "type": "warehouse.stock.updated", "data": {"sku": "a", "quantity": 1}},
        {"specversion": "1.0", "id": "b-2", "source": "/s", "type": "warehouse.stock.updated", "data": {"quantity": 1}},
    ]);
    let (status, body) = post(
        &url,
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["index"], 1, "{body}");
}

#[tokio::test]
async fn transforms_edit_redact_and_drop_before_the_targets() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        r#"
[[route]]
name = "redacted-copy"
filter = {{ prefix = {{ type = "customer." }} }}
transform = [
  {{ set = "region", value = "{{{{data:/address/region}}}}" }},
  {{ wasm = "redactor" }},
  {{ data_remove = "/internal" }},
  {{ set = "subject", value = "customer {{{{data:/customer/name}}}}" }},
]
forward = "{}"
"#,
        sink.url()
    ))
    .await;
    let data = r#"{"customer": {"name": "Ann", "email": "ann@example.com"}, "address": {"region": "eu"}, "internal": 1}"#;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("c-1", "customer.updated"),
        data,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].ce("region").as_deref(), Some("eu"));
    assert_eq!(got[0].ce("redacted").as_deref(), Some("1"));
    assert_eq!(got[0].headers["ce-subject"], "customer%20Ann");
    assert_eq!(
        got[0].json(),
        serde_json::json!({"customer": {"name": "Ann"}, "address": {"region": "eu"}})
    );

    // The redactor drops private events: the route reports it, nothing is sent.
    let mut headers = ce_headers("c-2", "customer.updated");
    headers.push(("ce-private", "true"));
    let (status, body) = post_binary(&router.events_url(), &headers, data).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["routes"][0]["outcome"], "dropped");

    // A data step on data that is not JSON fails the route, naming the step.
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("c-3", "customer.updated"),
        "plain",
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["events"][0]["routes"][0]["errors"][0]
            .as_str()
            .is_some_and(|e| e.starts_with("transform step 2")),
        "{body}"
    );
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn admin_explain_says_which_clause_failed() {
    let router = TestRouter::start(
        "[[route]]\nname = \"orders\"\nfilter = { exact = { type = \"order\" } }\nforward = \"http://127.0.0.1:9/\"\n",
    )
    .await;
    let event =
        serde_json::json!({"specversion": "1.0", "id": "x-1", "source": "/s", "type": "refund"});
    let response = client()
        .post(format!("{}/admin/explain", router.admin_url()))
        .body(event.to_string())
        .send()
        .await
        .expect("explain");
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert_eq!(body["routes"][0]["matched"], false);
    assert_eq!(
        body["routes"][0]["failed_clause"],
        "filter.exact.type: wanted \"order\", got \"refund\""
    );
}
