//! Plugins in Rust, Python and JavaScript behave the same through the router:
//! the demo's inventory and the redactor transform, built from each language's
//! SDK (`guest-sdk/rust`, `guest-sdk/python`, `guest-sdk/js`), answer the same
//! requests with the same events, errors and stored stock. Also: each SDK's
//! own native tests pass, and each SDK ships the router's WIT unchanged.

use crate::common::*;
use axum::http::StatusCode;
use router::config::{Config, Source};
use serde_json::{Value, json};

/// The components of one plugin, per language.
const INVENTORY: [(&str, &str); 3] = [
    ("rust", plugin_artifacts::INVENTORY),
    ("python", polyglot_artifacts::INVENTORY_PY),
    ("js", polyglot_artifacts::INVENTORY_JS),
];

const REDACTOR: [(&str, &str); 3] = [
    ("rust", plugin_artifacts::REDACTOR),
    ("python", polyglot_artifacts::REDACTOR_PY),
    ("js", polyglot_artifacts::REDACTOR_JS),
];

/// The demo's order flow around `inventory`, with a stock of 5 per product, and
/// every outcome appended to `journal`.
fn inventory_config(lang: &str, inventory: &str, journal: &std::path::Path) -> Config {
    // A name per language: the memory kv store is the process's, shared by
    // every router of this test binary, and namespaced by plugin name.
    let text = format!(
        r#"
[[plugin]]
name = "inventory-{lang}"
path = {inventory:?}
instances = 2
config = {{ source = "/inventory", stock = "5" }}

[[route]]
name = "reserve-stock"
filter = {{ exact = {{ type = "com.example.order.created" }} }}
handler = "inventory-{lang}"

[[route]]
name = "journal"
filter = {{ any = [
  {{ prefix = {{ type = "com.example.inventory." }} }},
  {{ exact = {{ type = "com.example.order.rejected" }} }},
] }}
append = {{ file = {journal:?} }}
"#,
        journal = journal.to_str().expect("UTF-8 path"),
    );
    Config::parse(Source::new("inventory.toml", text), |_| None).unwrap_or_else(|e| panic!("{e}"))
}

/// What the journal holds, without the attributes the router sets per delivery
/// (`time` is absent: the plugins set none).
fn journaled(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

/// Every case of the demo's inventory, through a real router, for one build of
/// it; returns a transcript that must be the same for every language.
async fn inventory_transcript(lang: &str, component: &str) -> Vec<Value> {
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("journal.jsonl");
    let router = TestRouter::start_config(&inventory_config(lang, component, &journal)).await;
    let url = router.events_url();
    let mut transcript = Vec::new();
    let send = async |id: &str, body: String| {
        let (status, answer) =
            post_binary(&url, &ce_headers(id, "com.example.order.created"), body).await;
        let route = &answer["events"][0]["routes"][0];
        json!({
            "request": id,
            "status": status.as_u16(),
            "outcome": route["outcome"],
            "retryable": route["retryable"],
            "emitted": route["emitted"],
            // Which error, not its wording around the guest's own message.
            "fatal": route["errors"][0].as_str().map(|e| e.contains("(fatal)")),
        })
    };

    // Reserved: every item, with ids derived from the order.
    transcript.push(send("e-1", order("o-1", &[("p-1", 2), ("p-2", 1)])).await);
    // Rejected: no items; a zero and a negative quantity.
    transcript.push(send("e-2", order("o-2", &[])).await);
    transcript.push(send("e-3", order("o-3", &[("p-1", 1), ("p-2", 0)])).await);
    transcript.push(send("e-4", order("o-4", &[("p-3", -4)])).await);
    // Bad data: not JSON, JSON that is not an order, an empty orderId.
    transcript.push(send("e-5", "this is not json".to_owned()).await);
    transcript.push(send("e-6", json!({"items": []}).to_string()).await);
    transcript.push(send("e-7", json!({"orderId": "", "items": []}).to_string()).await);
    // kv stock: 5 of p-9; 3 reserved, then 3 more rejected, then 2 more reserved.
    transcript.push(send("e-8", order("o-8", &[("p-9", 3)])).await);
    // Redelivery of o-8 (same event): the same answer, nothing reserved twice.
    transcript.push(send("e-8", order("o-8", &[("p-9", 3)])).await);
    transcript.push(send("e-9", order("o-9", &[("p-9", 3)])).await);
    transcript.push(send("e-10", order("o-10", &[("p-9", 2)])).await);
    // And now p-9 is sold out; a rejected order took nothing.
    transcript.push(send("e-11", order("o-11", &[("p-9", 1)])).await);

    let statuses: Vec<u64> = transcript
        .iter()
        .map(|t| t["status"].as_u64().unwrap_or_default())
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 422, 422, 422, 200, 200, 200, 200, 200],
        "{lang}: {transcript:#?}"
    );
    // The emitted events in full, in the order they were journaled.
    transcript.push(json!({ "journal": journaled(&journal) }));
    transcript
}

#[tokio::test]
async fn the_inventory_behaves_the_same_in_rust_python_and_javascript() {
    let mut transcripts = Vec::new();
    for (lang, component) in INVENTORY {
        transcripts.push((lang, inventory_transcript(lang, component).await));
    }
    let (_, rust) = &transcripts[0];
    // The Rust build's answers, checked once here; the others must match them.
    let journal = rust.last().expect("journal")["journal"]
        .as_array()
        .expect("journal lines")
        .clone();
    let kinds: Vec<(&str, &str)> = journal
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default(),
                e["subject"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("com.example.inventory.reserved", "o-1"),
            ("com.example.order.rejected", "o-2"),
            ("com.example.order.rejected", "o-3"),
            ("com.example.order.rejected", "o-4"),
            ("com.example.inventory.reserved", "o-8"),
            ("com.example.inventory.reserved", "o-8"),
            ("com.example.order.rejected", "o-9"),
            ("com.example.inventory.reserved", "o-10"),
            ("com.example.order.rejected", "o-11"),
        ]
    );
    assert_eq!(
        journal[0]["data"],
        json!({"orderId": "o-1", "items": [
            {"productId": "p-1", "quantity": 2, "reservationId": "res-o-1-p-1"},
            {"productId": "p-2", "quantity": 1, "reservationId": "res-o-1-p-2"},
        ]})
    );
    assert_eq!(
        journal[6]["data"]["reason"],
        "insufficient stock of p-9: 2 left, 3 ordered"
    );
    assert_eq!(
        journal[8]["data"]["reason"],
        "insufficient stock of p-9: 0 left, 1 ordered"
    );
    assert_eq!(journal[4], journal[5], "a redelivery yields the same event");
    for (lang, transcript) in &transcripts[1..] {
        for (i, (expected, got)) in rust.iter().zip(transcript).enumerate() {
            assert_eq!(got, expected, "{lang} differs from rust at step {i}");
        }
        assert_eq!(transcript.len(), rust.len(), "{lang}");
    }
}

/// The redactor drops private events and removes the configured fields, the
/// same in every language.
#[tokio::test]
async fn the_redactor_transform_behaves_the_same_in_rust_python_and_javascript() {
    let mut outputs = Vec::new();
    for (lang, component) in REDACTOR {
        let sink = Sink::start().await;
        let text = format!(
            r#"
[[plugin]]
name = "redactor"
path = {component:?}
config = {{ fields = "/customer/email, /customer/phone,/missing/field" }}

[[route]]
name = "redacted"
transform = [{{ wasm = "redactor" }}]
forward = "{}"
"#,
            sink.url()
        );
        let config = Config::parse(Source::new("redactor.toml", text), |_| None)
            .unwrap_or_else(|e| panic!("{e}"));
        let router = TestRouter::start_config(&config).await;
        let url = router.events_url();
        let customer = json!({"customer": {"name": "Ada", "email": "ada@example.com",
            "phone": "+44", "tier": "gold"}, "total": 12});
        let mut private = ce_headers("r-2", "com.example.order.created");
        private.push(("ce-private", "true"));
        let mut json_headers = ce_headers("r-1", "com.example.order.created");
        json_headers.push(("content-type", "application/json"));
        let mut text_headers = ce_headers("r-3", "com.example.note");
        text_headers.push(("content-type", "text/plain"));
        let mut statuses = Vec::new();
        for (headers, body) in [
            (json_headers, customer.to_string()),
            (private, customer.to_string()),
            (text_headers, "not json, kept as it is".to_owned()),
        ] {
            let (status, answer) = post_binary(&url, &headers, body).await;
            statuses.push((status, answer["events"][0]["routes"][0]["outcome"].clone()));
        }
        assert_eq!(statuses[0].0, StatusCode::OK, "{lang}: {statuses:?}");
        let received = sink.wait_for(2).await;
        let seen: Vec<Value> = received
            .iter()
            .map(|r| {
                let header = |name: &str| {
                    r.headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                json!({
                    "id": r.ce("id"),
                    "redacted": header("ce-redacted"),
                    "content-type": header("content-type"),
                    "body": String::from_utf8_lossy(&r.body),
                })
            })
            .collect();
        outputs.push((
            lang,
            json!({ "statuses": format!("{statuses:?}"), "seen": seen }),
        ));
    }
    let (_, rust) = &outputs[0];
    assert_eq!(rust["seen"].as_array().map(Vec::len), Some(2), "{rust}");
    assert_eq!(rust["seen"][0]["redacted"], "2", "{rust}");
    assert_eq!(rust["seen"][1]["body"], "not json, kept as it is", "{rust}");
    let redacted: Value =
        serde_json::from_str(rust["seen"][0]["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(
        redacted,
        json!({"customer": {"name": "Ada", "tier": "gold"}, "total": 12})
    );
    for (lang, output) in &outputs[1..] {
        assert_eq!(output, rust, "{lang} differs from rust");
    }
}

/// Each SDK ships the router's WIT inside its package, byte for byte.
#[test]
fn every_sdk_ships_the_routers_wit_unchanged() {
    let wit = std::fs::read_to_string("../wit/router.wit").expect("wit/router.wit");
    for copy in [
        "../guest-sdk/rust/wit/router.wit",
        "../guest-sdk/python/src/router_guest/wit/router.wit",
        "../guest-sdk/js/wit/router.wit",
    ] {
        let text = std::fs::read_to_string(copy).unwrap_or_else(|e| panic!("{copy}: {e}"));
        assert!(
            text == wit,
            "{copy} differs from wit/router.wit: copy it again"
        );
    }
}

/// The Python SDK's own tests and the Python plugins' tests, with pytest on
/// the SDK's stand-in host, in the toolchain that built the components. The
/// differential test of the SDK's serde_json emulation runs against the real
/// serde_json, built here.
#[test]
fn the_python_sdk_and_plugins_pass_their_own_tests() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let checker_target = repo.join("target/serde-check");
    run(std::process::Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--manifest-path"])
        .arg(repo.join("guest-sdk/python/tests/serde_check/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &checker_target)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS"));
    let out = run(std::process::Command::new(polyglot_artifacts::PYTHON)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(repo.join("guest-sdk/python"))
        .arg(repo.join("plugins/python"))
        .current_dir(&repo)
        .env("PYTHONPATH", repo.join("guest-sdk/python/src"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SERDE_CHECK", checker_target.join("debug/serde-check")));
    assert!(out.contains(" passed"), "{out}");
    assert!(!out.contains("skipped"), "every test runs:\n{out}");
}

/// The JavaScript SDK's own tests (run in the installed copy, the one that
/// built the components) and the JavaScript plugins' tests, with `node --test`
/// on the SDK's stand-in host.
#[test]
fn the_javascript_sdk_and_plugins_pass_their_own_tests() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut projects = vec![std::path::PathBuf::from(polyglot_artifacts::JS_SDK)];
    let mut plugins: Vec<_> = std::fs::read_dir(repo.join("plugins/js"))
        .expect("plugins/js")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join("package.json").is_file())
        .collect();
    plugins.sort();
    assert!(plugins.len() >= 3, "{plugins:?}");
    projects.extend(plugins);
    for project in projects {
        let out = run(std::process::Command::new(polyglot_artifacts::ROUTER_JS)
            .arg("test")
            .arg(&project));
        assert!(out.contains("# fail 0"), "{}:\n{out}", project.display());
        assert!(out.contains("# skipped 0"), "{}:\n{out}", project.display());
        assert!(!out.contains("# pass 0"), "{}:\n{out}", project.display());
    }
}
