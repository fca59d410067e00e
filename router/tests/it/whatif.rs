//! `router whatif` (issue 23): events archived by a real router, given offline
//! to a plugin's live version and a candidate; the report pinned by expected
//! files (`router/tests/whatif/`, `BLESS=1` rewrites them).

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;
use std::path::Path;

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

/// The inventory with no stock rejects every order; the candidate, the same
/// component with stock, reserves them. Shipped events compare equal, an
/// event of no route of the plugin is archived but not compared. Runs
/// offline: the candidate's reservations reach neither the sink nor the
/// live store, and the report is the same with the router gone.
#[tokio::test]
async fn whatif_reports_the_events_on_which_a_candidate_differs() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[archive]\ndir = \"archive\"\nfsync = \"0s\"\n\n\
             [[plugin]]\nname = \"stock\"\npath = {inventory:?}\nconfig = {{ stock = 0 }}\n\n\
             [[route]]\nname = \"orders\"\nfilter = {{ exact = {{ type = \"com.example.order.created\" }} }}\nhandler = \"stock\"\n\n\
             [[route]]\nname = \"shipped\"\nfilter = {{ exact = {{ type = \"com.example.order.shipped\" }} }}\nhandler = \"stock\"\n\n\
             [[route]]\nname = \"out\"\nfilter = {{ prefix = {{ type = \"com.example.\" }} }}\nforward = \"{sink}\"\n",
            inventory = plugin_artifacts::INVENTORY,
            sink = sink.url(),
        ),
    )
    .expect("write the configuration");
    let router = TestRouter::start_file(&config).await;
    let url = router.events_url();
    for i in 0..3 {
        let id = format!("o-{i}");
        let mut headers = ce_headers(&id, "com.example.order.created");
        headers.push(("content-type", "application/json"));
        let (status, body) = post_binary(&url, &headers, order(&id, &[("p-1", 2)])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let shipped = format!("s-{i}");
        let headers = ce_headers(&shipped, "com.example.order.shipped");
        let (status, body) = post_binary(&url, &headers, "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = post_binary(&url, &ce_headers("n-0", "com.example.note"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = sink.received().len();
    drop(router);

    let whatif = |extra: &[&str]| {
        let out = std::process::Command::new(ROUTER)
            .arg("whatif")
            .arg("--config")
            .arg(&config)
            .args([
                "--plugin",
                "stock",
                "--candidate",
                plugin_artifacts::INVENTORY,
            ])
            .args(["--candidate-config", "stock=100", "--ignore", "time"])
            .args([
                "--from",
                "2020-01-01T00:00:00Z",
                "--to",
                "2100-01-01T00:00:00Z",
            ])
            .args(extra)
            .output()
            .expect("router whatif");
        let stdout = String::from_utf8_lossy(&out.stdout)
            .replace(plugin_artifacts::INVENTORY, "<inventory.wasm>");
        (
            out.status.code(),
            stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, text, stderr) = whatif(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, json, stderr) = whatif(&["--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let mut report: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    // What changes from run to run: the files' digests and the arrival times.
    for version in ["live", "candidate"] {
        assert_eq!(
            report[version]["sha256"].as_str().map(str::len),
            Some(64),
            "{report:#}"
        );
        report[version]["sha256"] = "<sha256>".into();
    }
    for difference in report["differences"].as_array_mut().expect("differences") {
        for key in ["position", "arrived", "at_unix_ms"] {
            assert!(difference.get(key).is_some(), "{key}: {difference:#}");
            difference[key] = format!("<{key}>").into();
        }
    }
    let json = format!("{}\n", serde_json::to_string_pretty(&report).expect("JSON"));
    let mismatches: Vec<String> = [
        check_expected(Path::new("tests/whatif/report.txt"), &text),
        check_expected(Path::new("tests/whatif/report.json"), &json),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // The versions disagree: a CI gate can say so by the exit status.
    let (code, _, stderr) = whatif(&["--fail-on-difference"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        sink.received().len(),
        before,
        "whatif routes and forwards nothing"
    );

    // A mistaken name is a clear error, naming the plugins there are.
    let out = std::process::Command::new(ROUTER)
        .args([
            "whatif",
            "--plugin",
            "stok",
            "--candidate",
            plugin_artifacts::INVENTORY,
        ])
        .args(["--from", "0", "--to", "now", "--config"])
        .arg(&config)
        .output()
        .expect("router whatif");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no plugin \"stok\" in the configuration: its plugins are `stock`"),
        "{stderr}"
    );
}
