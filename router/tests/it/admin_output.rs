//! What the admin API and `/metrics` look like to a person (issue 21): compact
//! JSON unless asked to indent, no `null` padding, plugin paths without `..`,
//! accepted events counted by outcome, series in label order, seconds in plain
//! decimals, and the durable queue's gauges only in durable mode.

use crate::common::*;
use axum::http::StatusCode;

/// `/admin/routes` and `/admin/plugins`: one line for `Accept: */*` (curl,
/// scripts), indented for `?pretty` or a browser; no `null` members; a plugin
/// configured as `dir/sub/../p.wasm` shown as `dir/p.wasm`.
#[tokio::test]
async fn admin_answers_are_compact_unless_asked_and_carry_no_nulls() {
    let wasm = std::path::Path::new(plugin_artifacts::ENRICHER);
    let dir = wasm.parent().expect("artifact dir");
    let detour = format!(
        "{}/../{}/{}",
        dir.display(),
        dir.file_name().expect("dir name").to_string_lossy(),
        wasm.file_name().expect("file name").to_string_lossy()
    );
    let sink = Sink::start().await;
    let text = format!(
        "[[plugin]]\nname = \"enricher\"\npath = {detour:?}\n\n[[route]]\nname = \"output-plain\"\nforward = \"{}\"\n\n[[route]]\nname = \"output-enrich\"\nfilter = {{ exact = {{ type = \"t\" }} }}\nhandler = \"enricher\"\n",
        sink.url()
    );
    let config =
        router::config::Config::parse(router::config::Source::new("t.toml", text), |_| None)
            .unwrap_or_else(|e| panic!("{e}"));
    let router = TestRouter::start_config(&config).await;
    let get = |path: &'static str, accept: &'static str| {
        let url = format!("{}{path}", router.admin_url());
        async move {
            let response = client()
                .get(url)
                .header("accept", accept)
                .send()
                .await
                .expect("admin request");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                response.headers()["content-type"],
                "application/json",
                "{path}"
            );
            response.text().await.expect("body")
        }
    };
    for path in ["/admin/routes", "/admin/plugins"] {
        let compact = get(path, "*/*").await;
        assert!(!compact.contains('\n'), "{path} compact: {compact}");
        assert!(!compact.contains("null"), "{path} has nulls: {compact}");
        let pretty_query: &'static str = if path == "/admin/routes" {
            "/admin/routes?pretty"
        } else {
            "/admin/plugins?pretty"
        };
        for (pretty, accept) in [
            (pretty_query, "*/*"),
            (path, "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"),
        ] {
            let indented = get(pretty, accept).await;
            assert!(
                indented.contains("\n  \"") && indented.ends_with("}\n"),
                "{pretty} with {accept}: {indented}"
            );
            let same: serde_json::Value = serde_json::from_str(&indented).expect("JSON");
            let compact: serde_json::Value = serde_json::from_str(&compact).expect("JSON");
            assert_eq!(same["generation"], compact["generation"]);
        }
    }
    let off = get("/admin/routes?pretty=false", "*/*").await;
    assert!(!off.contains('\n'), "{off}");

    let plugins: serde_json::Value =
        serde_json::from_str(&get("/admin/plugins", "*/*").await).expect("JSON");
    let enricher = &plugins["plugins"][0];
    assert_eq!(
        enricher["file"],
        serde_json::json!(plugin_artifacts::ENRICHER)
    );
    assert_eq!(enricher["breaker"], "closed");
    assert!(enricher.get("paused_for_ms").is_none(), "{enricher}");
    assert!(plugins["reload"].get("last_error").is_none(), "{plugins}");

    // A route's steps and targets, and the type its handler was seen to emit
    // with the routes that took it.
    let (status, body) = post_binary(&router.events_url(), &ce_headers("e-1", "t"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let routes: serde_json::Value =
        serde_json::from_str(&get("/admin/routes", "*/*").await).expect("JSON");
    assert_eq!(
        routes["routes"][0],
        serde_json::json!({ "name": "output-plain", "forward": sink.url() })
    );
    assert_eq!(
        routes["routes"][1]["emitted"],
        serde_json::json!([{ "type": "t.enriched", "routes": ["output-plain"] }]),
        "{routes}"
    );
}

/// `router_events_accepted_total` by outcome (delivered, dead-lettered,
/// unmatched, duplicate), in a `router serve` of this test's own so that every
/// count is exact; series sorted by label, bucket bounds and sums in plain
/// decimals, and no queue gauges outside durable mode.
#[tokio::test]
async fn metrics_count_accepted_events_by_outcome() {
    let sink = Sink::start().await;
    let broken = Sink::start().await;
    broken.answer(StatusCode::INTERNAL_SERVER_ERROR);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[delivery.dedup]
window = "1h"

[delivery.retry]
max_attempts = 1

[delivery.dead_letter]
file = {dlq:?}

[[route]]
name = "zz-ok"
filter = {{ exact = {{ type = "ok" }} }}
forward = "{ok}"

[[route]]
name = "aa-broken"
filter = {{ exact = {{ type = "broken" }} }}
forward = "{broken}"

[[route]]
name = "mm-enrich"
filter = {{ exact = {{ type = "enrich" }} }}
handler = "enricher"

{plugins}
"#,
            dlq = dir.path().join("dlq.jsonl").display().to_string(),
            ok = sink.url(),
            broken = broken.url(),
            plugins = plugin_tables(),
        ),
    )
    .expect("write config");
    let served = crate::process::serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let events = format!("http://{}/events", served.addr);
    for (id, ty) in [
        ("1", "ok"),
        ("2", "ok"),
        ("1", "ok"),
        ("3", "broken"),
        ("4", "nobody"),
        ("5", "enrich"),
    ] {
        let (status, body) = post_binary(&events, &ce_headers(id, ty), "{}").await;
        assert_eq!(status, StatusCode::OK, "{id} {ty}: {body}");
    }
    let text = served.metrics().await;
    let accepted = |outcome: &str| {
        metric(
            &text,
            "router_events_accepted_total",
            &format!("outcome=\"{outcome}\""),
        )
    };
    // The enricher's event counts as delivered (its handler took it), though
    // the event it emitted went to no route.
    assert_eq!(accepted("delivered"), 3.0, "{text}");
    assert_eq!(accepted("duplicate"), 1.0, "{text}");
    assert_eq!(accepted("dead_lettered"), 1.0, "{text}");
    assert_eq!(accepted("unmatched"), 1.0, "{text}");
    assert_eq!(accepted("dropped"), 0.0, "{text}");
    assert!(
        text.contains("# HELP router_events_accepted Events answered 2xx, by outcome"),
        "{text}"
    );
    assert!(
        !text.contains("router_queue_"),
        "no queue outside durable mode"
    );
    // Series in label order, whatever the hash map's.
    let matched: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("router_route_matched_total{"))
        .collect();
    let mut sorted = matched.clone();
    sorted.sort_unstable();
    assert_eq!(matched.len(), 3, "{text}");
    assert_eq!(matched, sorted);
    assert!(text.contains("le=\"0.00001\""), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| !l.starts_with('#') && l.contains("e-")),
        "no exponents: {text}"
    );
    let enricher_sum = text
        .lines()
        .find(|l| l.starts_with("router_plugin_call_seconds_sum{plugin=\"enricher\"}"))
        .expect("the enricher's time");
    let decimals = enricher_sum
        .rsplit(' ')
        .next()
        .and_then(|v| v.split_once('.'))
        .map_or(0, |(_, d)| d.len());
    assert!(decimals <= 9, "{enricher_sum}");
}

/// In durable mode `/metrics` has the queue's gauges and counts events
/// appended to the stream as accepted, `queued`.
#[tokio::test]
async fn durable_mode_serves_the_queue_metrics() {
    let redis = crate::durable::RedisServer::start().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[queue]\nkind = \"redis\"\nurl = \"{}\"\nstream = \"t:metrics\"\n\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
        redis.url(),
        sink.url()
    ))
    .await;
    crate::durable::wait_ready(&router).await;
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("q-1", "test.queued"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sink.wait_for(1).await;
    let text = router.metrics().await;
    for name in [
        "router_queue_length ",
        "router_queue_pending ",
        "router_queue_enqueued_total ",
        "router_queue_routed_total ",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(
        metric(&text, "router_events_accepted_total", "outcome=\"queued\"") >= 1.0,
        "{text}"
    );
}
