//! The harness: start a router from TOML text on port 0, a recording HTTP sink,
//! and request helpers.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use router::config::{Config, Source};
use router::server::Server;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// Longest any test waits for a condition before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `[[plugin]]` tables of every test plugin, with absolute paths.
pub fn plugin_tables() -> String {
    let plugins = [
        (
            "inventory",
            plugin_artifacts::INVENTORY,
            "config = { source = \"/inventory\" }",
        ),
        (
            "enricher",
            plugin_artifacts::ENRICHER,
            "config = { region = \"test-region\" }",
        ),
        ("audit", plugin_artifacts::AUDIT, ""),
        (
            "trap",
            plugin_artifacts::TRAP,
            "timeout = \"300ms\"\ninstances = 2",
        ),
        (
            "relay",
            plugin_artifacts::RELAY,
            "config = { emit_type = \"test.loop\" }",
        ),
        ("fail", plugin_artifacts::FAIL, ""),
        ("flaky", plugin_artifacts::FAIL, "instances = 1"),
        ("redactor", plugin_artifacts::REDACTOR, ""),
    ];
    plugins
        .iter()
        .map(|(name, path, extra)| {
            format!("[[plugin]]\nname = \"{name}\"\npath = {path:?}\n{extra}\n\n")
        })
        .collect()
}

/// A router serving ingest and its admin API, each on 127.0.0.1:0, until dropped
/// (or [`TestRouter::shutdown`]).
pub struct TestRouter {
    /// Where it listens for events.
    pub addr: SocketAddr,
    /// Where its admin API listens.
    pub admin_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestRouter {
    /// Starts a router on `toml` (the `[server]` table, routes...) plus every test plugin.
    pub async fn start(toml: &str) -> Self {
        let text = format!("{toml}\n{}", plugin_tables());
        let config = Config::parse(Source::new("test.toml", text), |_| None)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
        Self::start_config(&config).await
    }

    /// Starts a router on a configuration file, watching it and its plugins.
    pub async fn start_file(path: &std::path::Path) -> Self {
        let (config, runtime) = router::runtime::Runtime::load(path)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let server = Server::new(&config, runtime);
        server.watch().expect("watch");
        Self::serve(server).await
    }

    /// Starts a router serving HTTPS with the configuration's `[server.tls]`.
    pub async fn start_tls(toml: &str) -> Self {
        let text = format!("{toml}\n{}", plugin_tables());
        let config = Config::parse(Source::new("test.toml", text), |_| None)
            .unwrap_or_else(|e| panic!("test config is invalid: {e}"));
        let acceptor = router::tls::acceptor(&config).unwrap_or_else(|e| panic!("{e}"));
        assert!(acceptor.is_some(), "the config has [server.tls]");
        let server = Server::build(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .with_tls(acceptor);
        Self::serve(server).await
    }

    /// Starts a router on a loaded configuration.
    pub async fn start_config(config: &Config) -> Self {
        let server = Server::build(config)
            .await
            .unwrap_or_else(|e| panic!("cannot build runtime: {e}"));
        Self::serve(server).await
    }

    async fn serve(server: Server) -> Self {
        let ingest = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = ingest.local_addr().expect("addr");
        let admin_addr = admin.local_addr().expect("admin addr");
        let listeners = router::server::Listeners {
            ingest,
            admin: Some(admin),
        };
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(listeners, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            admin_addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://admin_addr`: the base URL of the admin API.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin_addr)
    }

    /// `GET /admin/<what>` as JSON, from the admin listener (without a token).
    pub async fn admin(&self, what: &str) -> serde_json::Value {
        let response = client()
            .get(format!("{}/admin/{what}", self.admin_url()))
            .send()
            .await
            .expect("admin request");
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("admin JSON")
    }

    /// Waits until `GET /admin/<what>` satisfies `ready`, and returns it.
    pub async fn admin_until(
        &self,
        what: &str,
        ready: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let answer = self.admin(what).await;
            if ready(&answer) {
                return answer;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "admin/{what} never got there: {answer}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `GET /metrics` as text, from the admin listener (where it is by default).
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.admin_url()))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// `http://addr/events`.
    pub fn events_url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    /// Signals shutdown and returns the server task, to await its end.
    pub fn shutdown(mut self) -> tokio::task::JoinHandle<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().expect("the server task is taken once")
    }
}

impl Drop for TestRouter {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One request a sink received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// Decodes it with the official CloudEvents SDK: what we forward must be a
    /// CloudEvent by someone else's reading too.
    pub fn event(&self) -> cloudevents::Event {
        cloudevents::binding::http::to_event(&self.headers, self.body.to_vec())
            .unwrap_or_else(|e| panic!("the sink got no valid CloudEvent: {e}; {self:?}"))
    }

    /// Attribute `name` as the SDK reads it (it does not percent-decode headers,
    /// so use plain values or check `headers` for encoded ones).
    pub fn ce(&self, name: &str) -> Option<String> {
        use cloudevents::AttributesReader as _;
        let event = self.event();
        match name {
            "type" => Some(event.ty().to_owned()),
            "id" => Some(event.id().to_owned()),
            "subject" => event.subject().map(str::to_owned),
            ext => event.extension(ext).map(|v| v.to_string()),
        }
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("sink body is JSON")
    }
}

/// An HTTP sink that records every request and answers with a chosen status.
#[derive(Clone)]
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    waiting: Arc<std::sync::atomic::AtomicUsize>,
    peak: Arc<std::sync::atomic::AtomicUsize>,
    arrived: Arc<Notify>,
    status: Arc<Mutex<StatusCode>>,
    /// Whether requests pass (`true`) or are held. A flag, not a semaphore:
    /// forgetting a semaphore's permits does not take back those held by
    /// requests in flight, which return them when done and reopen the gate.
    gate: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Sink {
    /// Starts a sink answering 200.
    pub async fn start() -> Self {
        let sink = Self {
            addr: "127.0.0.1:0".parse().expect("addr"),
            received: Arc::default(),
            waiting: Arc::default(),
            peak: Arc::default(),
            arrived: Arc::default(),
            status: Arc::new(Mutex::new(StatusCode::OK)),
            gate: Arc::new(tokio::sync::watch::Sender::new(true)),
        };
        let listener = TcpListener::bind(sink.addr).await.expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let state = sink.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let held = state
                    .waiting
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                state
                    .peak
                    .fetch_max(held + 1, std::sync::atomic::Ordering::SeqCst);
                let _ = state.gate.subscribe().wait_for(|open| *open).await;
                state
                    .waiting
                    .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                state.received.lock().expect("lock").push(Received {
                    headers,
                    body,
                    at: std::time::Instant::now(),
                });
                state.arrived.notify_waiters();
                *state.status.lock().expect("lock")
            }
        });
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("sink serves");
        });
        Self { addr, ..sink }
    }

    /// `http://addr/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Makes the sink answer `status` from now on.
    pub fn answer(&self, status: StatusCode) {
        *self.status.lock().expect("lock") = status;
    }

    /// Holds every request until [`Sink::open`]: for requests in flight.
    pub fn close(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held requests through.
    pub fn open(&self) {
        self.gate.send_replace(true);
    }

    /// Requests held at the closed gate right now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most requests ever held at the gate at once.
    pub fn peak_waiting(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests arrived, and returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.arrived.notified();
                let got = self.received();
                if got.len() >= n {
                    return got;
                }
                notified.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("sink got {} requests, expected {n}", self.received().len()))
    }
}

/// A shared HTTP client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client")
}

/// POSTs a binary-mode event; returns the status and the JSON body.
pub async fn post_binary(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> (StatusCode, serde_json::Value) {
    let mut request = client().post(url).body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    into_parts(request.send().await.expect("request")).await
}

/// POSTs a body with a content type; returns the status and the JSON body.
pub async fn post(
    url: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, serde_json::Value) {
    let response = client()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    into_parts(response).await
}

async fn into_parts(response: reqwest::Response) -> (StatusCode, serde_json::Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("answer {status} is not JSON ({e}): {text}"));
    (status, json)
}

/// The binary-mode headers of a minimal event.
pub fn ce_headers<'a>(id: &'a str, ty: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("ce-specversion", "1.0"),
        ("ce-id", id),
        ("ce-source", "/tests"),
        ("ce-type", ty),
    ]
}

/// An order JSON payload.
pub fn order(id: &str, items: &[(&str, i64)]) -> String {
    let items: Vec<_> = items
        .iter()
        .map(|(p, q)| serde_json::json!({"productId": p, "quantity": q}))
        .collect();
    serde_json::json!({"orderId": id, "customerId": "c-1", "items": items}).to_string()
}

/// The value of the first sample of metric `name` whose labels contain `label`
/// (0 when there is none yet).
pub fn metric(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Compares `actual` with the expected-output file at `path`, or rewrites the file
/// when `BLESS` is set; returns a report of the difference, if any.
pub fn check_expected(path: &std::path::Path, actual: &str) -> Option<String> {
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, actual).expect("write expected output");
        return None;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    (actual != expected).then(|| {
        format!(
            "{}:\n--- expected\n{expected}--- actual\n{actual}",
            path.display()
        )
    })
}

impl Sink {
    /// Waits until every id of `expected` has arrived, and returns how many
    /// requests arrived in all and their distinct ids. Each request is decoded once,
    /// as it arrives (not every request at every check), and the wait fails only
    /// when nothing new arrives for [`PATIENCE`]: a loaded machine delivers slowly,
    /// a hang delivers nothing.
    pub async fn wait_for_ids(
        &self,
        expected: &std::collections::BTreeSet<String>,
    ) -> (usize, std::collections::BTreeSet<String>) {
        let mut seen = std::collections::BTreeSet::new();
        let mut read = 0;
        loop {
            let arrived = self.arrived.notified();
            let new: Vec<Received> = self.received.lock().expect("lock")[read..].to_vec();
            read += new.len();
            seen.extend(new.iter().filter_map(|r| r.ce("id")));
            let missing = expected.difference(&seen).count();
            if missing == 0 {
                return (read, seen);
            }
            if tokio::time::timeout(PATIENCE, arrived).await.is_err() {
                let some: Vec<&String> = expected.difference(&seen).take(5).collect();
                panic!(
                    "nothing arrived for {PATIENCE:?}: {missing} of {} ids missing (such as {some:?}) after {read} requests",
                    expected.len()
                );
            }
        }
    }
}

/// The first error of the first route of the first event of an ingest answer.
pub fn first_error(body: &serde_json::Value) -> String {
    body["events"][0]["routes"][0]["errors"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// How the dedup stores name a pair: the first 128 bits of the SHA-256 of the
/// route scope (`""` for the global window), the source and the id, each after
/// its length as 8 big-endian bytes, in hex (in Redis after `<stream>:seen:`).
pub fn dedup_digest(scope: &str, source: &str, id: &str) -> String {
    use sha2::Digest as _;
    let mut hash = sha2::Sha256::new();
    for part in [scope, source, id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `command` to completion, failing the test with everything it printed
/// unless it succeeds; returns its standard output.
pub fn run(command: &mut std::process::Command) -> String {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{shown} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// A sink that answers every request `307 Temporary Redirect` to `location`,
/// and counts them.
pub async fn redirector(location: String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let (hits, location) = (Arc::clone(&counted), location.clone());
        async move {
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    (format!("http://{addr}/"), hits)
}
