//! Real components misbehaving: traps, errors, and chains that loop (time limits
//! and the other sandbox limits are in `sandbox.rs`).

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

/// The `[[plugin]]` tables of the two kv test plugins, under `[kv]` `store`.
fn kv_plugins(kv: &str) -> String {
    format!(
        r#"
{kv}
[[plugin]]
name = "kv-probe"
path = {probe:?}

[[plugin]]
name = "kv-legacy"
path = {legacy:?}

[[route]]
name = "probe"
filter = {{ prefix = {{ type = "test.kv" }} }}
handler = "kv-probe"

[[route]]
name = "legacy"
filter = {{ exact = {{ type = "test.legacy" }} }}
handler = "kv-legacy"
"#,
        probe = plugin_artifacts::KV_PROBE,
        legacy = plugin_artifacts::KV_LEGACY,
    )
}

/// The type of the first event the first route emitted.
fn emitted_type(body: &Value) -> String {
    body["events"][0]["routes"][0]["emitted"][0]["type"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_component_built_against_router_plugin_0_1_0_still_loads_and_runs() {
    let router = TestRouter::start(&kv_plugins("")).await;
    let plugins = router.admin("plugins").await;
    let legacy = plugins["plugins"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "kv-legacy"))
        .unwrap_or_else(|| panic!("{plugins}"));
    assert_eq!(legacy["world"], "router:plugin/handler@0.1.0");
    let url = router.events_url();
    for (n, id) in ["a", "b"].iter().enumerate() {
        let (status, body) = post_binary(&url, &ce_headers(id, "test.legacy"), "count").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let emitted = &body["events"][0]["routes"][0]["emitted"][0];
        assert_eq!(emitted["type"], "legacy.counted", "{body}");
        assert_eq!(emitted["id"], format!("{id}-counted-{}", n + 1), "{body}");
    }
    // Its kv-error is still the store's message, as a string.
    let (status, body) = post_binary(&url, &ce_headers("c", "test.legacy"), "not-integer").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (route, retryable, error) = failure(&body);
    assert_eq!((route.as_str(), retryable), ("legacy", true));
    assert!(error.contains("is not an integer"), "{error}");
}

#[tokio::test]
async fn a_0_2_0_handler_tells_a_bad_key_or_value_from_an_unavailable_store() {
    let router = TestRouter::start(&kv_plugins("")).await;
    let url = router.events_url();
    for (data, case) in [
        ("bad-key", "kv.invalid-key"),
        ("not-integer", "kv.invalid-value"),
        ("get", "kv.ok"),
    ] {
        let (status, body) = post_binary(&url, &ce_headers(data, "test.kv"), data).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(emitted_type(&body), case, "{body}");
    }
    // Through `?`, a value that is not an integer is fatal: retrying cannot help.
    let (status, body) =
        post_binary(&url, &ce_headers("p-1", "test.kv.propagate"), "not-integer").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (_, retryable, error) = failure(&body);
    assert!(!retryable);
    assert!(
        error.contains("(fatal)") && error.contains("not an integer"),
        "{error}"
    );

    // A Redis store that does not answer is unavailable, and retryable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let down = format!("[kv]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n");
    let router = TestRouter::start(&kv_plugins(&down)).await;
    let url = router.events_url();
    let (status, body) = post_binary(&url, &ce_headers("u-1", "test.kv"), "get").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(emitted_type(&body), "kv.unavailable", "{body}");
    let (status, body) = post_binary(&url, &ce_headers("u-2", "test.kv.propagate"), "get").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let (_, retryable, error) = failure(&body);
    assert!(retryable && error.contains("unavailable"), "{error}");
}

#[tokio::test]
async fn a_component_of_a_version_the_router_does_not_serve_is_refused_by_name() {
    // The 0.1.0 component with every `@0.1.0` of its interface names made
    // `@0.9.0`: same length, so the binary stays valid.
    let mut bytes = std::fs::read(plugin_artifacts::KV_LEGACY).expect("read kv-legacy");
    let (from, to) = (b"router:plugin/", b"@0.1.0");
    let mut i = 0;
    while let Some(at) = bytes[i..].windows(from.len()).position(|w| w == from) {
        let start = i + at + from.len();
        let end = (start + 32).min(bytes.len());
        if let Some(v) = bytes[start..end].windows(to.len()).position(|w| w == to) {
            bytes[start + v..start + v + to.len()].copy_from_slice(b"@0.9.0");
        }
        i = start;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("future.wasm");
    std::fs::write(&path, &bytes).expect("write");
    let text = format!("[[plugin]]\nname = \"future\"\npath = {path:?}\n");
    let config =
        router::config::Config::parse(router::config::Source::new("f.toml", text), |_| None)
            .expect("config");
    let Err(errors) = router::runtime::Runtime::build(&config).await else {
        panic!("a component of router:plugin@0.9.0 loaded");
    };
    let message = errors.to_string();
    assert!(
        message.contains("plugin `future`")
            && message.contains("router:plugin@0.9.0; this router serves 0.2.0 and 0.1.0"),
        "{message}"
    );
}
