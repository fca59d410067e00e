//! Hostile plugins against the sandbox: each is stopped or refused as configured,
//! with an error naming the plugin and the limit, while a well-behaved route keeps
//! answering during the attack.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The hostile plugin twice: bare (nothing granted), and with grants.
fn config(granted_dir: &str, http_port: u16) -> String {
    format!(
        r#"
[[plugin]]
name = "hostile"
path = {hostile:?}
timeout = "300ms"
memory_limit = "32MiB"
max_emitted = 100
max_event_bytes = "1MiB"
max_log_bytes = "16KiB"
breaker_threshold = 0

[[plugin]]
name = "granted"
path = {hostile:?}
timeout = "2s"
env = ["PATH"]
dirs = [{{ host = {granted_dir:?}, guest = "/data" }}]
http = [{{ host = "127.0.0.1:{http_port}", methods = ["GET"] }}]

[[route]]
name = "attack"
filter = {{ exact = {{ type = "attack" }} }}
handler = "hostile"

[[route]]
name = "granted"
filter = {{ exact = {{ type = "granted" }} }}
handler = "granted"

[[route]]
name = "neighbour"
filter = {{ exact = {{ type = "t" }} }}
handler = "enricher"
"#,
        hostile = plugin_artifacts::HOSTILE,
    )
}

struct Harness {
    router: Arc<TestRouter>,
    sink: Sink,
    dir: tempfile::TempDir,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("hello.txt"), "hello from the host").expect("write");
    let sink = Sink::start().await;
    let text = config(&dir.path().display().to_string(), sink.addr.port());
    let router = Arc::new(TestRouter::start(&text).await);
    Harness { router, sink, dir }
}

async fn attack(router: &TestRouter, ty: &str, data: &str) -> (StatusCode, Value) {
    post_binary(
        &router.events_url(),
        &ce_headers(&format!("a-{data}"), ty),
        data.to_owned(),
    )
    .await
}

fn first_error(body: &Value) -> String {
    body["events"][0]["routes"][0]["errors"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Sends events to the well-behaved route until stopped; every answer must be 200.
fn neighbour(
    router: Arc<TestRouter>,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let (status, body) = post_binary(
                &router.events_url(),
                &ce_headers(&format!("n-{n}"), "t"),
                "{}",
            )
            .await;
            assert_eq!(
                status,
                StatusCode::OK,
                "the neighbour failed during the attack: {body}"
            );
            served.fetch_add(1, Ordering::SeqCst);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plugins_are_stopped_while_a_neighbour_keeps_serving() {
    let h = harness().await;
    let (stop, served) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let background = neighbour(
        Arc::clone(&h.router),
        Arc::clone(&stop),
        Arc::clone(&served),
    );

    // (data, expected status, what the error must say besides the plugin's name)
    let cases: [(&str, StatusCode, &[&str]); 7] = [
        ("loop", StatusCode::BAD_GATEWAY, &["time limit of 300ms"]),
        (
            "memory",
            StatusCode::BAD_GATEWAY,
            &["memory_limit of 33554432 bytes"],
        ),
        ("stack", StatusCode::BAD_GATEWAY, &["trapped"]),
        ("panic", StatusCode::BAD_GATEWAY, &["trapped"]),
        (
            "invalid",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["invalid event #0", "id"],
        ),
        (
            "bigevent",
            StatusCode::UNPROCESSABLE_ENTITY,
            &["max_event_bytes", "8388608 bytes"],
        ),
        ("passwd", StatusCode::UNPROCESSABLE_ENTITY, &["/etc/passwd"]),
    ];
    for (data, status, needles) in cases {
        let (got, body) = attack(&h.router, "attack", data).await;
        assert_eq!(got, status, "{data}: {body}");
        let error = first_error(&body);
        assert!(error.contains("plugin `hostile`"), "{data}: {error}");
        for needle in needles {
            assert!(error.contains(needle), "{data}: {error:?} lacks {needle:?}");
        }
    }
    // A million events: stopped by the output limit or, building them, by memory.
    let (got, body) = attack(&h.router, "attack", "flood").await;
    let error = first_error(&body);
    assert!(got.is_client_error() || got.is_server_error(), "{body}");
    assert!(
        error.contains("plugin `hostile`")
            && (error.contains("max_emitted") || error.contains("memory_limit")),
        "{error}"
    );

    // A socket to a listener that is really there is still refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = listener.local_addr().expect("addr");
    let (got, body) = attack(&h.router, "attack", &format!("socket:{target}")).await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        first_error(&body).contains(&format!("connect {target}")),
        "{body}"
    );

    // Outbound HTTP to a host that is not allowed: the guest sees the refusal.
    let (got, body) = attack(
        &h.router,
        "attack",
        &format!("http:http://{}/", h.sink.addr),
    )
    .await;
    assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(first_error(&body).contains("HttpRequestDenied"), "{body}");
    assert!(
        h.sink.received().is_empty(),
        "the denied request reached the host"
    );

    stop.store(true, Ordering::SeqCst);
    background.await.expect("the neighbour task");
    assert!(
        served.load(Ordering::SeqCst) > 0,
        "the neighbour was served during the attack"
    );
    // The hostile plugin still answers normal events: trapped instances were replaced.
    let (got, body) = attack(&h.router, "attack", "nothing").await;
    assert_eq!(got, StatusCode::OK, "{body}");
}

/// The loop is interrupted at the limit, never before. The bound after it is one
/// epoch tick plus slack for a loaded CI machine (the ticker thread and the worker
/// may be descheduled); `benches/instances.rs` measures the real overshoot.
#[tokio::test]
async fn an_endless_loop_stops_within_the_limit_plus_a_tick() {
    let h = harness().await;
    let (_, body) = attack(&h.router, "attack", "loop").await;
    let error = first_error(&body);
    let after = error
        .rsplit("interrupted after ")
        .next()
        .and_then(|t| t.strip_suffix(")"))
        .and_then(|t| t.strip_suffix("ms"))
        .and_then(|t| t.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no elapsed time in {error:?}"));
    assert!(
        (300.0..=300.0 + 10.0 + 190.0).contains(&after),
        "interrupted after {after} ms"
    );
}

#[tokio::test]
async fn chatty_plugins_are_cut_at_their_log_budget() {
    let h = harness().await;
    let dropped_now = || async {
        let text = h.router.metrics().await;
        metric(
            &text,
            "router_plugin_log_dropped_bytes_total",
            "plugin=\"hostile\"",
        )
    };
    let before = dropped_now().await;
    for data in ["log", "print"] {
        let (got, body) = attack(&h.router, "attack", data).await;
        assert_eq!(got, StatusCode::OK, "{data}: {body}");
    }
    let dropped = dropped_now().await - before;
    // 10 MiB of log and 2 MiB of stdio against a 16 KiB budget per call.
    assert!(dropped > 11.0 * 1024.0 * 1024.0, "dropped {dropped} bytes");
}

#[tokio::test]
async fn granted_capabilities_work_and_nothing_else_does() {
    let h = harness().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "{}\n[[route]]\nname = \"out\"\nfilter = {{ prefix = {{ type = \"hostile.\" }} }}\nforward = \"{}\"\n",
        config(h.dir.path().to_str().expect("utf-8"), h.sink.addr.port()),
        sink.url()
    ))
    .await;
    let data_of = |r: &Received| String::from_utf8_lossy(&r.body).into_owned();

    let (got, body) = attack(&router, "granted", "readfile:/data/hello.txt").await;
    assert_eq!(got, StatusCode::OK, "{body}");
    let (got, body) = attack(&router, "granted", "readfile:/data/../../etc/passwd").await;
    assert_eq!(
        got,
        StatusCode::UNPROCESSABLE_ENTITY,
        "escaping the grant: {body}"
    );
    let (got, _) = attack(&router, "granted", "env:PATH").await;
    assert_eq!(got, StatusCode::OK);
    let (got, _) = attack(&router, "attack", "env:PATH").await;
    assert_eq!(got, StatusCode::OK);
    let (got, body) = attack(
        &router,
        "granted",
        &format!("http:http://{}/hello", h.sink.addr),
    )
    .await;
    assert_eq!(got, StatusCode::OK, "{body}");
    assert_eq!(
        h.sink.wait_for(1).await.len(),
        1,
        "the allowed request reached the host"
    );

    let got = sink.wait_for(4).await;
    let find = |ty: &str, id: &str| {
        got.iter()
            .find(|r| {
                r.ce("type").as_deref() == Some(ty) && r.ce("id").is_some_and(|i| i.starts_with(id))
            })
            .map(data_of)
            .unwrap_or_else(|| panic!("no {ty} for {id}"))
    };
    assert_eq!(find("hostile.read", "a-readfile"), "hello from the host");
    let envs: Vec<_> = got
        .iter()
        .filter(|r| r.ce("type").as_deref() == Some("hostile.env"))
        .map(data_of)
        .collect();
    assert!(envs.iter().any(|d| d.starts_with("present:")), "{envs:?}");
    assert!(
        envs.iter().any(|d| d == "absent"),
        "an ungranted plugin sees no environment: {envs:?}"
    );
    assert!(find("hostile.http", "a-http").starts_with("200"));
}

#[tokio::test]
async fn a_component_whose_initial_memory_exceeds_the_limit_is_refused_at_load() {
    let text = |limit: &str| {
        format!(
            "[[plugin]]\nname = \"big\"\npath = {:?}\nmemory_limit = \"{limit}\"\n",
            plugin_artifacts::BIGSTATIC
        )
    };
    let config = router::config::Config::parse(
        router::config::Source::new("big.toml", text("64MiB")),
        |_| None,
    )
    .expect("config");
    let Err(errors) = router::runtime::Runtime::build(&config).await else {
        panic!("a 96 MiB initial memory loaded under a 64 MiB limit");
    };
    let message = errors.to_string();
    assert!(
        message.contains("plugin `big`") && message.contains("memory_limit of 67108864 bytes"),
        "{message}"
    );
    let config = router::config::Config::parse(
        router::config::Source::new("big.toml", text("256MiB")),
        |_| None,
    )
    .expect("config");
    assert!(router::runtime::Runtime::build(&config).await.is_ok());
}

#[tokio::test]
async fn a_plugin_that_keeps_trapping_is_paused_by_its_breaker() {
    let router = TestRouter::start(&format!(
        "[[plugin]]\nname = \"fragile\"\npath = {:?}\nbreaker_threshold = 2\nbreaker_cooldown = \"1m\"\n\n[[route]]\nname = \"r\"\nhandler = \"fragile\"\n",
        plugin_artifacts::HOSTILE
    ))
    .await;
    for _ in 0..2 {
        let (got, body) = attack(&router, "x", "panic").await;
        assert!(first_error(&body).contains("trapped"), "{got}: {body}");
    }
    let (got, body) = attack(&router, "x", "nothing").await;
    assert_eq!(got, StatusCode::BAD_GATEWAY, "{body}");
    assert!(first_error(&body).contains("paused"), "{body}");
    let plugins = router.admin("plugins").await;
    let fragile = plugins["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "fragile"))
        .cloned()
        .unwrap_or_default();
    assert!(
        fragile["paused_for_ms"].as_u64().is_some_and(|ms| ms > 0),
        "{plugins}"
    );
}

/// The memory bomb stays inside its limit: the router's own resident memory does
/// not grow by more than the guests' limits allow.
#[tokio::test]
async fn the_router_rss_stays_bounded_during_memory_bombs() {
    let h = harness().await;
    let before = rss_bytes();
    for _ in 0..8 {
        let (got, _) = attack(&h.router, "attack", "memory").await;
        assert_eq!(got, StatusCode::BAD_GATEWAY);
    }
    let grown = rss_bytes().saturating_sub(before);
    // Four instances of 32 MiB at most could be resident; allow that and no more.
    assert!(
        grown < 4 * 32 * 1024 * 1024 + 32 * 1024 * 1024,
        "RSS grew by {grown} bytes"
    );
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test]
async fn fresh_mode_keeps_no_instance_between_events() {
    let router = TestRouter::start(&format!(
        "[[plugin]]\nname = \"once\"\npath = {:?}\nmode = \"fresh\"\n\n[[route]]\nname = \"r\"\nfilter = {{ exact = {{ type = \"t\" }} }}\nhandler = \"once\"\n",
        plugin_artifacts::ENRICHER
    ))
    .await;
    for i in 0..5 {
        let (got, _) = post_binary(
            &router.events_url(),
            &ce_headers(&format!("f-{i}"), "t"),
            "",
        )
        .await;
        assert_eq!(got, StatusCode::OK);
    }
    let plugins = router.admin("plugins").await;
    let once = plugins["plugins"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "once"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(once["mode"], "fresh");
    assert_eq!(once["idle_instances"], 0, "{plugins}");
}
