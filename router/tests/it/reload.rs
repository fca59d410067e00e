//! Hot reload with real files, the real watcher and real components.

use crate::common::*;
use axum::http::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A folder with `router.toml` and `p.wasm` (the enricher at first), whose
/// routes send what `p` emits to a sink: `.enriched` events while `p` is the
/// enricher, `relayed` events once it is the relay.
struct Setup {
    dir: tempfile::TempDir,
    sink: Sink,
    /// The keys of its `[reload]` table.
    reload: &'static str,
}

const EXTRA_ROUTES: &str = "";

impl Setup {
    async fn new() -> Self {
        Self::with_reload("debounce = \"50ms\"\nsettle = \"20ms\"").await
    }

    async fn with_reload(reload: &'static str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(plugin_artifacts::ENRICHER, dir.path().join("p.wasm")).expect("copy");
        let sink = Sink::start().await;
        let setup = Self { dir, sink, reload };
        setup.write_config(EXTRA_ROUTES);
        setup
    }

    fn config_text(&self, extra: &str) -> String {
        format!(
            r#"[reload]
{reload}

[[plugin]]
name = "p"
path = "p.wasm"
config = {{ emit_type = "relayed" }}

[[route]]
name = "handle"
filter = {{ exact = {{ type = "t" }} }}
handler = "p"

[[route]]
name = "out"
filter = {{ any = [ {{ suffix = {{ type = ".enriched" }} }}, {{ exact = {{ type = "relayed" }} }} ] }}
forward = "{}"
{extra}"#,
            self.sink.url(),
            reload = self.reload,
        )
    }

    fn write_config(&self, extra: &str) {
        replace_atomically(&self.config(), self.config_text(extra).as_bytes());
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("router.toml")
    }

    fn plugin(&self) -> PathBuf {
        self.dir.path().join("p.wasm")
    }
}

/// Writes a temporary file beside `path`, then renames it over `path`.
fn replace_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

fn sha256(path: &str) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).expect("read");
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn send(router: &TestRouter, id: &str) -> StatusCode {
    post_binary(&router.events_url(), &ce_headers(id, "t"), "{}")
        .await
        .0
}

/// What the sink got for event `id`: the types of the events `p` emitted for it.
fn outcomes(sink: &Sink) -> HashMap<String, Vec<String>> {
    let mut by_cause: HashMap<String, Vec<String>> = HashMap::new();
    for r in sink.received() {
        by_cause
            .entry(r.ce("causationid").unwrap_or_default())
            .or_default()
            .push(r.ce("type").unwrap_or_default());
    }
    by_cause
}

fn reload_failures(plugins: &Value) -> u64 {
    plugins["reload"]["failures"].as_u64().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_plugin_under_load_loses_nothing() {
    let setup = Setup::new().await;
    let router = Arc::new(TestRouter::start_file(&setup.config()).await);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (router, stop) = (Arc::clone(&router), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut sent = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("c{c}-{n}");
                    assert_eq!(send(&router, &id).await, StatusCode::OK, "{id}");
                    sent.push(id);
                    n += 1;
                }
                sent
            })
        })
        .collect();
    setup.sink.wait_for(20).await;
    replace_atomically(
        &setup.plugin(),
        &std::fs::read(plugin_artifacts::RELAY).expect("relay"),
    );
    // How soon the switch happens is the reloader's unit tests' business (and
    // compiling the new component on a loaded machine takes what it takes):
    // the deadline here only catches a reload that never comes.
    tokio::time::timeout(PATIENCE, async {
        while !setup
            .sink
            .received()
            .iter()
            .any(|r| r.ce("type").as_deref() == Some("relayed"))
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the new plugin handled an event");
    // Keep the clients going on the new version for a moment.
    let before = setup.sink.received().len();
    setup.sink.wait_for(before + 20).await;
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for client in clients {
        sent.extend(client.await.expect("client"));
    }
    let got = setup.sink.wait_for(sent.len()).await;
    assert_eq!(got.len(), sent.len(), "one emitted event per event sent");
    let outcomes = outcomes(&setup.sink);
    for id in &sent {
        let types = outcomes.get(id).unwrap_or_else(|| panic!("{id} was lost"));
        assert_eq!(types.len(), 1, "{id} was handled twice: {types:?}");
    }
    let plugins = router.admin("plugins").await;
    assert_eq!(plugins["generation"], 2);
    assert_eq!(
        plugins["plugins"][0]["sha256"],
        sha256(plugin_artifacts::RELAY)
    );
}

/// A component padded with a custom section, written in place in 16 chunks with
/// a pause after each. Each pause is longer than `debounce`, so a reload starts
/// in the middle of the write, and shorter than `settle`, so the file has not
/// stopped changing: only the settle check keeps the reload from reading a
/// half-written file, which would show as a failed reload.
#[tokio::test]
async fn a_component_written_slowly_in_place_is_never_loaded_half_written() {
    const PAUSE: Duration = Duration::from_millis(40);
    let setup = Setup::with_reload("debounce = \"10ms\"\nsettle = \"500ms\"").await;
    let router = TestRouter::start_file(&setup.config()).await;
    let old = sha256(plugin_artifacts::ENRICHER);
    let mut big = std::fs::read(plugin_artifacts::RELAY).expect("relay");
    append_custom_section(&mut big, "padding", 5 * 1024 * 1024);
    let expected = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&big)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };

    let path = setup.plugin();
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&path).expect("open in place");
        for chunk in big.chunks(big.len().div_ceil(16)) {
            file.write_all(chunk).expect("write");
            file.flush().expect("flush");
            std::thread::sleep(PAUSE);
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let plugins = router.admin("plugins").await;
        seen.insert(
            plugins["plugins"][0]["sha256"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        assert_eq!(send(&router, "during").await, StatusCode::OK);
    }
    writer.await.expect("writer");
    let plugins = router
        .admin_until("plugins", |p| {
            p["plugins"][0]["sha256"] == expected || reload_failures(p) > 0
        })
        .await;
    assert_eq!(
        plugins["reload"]["failures"], 0,
        "a half-written file was loaded: {plugins}"
    );
    assert_eq!(plugins["reload"]["reloads"], 1, "{plugins}");
    assert_eq!(plugins["generation"], 2, "{plugins}");
    seen.insert(expected.clone());
    assert_eq!(
        seen,
        [old, expected].into_iter().collect(),
        "only whole versions were served"
    );
}

/// Appends a component-model custom section (id 0) of `size` bytes.
fn append_custom_section(component: &mut Vec<u8>, name: &str, size: usize) {
    let mut body = leb128(name.len());
    body.extend_from_slice(name.as_bytes());
    body.resize(body.len() + size, b'x');
    component.push(0);
    component.extend(leb128(body.len()));
    component.extend(body);
}

fn leb128(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[tokio::test]
async fn write_then_rename_gives_exactly_one_reload() {
    let setup = Setup::new().await;
    let router = TestRouter::start_file(&setup.config()).await;
    replace_atomically(
        &setup.plugin(),
        &std::fs::read(plugin_artifacts::RELAY).expect("relay"),
    );
    router
        .admin_until("plugins", |p| p["generation"] == 2)
        .await;
    // A reload asked for now queues behind any reload still pending from the
    // rename, so its generation tells how many happened.
    let response = client()
        .post(format!("{}/admin/reload", router.admin_url()))
        .send()
        .await
        .expect("reload");
    let body: Value = serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
    assert_eq!(body["generation"], 3, "{body}");
}

#[tokio::test]
async fn a_broken_plugin_file_keeps_the_old_one_serving_until_fixed() {
    let setup = Setup::new().await;
    let router = TestRouter::start_file(&setup.config()).await;
    let relay = std::fs::read(plugin_artifacts::RELAY).expect("relay");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "corrupt",
            b"\0asm\x0d\0\x01\0this is not a component".to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "truncated",
            relay[..relay.len() / 2].to_vec(),
            "not a valid WebAssembly component",
        ),
        (
            "wrong world",
            b"\0asm\x0d\0\x01\0".to_vec(),
            "implements neither",
        ),
    ];
    for (i, (what, bytes, reason)) in cases.into_iter().enumerate() {
        replace_atomically(&setup.plugin(), &bytes);
        let plugins = router
            .admin_until("plugins", |p| reload_failures(p) == i as u64 + 1)
            .await;
        let error = plugins["reload"]["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains("plugin `p`") && error.contains(reason),
            "{what}: {error}"
        );
        assert_eq!(plugins["generation"], 1, "{what}");
        // The enricher still handles events.
        let id = format!("during-{i}");
        assert_eq!(send(&router, &id).await, StatusCode::OK);
        let got = setup.sink.wait_for(i + 1).await;
        assert!(
            got.iter()
                .any(|r| r.ce("causationid").as_deref() == Some(&id)
                    && r.ce("type").as_deref() == Some("t.enriched"))
        );
    }
    replace_atomically(&setup.plugin(), &relay);
    let plugins = router
        .admin_until("plugins", |p| p["generation"] == 2)
        .await;
    assert!(plugins["reload"]["last_error"].is_null(), "{plugins}");
    assert_eq!(send(&router, "fixed").await, StatusCode::OK);
    let got = setup.sink.wait_for(4).await;
    assert!(
        got.iter()
            .any(|r| r.ce("causationid").as_deref() == Some("fixed")
                && r.ce("type").as_deref() == Some("relayed"))
    );
}

#[tokio::test]
async fn editing_the_toml_adds_and_changes_routes_and_survives_a_syntax_error() {
    let setup = Setup::new().await;
    let router = TestRouter::start_file(&setup.config()).await;
    let names = |routes: &Value| -> Vec<String> {
        routes["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    };
    // Add a route.
    let extra = format!(
        "\n[[route]]\nname = \"copy\"\nfilter = {{ exact = {{ type = \"u\" }} }}\nforward = \"{}\"\n",
        setup.sink.url()
    );
    setup.write_config(&extra);
    let routes = router.admin_until("routes", |r| r["generation"] == 2).await;
    assert_eq!(names(&routes), ["handle", "out", "copy"]);
    let (status, body) = post_binary(&router.events_url(), &ce_headers("u-1", "u"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["events"][0]["routes"][0]["route"], "copy");

    // Change its filter.
    setup.write_config(&extra.replace("type = \"u\"", "type = \"v\""));
    let routes = router.admin_until("routes", |r| r["generation"] == 3).await;
    assert_eq!(
        routes["routes"][2]["filter"],
        serde_json::json!({"exact": {"type": "v"}})
    );

    // Break the syntax: nothing changes, the error is visible.
    std::fs::write(setup.config(), "[[route]\nname = ").expect("write");
    let routes = router
        .admin_until("routes", |r| r["reload"]["failures"] == 1)
        .await;
    assert_eq!(routes["generation"], 3);
    assert!(
        routes["reload"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("router.toml:1:")),
        "{routes}"
    );
    let (_, body) = post_binary(&router.events_url(), &ce_headers("v-1", "v"), "").await;
    assert_eq!(body["events"][0]["routes"][0]["route"], "copy");

    setup.write_config("");
    let routes = router.admin_until("routes", |r| r["generation"] == 4).await;
    assert_eq!(names(&routes), ["handle", "out"]);
}

#[tokio::test]
async fn removing_a_plugin_a_route_needs_is_refused() {
    let setup = Setup::new().await;
    let router = TestRouter::start_file(&setup.config()).await;
    std::fs::remove_file(setup.plugin()).expect("remove");
    let plugins = router
        .admin_until("plugins", |p| reload_failures(p) == 1)
        .await;
    let error = plugins["reload"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("plugin `p`: ") && error.contains("p.wasm does not exist: build the plugin"),
        "{error}"
    );

    // Dropping the [[plugin]] table while a route still names it.
    let text = setup.config_text("").replace(
        "[[plugin]]\nname = \"p\"\npath = \"p.wasm\"\nconfig = { emit_type = \"relayed\" }\n",
        "",
    );
    replace_atomically(&setup.config(), text.as_bytes());
    let plugins = router
        .admin_until("plugins", |p| reload_failures(p) == 2)
        .await;
    let error = plugins["reload"]["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("route \"handle\".handler: unknown plugin \"p\""),
        "{error}"
    );
    assert_eq!(plugins["generation"], 1);
    assert_eq!(send(&router, "still").await, StatusCode::OK);
    let got = setup.sink.wait_for(1).await;
    assert_eq!(got[0].ce("type").as_deref(), Some("t.enriched"));
}

/// An event held inside its handler (the plugin waits for an HTTP answer the
/// test holds back) while the configuration and the plugin are replaced: it
/// finishes on the snapshot it started with, so what it emits goes through the
/// old `out` route to the old sink, while an event sent after the reload is
/// handled by the new plugin and leaves through the new route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_in_flight_finishes_on_the_snapshot_it_started_with() {
    let gate = Sink::start().await;
    gate.close();
    let (old_sink, new_sink) = (Sink::start().await, Sink::start().await);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    let version = |v: &str, plugin: &str, sink: &Sink| {
        format!(
            r#"
[[plugin]]
name = "p"
path = {plugin:?}
timeout = "60s"
http_timeout = "60s"
http = [{{ host = "http://{gate}" }}]
config = {{ emit_type = "hostile.relayed" }}

[[route]]
name = "handle-{v}"
filter = {{ exact = {{ type = "t" }} }}
handler = "p"

[[route]]
name = "out-{v}"
filter = {{ prefix = {{ type = "hostile." }} }}
forward = "{sink}"
"#,
            gate = gate.addr,
            sink = sink.url(),
        )
    };
    replace_atomically(
        &config,
        version("v1", plugin_artifacts::HOSTILE, &old_sink).as_bytes(),
    );
    let router = Arc::new(TestRouter::start_file(&config).await);
    let held = {
        let (url, data) = (
            router.events_url(),
            format!("http:http://{}/held", gate.addr),
        );
        tokio::spawn(async move { post_binary(&url, &ce_headers("held", "t"), data).await })
    };
    tokio::time::timeout(PATIENCE, async {
        while gate.waiting() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the handler's request reaches the gate");

    replace_atomically(
        &config,
        version("v2", plugin_artifacts::RELAY, &new_sink).as_bytes(),
    );
    router
        .admin_until("routes", |r| r["routes"][0]["name"] == "handle-v2")
        .await;
    let (status, body) = post_binary(&router.events_url(), &ce_headers("after", "t"), "x").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let route = &body["events"][0]["routes"][0];
    assert_eq!(route["route"], "handle-v2", "{body}");
    assert_eq!(route["emitted"][0]["type"], "hostile.relayed", "{body}");
    assert_eq!(
        route["emitted"][0]["routes"][0]["route"], "out-v2",
        "{body}"
    );
    assert!(
        !held.is_finished(),
        "the held event did not wait for the gate"
    );

    gate.open();
    let (status, body) = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("the held event is answered")
        .expect("task");
    assert_eq!(status, StatusCode::OK, "{body}");
    let route = &body["events"][0]["routes"][0];
    assert_eq!(route["route"], "handle-v1", "{body}");
    assert_eq!(route["emitted"][0]["type"], "hostile.http", "{body}");
    assert_eq!(
        route["emitted"][0]["routes"][0]["route"], "out-v1",
        "{body}"
    );

    let old = old_sink.wait_for(1).await;
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].ce("type").as_deref(), Some("hostile.http"));
    assert_eq!(old[0].ce("causationid").as_deref(), Some("held"));
    let new: Vec<_> = new_sink
        .received()
        .iter()
        .map(|r| (r.ce("type"), r.ce("causationid")))
        .collect();
    assert_eq!(
        new,
        [(Some("hostile.relayed".into()), Some("after".into()))],
        "only the event sent after the reload used the new snapshot"
    );
}
