//! End-to-end latency of the e-commerce example against ADR-001's target of
//! "real-time updates (<100ms latency)".
//!
//! Starts a private `redis-server` (append-only file, `appendfsync everysec`,
//! Redis's own default for AOF), the router in-process on the example's
//! `router.toml` (durable mode: Redis Streams, the view in Redis, dedup in
//! Redis), and a local HTTP server as the storefront webhook. Then it publishes
//! `warehouse.stock.updated` and `pricing.price.updated` events at a fixed rate
//! (open loop: a slow answer never delays the next send) and measures, per
//! event, the time from its scheduled send to the arrival of the
//! `catalog.product.updated` it causes at the storefront: HTTP ingest, XADD,
//! the consumer group read, the catalog-view plugin (kv in Redis), and the
//! forward. Measuring from the *scheduled* time keeps a stall from hiding the
//! latency of the events queued behind it (coordinated omission).
//!
//! The baseline is the same client posting straight to the same webhook, at
//! the same rate, in the same run: what any HTTP hop costs on this machine.
//!
//! Run: `cargo bench -p router --bench ecommerce_latency`. `RATE` (events per
//! second, default 1000) and `SECONDS` (default 10) change the load.

use axum::http::{HeaderMap, StatusCode};
use router::config::{Config, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// ADR-001's latency target.
const TARGET: Duration = Duration::from_millis(100);
/// Products the events spread over (each its own partition key).
const SKUS: usize = 200;

/// Arrival time at the storefront, by the id of the event that caused it.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn main() {
    let rate: u64 = env_or("RATE", 1000);
    let seconds: u64 = env_or("SECONDS", 10);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(rate, seconds));
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

async fn run(rate: u64, seconds: u64) {
    let redis = Redis::start().await;
    let arrivals: Arrivals = Arc::default();
    let storefront = storefront(arrivals.clone()).await;
    let router = start_router(&redis, &storefront).await;
    let events = format!("http://{router}/events");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");

    println!(
        "e-commerce example, end to end: {rate} events/s for {seconds} s over {SKUS} SKUs \
         (durable mode, redis-server with appendfsync everysec)"
    );
    // Warm-up: connections, wasm instances, Redis connections; not recorded.
    let warm = send(&client, &events, "warm", rate, rate).await;
    wait_for(&arrivals, &warm, Duration::from_secs(20)).await;

    let sent = send(&client, &events, "e2e", rate, rate * seconds).await;
    let missing = wait_for(&arrivals, &sent, Duration::from_secs(30)).await;
    let router_latencies = latencies(&arrivals, &sent);
    report(
        "router (ingest -> Redis -> catalog-view -> storefront)",
        &router_latencies,
        sent.len(),
    );
    if missing > 0 {
        println!("  {missing} events never reached the storefront");
    }

    // Baseline: one HTTP hop, straight to the webhook.
    let base_seconds = seconds.min(3);
    let direct = send(&client, &storefront, "base", rate, rate * base_seconds).await;
    wait_for(&arrivals, &direct, Duration::from_secs(10)).await;
    report(
        "baseline (direct POST to the storefront)",
        &latencies(&arrivals, &direct),
        direct.len(),
    );
    assert_eq!(missing, 0, "every accepted event must reach the storefront");
}

/// Publishes `count` events at `rate` per second, each in its own task; returns
/// each event's id and scheduled send time.
async fn send(
    client: &reqwest::Client,
    url: &str,
    prefix: &str,
    rate: u64,
    count: u64,
) -> Vec<(String, Instant)> {
    let start = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate as f64);
    let mut scheduled = Vec::with_capacity(count as usize);
    let mut tasks = Vec::with_capacity(count as usize);
    for i in 0..count {
        let at = start + every.mul_f64(i as f64);
        tokio::time::sleep_until(at.into()).await;
        let id = format!("{prefix}-{i}");
        // SKUs of each phase's own, and versions that grow per SKU: no update is
        // stale, so each one reaches the storefront.
        let sku = format!("{prefix}-SKU-{}", i as usize % SKUS);
        let version = i / SKUS as u64 + 1;
        let (ty, data) = if (i / SKUS as u64).is_multiple_of(2) {
            (
                "warehouse.stock.updated",
                serde_json::json!({"sku": sku, "quantity": i % 50, "version": version}),
            )
        } else {
            (
                "pricing.price.updated",
                serde_json::json!({"sku": sku, "amount": 1000 + i % 500, "currency": "EUR", "version": version}),
            )
        };
        let request = client
            .post(url)
            .header("ce-specversion", "1.0")
            .header("ce-id", &id)
            .header("ce-source", "/bench")
            .header("ce-type", ty)
            .header("ce-partitionkey", &sku)
            .header("content-type", "application/json")
            .body(data.to_string());
        tasks.push(tokio::spawn(async move {
            match request.send().await {
                Ok(answer) if answer.status().is_success() => {}
                Ok(answer) => panic!("answer {}: {:?}", answer.status(), answer.text().await),
                Err(e) => panic!("cannot send: {e}"),
            }
        }));
        scheduled.push((id, at));
    }
    for task in tasks {
        task.await.expect("a send task");
    }
    scheduled
}

/// Waits until every event of `sent` arrived, or `patience` ran out; returns
/// how many did not.
async fn wait_for(arrivals: &Arrivals, sent: &[(String, Instant)], patience: Duration) -> usize {
    let deadline = Instant::now() + patience;
    loop {
        let missing = {
            let arrived = arrivals.lock().expect("lock");
            sent.iter()
                .filter(|(id, _)| !arrived.contains_key(id))
                .count()
        };
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn latencies(arrivals: &Arrivals, sent: &[(String, Instant)]) -> Vec<Duration> {
    let arrived = arrivals.lock().expect("lock");
    let mut all: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, at)| arrived.get(id).map(|t| t.saturating_duration_since(*at)))
        .collect();
    all.sort();
    all
}

fn report(what: &str, sorted: &[Duration], sent: usize) {
    let at = |q: f64| {
        let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
        sorted.get(i).copied().unwrap_or_default()
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p95 = at(0.95);
    println!("{what}: {} of {sent} events", sorted.len());
    println!(
        "  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms;  p95 / 100 ms = {:.3} ({})",
        ms(at(0.50)),
        ms(p95),
        ms(at(0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
        ms(p95) / ms(TARGET),
        if p95 < TARGET {
            "within the ADR's target"
        } else {
            "OVER the ADR's target"
        },
    );
}

/// The storefront webhook: records when each `catalog.product.updated` (or a
/// baseline request) arrives, by the id of the event that caused it.
async fn storefront(arrivals: Arrivals) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the storefront");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let arrivals = arrivals.clone();
        async move {
            let now = Instant::now();
            // The router's event: its causationid is the published id. The
            // baseline's: its own id.
            let id = ["ce-causationid", "ce-id"]
                .iter()
                .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
                .unwrap_or_default()
                .to_owned();
            arrivals.lock().expect("lock").insert(id, now);
            StatusCode::OK
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.expect("storefront") });
    url
}

/// The router on the example's configuration, in this process, on a free port.
async fn start_router(redis: &Redis, storefront: &str) -> std::net::SocketAddr {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/ecommerce-catalog/router.toml"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let env = [
        ("REDIS_URL", redis.url()),
        ("STOREFRONT_URL", storefront.to_owned()),
    ];
    let config = Config::parse(Source::new(path, text), |name| {
        env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    })
    .unwrap_or_else(|e| panic!("{path} is invalid: {e}"));
    let server = router::server::Server::build(&config)
        .await
        .unwrap_or_else(|e| panic!("cannot build the router: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the router");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(server.run(listener, std::future::pending()));
    // Ready once it answers /readyz, that is once Redis does.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = reqwest::get(format!("http://{addr}/readyz")).await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return addr;
        }
        assert!(Instant::now() < deadline, "the router never got ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A private `redis-server` on a free port, killed on drop.
struct Redis {
    port: u16,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "the benchmark needs redis-server on PATH (apt-get install redis-server): {e}"
                )
            });
        let redis = Self {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !redis.pong().await {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        redis
    }

    async fn pong(&self) -> bool {
        let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut answer = [0u8; 7];
        stream.write_all(b"PING\r\n").await.is_ok()
            && stream.read_exact(&mut answer).await.is_ok()
            && &answer == b"+PONG\r\n"
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
