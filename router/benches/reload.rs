//! Hot-reload figures (run with `cargo bench -p router --bench reload`):
//!
//! 1. the time from a plugin file's rename-into-place to the first event handled by
//!    the new version, median of 20 swaps, with the debounce and settle stated;
//! 2. throughput during 20 back-to-back reloads as a ratio of throughput without
//!    reloads, measured in the same run, and the events failed or lost (must be 0).

use router::runtime::Runtime;
use router::server::Server;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const DEBOUNCE: &str = "50ms";
const SETTLE: &str = "20ms";
const CLIENTS: usize = 8;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[reload]\ndebounce = \"{DEBOUNCE}\"\nsettle = \"{SETTLE}\"\n\n[[plugin]]\nname = \"p\"\npath = \"p.wasm\"\ninstances = 8\nconfig = {{ emit_type = \"relayed\" }}\n\n[[route]]\nname = \"handle\"\nhandler = \"p\"\nfilter = {{ exact = {{ type = \"t\" }} }}\n"
        ),
    )
    .expect("config");
    let plugin = dir.path().join("p.wasm");
    std::fs::copy(plugin_artifacts::ENRICHER, &plugin).expect("copy");
    let (cfg, runtime) = Runtime::load(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::new(&cfg, runtime);
    server.watch().expect("watch");
    let bind = || tokio::net::TcpListener::bind("127.0.0.1:0");
    let (ingest, admin) = (bind().await.expect("bind"), bind().await.expect("bind"));
    let (addr, admin_addr) = (
        ingest.local_addr().expect("addr"),
        admin.local_addr().expect("addr"),
    );
    // The admin API has a listener of its own: the ingest one never serves it.
    tokio::spawn(server.run(
        router::server::Listeners {
            ingest,
            admin: Some(admin),
        },
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/events");

    // 1. Write -> first event handled by the new version.
    let versions = [plugin_artifacts::RELAY, plugin_artifacts::ENRICHER];
    let mut latencies = Vec::new();
    for i in 0..20 {
        let next = versions[i % 2];
        let expected = if next == plugin_artifacts::RELAY {
            "relayed"
        } else {
            "t.enriched"
        };
        let bytes = std::fs::read(next).expect("read");
        let written = Instant::now();
        replace(&plugin, &bytes);
        let mut n = 0u64;
        loop {
            n += 1;
            if emitted_type(&client, &url, &format!("w{i}-{n}"))
                .await
                .as_deref()
                == Some(expected)
            {
                break;
            }
        }
        latencies.push(written.elapsed());
    }
    latencies.sort();
    println!(
        "reload latency (write -> first event on the new version), debounce {DEBOUNCE}, settle {SETTLE}: median {:?}, min {:?}, max {:?} over 20 swaps",
        latencies[10], latencies[0], latencies[19]
    );

    // 2. Throughput during 20 back-to-back reloads against throughput without,
    //    same load, alternated five times; the quiet window is as long as the busy one.
    let admin = format!("http://{admin_addr}/admin/reload");
    let mut ratios = Vec::new();
    let (mut failed, mut lost, mut reloads) = (0, 0, 0);
    for _ in 0..5 {
        let busy = load(&client, &url, None, Some(&admin)).await;
        let quiet = load(&client, &url, Some(busy.elapsed), None).await;
        ratios.push(busy.rate / quiet.rate);
        failed += busy.failed + quiet.failed;
        lost += busy.lost + quiet.lost;
        reloads += busy.reloads;
        println!(
            "  pair: {:.0} events/s during reloads ({:?}), {:.0} events/s without",
            busy.rate, busy.elapsed, quiet.rate
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "throughput during 20 back-to-back reloads / without: median {:.2} (min {:.2}, max {:.2}) over 5 pairs",
        ratios[2], ratios[0], ratios[4]
    );
    println!(
        "events failed: {failed}; events lost (answered without the handler's event): {lost}; reloads done: {reloads}"
    );
}

struct Load {
    rate: f64,
    elapsed: Duration,
    failed: u64,
    lost: u64,
    reloads: u64,
}

/// Closed-loop load from `CLIENTS` tasks, for `window`, or with `reload` for as
/// long as 20 back-to-back reloads take.
async fn load(
    client: &reqwest::Client,
    url: &str,
    window: Option<Duration>,
    reload: Option<&str>,
) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed, lost) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, stop) = (client.clone(), url.to_owned(), Arc::clone(&stop));
            let (ok, failed, lost) = (Arc::clone(&ok), Arc::clone(&failed), Arc::clone(&lost));
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    match emitted_type(&client, &url, &format!("l{c}-{n}")).await {
                        Some(t) if t == "relayed" || t == "t.enriched" => {
                            ok.fetch_add(1, Ordering::Relaxed)
                        }
                        Some(_) => lost.fetch_add(1, Ordering::Relaxed),
                        None => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let mut reloads = 0;
    if let Some(admin) = reload {
        for _ in 0..20 {
            let r = client.post(admin).send().await.expect("reload");
            assert!(r.status().is_success(), "reload failed: {}", r.status());
            reloads += 1;
        }
    }
    if let Some(window) = window {
        tokio::time::sleep(window).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client");
    }
    let elapsed = started.elapsed();
    Load {
        rate: ok.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        elapsed,
        failed: failed.load(Ordering::Relaxed),
        lost: lost.load(Ordering::Relaxed),
        reloads,
    }
}

/// Sends one event; the type of the event the handler emitted, or None on failure.
async fn emitted_type(client: &reqwest::Client, url: &str, id: &str) -> Option<String> {
    let response = client
        .post(url)
        .header("ce-specversion", "1.0")
        .header("ce-id", id)
        .header("ce-source", "/bench")
        .header("ce-type", "t")
        .body("{}")
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = serde_json::from_slice(&response.bytes().await.ok()?).ok()?;
    Some(
        body["events"][0]["routes"][0]["emitted"][0]["type"]
            .as_str()
            .unwrap_or("none")
            .to_owned(),
    )
}

fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}
