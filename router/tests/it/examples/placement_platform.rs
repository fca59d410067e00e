//! The Nedlia placement platform (`examples/placement-platform/`, seed ADR-003),
//! end to end: its own `router.toml` and plugins, real webhook sinks for the
//! Notifier, the file uploader, the API and the Sync Worker, and a dead-letter
//! file in a fresh directory.

use crate::common::*;
use axum::http::StatusCode;
use router::config::{Config, Source};
use serde_json::{Value, json};

const EXAMPLE: &str = "placement-platform";

/// A running platform: the router on the example's configuration, with every
/// webhook pointed at its own recording sink.
struct Platform {
    router: TestRouter,
    notify: Sink,
    files: Sink,
    api: Sink,
    sync: Sink,
    dead_letters: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Platform {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Starts the platform on the example's `router.toml`, with `edit` (text,
    /// replacement) applied to the file first when given.
    async fn start_with(edit: Option<(&str, &str)>) -> Self {
        let (notify, files, api, sync) = (
            Sink::start().await,
            Sink::start().await,
            Sink::start().await,
            Sink::start().await,
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let dead_letters = dir.path().join("dead-letters.jsonl");
        let env = [
            ("NOTIFY_URL", format!("{}notify", notify.url())),
            ("FILES_URL", format!("{}files", files.url())),
            ("API_URL", format!("{}api", api.url())),
            ("SYNC_URL", format!("{}sync", sync.url())),
            ("DEAD_LETTER_FILE", dead_letters.display().to_string()),
        ];
        let config = match edit {
            None => super::example_config(EXAMPLE, &env),
            Some((from, to)) => {
                let path = format!("../examples/{EXAMPLE}/router.toml");
                let text = std::fs::read_to_string(&path).expect("router.toml");
                assert!(text.contains(from), "{path} has no {from:?} any more");
                let source = Source::new(&path, text.replace(from, to));
                Config::parse(source, |name| {
                    env.iter()
                        .find(|(key, _)| *key == name)
                        .map(|(_, value)| value.clone())
                })
                .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        Self {
            router: TestRouter::start_config(&config).await,
            notify,
            files,
            api,
            sync,
            dead_letters,
            _dir: dir,
        }
    }

    /// POSTs an event in binary mode, as the API publishes it, with extra
    /// `ce-` headers; returns the status and the report.
    async fn send(
        &self,
        id: &str,
        source: &str,
        ty: &str,
        data: Value,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut headers = vec![
            ("ce-specversion", "1.0"),
            ("ce-id", id),
            ("ce-source", source),
            ("ce-type", ty),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        post_binary(&self.router.events_url(), &headers, data.to_string()).await
    }
}

/// The report of `route` in an event report.
fn route<'a>(event: &'a Value, name: &str) -> &'a Value {
    event["routes"]
        .as_array()
        .and_then(|routes| routes.iter().find(|r| r["route"] == name))
        .unwrap_or_else(|| panic!("no report for route {name}: {event}"))
}

/// The names of the routes an event report lists.
fn routes(event: &Value) -> Vec<&str> {
    event["routes"]
        .as_array()
        .map(|routes| routes.iter().filter_map(|r| r["route"].as_str()).collect())
        .unwrap_or_default()
}

/// Placement data as the API publishes it: the seed's ids and the cue.
fn placement(id: &str, start: f64, end: f64) -> Value {
    json!({"placementId": id, "videoId": "vid-1", "productId": "prod-1",
           "campaignId": "camp-1", "startTime": start, "endTime": end})
}

/// The `type`s of what a sink received, in order.
fn types(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .map(|r| r.ce("type").unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn the_example_configuration_loads_with_its_plugins() {
    let config = super::example_config(EXAMPLE, &[]);
    let names: Vec<_> = config
        .routes
        .iter()
        .map(|r| r.name.get_ref().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "generate-files",
            "publish-files",
            "notify",
            "validate",
            "api-cache",
            "api-answers",
            "sync"
        ]
    );
    let runtime = router::runtime::Runtime::build(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(runtime.routes().len(), config.routes.len());
}

#[tokio::test]
async fn a_placement_lifecycle_versions_its_file_and_notifies_every_change() {
    let platform = Platform::start().await;
    let (status, body) = platform
        .send(
            "pl-evt-1",
            "/placements",
            "com.nedlia.placement.created",
            placement("pl-1", 12.5, 18.0),
            &[("ce-correlationid", "req-abc")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = &body["events"][0];
    assert_eq!(routes(event), ["generate-files", "notify"]);
    let generated = &route(event, "generate-files")["emitted"][0];
    assert_eq!(generated["id"], "pl-evt-1-file", "{body}");
    assert_eq!(generated["type"], "com.nedlia.placement.file_generated");
    assert_eq!(route(generated, "publish-files")["outcome"], "delivered");

    // The uploader gets the file itself, in the chain the API started.
    let got = platform.files.wait_for(1).await;
    let file = &got[0];
    assert_eq!(file.ce("subject").as_deref(), Some("pl-1"));
    assert_eq!(file.ce("causationid").as_deref(), Some("pl-evt-1"));
    assert_eq!(
        file.ce("correlationid").as_deref(),
        Some("req-abc"),
        "the API's correlation id is kept"
    );
    assert_eq!(file.headers["ce-source"], "/placement-files");
    let v1 = file.json();
    assert_eq!(v1["version"], 1);
    assert_eq!(v1["fileName"], "placements/vid-1/pl-1.v1.json");
    assert_eq!(
        v1["file"],
        json!({"format": "nedlia.placement/v1", "placementId": "pl-1", "videoId": "vid-1",
               "productId": "prod-1", "campaignId": "camp-1",
               "cue": {"start": 12.5, "end": 18.0, "duration": 5.5}})
    );
    let notified = platform.notify.wait_for(1).await;
    assert_eq!(
        notified[0].ce("type").as_deref(),
        Some("com.nedlia.placement.created")
    );
    assert_eq!(notified[0].ce("correlationid").as_deref(), Some("req-abc"));
    assert_eq!(notified[0].json()["placementId"], "pl-1");

    // A change: version 2 with another hash. The same content again: no version.
    let (status, _) = platform
        .send(
            "pl-evt-2",
            "/placements",
            "com.nedlia.placement.updated",
            placement("pl-1", 14.0, 18.0),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = platform
        .send(
            "pl-evt-3",
            "/placements",
            "com.nedlia.placement.updated",
            placement("pl-1", 14.0, 18.0),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        route(&body["events"][0], "generate-files")
            .get("emitted")
            .is_none(),
        "unchanged content emits nothing: {body}"
    );
    let got = platform.files.wait_for(2).await;
    let v2 = got[1].json();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["file"]["cue"]["start"], 14.0);
    assert_ne!(v1["contentHash"], v2["contentHash"]);
    assert_eq!(
        got[1].ce("correlationid").as_deref(),
        Some("pl-evt-2"),
        "without one from the API, the root event's id correlates"
    );

    let (status, body) = platform
        .send(
            "pl-evt-4",
            "/placements",
            "com.nedlia.placement.deleted",
            json!({"placementId": "pl-1", "videoId": "vid-1"}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = platform.files.wait_for(3).await;
    assert_eq!(
        types(&got),
        [
            "com.nedlia.placement.file_generated",
            "com.nedlia.placement.file_generated",
            "com.nedlia.placement.file_deleted"
        ]
    );
    assert_eq!(
        got[2].json(),
        json!({"placementId": "pl-1", "videoId": "vid-1", "lastVersion": 2})
    );
    // The Notifier saw every change the API published, files are not its business.
    assert_eq!(
        types(&platform.notify.received()),
        [
            "com.nedlia.placement.created",
            "com.nedlia.placement.updated",
            "com.nedlia.placement.updated",
            "com.nedlia.placement.deleted"
        ]
    );
}

#[tokio::test]
async fn a_duplicate_placement_event_is_handled_once() {
    let platform = Platform::start().await;
    let send = || {
        platform.send(
            "dup-1",
            "/placements",
            "com.nedlia.placement.created",
            placement("pl-dup", 1.0, 6.0),
            &[],
        )
    };
    let (status, first) = send().await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(first["events"][0].get("duplicate").is_none(), "{first}");
    let (status, again) = send().await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a duplicate is acknowledged: {again}"
    );
    assert_eq!(again["events"][0]["duplicate"], true, "{again}");
    assert_eq!(routes(&again["events"][0]), Vec::<&str>::new());
    // Delivery is synchronous: by the answer, every consumer had its chance.
    assert_eq!(
        types(&platform.files.received()),
        ["com.nedlia.placement.file_generated"]
    );
    assert_eq!(platform.files.received()[0].json()["version"], 1);
    assert_eq!(
        types(&platform.notify.received()),
        ["com.nedlia.placement.created"]
    );

    // The same id from another source is another event.
    let (status, other) = platform
        .send(
            "dup-1",
            "/placements/eu",
            "com.nedlia.placement.updated",
            placement("pl-dup", 2.0, 6.0),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert!(other["events"][0].get("duplicate").is_none(), "{other}");
    let got = platform.files.wait_for(2).await;
    assert_eq!(got[1].json()["version"], 2);
}

#[tokio::test]
async fn a_redelivery_past_the_dedup_window_makes_no_second_version() {
    // Without the dedup window the second copy is routed again, as a redelivery
    // after a day (or a redrive) would be, and meets the plugin's own memory.
    let platform = Platform::start_with(Some(("[delivery.dedup]\nwindow = \"24h\"", ""))).await;
    let (files, notify) = (&platform.files, &platform.notify);
    for _ in 0..2 {
        let (status, body) = platform
            .send(
                "late-1",
                "/placements",
                "com.nedlia.placement.created",
                placement("pl-late", 1.0, 6.0),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["events"][0].get("duplicate").is_none(), "{body}");
    }
    assert_eq!(notify.received().len(), 2, "the Notifier got both copies");
    let got = files.wait_for(2).await;
    assert!(
        got.iter()
            .all(|r| r.ce("id").as_deref() == Some("late-1-file")),
        "the same answer, under the same id"
    );
    assert_eq!(got[0].json(), got[1].json(), "and the same version");
    assert_eq!(got[1].json()["version"], 1);
    let (status, body) = platform
        .send(
            "late-2",
            "/placements",
            "com.nedlia.placement.updated",
            placement("pl-late", 2.0, 6.0),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = files.wait_for(3).await;
    assert_eq!(
        got[2].json()["version"],
        2,
        "the redelivery used no version"
    );
}

#[tokio::test]
async fn a_validation_verdict_reaches_the_notifier_and_the_api_cache_in_one_correlation() {
    let platform = Platform::start().await;
    let ask = |id: &'static str| {
        platform.send(
            id,
            "/api",
            "com.nedlia.video.validation_status_requested",
            json!({"videoId": "vid-7"}),
            &[],
        )
    };
    let (status, body) = ask("q-0").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answers = platform.api.wait_for(1).await;
    assert_eq!(answers[0].ce("id").as_deref(), Some("q-0-status"));
    assert_eq!(
        answers[0].json(),
        json!({"videoId": "vid-7", "status": "unknown", "result": null})
    );

    let (status, body) = platform
        .send(
            "val-1",
            "/api",
            "com.nedlia.video.validation_requested",
            json!({"videoId": "vid-7", "videoDuration": 60, "placements": [
                {"placementId": "pl-a", "startTime": 0, "endTime": 10},
                {"placementId": "pl-b", "startTime": 8, "endTime": 12},
            ]}),
            &[
                ("ce-correlationid", "api-corr-7"),
                ("ce-time", "2024-05-01T10:00:00Z"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = &body["events"][0];
    assert_eq!(routes(event), ["validate", "api-cache"]);
    let completed = &route(event, "validate")["emitted"][0];
    assert_eq!(completed["id"], "val-1-completed");
    assert_eq!(completed["type"], "com.nedlia.video.validation_completed");
    assert_eq!(routes(completed), ["notify", "api-cache"]);
    assert!(
        ["notify", "api-cache"]
            .iter()
            .all(|r| route(completed, r)["outcome"] == "delivered"),
        "{body}"
    );

    let got = platform.notify.wait_for(1).await;
    let verdict = &got[0];
    assert_eq!(
        verdict.ce("type").as_deref(),
        Some("com.nedlia.video.validation_completed")
    );
    assert_eq!(verdict.ce("subject").as_deref(), Some("vid-7"));
    assert_eq!(verdict.ce("correlationid").as_deref(), Some("api-corr-7"));
    assert_eq!(verdict.ce("causationid").as_deref(), Some("val-1"));
    let data = verdict.json();
    assert_eq!(data["valid"], false);
    assert_eq!(data["requestId"], "val-1");
    assert_eq!(data["requestedAt"], "2024-05-01T10:00:00Z");
    assert_eq!(data["problems"].as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(data["problems"][0]["rule"], "overlap");
    assert_eq!(data["problems"][0]["placementId"], "pl-b");

    // The API's cache has the verdict, and the chain's correlation id with it.
    let (status, _) = ask("q-1").await;
    assert_eq!(status, StatusCode::OK);
    let answers = platform.api.wait_for(2).await;
    let cached = answers[1].json();
    assert_eq!(cached["status"], "invalid", "{cached}");
    assert_eq!(cached["requestId"], "val-1");
    assert_eq!(cached["correlationId"], "api-corr-7");
    assert_eq!(cached["result"]["problems"], data["problems"]);
    assert_eq!(answers[1].ce("causationid").as_deref(), Some("q-1"));

    // A new request without a correlation id: its own id correlates the chain,
    // and the new verdict replaces the old one.
    let (status, body) = platform
        .send(
            "val-2",
            "/api",
            "com.nedlia.video.validation_requested",
            json!({"videoId": "vid-7", "videoDuration": 60, "placements": [
                {"placementId": "pl-a", "startTime": 0, "endTime": 8},
                {"placementId": "pl-b", "startTime": 8, "endTime": 12},
            ]}),
            &[("ce-time", "2024-05-01T10:05:00Z")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let got = platform.notify.wait_for(2).await;
    assert_eq!(got[1].ce("correlationid").as_deref(), Some("val-2"));
    assert_eq!(got[1].json()["valid"], true);
    let (status, _) = ask("q-2").await;
    assert_eq!(status, StatusCode::OK);
    let answers = platform.api.wait_for(3).await;
    assert_eq!(answers[2].json()["status"], "valid");
    assert_eq!(answers[2].json()["correlationId"], "val-2");
}

#[tokio::test]
async fn a_failing_webhook_is_retried_then_dead_lettered_and_redriven() {
    let platform = Platform::start().await;
    platform.notify.answer(StatusCode::INTERNAL_SERVER_ERROR);
    let campaign = json!({"campaignId": "camp-9", "advertiserId": "adv-1", "name": "Summer"});
    let (status, body) = platform
        .send(
            "camp-evt-1",
            "/campaigns",
            "com.nedlia.campaign.created",
            campaign.clone(),
            &[],
        )
        .await;
    // Safe in the dead-letter file: nothing for the API to retry.
    assert_eq!(status, StatusCode::OK, "{body}");
    let notify = route(&body["events"][0], "notify");
    assert_eq!(notify["outcome"], "dead_lettered", "{body}");
    assert_eq!(notify["attempts"], 4, "max_attempts of router.toml: {body}");
    let tried = platform.notify.received();
    assert_eq!(tried.len(), 4, "every retry reached the webhook first");
    assert!(
        tried
            .iter()
            .all(|r| r.ce("id").as_deref() == Some("camp-evt-1"))
    );

    // One failing consumer holds up no other: the file is generated regardless.
    let (status, body) = platform
        .send(
            "pl-evt-9",
            "/placements",
            "com.nedlia.placement.created",
            placement("pl-9", 3.0, 9.0),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let event = &body["events"][0];
    assert_eq!(route(event, "generate-files")["outcome"], "delivered");
    assert_eq!(route(event, "notify")["outcome"], "dead_lettered");
    assert_eq!(
        platform.files.wait_for(1).await[0].json()["placementId"],
        "pl-9"
    );

    let dlq = platform.router.admin("dlq?route=notify").await;
    assert_eq!(dlq["count"], 2, "{dlq}");
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["route"], "notify");
    assert_eq!(letter["attempts"], 4);
    assert_eq!(letter["reason"], "max_attempts");
    assert!(
        letter["error"].as_str().is_some_and(|e| e.contains("500")),
        "{letter}"
    );
    assert_eq!(letter["event"]["id"], "camp-evt-1");
    assert_eq!(letter["event"]["source"], "/campaigns");
    assert_eq!(letter["event"]["type"], "com.nedlia.campaign.created");
    assert_eq!(
        letter["event"]["data"], campaign,
        "the original event: {letter}"
    );
    // The same letters are in the file the configuration names, one per line.
    let file = std::fs::read_to_string(&platform.dead_letters).expect("dead-letter file");
    let ids: Vec<Value> = file
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("JSON line")["event"]["id"].clone())
        .collect();
    assert_eq!(ids, [json!("camp-evt-1"), json!("pl-evt-9")]);

    // The webhook is fixed: a redrive delivers both to the Notifier only.
    platform.notify.answer(StatusCode::OK);
    let answer = client()
        .post(format!("{}/admin/dlq/redrive", platform.router.admin_url()))
        .header("content-type", "application/json")
        .body(r#"{"route": "notify"}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(platform.router.admin("dlq").await["count"], 0);
    let mut redriven: Vec<String> = platform.notify.received()[8..]
        .iter()
        .map(|r| r.ce("id").unwrap_or_default())
        .collect();
    redriven.sort();
    assert_eq!(redriven, ["camp-evt-1", "pl-evt-9"]);
    assert_eq!(
        platform.files.received().len(),
        1,
        "the redrive did not generate the file again"
    );
}

#[tokio::test]
async fn an_unreadable_validation_request_is_dead_lettered_without_retries() {
    let platform = Platform::start().await;
    let (status, body) = platform
        .send(
            "val-bad",
            "/api",
            "com.nedlia.video.validation_requested",
            json!({"placements": []}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let validate = route(&body["events"][0], "validate");
    assert_eq!(validate["outcome"], "dead_lettered", "{body}");
    assert!(
        validate.get("attempts").is_none(),
        "fatal: one attempt: {body}"
    );
    let dlq = platform.router.admin("dlq?route=validate").await;
    let letter = &dlq["dead_letters"][0];
    assert_eq!(letter["reason"], "not_retryable", "{dlq}");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.contains("videoId")),
        "{letter}"
    );
    assert!(
        platform.notify.received().is_empty(),
        "no verdict was made up"
    );
}

#[tokio::test]
async fn sync_requests_reach_the_sync_worker() {
    let platform = Platform::start().await;
    let data =
        json!({"pluginId": "premiere-1", "videoId": "vid-1", "since": "2024-05-01T00:00:00Z"});
    let (status, body) = platform
        .send(
            "sync-1",
            "/plugins/premiere-1",
            "com.nedlia.plugin.sync_requested",
            data.clone(),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(routes(&body["events"][0]), ["sync"]);
    let got = platform.sync.wait_for(1).await;
    assert_eq!(got[0].ce("id").as_deref(), Some("sync-1"));
    assert_eq!(got[0].json(), data);
    assert!(platform.notify.received().is_empty());
}

/// The commands of the README's "Run it", as written, against a `router serve`
/// on this configuration and the README's own `router sink`: what the router
/// answers and the sink prints are what the README shows, the failure path
/// included (sink answering 500, dead letter, redrive).
#[tokio::test]
async fn the_readme_runs_as_written() {
    let readme = "examples/placement-platform/README.md";
    let text = std::fs::read_to_string(crate::readme::repo_root().join(readme)).expect("README");
    assert!(
        text.contains("target/debug/router serve --config examples/placement-platform/router.toml")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let dead_letters = dir.path().join("dead-letters.jsonl");
    let mut session = crate::readme::Session::start(
        readme,
        "examples/placement-platform/router.toml",
        &[
            ("NOTIFY_URL", "http://{sink}/notify"),
            ("FILES_URL", "http://{sink}/files"),
            ("API_URL", "http://{sink}/api"),
            ("SYNC_URL", "http://{sink}/sync"),
            (
                "DEAD_LETTER_FILE",
                dead_letters.to_str().expect("UTF-8 path"),
            ),
        ],
        &[],
    );
    assert_eq!(session.run().await, 21, "the marked steps of the README");
    // Redriven: the file is empty again.
    let file = std::fs::read_to_string(&dead_letters).unwrap_or_default();
    assert_eq!(file.lines().count(), 0, "{file}");
}
