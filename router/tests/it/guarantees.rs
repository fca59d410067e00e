//! Delivery guarantees in embedded mode: retries with backoff, dead letters in a
//! JSON-lines file, redrive to the dead letter's own route, and dedup windows.

use crate::common::*;
use axum::http::StatusCode;

/// A router with a dead-letter file in a fresh directory, and the extra TOML.
async fn router_with_dlq(extra: &str) -> (TestRouter, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let dlq = dir.path().join("dead-letters.jsonl");
    let router = TestRouter::start(&format!(
        "[delivery.dead_letter]\nfile = {:?}\n\n{extra}",
        dlq.display().to_string()
    ))
    .await;
    (router, dir)
}

fn route_report(body: &serde_json::Value, route: &str) -> serde_json::Value {
    body["events"][0]["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["route"] == route))
        .cloned()
        .unwrap_or_else(|| panic!("no report for route {route}: {body}"))
}

#[tokio::test]
async fn a_flaky_handler_is_retried_until_it_succeeds() {
    let router = TestRouter::start(
        r#"
[[route]]
name = "flaky-route"
filter = { exact = { type = "test.flaky" } }
handler = "flaky"
retry = { max_attempts = 5, backoff_base = "10ms", backoff_cap = "50ms" }
"#,
    )
    .await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("flaky-1", "test.flaky"),
        "flaky:2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = route_report(&body, "flaky-route");
    assert_eq!(report["outcome"], "delivered", "{body}");
    assert_eq!(report["attempts"], 3, "two failures, then success: {body}");
    let metrics = router.metrics().await;
    assert_eq!(
        metric(&metrics, "router_route_retried_total", "flaky-route"),
        2.0
    );

    // Without enough attempts, the same plugin fails: the retries are real.
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("flaky-2", "test.flaky"),
        "flaky:9",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let report = route_report(&body, "flaky-route");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["attempts"], 5, "{body}");
}

#[tokio::test]
async fn retries_come_first_then_the_dead_letter_with_the_original_event() {
    let sink = Sink::start().await;
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let (router, _dir) = router_with_dlq(&format!(
        r#"
[delivery.retry]
max_attempts = 3
backoff_base = "5ms"

[[route]]
name = "to-sink"
filter = {{ exact = {{ type = "test.dl" }} }}
transform = [ {{ set = "subject", value = "changed by the route" }} ]
forward = "{}"
"#,
        sink.url()
    ))
    .await;
    let (status, body) =
        post_binary(&router.events_url(), &ce_headers("dl-1", "test.dl"), "{}").await;
    // The event is kept in the dead-letter file: the sender has nothing to retry.
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = route_report(&body, "to-sink");
    assert_eq!(report["outcome"], "dead_lettered", "{body}");
    assert_eq!(report["attempts"], 3);
    assert_eq!(
        sink.received().len(),
        3,
        "every retry reached the sink first"
    );

    let dlq = router.admin("dlq").await;
    assert_eq!(dlq["count"], 1, "{dlq}");
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["route"], "to-sink");
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["reason"], "max_attempts");
    assert!(
        letter["error"].as_str().unwrap().contains("503"),
        "{letter}"
    );
    assert_eq!(letter["event"]["id"], "dl-1");
    assert!(
        letter["event"].get("subject").is_none(),
        "the original event, before the route's transform: {letter}"
    );
    assert!(letter["first_attempt"].as_str().unwrap() <= letter["last_attempt"].as_str().unwrap());
    let shown = router
        .admin(&format!("dlq/{}", letter["id"].as_str().unwrap()))
        .await;
    assert_eq!(&shown, letter);
    let metrics = router.metrics().await;
    assert_eq!(
        metric(&metrics, "router_route_dead_lettered_total", "to-sink"),
        1.0
    );
}

#[tokio::test]
async fn fatal_errors_skip_the_retries_and_max_age_stops_them() {
    let sink = Sink::start().await;
    sink.answer(StatusCode::INTERNAL_SERVER_ERROR);
    let (router, _dir) = router_with_dlq(&format!(
        r#"
[[route]]
name = "fatal"
filter = {{ exact = {{ type = "test.fatal" }} }}
handler = "fail"
retry = {{ max_attempts = 10, backoff_base = "5ms" }}

[[route]]
name = "aging"
filter = {{ exact = {{ type = "test.aging" }} }}
forward = "{}"
retry = {{ max_attempts = 1000, backoff = "linear", backoff_base = "40ms", backoff_cap = "40ms", max_age = "200ms" }}
"#,
        sink.url()
    ))
    .await;
    let (_, body) = post_binary(
        &router.events_url(),
        &ce_headers("fatal-1", "test.fatal"),
        "fatal",
    )
    .await;
    let report = route_report(&body, "fatal");
    assert_eq!(report["outcome"], "dead_lettered", "{body}");
    assert!(report.get("attempts").is_none(), "one attempt only: {body}");

    let (_, body) = post_binary(
        &router.events_url(),
        &ce_headers("old-1", "test.aging"),
        "{}",
    )
    .await;
    let report = route_report(&body, "aging");
    assert_eq!(report["outcome"], "dead_lettered", "{body}");
    let attempts = report["attempts"].as_u64().unwrap();
    // Full jitter makes each delay 0-40 ms: about ten attempts fit in 200 ms.
    assert!(
        (2..100).contains(&attempts),
        "stopped by max_age, long before max_attempts: {body}"
    );
    let dlq = router.admin("dlq?route=aging").await;
    assert_eq!(dlq["dead_letters"][0]["reason"], "max_age", "{dlq}");
    let dlq = router.admin("dlq?route=fatal").await;
    assert_eq!(dlq["dead_letters"][0]["reason"], "not_retryable", "{dlq}");
    assert_eq!(dlq["dead_letters"][0]["attempts"], 1, "{dlq}");
}

#[tokio::test]
async fn redrive_sends_dead_letters_to_their_own_route_only() {
    let failing = Sink::start().await;
    failing.answer(StatusCode::INTERNAL_SERVER_ERROR);
    let healthy = Sink::start().await;
    let (router, _dir) = router_with_dlq(&format!(
        r#"
[[route]]
name = "flaky-sink"
filter = {{ exact = {{ type = "test.redrive" }} }}
forward = "{}"

[[route]]
name = "healthy-sink"
filter = {{ exact = {{ type = "test.redrive" }} }}
forward = "{}"
"#,
        failing.url(),
        healthy.url()
    ))
    .await;
    for id in ["r-1", "r-2"] {
        let (status, body) =
            post_binary(&router.events_url(), &ce_headers(id, "test.redrive"), "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            route_report(&body, "flaky-sink")["outcome"],
            "dead_lettered"
        );
        assert_eq!(route_report(&body, "healthy-sink")["outcome"], "delivered");
    }
    assert_eq!(healthy.received().len(), 2);

    // The CLI lists them through the admin API.
    let url = format!("http://{}", router.addr);
    // tokio's Command: the router under test serves on this test's runtime.
    let listed = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &url, "list", "--route", "flaky-sink"])
        .output()
        .await
        .expect("router dlq list");
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(stdout.starts_with("2 dead letter(s)"), "{stdout}");
    assert!(
        stdout.contains("event=r-1") && stdout.contains("route=flaky-sink"),
        "{stdout}"
    );

    // Still failing: redrive keeps them (dead-lettered again, as new entries).
    failing.answer(StatusCode::OK);
    let one = router.admin("dlq").await["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redriven = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &url, "redrive", &one])
        .output()
        .await
        .expect("router dlq redrive");
    let stdout = String::from_utf8_lossy(&redriven.stdout);
    assert!(redriven.status.success(), "{stdout}");
    assert!(stdout.starts_with("1 redriven"), "{stdout}");
    assert_eq!(router.admin("dlq").await["count"], 1);

    let answer = client()
        .post(format!("{url}/admin/dlq/redrive"))
        .header("content-type", "application/json")
        .body(r#"{"route": "flaky-sink"}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(router.admin("dlq").await["count"], 0);
    let redelivered: Vec<String> = failing
        .received()
        .iter()
        .skip(2)
        .map(|r| r.ce("id").unwrap_or_default())
        .collect();
    assert_eq!(redelivered.len(), 2, "each dead letter once more");
    assert!(redelivered.contains(&"r-1".into()) && redelivered.contains(&"r-2".into()));
    assert_eq!(
        healthy.received().len(),
        2,
        "the other route did not see the redriven events"
    );
}

#[tokio::test]
async fn duplicates_within_the_window_are_dropped_and_counted() {
    let sink = Sink::start().await;
    let per_route = Sink::start().await;
    let router = TestRouter::start(&format!(
        r#"
[delivery.dedup]
window = "1h"

[[route]]
name = "all"
filter = {{ prefix = {{ type = "test.dedup" }} }}
forward = "{}"
"#,
        sink.url()
    ))
    .await;
    let send = |id: &'static str| {
        let url = router.events_url();
        async move { post_binary(&url, &ce_headers(id, "test.dedup"), "{}").await }
    };
    let (status, first) = send("d-1").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(first["events"][0].get("duplicate").is_none());
    let (status, again) = send("d-1").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a duplicate is answered 2xx: {again}"
    );
    assert_eq!(again["events"][0]["duplicate"], true, "{again}");
    assert_eq!(sink.received().len(), 1);
    // The counter is process-wide, and other tests drop duplicates too.
    let metrics = router.metrics().await;
    assert!(metric(&metrics, "router_events_duplicate_total", "") >= 1.0);

    // A failed event is forgotten: the sender's retry goes through.
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = send("d-2").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    sink.answer(StatusCode::OK);
    let (status, retried) = send("d-2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(retried["events"][0].get("duplicate").is_none(), "{retried}");
    assert_eq!(sink.received().len(), 3);
    drop(router);

    // A route's own window applies to that route only.
    let router = TestRouter::start(&format!(
        r#"
[[route]]
name = "once"
filter = {{ exact = {{ type = "test.dedup" }} }}
forward = "{}"
dedup = "10m"

[[route]]
name = "every-time"
filter = {{ exact = {{ type = "test.dedup" }} }}
forward = "{}"
"#,
        per_route.url(),
        sink.url()
    ))
    .await;
    for _ in 0..3 {
        let (status, _) = post_binary(
            &router.events_url(),
            &ce_headers("same", "test.dedup"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(per_route.received().len(), 1);
    assert_eq!(sink.received().len(), 3 + 3);
    let metrics = router.metrics().await;
    assert_eq!(
        metric(&metrics, "router_route_duplicates_total", "once"),
        2.0
    );
}

#[tokio::test]
async fn plugins_keep_state_in_their_own_key_value_namespace() {
    let router = TestRouter::start(&format!(
        r#"
[[plugin]]
name = "stock-a"
path = {a:?}
config = {{ stock = 5 }}

[[plugin]]
name = "stock-b"
path = {a:?}
config = {{ stock = 5 }}

[[route]]
name = "orders-a"
filter = {{ all = [ {{ exact = {{ type = "com.example.order.created" }} }}, {{ exact = {{ source = "/a" }} }} ] }}
handler = "stock-a"

[[route]]
name = "orders-b"
filter = {{ all = [ {{ exact = {{ type = "com.example.order.created" }} }}, {{ exact = {{ source = "/b" }} }} ] }}
handler = "stock-b"
"#,
        a = plugin_artifacts::INVENTORY
    ))
    .await;
    let place = |source: &'static str, id: &'static str, qty: i64| {
        let url = router.events_url();
        async move {
            let headers = [
                ("ce-specversion", "1.0"),
                ("ce-id", id),
                ("ce-source", source),
                ("ce-type", "com.example.order.created"),
                ("content-type", "application/json"),
            ];
            let (status, body) = post_binary(&url, &headers, order(id, &[("p-kv", qty)])).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["events"][0]["routes"][0]["emitted"][0]["type"]
                .as_str()
                .unwrap_or_else(|| panic!("no emitted event: {body}"))
                .to_owned()
        }
    };
    assert_eq!(
        place("/a", "kv-1", 4).await,
        "com.example.inventory.reserved"
    );
    assert_eq!(
        place("/a", "kv-2", 4).await,
        "com.example.order.rejected",
        "only 1 of 5 left in stock-a's store"
    );
    assert_eq!(
        place("/a", "kv-1", 4).await,
        "com.example.inventory.reserved",
        "a redelivered order is answered the same, and reserves nothing twice"
    );
    assert_eq!(
        place("/a", "kv-3", 1).await,
        "com.example.inventory.reserved"
    );
    // stock-b runs the same component, with its own keys: its stock is untouched.
    assert_eq!(
        place("/b", "kv-2", 4).await,
        "com.example.inventory.reserved"
    );
    assert_eq!(place("/b", "kv-4", 2).await, "com.example.order.rejected");
}
