//! `examples/ecommerce-catalog`: the e-commerce platform of ADR-001 (seed 003),
//! Dapr pub/sub on Redis Streams. Each test starts its own `redis-server` and
//! runs the example's own `router.toml` in durable mode against it: ingest
//! answers 202 and routing happens afterwards, so every check goes through what
//! the sinks (and Redis) saw. Events of one test share a `partitionkey`, so they
//! are routed in the order they were accepted: when the last one arrives, the
//! earlier ones were routed.

use crate::common::*;
use crate::durable::{RedisServer, until, wait_ready};
use axum::http::{HeaderMap, StatusCode};
use std::sync::{Arc, Mutex};

const EXAMPLE: &str = "ecommerce-catalog";

/// The example's sinks: where its forwards point.
struct Sinks {
    storefront: String,
    order_notifications: String,
    payment_webhook: String,
}

/// Starts the example's router on `redis`, its forwards pointed at `sinks`.
async fn start(redis: &RedisServer, sinks: Sinks) -> TestRouter {
    let config = super::example_config(
        EXAMPLE,
        &[
            ("REDIS_URL", redis.url()),
            ("STOREFRONT_URL", sinks.storefront),
            ("ORDER_NOTIFICATIONS_URL", sinks.order_notifications),
            ("PAYMENT_WEBHOOK_URL", sinks.payment_webhook),
        ],
    );
    let router = TestRouter::start_config(&config).await;
    wait_ready(&router).await;
    router
}

/// Starts the example's router on `redis` with a recording sink behind each of
/// its forwards: (router, storefront, order notifications, payment webhook).
async fn start_with_sinks(redis: &RedisServer) -> (TestRouter, Sink, Sink, Sink) {
    let (storefront, notifications, payments) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    let sinks = Sinks {
        storefront: storefront.url(),
        order_notifications: notifications.url(),
        payment_webhook: payments.url(),
    };
    (
        start(redis, sinks).await,
        storefront,
        notifications,
        payments,
    )
}

/// POSTs a binary-mode event with JSON data and a partition key.
async fn publish(
    router: &TestRouter,
    (id, source, ty): (&str, &str, &str),
    key: &str,
    data: serde_json::Value,
) -> (StatusCode, serde_json::Value) {
    post_binary(
        &router.events_url(),
        &[
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", source),
            ("ce-type", ty),
            ("ce-partitionkey", key),
            ("content-type", "application/json"),
        ],
        data.to_string(),
    )
    .await
}

/// Like [`publish`], asserting that Redis took the event.
async fn accepted(
    router: &TestRouter,
    event: (&str, &str, &str),
    key: &str,
    data: serde_json::Value,
) {
    let (status, body) = publish(router, event, key, data).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{}: {body}", event.0);
    assert_eq!(body["accepted"], 1, "{body}");
}

fn ids(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.ce("id").expect("an id"))
        .collect()
}

/// Checks `data` against one of the example's schema files.
fn assert_matches_schema(file: &str, data: &serde_json::Value) {
    let path = format!("../examples/{EXAMPLE}/json-schema/{file}");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("schema file"))
            .expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid schema");
    let errors: Vec<String> = validator.iter_errors(data).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{data} against {file}: {errors:?}");
}

#[tokio::test]
async fn the_catalog_merges_stock_and_price_ignores_stale_updates_and_answers_queries() {
    let redis = RedisServer::start().await;
    let storefront = Sink::start().await;
    let other = Sink::start().await;
    let router = start(
        &redis,
        Sinks {
            storefront: storefront.url(),
            order_notifications: other.url(),
            payment_webhook: other.url(),
        },
    )
    .await;
    let sku = "SKU-CAT-1";
    accepted(
        &router,
        ("wh-17", "/warehouse", "warehouse.stock.updated"),
        sku,
        serde_json::json!({"sku": sku, "warehouseId": "wh-berlin", "quantity": 5, "version": 2, "updatedAt": "2025-11-17T10:00:02Z"}),
    )
    .await;
    accepted(
        &router,
        ("pr-3", "/pricing", "pricing.price.updated"),
        sku,
        serde_json::json!({"sku": sku, "amount": 1999, "currency": "EUR", "version": 1}),
    )
    .await;
    // Published before wh-17 but arriving after it: stale, it must change nothing.
    accepted(
        &router,
        ("wh-16", "/warehouse", "warehouse.stock.updated"),
        sku,
        serde_json::json!({"sku": sku, "quantity": 99, "version": 1, "updatedAt": "2025-11-17T10:00:01Z"}),
    )
    .await;
    // The query in structured mode, as a storefront's SDK would send it.
    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents+json",
        serde_json::json!({
            "specversion": "1.0", "id": "ask-1", "source": "/storefront",
            "type": "catalog.product.requested", "partitionkey": sku, "data": {"sku": sku},
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let got = storefront.wait_for(3).await;
    assert_eq!(
        ids(&got),
        ["wh-17-view", "pr-3-view", "ask-1-viewed"],
        "one view per applied update, none for the stale one, then the answer"
    );
    let first = got[0].json();
    assert_eq!(first["stock"]["quantity"], 5, "{first}");
    assert_eq!(first["available"], false, "no price yet: {first}");
    let merged = got[1].json();
    assert_matches_schema("catalog.product.updated.json", &merged);
    assert_eq!(
        got[1].ce("type").as_deref(),
        Some("catalog.product.updated")
    );
    assert_eq!(got[1].ce("subject").as_deref(), Some(sku));
    assert_eq!(
        got[1].headers["ce-dataschema"],
        "https://schemas.example.com/ecommerce/catalog.product.updated/v1.json"
    );
    assert_eq!(
        (
            &merged["stock"]["quantity"],
            &merged["price"]["amount"],
            &merged["available"],
            &merged["revision"]
        ),
        (
            &serde_json::json!(5),
            &serde_json::json!(1999),
            &serde_json::json!(true),
            &serde_json::json!(2)
        ),
        "{merged}"
    );

    let answer = &got[2];
    assert_eq!(answer.ce("type").as_deref(), Some("catalog.product.viewed"));
    assert_eq!(answer.ce("causationid").as_deref(), Some("ask-1"));
    assert_eq!(answer.ce("correlationid").as_deref(), Some("ask-1"));
    let viewed = answer.json();
    assert_matches_schema("catalog.product.viewed.json", &viewed);
    assert_eq!(viewed["found"], true, "{viewed}");
    assert_eq!(
        viewed["view"]["stock"],
        serde_json::json!({"quantity": 5, "version": 2, "updatedAt": "2025-11-17T10:00:02Z", "eventId": "wh-17"}),
        "the stale wh-16 (quantity 99) was ignored: {viewed}"
    );
    assert_eq!(viewed["view"], merged, "the answer is the stored view");

    // The view lives in Redis, in the plugin's own namespace: shared by every
    // router process, kept across restarts.
    let stored: String = redis
        .query(redis::cmd("GET").arg(format!("ecommerce:kv:catalog-view:product:{sku}")))
        .await;
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("stored JSON");
    assert_eq!(stored, merged);
    assert!(
        other.received().is_empty(),
        "catalog events go to the storefront only"
    );
}

#[tokio::test]
async fn events_that_break_their_schema_are_refused_at_ingest_and_never_routed() {
    let redis = RedisServer::start().await;
    let (router, storefront, notifications, payments) = start_with_sinks(&redis).await;
    let key = "ord-schema";
    for (event, data, pointer, words) in [
        (
            ("bad-1", "/warehouse", "warehouse.stock.updated"),
            serde_json::json!({"sku": "SKU-1", "quantity": -3, "version": 1}),
            "/quantity",
            "minimum",
        ),
        (
            ("bad-2", "/pricing", "pricing.price.updated"),
            serde_json::json!({"sku": "SKU-1", "amount": 100, "currency": "euro", "version": 1}),
            "/currency",
            "does not match",
        ),
        (
            ("bad-3", "/orders", "orders.order.status_changed"),
            serde_json::json!({"orderId": "o-1", "status": "teleported"}),
            "/status",
            "teleported",
        ),
        (
            ("bad-4", "/payments", "payment.processed"),
            serde_json::json!({"paymentId": "pay-1", "orderId": "o-1", "currency": "EUR"}),
            "",
            "\"amount\" is a required property",
        ),
    ] {
        let (status, body) = publish(&router, event, key, data).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{}: {body}", event.0);
        assert_eq!(body["attribute"], "data", "{body}");
        assert_eq!(body["instance_path"], pointer, "{body}");
        let error = body["error"].as_str().expect("an error message");
        for part in [event.2, &format!("json-schema/{}.json", event.2), words] {
            assert!(error.contains(part), "{error:?} should name {part:?}");
        }
    }
    // One bad event refuses its whole batch, naming its index: the good one is
    // not accepted either, so the sender can fix and resend the batch as is.
    let batch = serde_json::json!([
        {"specversion": "1.0", "id": "ok-in-batch", "source": "/orders", "type": "orders.order.status_changed",
         "partitionkey": key, "data": {"orderId": "o-1", "status": "paid"}},
        {"specversion": "1.0", "id": "bad-5", "source": "/payments", "type": "payment.failed",
         "partitionkey": key, "data": {"paymentId": "pay-2", "orderId": "o-1"}},
    ]);
    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents-batch+json",
        batch.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["index"], 1, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("reason")),
        "{body}"
    );

    accepted(
        &router,
        ("ok-1", "/orders", "orders.order.status_changed"),
        key,
        serde_json::json!({"orderId": "o-1", "previousStatus": "created", "status": "paid"}),
    )
    .await;
    // Same partition: had any refused event been queued, it would have been
    // routed before ok-1.
    let got = notifications.wait_for(1).await;
    assert_eq!(ids(&got), ["ok-1"]);
    assert!(payments.received().is_empty(), "{:?}", payments.received());
    assert!(storefront.received().is_empty());
}

#[tokio::test]
async fn a_duplicate_within_the_24h_window_is_answered_2xx_and_handled_once() {
    let redis = RedisServer::start().await;
    let (router, _storefront, notifications, _payments) = start_with_sinks(&redis).await;
    let key = "ord-dup";
    let status = |status: &str| serde_json::json!({"orderId": "o-9", "status": status});
    // The Order service publishes, times out, and publishes the same event again.
    accepted(
        &router,
        ("osc-1", "/orders", "orders.order.status_changed"),
        key,
        status("shipped"),
    )
    .await;
    accepted(
        &router,
        ("osc-1", "/orders", "orders.order.status_changed"),
        key,
        status("shipped"),
    )
    .await;
    // The same id from another source is another event (CloudEvents identity
    // is source + id).
    accepted(
        &router,
        ("osc-1", "/orders-eu", "orders.order.status_changed"),
        key,
        status("paid"),
    )
    .await;
    accepted(
        &router,
        ("osc-2", "/orders", "orders.order.status_changed"),
        key,
        status("delivered"),
    )
    .await;
    let got = notifications.wait_for(3).await;
    let seen: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            let event = r.event();
            use cloudevents::AttributesReader as _;
            (event.source().to_string(), event.id().to_owned())
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("/orders".to_owned(), "osc-1".to_owned()),
            ("/orders-eu".to_owned(), "osc-1".to_owned()),
            ("/orders".to_owned(), "osc-2".to_owned()),
        ],
        "the duplicate was dropped, and only it"
    );
    // The pair is remembered in Redis for the whole window: shared by every
    // router process, kept across restarts.
    let ttl: i64 = redis
        .query(redis::cmd("PTTL").arg(format!(
            "ecommerce:events:seen:{}",
            dedup_digest("", "/orders", "osc-1")
        )))
        .await;
    assert!(
        (23 * 3_600_000..=24 * 3_600_000).contains(&ttl),
        "the key expires with the 24 h window: {ttl} ms"
    );
}

/// A webhook that answers 503 to its first `failures` requests, then 200, and
/// records the id and the answer of each: a service that is briefly down.
#[derive(Clone)]
struct FlakySink {
    url: String,
    answers: Arc<Mutex<Vec<(String, u16)>>>,
}

impl FlakySink {
    async fn start(failures: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let answers: Arc<Mutex<Vec<(String, u16)>>> = Arc::default();
        let log = answers.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap| {
            let log = log.clone();
            async move {
                let id = headers
                    .get("ce-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut log = log.lock().expect("lock");
                let status = if log.len() < failures {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::OK
                };
                log.push((id, status.as_u16()));
                status
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
        Self { url, answers }
    }

    fn answers(&self) -> Vec<(String, u16)> {
        self.answers.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn transient_failures_are_retried_and_spent_retries_end_in_the_dead_letter_stream() {
    let redis = RedisServer::start().await;
    let storefront = Sink::start().await;
    let payments = FlakySink::start(2).await;
    let notifications = Sink::start().await;
    notifications.answer(StatusCode::SERVICE_UNAVAILABLE);
    let router = start(
        &redis,
        Sinks {
            storefront: storefront.url(),
            order_notifications: notifications.url(),
            payment_webhook: payments.url.clone(),
        },
    )
    .await;

    // The payment webhook is down for two requests, then back.
    let key = "ord-pay";
    accepted(
        &router,
        ("pay-1", "/payments", "payment.processed"),
        key,
        serde_json::json!({"paymentId": "pay-1", "orderId": "o-5", "amount": 4999, "currency": "EUR"}),
    )
    .await;
    accepted(
        &router,
        ("pay-2", "/payments", "payment.failed"),
        key,
        serde_json::json!({"paymentId": "pay-2", "orderId": "o-6", "reason": "card declined"}),
    )
    .await;
    until("the payment webhook took both events", || async {
        payments.answers().len() >= 4
    })
    .await;
    let answers = payments.answers();
    assert_eq!(
        answers,
        [
            ("pay-1".to_owned(), 503),
            ("pay-1".to_owned(), 503),
            ("pay-1".to_owned(), 200),
            ("pay-2".to_owned(), 200),
        ],
        "pay-1 retried until it went through once; pay-2 (same partition) after it"
    );

    // The notification service stays down: 5 attempts, then the dead letter.
    accepted(
        &router,
        ("osc-dl", "/orders", "orders.order.status_changed"),
        "ord-dl",
        serde_json::json!({"orderId": "o-7", "status": "cancelled"}),
    )
    .await;
    let listed = router
        .admin_until("dlq", |answer| answer["count"] == 1)
        .await;
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["route"], "order-notifications", "{letter}");
    assert_eq!(letter["reason"], "max_attempts", "{letter}");
    assert_eq!(letter["attempts"], 5, "{letter}");
    assert_eq!(letter["event"]["id"], "osc-dl", "{letter}");
    assert!(
        letter["error"].as_str().is_some_and(|e| e.contains("503")),
        "{letter}"
    );
    assert_eq!(ids(&notifications.received()), ["osc-dl"; 5]);
    let length: u64 = redis
        .query(redis::cmd("XLEN").arg("ecommerce:dead-letters"))
        .await;
    assert_eq!(length, 1, "the dead letter stream holds it");

    // Once the service is back, the dead letter is sent again to its route.
    notifications.answer(StatusCode::OK);
    let answer = client()
        .post(format!("{}/admin/dlq/redrive", router.admin_url()))
        .body(r#"{"all": true}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(notifications.received().len(), 6);
    let length: u64 = redis
        .query(redis::cmd("XLEN").arg("ecommerce:dead-letters"))
        .await;
    assert_eq!(length, 0, "delivered, so no longer a dead letter");
}

/// The commands of the README's "Run it", as written, against a `router serve`
/// on this configuration and a `redis-server` of the test's own (the README's
/// is on a fixed port): the answers, and what the README's storefront sink
/// prints, are what the README shows.
#[tokio::test]
async fn the_readme_runs_as_written() {
    let readme = "examples/ecommerce-catalog/README.md";
    let text = std::fs::read_to_string(crate::readme::repo_root().join(readme)).expect("README");
    assert!(text.contains(
        "REDIS_URL=redis://127.0.0.1:6399/ target/debug/router serve --config examples/ecommerce-catalog/router.toml"
    ));
    let redis = RedisServer::start().await;
    let nobody = format!("http://{}/", crate::readme::free_addr());
    let mut session = crate::readme::Session::start(
        readme,
        "examples/ecommerce-catalog/router.toml",
        &[
            ("REDIS_URL", &redis.url()),
            ("STOREFRONT_URL", "http://{sink}/"),
            ("ORDER_NOTIFICATIONS_URL", &nobody),
            ("PAYMENT_WEBHOOK_URL", &nobody),
        ],
        &[(
            "target/debug/router sink --listen 127.0.0.1:9001",
            "{bin} sink --listen {sink}",
        )],
    );
    assert_eq!(session.run().await, 8, "the marked steps of the README");
}
