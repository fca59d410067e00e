//! The archive of accepted events and its replay (issue 23): real segment files,
//! a real `redis-server`, real sinks; the admin API and the CLI.

use crate::common::*;
use crate::durable::{RedisServer, until};
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// ms since the epoch, now.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Posts `n` events `<prefix>-<i>` of type `ty` (structured mode, with an
/// extension and JSON data) and checks each was accepted (`expected`).
async fn post_events(router: &TestRouter, prefix: &str, ty: &str, n: usize, expected: StatusCode) {
    for i in 0..n {
        let event = json!({
            "specversion": "1.0", "id": format!("{prefix}-{i}"), "source": "/archive-test",
            "type": ty, "tenant": "t-1", "data": {"n": i, "pad": "x".repeat(120)},
        });
        let (status, body) = post(
            &router.events_url(),
            "application/cloudevents+json",
            event.to_string(),
        )
        .await;
        assert_eq!(status, expected, "{body}");
    }
}

/// `method path` on the admin API with an optional JSON body: status and JSON.
async fn admin_call(
    router: &TestRouter,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client().request(method, format!("{}{path}", router.admin_url()));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("admin request");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text}: {e}"));
    (status, json)
}

/// `GET /admin/archive` with `query`: status and JSON.
async fn browse(router: &TestRouter, query: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = client()
        .get(format!("{}/admin/archive", router.admin_url()))
        .query(query)
        .send()
        .await
        .expect("GET /admin/archive");
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let body = response.bytes().await.expect("body");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

/// Runs `router <args> --url <the router's admin API>`.
async fn router_cli(router: &TestRouter, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(args)
        .args(["--url", &router.admin_url()])
        .output()
        .await
        .expect("run the router binary")
}

/// Standard output of a `router` run that must succeed.
fn succeeded(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}
{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until replay `id` is no longer running; its last progress.
async fn finished(router: &TestRouter, id: &str) -> Value {
    router
        .admin_until(&format!("replay/{id}"), |p| p["state"] != "running")
        .await
}

/// The segment files of `dir` and their total size.
fn segments(dir: &Path) -> (Vec<std::path::PathBuf>, u64) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let total = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    (files, total)
}

/// Ids of the requests a sink got that carry `replayid = replay`.
fn replayed(received: &[Received], replay: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.ce("replayid").as_deref() == Some(replay))
        .filter_map(|r| r.ce("id"))
        .collect()
}

#[tokio::test]
async fn a_file_archive_keeps_events_whole_and_retains_by_size_and_age() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let router = TestRouter::start(&format!(
        "[archive]\ndir = {archive:?}\nsegment_size = \"1KiB\"\nfsync = \"0s\"\nmax_size = \"4KiB\"\n\
         [[route]]\nname = \"all\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    let before = now_ms();
    post_events(&router, "size", "test.archived", 60, StatusCode::OK).await;
    let after = now_ms();

    // Each line is one event, whole, with its position and arrival time.
    let (files, total) = segments(&archive);
    assert!(files.len() >= 2, "segments rotate past 1KiB: {files:?}");
    // Retention removes whole closed segments: at most one segment (about
    // 1KiB and one block) above max_size remains.
    assert!(
        total <= 4096 + 1024 + 512,
        "{total} bytes kept of 60 events"
    );
    let newest = std::fs::read_to_string(files.last().expect("a segment")).expect("segment");
    let line: Value = serde_json::from_str(newest.lines().last().expect("a line")).expect("JSON");
    assert_eq!(line["event"]["id"], "size-59");
    assert_eq!(line["event"]["tenant"], "t-1", "extensions are kept");
    assert_eq!(line["event"]["data"]["n"], 59, "data is kept");
    let position: String = line["position"].as_str().expect("position").to_owned();
    let arrived_ms: u64 = position.split('-').next().expect("ms").parse().expect("ms");
    assert!(
        (before..=after).contains(&arrived_ms),
        "{position} within the posts"
    );
    let arrived = line["arrived"].as_str().expect("arrived");
    let parsed = chrono::DateTime::parse_from_rfc3339(arrived).expect("RFC 3339");
    assert_eq!(parsed.timestamp_millis() as u64, arrived_ms);

    // The oldest events are gone, the newest listed, in order.
    let listed = router.admin("archive?limit=1000").await;
    let ids: Vec<&str> = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|r| r["event"]["id"].as_str().expect("id"))
        .collect();
    assert!(!ids.contains(&"size-0"), "size-0 was removed by max_size");
    assert_eq!(ids.last(), Some(&"size-59"));
    let numbers: Vec<u64> = ids
        .iter()
        .map(|id| id.trim_start_matches("size-").parse().expect("n"))
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] + 1 == w[1]), "{ids:?}");
    // The metrics are the process's, shared with the other tests: at least ours.
    let metrics = router.metrics().await;
    assert!(
        metric(&metrics, "router_archived_events_total", "") >= 60.0,
        "{metrics}"
    );
    drop(router);

    // By age: a segment whose last write is older than max_age goes, at the
    // next append.
    let aged = dir.path().join("aged");
    let router = TestRouter::start(&format!(
        "[archive]\ndir = {aged:?}\nsegment_age = \"100ms\"\nmax_age = \"1s\"\n\
         [[route]]\nname = \"all\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    post_events(&router, "old", "test.archived", 3, StatusCode::OK).await;
    let listed = router.admin("archive").await;
    assert_eq!(listed["count"], 3, "{listed}");
    let mut n = 0;
    until("the old events are past max_age and removed", || {
        n += 1;
        let router = &router;
        let prefix = format!("new{n}");
        async move {
            post_events(router, &prefix, "test.archived", 1, StatusCode::OK).await;
            let listed = router.admin("archive?limit=1000").await;
            !listed["events"]
                .as_array()
                .expect("events")
                .iter()
                .any(|r| {
                    r["event"]["id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with("old-"))
                })
        }
    })
    .await;
}

#[tokio::test]
async fn a_redis_stream_archive_is_browsed_and_replayed_through_the_queue() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[queue]\nkind = \"redis\"\nurl = \"{url}\"\nstream = \"t:archived\"\n\
         [archive]\nstream = \"t:archive\"\nredis = \"{url}\"\nmax_age = \"1h\"\n\
         filter = {{ prefix = {{ type = \"keep.\" }} }}\n\
         [[route]]\nname = \"all\"\nforward = \"{sink}\"\n",
        url = redis.url(),
        sink = sink.url()
    ))
    .await;
    crate::durable::wait_ready(&router).await;
    let from = now_ms();
    post_events(&router, "kept", "keep.this", 5, StatusCode::ACCEPTED).await;
    post_events(&router, "skipped", "skip.this", 2, StatusCode::ACCEPTED).await;
    let to = now_ms() + 1;
    sink.wait_for(7).await;

    // Only what the archive's filter takes, one entry per event, its id the
    // arrival time.
    let len: u64 = redis.query(redis::cmd("XLEN").arg("t:archive")).await;
    assert_eq!(len, 5);
    let (from_text, to_text) = (from.to_string(), to.to_string());
    let data_filter = r#"{"data": {"pointer": "/n", "numeric": [">=", 3]}}"#;
    let (status, listed) = browse(
        &router,
        &[
            ("from", &from_text),
            ("to", &to_text),
            ("filter", data_filter),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let ids: Vec<&str> = listed["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|r| r["event"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["kept-3", "kept-4"], "{listed}");
    let position = listed["events"][0]["position"].as_str().expect("position");
    let ms: u64 = position.split('-').next().expect("ms").parse().expect("ms");
    assert!((from..to).contains(&ms), "{position}");
    let shown = router.admin(&format!("archive/{position}")).await;
    assert_eq!(shown["event"]["id"], "kept-3");

    // Replay to every route in durable mode goes through the queue.
    let (status, started) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay",
        Some(json!({ "id": "via-queue", "from": from, "to": to, "all": true })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["queued"], true);
    let done = finished(&router, "via-queue").await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["replayed"], 5);
    assert_eq!(done["total"], 5);
    let received = sink.wait_for(12).await;
    let mut again = replayed(&received, "via-queue");
    again.sort();
    assert_eq!(again, ["kept-0", "kept-1", "kept-2", "kept-3", "kept-4"]);
    // The checkpoint is beside the archive, in Redis.
    let checkpoint: String = redis
        .query(redis::cmd("GET").arg("t:archive:replay:via-queue"))
        .await;
    assert!(checkpoint.contains("\"state\":\"done\""), "{checkpoint}");
}

#[tokio::test]
async fn a_replay_to_one_route_reaches_it_only_at_the_rate_and_passes_dedup() {
    let (a, b, emitted) = (
        Sink::start().await,
        Sink::start().await,
        Sink::start().await,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("archive");
    let router = TestRouter::start(&format!(
        "[delivery.dedup]\nwindow = \"1h\"\n\
         [archive]\ndir = {archive:?}\n\
         [[route]]\nname = \"a\"\nfilter = {{ exact = {{ type = \"test.in\" }} }}\nforward = \"{}\"\n\
         [[route]]\nname = \"b\"\nfilter = {{ exact = {{ type = \"test.in\" }} }}\nforward = \"{}\"\n\
         [[route]]\nname = \"relay\"\nfilter = {{ exact = {{ type = \"test.in\" }} }}\nhandler = \"relay\"\n\
         [[route]]\nname = \"relayed\"\nfilter = {{ exact = {{ type = \"test.loop\" }} }}\nforward = \"{}\"\n",
        a.url(),
        b.url(),
        emitted.url()
    ))
    .await;
    post_events(&router, "early", "test.in", 3, StatusCode::OK).await;
    let from = now_ms() + 1;
    // Past the millisecond of the early events, so the window excludes them.
    until("the clock moved on", || async { now_ms() > from }).await;
    post_events(&router, "w", "test.in", 40, StatusCode::OK).await;
    let to = now_ms() + 1;
    until("the clock moved past the window", || async {
        now_ms() > to
    })
    .await;
    post_events(&router, "late", "test.in", 3, StatusCode::OK).await;
    a.wait_for(46).await;
    let b_before = b.wait_for(46).await.len();

    // The same (source, id) again within the dedup window is a duplicate...
    post_events(&router, "w", "test.in", 1, StatusCode::OK).await;
    assert_eq!(a.received().len(), 46, "dedup drops a resent event");

    // ...but a replay is not: its dedup key has the replay id.
    let (status, started) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay",
        Some(
            json!({ "id": "to-a", "from": rfc(from), "to": rfc(to), "route": "a", "rate": "20/s" }),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    let done = finished(&router, "to-a").await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(
        (done["total"].as_u64(), done["replayed"].as_u64()),
        (Some(40), Some(40))
    );
    let received = a.wait_for(86).await;
    let replays: Vec<&Received> = received
        .iter()
        .filter(|r| r.ce("replayid").as_deref() == Some("to-a"))
        .collect();
    let ids: Vec<String> = replays.iter().filter_map(|r| r.ce("id")).collect();
    let expected: Vec<String> = (0..40).map(|i| format!("w-{i}")).collect();
    assert_eq!(ids, expected, "the window only, in arrival order");
    // 40 events at 20/s: the last arrives 39 intervals after the first.
    let spread = replays[39].at - replays[0].at;
    assert!(
        spread >= Duration::from_millis(1900),
        "40 events at 20/s in {spread:?}"
    );
    let metrics = router.metrics().await;
    assert!(
        metric(&metrics, "router_replayed_events_total", "") >= 40.0,
        "{metrics}"
    );
    // Route b, and the relay route with its emitted events, saw nothing.
    assert_eq!(b.received().len(), b_before, "route b was not replayed to");
    assert!(replayed(&emitted.received(), "to-a").is_empty());

    // A replay to every route: the relay's emitted events carry the mark too.
    let (status, started) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay",
        Some(json!({ "id": "all", "from": from, "to": to, "all": true, "filter": "id = 'w-7'" })),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(finished(&router, "all").await["replayed"], 1);
    let relayed = emitted.wait_for(47).await;
    assert_eq!(
        replayed(&relayed, "all"),
        ["w-7-r"],
        "emitted events are marked"
    );
}

/// RFC 3339 of `ms`.
fn rfc(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[tokio::test]
async fn an_interrupted_replay_resumes_without_duplicates() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[archive]\ndir = {:?}\n[[route]]\nname = \"all\"\nforward = \"{}\"\n",
        dir.path().join("archive"),
        sink.url()
    );
    let router = TestRouter::start(&config).await;
    let from = now_ms();
    post_events(&router, "r", "test.in", 30, StatusCode::OK).await;
    let to = now_ms() + 1;
    sink.wait_for(30).await;
    let replay = json!({ "id": "resume-me", "from": from, "to": to, "all": true, "rate": 20 });
    let (status, body) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay",
        Some(replay.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sink.wait_for(30 + 5).await;

    // Cancelled: the event in hand is finished and checkpointed.
    let (status, cancelled) = admin_call(
        &router,
        reqwest::Method::DELETE,
        "/admin/replay/resume-me",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    let first = cancelled["replayed"].as_u64().expect("replayed");
    assert!((5..30).contains(&first), "{cancelled}");
    assert_eq!(replayed(&sink.received(), "resume-me").len() as u64, first);
    // The same id again is refused: it is resumed, not restarted.
    let (status, body) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay",
        Some(replay),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // Resumed, then interrupted by a shutdown.
    let (status, body) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay/resume-me/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sink.wait_for(30 + first as usize + 3).await;
    router.shutdown().await.expect("the router stops");
    let interrupted = replayed(&sink.received(), "resume-me").len();
    assert!(
        interrupted < 30,
        "interrupted before the end ({interrupted})"
    );

    // A new router on the same archive resumes from the checkpoint.
    let router = TestRouter::start(&config).await;
    let stopped = router.admin("replay/resume-me").await;
    assert_eq!(stopped["state"], "interrupted", "{stopped}");
    assert_eq!(stopped["replayed"].as_u64(), Some(interrupted as u64));
    let (status, body) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay/resume-me/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let done = finished(&router, "resume-me").await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["replayed"], 30);
    let all = replayed(&sink.wait_for(60).await, "resume-me");
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), distinct.len()),
        (30, 30),
        "each event once: {all:?}"
    );
    let (status, body) = admin_call(
        &router,
        reqwest::Method::POST,
        "/admin/replay/resume-me/resume",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a finished replay: {body}");
}

#[tokio::test]
async fn bad_replays_and_queries_get_clear_errors() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let router = TestRouter::start(&format!(
        "[archive]\ndir = {:?}\n[[route]]\nname = \"audit\"\nforward = \"{}\"\n",
        dir.path().join("archive"),
        sink.url()
    ))
    .await;
    post_events(&router, "e", "test.in", 2, StatusCode::OK).await;
    let start =
        |body: Value| admin_call(&router, reqwest::Method::POST, "/admin/replay", Some(body));
    let cases = [
        (
            json!({"from": "yesterday", "to": "now", "all": true}),
            400,
            "`from` = \"yesterday\"",
        ),
        (
            json!({"from": "now", "to": "2020-01-01T00:00:00Z", "all": true}),
            400,
            "must be before `to`",
        ),
        (json!({"to": "now", "all": true}), 400, "`from` is required"),
        (
            json!({"from": 0, "to": "now", "route": "nope"}),
            400,
            "unknown route \"nope\": the live routes are audit",
        ),
        (json!({"from": 0, "to": "now"}), 400, "name one route"),
        (
            json!({"from": 0, "to": "now", "route": "audit", "all": true}),
            400,
            "name one route",
        ),
        (
            json!({"from": 0, "to": "now", "all": true, "filter": "type ="}),
            400,
            "bad filter",
        ),
        (
            json!({"from": 0, "to": "now", "all": true, "rate": "fast"}),
            400,
            "bad rate",
        ),
        (
            json!({"from": 0, "to": "now", "all": true, "id": "../x"}),
            400,
            "bad replay id",
        ),
        (
            json!({"from": 0, "to": "now", "all": true, "colour": 1}),
            400,
            "unknown field `colour`",
        ),
    ];
    for (body, status, message) in cases {
        let (got, answer) = start(body.clone()).await;
        assert_eq!(got.as_u16(), status, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(message), "{body}: {error}");
    }
    let (status, answer) =
        admin_call(&router, reqwest::Method::GET, "/admin/replay/none", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = browse(
        &router,
        &[
            ("from", "2030-01-01T00:00:00Z"),
            ("to", "2020-01-01T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("bad time range"),
        "{answer}"
    );
    let (status, answer) =
        admin_call(&router, reqwest::Method::GET, "/admin/archive?form=1", None).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a misspelt parameter: {answer}"
    );
    let (status, answer) =
        admin_call(&router, reqwest::Method::GET, "/admin/archive/1-0", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) =
        admin_call(&router, reqwest::Method::GET, "/admin/archive/abc", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // The CLI says the same, and lists and replays through the admin API.
    let listed =
        succeeded(&router_cli(&router, &["archive", "list", "--filter", "id = 'e-1'"]).await);
    assert!(listed.starts_with("1 archived event\n"), "{listed}");
    assert!(
        listed.contains("id=e-1  type=test.in  source=/archive-test"),
        "{listed}"
    );
    let position = listed
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next());
    let shown =
        succeeded(&router_cli(&router, &["archive", "show", position.expect("a position")]).await);
    let shown: Value = serde_json::from_str(&shown).expect("JSON");
    assert_eq!(shown["event"]["id"], "e-1");
    assert_eq!(shown["event"]["tenant"], "t-1");
    let out = router_cli(
        &router,
        &[
            "replay",
            "--from",
            "now",
            "--to",
            "2020-01-01T00:00:00Z",
            "--all",
        ],
    )
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("400") && stderr.contains("must be before `to`"),
        "{stderr}"
    );
    let replay = succeeded(
        &router_cli(
            &router,
            &[
                "replay", "--from", "0", "--to", "now", "--route", "audit", "--id", "cli",
            ],
        )
        .await,
    );
    let done: Value = serde_json::from_str(&replay).expect("the final progress as JSON");
    assert_eq!(
        (done["state"].as_str(), done["replayed"].as_u64()),
        (Some("done"), Some(2))
    );
    assert_eq!(replayed(&sink.wait_for(4).await, "cli").len(), 2);

    // Without [archive], replays and browsing are refused as such.
    let bare = TestRouter::start(&format!(
        "[[route]]\nname = \"audit\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    let (status, answer) = admin_call(
        &bare,
        reqwest::Method::POST,
        "/admin/replay",
        Some(json!({"from": 0, "to": "now", "all": true})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("[archive]"),
        "{answer}"
    );
    let (status, _) = admin_call(&bare, reqwest::Method::GET, "/admin/archive", None).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_redis_archive_trims_by_age_and_refuses_events_it_cannot_keep() {
    let mut redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[archive]\nstream = \"t:aged\"\nredis = \"{}\"\nmax_age = \"1s\"\n\
         [[route]]\nname = \"all\"\nforward = \"{}\"\n",
        redis.url(),
        sink.url()
    ))
    .await;
    post_events(&router, "old", "test.in", 3, StatusCode::OK).await;
    let first: Vec<(String, Vec<(String, String)>)> = redis
        .query(redis::cmd("XRANGE").arg("t:aged").arg("-").arg("+"))
        .await;
    assert_eq!(first.len(), 3);
    let oldest = first[0].0.clone();
    let mut n = 0;
    until("entries older than max_age are trimmed", || {
        n += 1;
        let (router, redis, oldest) = (&router, &redis, oldest.clone());
        let prefix = format!("new{n}");
        async move {
            post_events(router, &prefix, "test.in", 1, StatusCode::OK).await;
            let left: Vec<(String, Vec<(String, String)>)> = redis
                .query(redis::cmd("XRANGE").arg("t:aged").arg(&oldest).arg(&oldest))
                .await;
            left.is_empty()
        }
    })
    .await;

    // The archive is written before any route sees the event: without Redis,
    // the event is refused (503, retry later) and nothing is delivered.
    let delivered = sink.received().len();
    redis.kill();
    let event = json!({"specversion": "1.0", "id": "lost", "source": "/s", "type": "test.in"});
    let response = client()
        .post(router.events_url())
        .header("content-type", "application/cloudevents+json")
        .body(event.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let body = response.text().await.expect("body");
    assert!(body.contains("the archive is unavailable"), "{body}");
    assert_eq!(sink.received().len(), delivered, "nothing was routed");
}
