//! Delivery guarantees in embedded mode: retries with backoff, dead letters in a
//! JSON-lines file or a Redis stream, redrive to the dead letter's own route (and
//! what a redrive that still fails keeps), and dedup windows in memory or Redis.

use crate::common::*;
use crate::durable::RedisServer;
use axum::http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
name = "guarantees-flaky"
filter = { exact = { type = "test.flaky" } }
handler = "flaky"
retry = { max_attempts = 5, backoff_base = "10ms", backoff_cap = "50ms" }
"#,
    )
    .await;
    // Counters are process-wide: the route's name is this test's alone, and only
    // what this test adds counts.
    let retried = |text: &str| {
        metric(
            text,
            "router_route_retried_total",
            "route=\"guarantees-flaky\"",
        )
    };
    let before = retried(&router.metrics().await);
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("flaky-1", "test.flaky"),
        "flaky:2",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = route_report(&body, "guarantees-flaky");
    assert_eq!(report["outcome"], "delivered", "{body}");
    assert_eq!(report["attempts"], 3, "two failures, then success: {body}");
    assert_eq!(retried(&router.metrics().await) - before, 2.0);

    // Without enough attempts, the same plugin fails: the retries are real.
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("flaky-2", "test.flaky"),
        "flaky:9",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let report = route_report(&body, "guarantees-flaky");
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
name = "guarantees-dl"
filter = {{ exact = {{ type = "test.dl" }} }}
transform = [ {{ set = "subject", value = "changed by the route" }} ]
forward = "{}"
"#,
        sink.url()
    ))
    .await;
    let dead_lettered = |text: &str| {
        metric(
            text,
            "router_route_dead_lettered_total",
            "route=\"guarantees-dl\"",
        )
    };
    let before = dead_lettered(&router.metrics().await);
    let (status, body) =
        post_binary(&router.events_url(), &ce_headers("dl-1", "test.dl"), "{}").await;
    // The event is kept in the dead-letter file: the sender has nothing to retry.
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = route_report(&body, "guarantees-dl");
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
    assert_eq!(letter["route"], "guarantees-dl");
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
    assert_eq!(dead_lettered(&router.metrics().await) - before, 1.0);
}

/// A target that answers every request 503 with `Retry-After: <seconds>`; its
/// address, and how many requests it got.
async fn asking_to_wait(seconds: u64) -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", seconds.to_string())],
                "",
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serves") });
    (format!("http://{addr}/"), hits)
}

#[tokio::test]
async fn fatal_errors_skip_the_retries_and_max_age_stops_them() {
    // The target asks for 2 s between attempts, and the route gives up on
    // attempts that would start past 1 s: max_age, not the attempts left, ends
    // the retries, however long the first attempt took.
    let (waiting, hits) = asking_to_wait(2).await;
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
forward = "{waiting}"
retry = {{ max_attempts = 3, backoff_base = "1ms", backoff_cap = "1ms", max_age = "1s" }}
"#
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
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the second attempt would have started past max_age: {body}"
    );
    let dlq = router.admin("dlq?route=aging").await;
    assert_eq!(dlq["dead_letters"][0]["reason"], "max_age", "{dlq}");
    assert_eq!(dlq["dead_letters"][0]["attempts"], 1, "{dlq}");
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
    let url = router.admin_url();
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
    assert!(stdout.starts_with("2 dead letters\n"), "{stdout}");
    assert!(
        stdout.contains("event=r-1") && stdout.contains("route=flaky-sink"),
        "{stdout}"
    );

    // Redriven while the route still fails: the dead letter stays listed (the
    // route dead-letters the event again, as a new entry), and the CLI says that
    // the redrive failed.
    let one = router.admin("dlq").await["dead_letters"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let attempts_before = failing.received().len();
    let redriven = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &url, "redrive", &one])
        .output()
        .await
        .expect("router dlq redrive");
    let stdout = String::from_utf8_lossy(&redriven.stdout);
    let stderr = String::from_utf8_lossy(&redriven.stderr);
    assert!(
        !redriven.status.success(),
        "a failed redrive exits non-zero: {stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("{one}  dead-lettered again as ")),
        "{stdout}"
    );
    assert!(
        stderr.contains("error: 1 dead letter did not get through (new ids "),
        "{stderr}"
    );
    assert!(
        failing.received().len() > attempts_before,
        "the redrive did reach the route"
    );
    let listed = router.admin("dlq?route=flaky-sink").await;
    let mut events: Vec<&str> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["event"]["id"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["r-1", "r-2"], "nothing was lost: {listed}");

    // Repaired: a redrive delivers each once more and empties the list.
    failing.answer(StatusCode::OK);
    let repaired_at = failing.received().len();
    let answer = client()
        .post(format!("{url}/admin/dlq/redrive"))
        .header("content-type", "application/json")
        .body(r#"{"route": "flaky-sink"}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(answer.status(), StatusCode::OK);
    let outcome: serde_json::Value =
        serde_json::from_slice(&answer.bytes().await.expect("body")).expect("JSON");
    assert_eq!(outcome["redriven"], 2, "{outcome}");
    assert_eq!(router.admin("dlq").await["count"], 0);
    let mut redelivered: Vec<String> = failing.received()[repaired_at..]
        .iter()
        .map(|r| r.ce("id").unwrap_or_default())
        .collect();
    redelivered.sort_unstable();
    assert_eq!(redelivered, ["r-1", "r-2"], "each dead letter once more");
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
    // A `router serve` of this test's own: the duplicate counter has no route
    // label, so only a process no other test sends to counts exactly.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery.dedup]\nwindow = \"1h\"\n\n[[route]]\nname = \"all\"\nforward = \"{}\"\n",
            sink.url()
        ),
    )
    .expect("write config");
    let served = crate::process::serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let url = format!("http://{}/events", served.addr);
    let duplicates = || async {
        let text = served.metrics().await;
        metric(&text, "router_events_duplicate_total", "")
    };
    let send = |id: &'static str| {
        let url = url.clone();
        async move { post_binary(&url, &ce_headers(id, "test.dedup"), "{}").await }
    };
    let before = duplicates().await;
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
    assert_eq!(duplicates().await - before, 1.0);

    // A failed event is forgotten: the sender's retry goes through.
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = send("d-2").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    sink.answer(StatusCode::OK);
    let (status, retried) = send("d-2").await;
    assert_eq!(status, StatusCode::OK);
    assert!(retried["events"][0].get("duplicate").is_none(), "{retried}");
    assert_eq!(sink.received().len(), 3);
    assert_eq!(
        duplicates().await - before,
        1.0,
        "the retry is no duplicate"
    );
    drop(served);

    // A route's own window applies to that route only.
    let router = TestRouter::start(&format!(
        r#"
[[route]]
name = "guarantees-once"
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
    let dropped = |text: &str| {
        metric(
            text,
            "router_route_duplicates_total",
            "route=\"guarantees-once\"",
        )
    };
    let before = dropped(&router.metrics().await);
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
    assert_eq!(dropped(&router.metrics().await) - before, 2.0);
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

/// The Redis dedup store: what one router delivered, another drops.
#[tokio::test]
async fn a_redis_dedup_window_is_shared_by_every_router() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let config = format!(
        "[delivery.dedup]\nwindow = \"1h\"\nstore = \"redis\"\nurl = \"{}\"\n\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
        redis.url(),
        sink.url()
    );
    let (one, two) = (
        TestRouter::start(&config).await,
        TestRouter::start(&config).await,
    );
    let (status, first) = post_binary(
        &one.events_url(),
        &ce_headers("shared-1", "test.dedup"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(first["events"][0].get("duplicate").is_none(), "{first}");
    let (status, again) = post_binary(
        &two.events_url(),
        &ce_headers("shared-1", "test.dedup"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(
        again["events"][0]["duplicate"], true,
        "seen by the other router: {again}"
    );
    assert_eq!(sink.received().len(), 1);
    let ttl: i64 = redis
        .query(redis::cmd("PTTL").arg(format!(
            "router:events:seen:{}",
            dedup_digest("", "/tests", "shared-1")
        )))
        .await;
    assert!(ttl > 3_500_000, "the key expires with the window: {ttl} ms");
}

/// The Redis stream store of dead letters: kept in the stream, listed, and
/// removed once a redrive delivers them.
#[tokio::test]
async fn dead_letters_in_a_redis_stream_are_listed_and_removed_by_a_redrive() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    sink.answer(StatusCode::BAD_REQUEST);
    let router = TestRouter::start(&format!(
        "[delivery.dead_letter]\nstream = \"t:dlq\"\nredis = \"{}\"\n\n[[route]]\nname = \"picky\"\nforward = \"{}\"\n",
        redis.url(),
        sink.url()
    ))
    .await;
    let (status, body) =
        post_binary(&router.events_url(), &ce_headers("dl-r", "test.dlq"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["routes"][0]["outcome"], "dead_lettered");
    assert_eq!(redis.query::<u64>(redis::cmd("XLEN").arg("t:dlq")).await, 1);
    let listed = router.admin("dlq").await;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(
        listed["dead_letters"][0]["reason"], "not_retryable",
        "400 is not retried"
    );
    assert_eq!(listed["dead_letters"][0]["event"]["id"], "dl-r");

    sink.answer(StatusCode::OK);
    let answer = client()
        .post(format!("{}/admin/dlq/redrive", router.admin_url()))
        .body(r#"{"all": true}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(redis.query::<u64>(redis::cmd("XLEN").arg("t:dlq")).await, 0);
    assert_eq!(
        sink.received().len(),
        2,
        "the first refusal, then the redrive"
    );
}
