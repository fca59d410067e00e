//! Shadow and canary versions of a plugin (issue 23): a shadow sees every
//! event of the live version, is compared with it and never routes nor
//! writes the live store; a failing canary is rolled back without a failed
//! request; a promotion makes the candidate live like a reload.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

/// `plugin` as a `[[plugin]]` table named `name`, with `extra` lines.
fn plugin(name: &str, path: &str, extra: &str) -> String {
    format!("[[plugin]]\nname = \"{name}\"\npath = {path:?}\n{extra}\n\n")
}

/// A route of events of type `ty` to `target` (`handler = ...` or `forward = ...`).
fn route(name: &str, ty: &str, target: &str) -> String {
    format!(
        "[[route]]\nname = \"{name}\"\nfilter = {{ exact = {{ type = \"{ty}\" }} }}\n{target}\n\n"
    )
}

fn count(report: &Value, outcome: &str) -> u64 {
    report["counts"][outcome].as_u64().unwrap_or_default()
}

fn total(report: &Value) -> u64 {
    report["counts"]
        .as_object()
        .map_or(0, |c| c.values().filter_map(Value::as_u64).sum())
}

/// The inventory with no stock rejects every order; its shadow, the same
/// component with stock, reserves them. Orders are the one event type on
/// which they differ: the differences are exactly those events; shipped
/// events compare equal. The shadow's reservations reach no sink and no
/// live key: an order sent again is still judged by the live version alone.
#[tokio::test]
async fn a_shadow_is_compared_on_every_event_and_never_routes_nor_writes_live_kv() {
    let sink = Sink::start().await;
    let forward = format!("forward = \"{}\"", sink.url());
    let shadow = format!(
        "config = {{ stock = 0 }}\nshadow = {{ path = {:?}, config = {{ stock = 100 }}, ignore = [\"time\"] }}",
        plugin_artifacts::INVENTORY
    );
    let toml = [
        plugin("stock", plugin_artifacts::INVENTORY, &shadow),
        route("orders", "com.example.order.created", "handler = \"stock\""),
        route(
            "shipped",
            "com.example.order.shipped",
            "handler = \"stock\"",
        ),
        route("rejected", "com.example.order.rejected", &forward),
        route("reserved", "com.example.inventory.reserved", &forward),
    ]
    .concat();
    let router = TestRouter::start(&toml).await;
    let url = router.events_url();
    for i in 0..3 {
        let id = format!("o-{i}");
        let headers = ce_headers(&id, "com.example.order.created");
        let mut headers = headers.clone();
        headers.push(("content-type", "application/json"));
        let (status, body) = post_binary(&url, &headers, order(&id, &[("p-1", 2)])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = post_binary(
            &url,
            &ce_headers(&format!("s-{i}"), "com.example.order.shipped"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let report = router
        .admin_until("plugins/stock/shadow", |r| total(r) == 6)
        .await;
    assert_eq!(count(&report, "different"), 3, "{report:#}");
    assert_eq!(count(&report, "equal"), 3, "{report:#}");
    let differences = report["differences"].as_array().expect("differences");
    let mut ids: Vec<&str> = differences
        .iter()
        .map(|d| d["event"]["id"].as_str().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["o-0", "o-1", "o-2"], "{report:#}");
    let first = &differences[0];
    assert_eq!(first["outcome"], "different");
    assert!(
        first["differing"]
            .as_array()
            .expect("differing")
            .contains(&Value::from("#0.type")),
        "{first:#}"
    );
    assert_eq!(first["live"][0]["type"], "com.example.order.rejected");
    assert_eq!(
        first["candidate"][0]["type"],
        "com.example.inventory.reserved"
    );

    // The same order again: had the shadow's `order:o-0` reached the live
    // store, the live version would answer "seen before" and reserve.
    let mut headers = ce_headers("o-0-again", "com.example.order.created");
    headers.push(("content-type", "application/json"));
    let (status, body) = post_binary(&url, &headers, order("o-0", &[("p-1", 2)])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    router
        .admin_until("plugins/stock/shadow", |r| total(r) == 7)
        .await;
    let received = sink.wait_for(4).await;
    let types: Vec<String> = received
        .iter()
        .map(|r| r.ce("type").expect("type"))
        .collect();
    assert_eq!(
        types,
        vec!["com.example.order.rejected"; 4],
        "only the live version's events are routed"
    );
    let metrics = router.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "router_shadow_comparisons_total",
            "plugin=\"stock\",outcome=\"different\""
        ),
        4.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "router_plugin_invocations_total",
            "plugin=\"stock@shadow\""
        ),
        7.0
    );
    let plugins = router.admin("plugins").await;
    let stock = plugins["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "stock"))
        .expect("stock");
    assert!(stock["shadow"]["sha256"].is_string(), "{stock:#}");
}

/// A shadow's outbound HTTP is denied unless its own `http` grants it: the
/// plugin's grants do not carry over. Only the live version's request (and
/// the explicitly granted shadow's) reach the server.
#[tokio::test]
async fn a_shadow_calls_out_only_when_granted_explicitly() {
    let server = Sink::start().await;
    let grant = format!("{{ host = \"http://{}\" }}", server.addr);
    let toml = [
        plugin(
            "ungranted",
            plugin_artifacts::HOSTILE,
            &format!("http = [{grant}]\nshadow = {:?}", plugin_artifacts::HOSTILE),
        ),
        plugin(
            "granted",
            plugin_artifacts::HOSTILE,
            &format!(
                "http = [{grant}]\nshadow = {{ path = {:?}, http = [{grant}] }}",
                plugin_artifacts::HOSTILE
            ),
        ),
        route("ungranted", "test.ungranted", "handler = \"ungranted\""),
        route("granted", "test.granted", "handler = \"granted\""),
    ]
    .concat();
    let router = TestRouter::start(&toml).await;
    let call = format!("http:{}", server.url());
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("h-1", "test.ungranted"),
        call.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = router
        .admin_until("plugins/ungranted/shadow", |r| total(r) == 1)
        .await;
    assert_eq!(count(&report, "candidate_failed"), 1, "{report:#}");
    assert_eq!(
        server.received().len(),
        1,
        "only the live version's request"
    );
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("h-2", "test.granted"),
        call,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = router
        .admin_until("plugins/granted/shadow", |r| total(r) == 1)
        .await;
    assert_eq!(count(&report, "equal"), 1, "{report:#}");
    assert_eq!(
        server.wait_for(3).await.len(),
        3,
        "the granted shadow called out"
    );
}

/// A shadow that cannot keep up loses shadow work, never the live path's
/// time: with one pending call allowed and a shadow that spins to its time
/// limit, the other events' shadow calls are dropped and counted, and every
/// request is answered well before the shadow's call ends.
#[tokio::test]
async fn a_shadow_that_falls_behind_drops_work_instead_of_delaying_requests() {
    let shadow = format!(
        "timeout = \"3s\"\nshadow = {{ path = {:?}, max_pending = 1 }}",
        plugin_artifacts::TRAP
    );
    let toml = [
        plugin("steady", plugin_artifacts::FAIL, &shadow),
        route("steady", "test.steady", "handler = \"steady\""),
    ]
    .concat();
    let router = TestRouter::start(&toml).await;
    let url = router.events_url();
    let started = Instant::now();
    for i in 0..5 {
        let sent = Instant::now();
        let (status, body) =
            post_binary(&url, &ce_headers(&format!("l-{i}"), "test.steady"), "loop").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "request {i} waited {:?} for the shadow",
            sent.elapsed()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(3));
    let report = router
        .admin_until("plugins/steady/shadow", |r| total(r) == 1)
        .await;
    assert_eq!(report["dropped"], 4, "{report:#}");
    assert_eq!(count(&report, "candidate_failed"), 1, "{report:#}");
    let error = report["differences"][0]["candidate"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("time limit"), "{report:#}");
    let metrics = router.metrics().await;
    assert_eq!(
        metric(&metrics, "router_shadow_dropped_total", "plugin=\"steady\""),
        4.0
    );
}

/// A canary that traps on every event is rolled back once it has had
/// `min_calls` calls in its window; the events it failed are handled by the
/// live version, so no request fails, and after the rollback it gets none.
#[tokio::test]
async fn a_failing_canary_is_rolled_back_and_no_request_fails() {
    let sink = Sink::start().await;
    let canary = format!(
        "config = {{ region = \"live\" }}\ncanary = {{ path = {:?}, share = 0.5, max_error_ratio = 2.0, window = \"1m\", min_calls = 5 }}",
        plugin_artifacts::TRAP
    );
    let toml = [
        plugin("stamp", plugin_artifacts::ENRICHER, &canary),
        route("stamp", "test.canary", "handler = \"stamp\""),
        route(
            "stamped",
            "test.canary.enriched",
            &format!("forward = \"{}\"", sink.url()),
        ),
    ]
    .concat();
    let router = TestRouter::start(&toml).await;
    let url = router.events_url();
    let started = Instant::now();
    let mut failed = 0;
    for i in 0..60 {
        let (status, _) =
            post_binary(&url, &ce_headers(&format!("c-{i}"), "test.canary"), "panic").await;
        failed += usize::from(status != StatusCode::OK);
    }
    assert_eq!(failed, 0, "no request failed");
    let received = sink.wait_for(60).await;
    assert_eq!(received.len(), 60);
    assert!(
        received
            .iter()
            .all(|r| r.ce("region").as_deref() == Some("live")),
        "the live version handled every event"
    );
    let plugins = router.admin("plugins").await;
    let stamp = plugins["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "stamp"))
        .expect("stamp")
        .clone();
    let canary = &stamp["canary"];
    assert_eq!(canary["state"], "rolled_back", "{stamp:#}");
    assert_eq!(canary["total"]["candidate_calls"], 5, "{stamp:#}");
    assert_eq!(canary["total"]["candidate_errors"], 5, "{stamp:#}");
    let reason = canary["rollback"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("failed 5 of 5 calls"),
        "the rollback says why: {reason}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "rolled back within its one-minute window"
    );
    let metrics = router.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "router_canary_rollbacks_total",
            "plugin=\"stamp\""
        ),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "router_plugin_invocations_total",
            "plugin=\"stamp@canary\""
        ),
        5.0
    );
}

/// A promotion makes the shadow the live version in a new generation; the
/// shadow is gone, a reload of the unchanged file keeps the promotion, and
/// promoting again, or an unknown plugin, is refused.
#[tokio::test]
async fn promote_swaps_the_candidate_in_and_a_reload_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let shadow = format!(
        "config = {{ region = \"v1\" }}\nshadow = {{ path = {:?}, config = {{ region = \"v2\" }} }}",
        plugin_artifacts::ENRICHER
    );
    let toml = [
        plugin("stamp", plugin_artifacts::ENRICHER, &shadow),
        route("stamp", "test.promote", "handler = \"stamp\""),
        route(
            "stamped",
            "test.promote.enriched",
            &format!("forward = \"{}\"", sink.url()),
        ),
    ]
    .concat();
    let config = dir.path().join("router.toml");
    std::fs::write(&config, toml).expect("write config");
    let router = TestRouter::start_file(&config).await;
    let url = router.events_url();
    let (status, body) = post_binary(&url, &ce_headers("p-1", "test.promote"), "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let report = router
        .admin_until("plugins/stamp/shadow", |r| total(r) == 1)
        .await;
    assert_eq!(
        report["differences"][0]["differing"],
        serde_json::json!(["#0.region"]),
        "{report:#}"
    );
    let generation = router.admin("plugins").await["generation"]
        .as_u64()
        .expect("generation");

    let promote = |name: &'static str| {
        let url = format!("{}/admin/plugins/{name}/promote", router.admin_url());
        async move {
            let answer = client().post(url).send().await.expect("promote");
            let status = answer.status();
            let body: Value =
                serde_json::from_slice(&answer.bytes().await.expect("body")).expect("JSON");
            (status, body)
        }
    };
    let (status, body) = promote("stamp").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(body["generation"], generation + 1);
    let (status, body) = post_binary(&url, &ce_headers("p-2", "test.promote"), "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plugins = router.admin("plugins").await;
    let stamp = &plugins["plugins"][0];
    assert!(
        stamp["promoted_from"].is_string() && stamp.get("shadow").is_none(),
        "{plugins:#}"
    );
    let (status, body) = promote("stamp").await;
    assert_eq!(status, reqwest::StatusCode::CONFLICT, "{body}");
    let (status, body) = promote("nobody").await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND, "{body}");
    let gone = client()
        .get(format!("{}/admin/plugins/stamp/shadow", router.admin_url()))
        .send()
        .await
        .expect("shadow");
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);

    let reloaded = client()
        .post(format!("{}/admin/reload", router.admin_url()))
        .send()
        .await
        .expect("reload");
    assert_eq!(reloaded.status(), reqwest::StatusCode::OK);
    let (status, body) = post_binary(&url, &ce_headers("p-3", "test.promote"), "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let received = sink.wait_for(3).await;
    let regions: Vec<Option<String>> = received.iter().map(|r| r.ce("region")).collect();
    assert_eq!(
        regions,
        [Some("v1".into()), Some("v2".into()), Some("v2".into())],
        "live, then the promoted version, kept by the reload"
    );
}

/// Both admin route lists name the new routes.
#[test]
fn the_admin_route_lists_name_the_shadow_routes() {
    for doc in ["README.md", "docs/operations.md"] {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join(doc),
        )
        .expect(doc);
        for route in [
            "`GET /admin/plugins/{name}/shadow`",
            "`POST /admin/plugins/{name}/promote`",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with("| ") && l.contains(route)),
                "{doc} lists {route} in its admin table"
            );
        }
    }
}
