//! Real components misbehaving: traps, timeouts, errors, and chains that loop.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;

const ROUTES: &str = r#"
[[route]]
name = "trap"
filter = { exact = { type = "test.trap" } }
handler = "trap"

[[route]]
name = "fail"
filter = { exact = { type = "test.fail" } }
handler = "fail"

[[route]]
name = "loop"
filter = { exact = { type = "test.loop" } }
handler = "relay"
"#;

fn failure(body: &Value) -> (String, bool, String) {
    let route = &body["events"][0]["routes"][0];
    (
        route["route"].as_str().unwrap_or_default().to_owned(),
        route["retryable"].as_bool().unwrap_or_default(),
        route["errors"][0].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_trapping_plugin_fails_its_route_and_the_next_event_gets_a_fresh_instance() {
    let router = TestRouter::start(ROUTES).await;
    let url = router.events_url();
    let (status, body) = post_binary(&url, &ce_headers("p-1", "test.trap"), "panic").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (route, retryable, error) = failure(&body);
    assert_eq!(route, "trap");
    assert!(retryable);
    assert!(error.contains("plugin `trap` trapped"), "{error}");
    // The trapped instance was discarded: the plugin keeps serving.
    for i in 0..3 {
        let (status, body) =
            post_binary(&url, &ce_headers(&format!("ok-{i}"), "test.trap"), "fine").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

#[tokio::test]
async fn an_endless_loop_is_interrupted_at_the_time_limit() {
    let router = TestRouter::start(ROUTES).await;
    let url = router.events_url();
    let started = std::time::Instant::now();
    let (status, body) = post_binary(&url, &ce_headers("l-1", "test.trap"), "loop").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (_, _, error) = failure(&body);
    assert!(
        error.contains("exceeded its time limit of 300ms"),
        "{error}"
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let (status, _) = post_binary(&url, &ce_headers("l-2", "test.trap"), "fine").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn retryable_and_fatal_handler_errors_map_to_502_and_422() {
    let router = TestRouter::start(ROUTES).await;
    let url = router.events_url();
    let (status, body) = post_binary(&url, &ce_headers("f-1", "test.fail"), "retry").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (route, retryable, error) = failure(&body);
    assert_eq!((route.as_str(), retryable), ("fail", true));
    assert!(error.contains("(retryable)"), "{error}");

    let (status, body) = post_binary(&url, &ce_headers("f-2", "test.fail"), "fatal").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, retryable, error) = failure(&body);
    assert!(!retryable);
    assert!(error.contains("(fatal)"), "{error}");

    let (status, _) = post_binary(&url, &ce_headers("f-3", "test.fail"), "ok").await;
    assert_eq!(status, StatusCode::OK);
}

/// relay emits `test.loop`, which routes back to relay: the hop limit ends it.
#[tokio::test]
async fn a_routing_loop_stops_at_the_hop_limit_with_the_chain_ids_carried() {
    let router = TestRouter::start(&format!("[server]\nhop_limit = 3\n{ROUTES}")).await;
    let (status, body) =
        post_binary(&router.events_url(), &ce_headers("root", "test.loop"), "x").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Walk the chain: root -> 3 emitted generations, the last one's emission dropped.
    let mut event = &body["events"][0];
    let mut depth = 0;
    let mut parent_id = String::new();
    loop {
        let route = &event["routes"][0];
        if depth > 0 {
            assert_eq!(event["id"], format!("{parent_id}-r"));
        }
        parent_id = event["id"].as_str().unwrap_or_default().to_owned();
        match route["emitted"].get(0) {
            Some(child) => {
                assert_eq!(route["outcome"], "delivered");
                event = child;
                depth += 1;
            }
            None => {
                assert_eq!(route["outcome"], "failed");
                assert!(
                    route["errors"][0]
                        .as_str()
                        .is_some_and(|e| e.contains("hop limit of 3")),
                    "{route}"
                );
                break;
            }
        }
    }
    assert_eq!(depth, 3);
}

#[tokio::test]
async fn emitted_events_carry_causation_and_correlation_ids() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[server]\nhop_limit = 2\n{ROUTES}\n[[route]]\nname = \"watch\"\nfilter = {{ prefix = {{ id = \"c-root-\" }} }}\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    let mut headers = ce_headers("c-root", "test.loop");
    headers.push(("ce-correlationid", "corr-7"));
    let _ = post_binary(&router.events_url(), &headers, "x").await;
    let got = sink.wait_for(2).await;
    let mut pairs: Vec<_> = got
        .iter()
        .map(|r| {
            (
                r.ce("id").unwrap_or_default(),
                r.ce("causationid").unwrap_or_default(),
                r.ce("correlationid").unwrap_or_default(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec![
            ("c-root-r".into(), "c-root".into(), "corr-7".into()),
            ("c-root-r-r".into(), "c-root-r".into(), "corr-7".into()),
        ]
    );
}
