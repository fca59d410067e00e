//! Archive figures (run with `cargo bench -p router --bench archive`):
//!
//! 1. the cost of archiving per event: CPU time (this process's, by
//!    `/proc/self/stat`) and wall time per event over the same load with no archive,
//!    a file archive synced every second (the default) and one synced before
//!    every answer (`fsync = "0s"`), alternating, and the bytes per event on disk;
//! 2. replay throughput: events per second re-dispatched from the file archive
//!    through one route (a journal append), without a rate bound.
//!
//! The load generator runs in this process, the same in every run: the
//! difference between a run and the run without archive is the archive's.

use router::config::{Config, Source};
use router::server::{Listeners, Server};
use std::path::Path;
use std::time::{Duration, Instant};

/// Events per run.
const EVENTS: usize = 10_000;
/// Requests in flight at once.
const CLIENTS: usize = 8;
/// Runs of each kind, alternating.
const ROUNDS: usize = 5;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

/// CPU time of this process so far (user and system), from `/proc/self/stat`
/// in clock ticks of 10 ms (Linux's `USER_HZ` is 100).
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime: fields 14 and 15, 12 and 13 after the name.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// A router on `toml` (one route appending to a journal in `dir`), its ingest
/// and admin addresses.
async fn start(dir: &Path, archive: &str) -> (String, String) {
    let journal = dir.join("journal.jsonl");
    let text = format!(
        "{archive}\n[[route]]\nname = \"journal\"\nappend = {{ file = {:?} }}\n",
        journal.display().to_string()
    );
    let config = Config::parse(Source::new(dir.join("router.toml"), text), |_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    let server = Server::build(&config)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let ingest = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let urls = (
        format!("http://{}/events", ingest.local_addr().expect("addr")),
        format!("http://{}", admin.local_addr().expect("addr")),
    );
    tokio::spawn(server.run(
        Listeners {
            ingest,
            admin: Some(admin),
        },
        std::future::pending(),
    ));
    urls
}

/// Posts [`EVENTS`] structured events of about 300 bytes from [`CLIENTS`]
/// clients; the wall time it took.
async fn load(url: &str, tag: &str) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let per_client = EVENTS / CLIENTS;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, url, tag) = (client.clone(), url.to_owned(), tag.to_owned());
            tokio::spawn(async move {
                for i in 0..per_client {
                    let body = format!(
                        "{{\"specversion\":\"1.0\",\"id\":\"{tag}-{c}-{i}\",\"source\":\"/bench\",\"type\":\"bench.archived\",\"data\":{{\"orderId\":\"o-{i}\",\"note\":\"{}\"}}}}",
                        "x".repeat(200)
                    );
                    let response = client
                        .post(&url)
                        .header("content-type", "application/cloudevents+json")
                        .body(body)
                        .send()
                        .await
                        .expect("post");
                    assert!(response.status().is_success(), "{}", response.status());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client");
    }
    started.elapsed()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

async fn run() {
    let kinds = [
        ("no archive", None),
        ("file archive, fsync 1s", Some("1s")),
        ("file archive, fsync 0s", Some("0s")),
    ];
    let mut cpu_per_event = vec![Vec::new(); kinds.len()];
    let mut wall_per_event = vec![Vec::new(); kinds.len()];
    let mut bytes_per_event = 0.0;
    let mut replay_source = None;
    for round in 0..ROUNDS {
        for (k, (_, fsync)) in kinds.iter().enumerate() {
            let dir = tempfile::tempdir().expect("tempdir");
            let archive_dir = dir.path().join("archive");
            let archive = fsync.map_or_else(String::new, |f| {
                format!(
                    "[archive]\ndir = {:?}\nfsync = \"{f}\"\n",
                    archive_dir.display().to_string()
                )
            });
            let (url, admin) = start(dir.path(), &archive).await;
            // Warm up connections and the first segment.
            load(&url, &format!("warm{round}{k}")).await;
            let before = cpu();
            let wall = load(&url, &format!("r{round}{k}")).await;
            let used = cpu() - before;
            cpu_per_event[k].push(used.as_secs_f64() * 1e6 / EVENTS as f64);
            wall_per_event[k].push(wall.as_secs_f64() * 1e6 / EVENTS as f64);
            if fsync.is_some() {
                bytes_per_event = dir_bytes(&archive_dir) as f64 / (2 * EVENTS) as f64;
                if replay_source.is_none() {
                    replay_source = Some((dir, admin));
                }
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let base_cpu = median(&mut cpu_per_event[0].clone());
    println!(
        "archiving cost, {EVENTS} events of ~300 bytes, {CLIENTS} clients, median of {ROUNDS} runs:"
    );
    for (k, (name, _)) in kinds.iter().enumerate() {
        let c = median(&mut cpu_per_event[k]);
        let w = median(&mut wall_per_event[k]);
        println!(
            "  {name:<24} CPU {c:7.1} us/event ({:+.1} us over no archive), wall {w:7.1} us/event",
            c - base_cpu
        );
    }
    println!("  bytes on disk per event (segment line): {bytes_per_event:.0}");

    // Replay throughput: the events of one file archive, through its route.
    let (_dir, admin) = replay_source.expect("a file archive ran");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let answer: serde_json::Value = client
        .post(format!("{admin}/admin/replay"))
        .header("content-type", "application/json")
        .body(r#"{"id":"bench","from":0,"to":"now","route":"journal"}"#)
        .send()
        .await
        .expect("replay")
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).expect("JSON"))
        .expect("answer");
    assert_eq!(answer["state"], "running", "{answer}");
    let progress = loop {
        let progress: serde_json::Value = client
            .get(format!("{admin}/admin/replay/bench"))
            .send()
            .await
            .expect("progress")
            .bytes()
            .await
            .map(|b| serde_json::from_slice(&b).expect("JSON"))
            .expect("answer");
        if progress["state"] != "running" {
            break progress;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    let replayed = progress["replayed"].as_u64().unwrap_or(0);
    assert_eq!(progress["state"], "done", "{progress}");
    println!(
        "replay throughput: {replayed} events in {elapsed:?}, {:.0} events/s (one at a time, a checkpoint every 100 ms, one journal route)",
        replayed as f64 / elapsed.as_secs_f64()
    );
}
