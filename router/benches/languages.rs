//! Per-language plugin figures (run with `cargo bench -p router --bench
//! languages`): the same enricher (kv-free: copies the event, two extensions)
//! built with the Rust, Python and JavaScript SDKs, loaded and called by the same
//! router code. For each: component size, the time a new process takes to load
//! it with the compile cache off (cold) and from a warm cache, memory of an idle
//! warm instance (RSS before and after warming N, divided by N), and the median
//! time of one call through the dispatcher on a reused instance and on a fresh
//! instance. Prints a table, then the figures as one JSON line for
//! bench/report.py.

mod support;

use support::rss_bytes;

use router::config::{Config, Source};
use router::dispatch::Dispatcher;
use router::event::Event;
use router::runtime::Runtime;
use std::time::{Duration, Instant};

const LANGS: [(&str, &str); 3] = [
    ("rust", plugin_artifacts::ENRICHER),
    ("python", polyglot_artifacts::ENRICHER_PY),
    ("javascript", polyglot_artifacts::ENRICHER_JS),
];

/// Instances warmed to measure the memory of one.
const WARM: usize = 16;
/// Calls timed per mode.
const REUSED_CALLS: usize = 2000;
const FRESH_CALLS: usize = 100;
/// Loads timed per cache state (a cold Python load takes seconds).
const LOADS: usize = 3;

fn config(path: &str, mode: &str, instances: usize, cache: Option<&std::path::Path>) -> Config {
    let cache = match cache {
        Some(dir) => format!(
            "[compile_cache]\ndir = {:?}\n",
            dir.to_str().expect("UTF-8")
        ),
        None => "[compile_cache]\nenabled = false\n".to_owned(),
    };
    let text = format!(
        "{cache}\n[[plugin]]\nname = \"enricher\"\npath = {path:?}\nmode = \"{mode}\"\n\
         instances = {instances}\nmemory_limit = \"64MiB\"\n\n\
         [[route]]\nname = \"r\"\nhandler = \"enricher\"\n\
         filter = {{ exact = {{ type = \"com.example.order.created\" }} }}\n"
    );
    Config::parse(Source::new("bench.toml", text), |_| None).expect("config")
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn event(i: usize) -> Event {
    let mut event = Event::new(format!("e-{i}"), "/bench", "com.example.order.created");
    event.datacontenttype = Some("application/json".into());
    event.data = Some(bytes::Bytes::from_static(
        br#"{"orderId":"o-1","items":[{"productId":"p-1","quantity":2}]}"#,
    ));
    event
}

/// The median time of `calls` dispatches, one at a time.
async fn call_time(dispatcher: &Dispatcher, calls: usize) -> Duration {
    let mut times = Vec::with_capacity(calls);
    for i in 0..calls {
        let started = Instant::now();
        let report = dispatcher.dispatch(event(i)).await;
        times.push(started.elapsed());
        if let Some(failure) = report.failure() {
            panic!("the enricher failed: {failure:?}");
        }
    }
    median(times)
}

/// The time a new process takes to build a runtime with the component at
/// `path` (compiling it, or loading it from the compile cache in `cache`).
fn load_in_child(path: &str, cache: Option<&std::path::Path>) -> Duration {
    let mut child = std::process::Command::new(std::env::current_exe().expect("this bench"));
    child.env(LOAD_ENV, path);
    if let Some(cache) = cache {
        child.env(CACHE_ENV, cache);
    }
    let output = child.output().expect("run the load child");
    assert!(output.status.success(), "{output:?}");
    let micros: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("the child prints microseconds");
    Duration::from_micros(micros)
}

/// Set in a child started by [`load_in_child`]: the component to load.
const LOAD_ENV: &str = "LANGUAGES_BENCH_LOAD";
/// And the compile cache folder, when it is to be used.
const CACHE_ENV: &str = "LANGUAGES_BENCH_CACHE";

/// The child's side of [`load_in_child`].
fn load_once(path: &str) {
    let cache = std::env::var_os(CACHE_ENV).map(std::path::PathBuf::from);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let config = config(path, "reuse", 1, cache.as_deref());
    let started = Instant::now();
    let runtime = rt.block_on(Runtime::build(&config)).expect("runtime");
    println!("{}", started.elapsed().as_micros());
    drop(runtime);
}

fn main() {
    if let Ok(path) = std::env::var(LOAD_ENV) {
        return load_once(&path);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let mut rows = Vec::new();
    rt.block_on(async {
        for (lang, path) in LANGS {
            let size = std::fs::metadata(path).expect("component").len();

            // Each load in a process of its own: the router keeps compiled
            // components in memory too, so a second load in one process would
            // measure that.
            let cache = tempfile::tempdir().expect("temp dir");
            let cold: Vec<Duration> = (0..LOADS).map(|_| load_in_child(path, None)).collect();
            load_in_child(path, Some(cache.path()));
            let cached: Vec<Duration> = (0..LOADS)
                .map(|_| load_in_child(path, Some(cache.path())))
                .collect();

            let config_reuse = config(path, "reuse", WARM, Some(cache.path()));
            let reuse = Dispatcher::new(Runtime::build(&config_reuse).await.expect("runtime"));
            reuse.dispatch(event(0)).await;
            let before = rss_bytes();
            let warmed = reuse
                .runtime()
                .prewarm("enricher", WARM)
                .await
                .expect("prewarm");
            let per_instance = rss_bytes().saturating_sub(before) as f64 / warmed.max(1) as f64;
            let reused = call_time(&reuse, REUSED_CALLS).await;
            drop(reuse);

            let config_fresh = config(path, "fresh", 1, Some(cache.path()));
            let fresh = Dispatcher::new(Runtime::build(&config_fresh).await.expect("runtime"));
            fresh.dispatch(event(0)).await;
            let fresh_time = call_time(&fresh, FRESH_CALLS).await;

            let row = serde_json::json!({
                "lang": lang,
                "size_bytes": size,
                "compile_cold_ms": median(cold).as_secs_f64() * 1e3,
                "compile_cached_ms": median(cached).as_secs_f64() * 1e3,
                "warm_instance_kib": per_instance / 1024.0,
                "reused_call_us": reused.as_secs_f64() * 1e6,
                "fresh_call_us": fresh_time.as_secs_f64() * 1e6,
            });
            println!(
                "{lang:>10}: {:>6.2} MB, load {:>7.1} ms cold / {:>5.1} ms cached, \
                 {:>7.0} KiB per warm instance, call {:>7.1} us reused / {:>8.1} us fresh",
                size as f64 / 1e6,
                row["compile_cold_ms"].as_f64().unwrap_or_default(),
                row["compile_cached_ms"].as_f64().unwrap_or_default(),
                row["warm_instance_kib"].as_f64().unwrap_or_default(),
                row["reused_call_us"].as_f64().unwrap_or_default(),
                row["fresh_call_us"].as_f64().unwrap_or_default(),
            );
            rows.push(row);
        }
    });
    println!("JSON {}", serde_json::Value::Array(rows));
}
