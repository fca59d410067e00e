//! Partition rebalancing across real `router serve` processes on a real
//! `redis-server`: processes joining take their share of the partitions, a
//! killed one's partitions move to the others, and events of one partition key
//! stay in order through every hand-over. `GET /admin/queue` is how the tests
//! (and operators) see who holds what.

use crate::common::*;
use crate::durable::{RedisServer, process_config, until};
use crate::process::{Served, serve_with_env, signal};
use axum::http::StatusCode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: usize = 8;
const VISIBILITY: Duration = Duration::from_secs(2);
const KEYS: usize = 12;

/// Starts `router serve` on `config` with consumer name `name`.
fn router(config: &std::path::Path, name: &str) -> Served {
    serve_with_env(
        &["--config".as_ref(), config.as_os_str()],
        &[("ROUTER_NAME", name.to_owned())],
    )
}

/// A configuration with [`PARTITIONS`] partitions, each process named by
/// `ROUTER_NAME`.
fn config(
    redis: &RedisServer,
    stream: &str,
    sink: &Sink,
) -> (tempfile::TempDir, std::path::PathBuf) {
    process_config(
        redis,
        stream,
        &format!(
            "consumer = \"${{ROUTER_NAME}}\"\nconcurrency = 4\nvisibility_timeout = \"{}s\"\npartitions = {PARTITIONS}",
            VISIBILITY.as_secs()
        ),
        "",
        sink,
    )
}

/// `GET /admin/queue` of `served`.
async fn queue_status(served: &Served) -> serde_json::Value {
    let answer = client()
        .get(format!("http://{}/admin/queue", served.admin_addr))
        .send()
        .await
        .expect("GET /admin/queue");
    assert_eq!(answer.status(), StatusCode::OK);
    serde_json::from_slice(&answer.bytes().await.expect("body")).expect("JSON")
}

/// How many partitions each member holds, by `/admin/queue`.
fn holdings(status: &serde_json::Value) -> BTreeMap<String, usize> {
    status["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                m["partitions"].as_array().expect("partitions").len(),
            )
        })
        .collect()
}

/// Whether exactly `live` are members, every partition is held by one of
/// them, and each holds its share (partitions / members) give or take one.
fn balanced(status: &serde_json::Value, live: &[&str]) -> bool {
    let held = holdings(status);
    let names: Vec<&str> = held.keys().map(String::as_str).collect();
    let share = PARTITIONS as f64 / live.len() as f64;
    names == live
        && held.values().sum::<usize>() == PARTITIONS
        && held.values().all(|&n| (n as f64 - share).abs() <= 1.0)
        && status["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .all(|p| p["owner"].as_str().is_some_and(|o| live.contains(&o)))
}

/// Posts events with a sequence number per partition key, round robin over the
/// keys and over `targets` (the ingest addresses of live routers), until
/// stopped; what each post got accepted is returned.
struct Producer {
    targets: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<BTreeSet<String>>,
}

impl Producer {
    fn start(targets: Vec<String>) -> Self {
        let targets = Arc::new(Mutex::new(targets));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (Arc::clone(&targets), Arc::clone(&stop));
        let task = tokio::spawn(async move {
            let mut accepted = BTreeSet::new();
            // One client, its connections kept alive, as a real producer would.
            let http = client();
            let mut i = 0usize;
            while !s.load(SeqCst) {
                let target = {
                    let t = t.lock().expect("lock");
                    t[i % t.len()].clone()
                };
                let key = format!("key-{:02}", i % KEYS);
                // The sequence number is global, so it increases per key too.
                let id = format!("{key}-{i:06}");
                let sent = http
                    .post(format!("http://{target}/events"))
                    .header("ce-specversion", "1.0")
                    .header("ce-id", &id)
                    .header("ce-source", "/rebalance")
                    .header("ce-type", "test.rebalance")
                    .header("ce-partitionkey", &key)
                    .body("{}")
                    .send()
                    .await;
                // Only a 202 counts: a post that got no answer (its router was
                // killed meanwhile, or the connection failed) may or may not have
                // been appended, and the test checks what was accepted.
                if sent.is_ok_and(|answer| answer.status().as_u16() == 202) {
                    accepted.insert(id);
                }
                i += 1;
                // Paced so that the sink keeps up on a loaded machine: the test is
                // about order and hand-over, not throughput.
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
            accepted
        });
        Self {
            targets,
            stop,
            task,
        }
    }

    /// Stops posting to `addr` (before its router is killed).
    fn drop_target(&self, addr: &str) {
        self.targets.lock().expect("lock").retain(|t| t != addr);
    }

    async fn finish(self) -> BTreeSet<String> {
        self.stop.store(true, SeqCst);
        self.task.await.expect("producer")
    }
}

/// Checks that every key's events arrived in sequence order (a repeat of the
/// latest one, a redelivery after a kill, is allowed) and returns how many
/// arrivals were repeats.
fn assert_in_order(arrivals: &[String]) -> usize {
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    let mut repeats = 0;
    for id in arrivals {
        let (key, seq) = id.rsplit_once('-').expect("key-seq");
        if let Some(previous) = last.get(key) {
            assert!(
                seq >= *previous,
                "{key}: {seq} arrived after {previous}: out of order"
            );
            if seq == *previous {
                repeats += 1;
            }
        }
        last.insert(key, seq);
    }
    repeats
}

fn arrival_ids(sink: &Sink) -> Vec<String> {
    sink.received().iter().filter_map(|r| r.ce("id")).collect()
}

/// Waits until `by`'s `/admin/queue` shows `live` balanced; returns how long it took.
async fn until_balanced(by: &Served, live: &[&str]) -> Duration {
    let started = Instant::now();
    until(&format!("{live:?} hold their shares"), || async {
        balanced(&queue_status(by).await, live)
    })
    .await;
    started.elapsed()
}

/// Kills `victim` with SIGKILL while events flow, waits until `observer` sees
/// the partitions spread over `remaining`, lets events flow a while longer, then
/// stops the producer and waits until every accepted event reached the sink, in
/// order per key. Returns the ids of the accepted events.
async fn kill_and_finish(
    label: &str,
    victim: &mut Served,
    observer: &Served,
    remaining: &[&str],
    producer: Producer,
    sink: &Sink,
) -> BTreeSet<String> {
    producer.drop_target(&victim.addr);
    signal(&victim.child, "-9");
    let _ = victim.child.wait();
    // Whatever the victim had in flight is let through before anyone can take over.
    sink.open();
    let moved = until_balanced(observer, remaining).await;
    eprintln!("{label}: killed (kill -9), its partitions held by {remaining:?} {moved:?} later");
    let sent = sink.received().len();
    until("events flow after the kill", || async {
        sink.received().len() >= sent + 50
    })
    .await;
    let accepted = producer.finish().await;
    let (received, distinct) = sink.wait_for_ids(&accepted).await;
    let repeats = assert_in_order(&arrival_ids(sink));
    eprintln!(
        "{label}: {} accepted, {received} deliveries, {} duplicates (after the kill -9), 0 lost, {repeats} in-order repeats",
        accepted.len(),
        received - distinct.len()
    );
    accepted
}

/// One router holds every partition; three more join and each takes its share
/// (within twice the visibility timeout, nothing delivered twice); one stops
/// (SIGTERM) and its partitions move at once; one is killed (kill -9) with
/// entries in hand and its partitions move after its lease runs out. Events of
/// twelve keys flow the whole time: each key's arrive in order, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_joining_take_their_share_and_leaving_ones_partitions_move_in_order() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let (_dir, config) = config(&redis, "t:rebalance", &sink);
    let a = router(&config, "a");
    until_balanced(&a, &["a"]).await;
    let producer = Producer::start(vec![a.addr.clone()]);
    sink.wait_for(20).await;

    // Three more: A hands over three quarters, each after its entry in hand.
    let joined = Instant::now();
    let (b, mut c, mut d) = (
        router(&config, "b"),
        router(&config, "c"),
        router(&config, "d"),
    );
    producer
        .targets
        .lock()
        .expect("lock")
        .extend([b.addr.clone(), c.addr.clone(), d.addr.clone()]);
    until("the three are members", || async {
        holdings(&queue_status(&a).await).len() == 4
    })
    .await;
    let members_seen = joined.elapsed();
    let rebalanced = until_balanced(&a, &["a", "b", "c", "d"]).await;
    eprintln!(
        "rebalance: 3 joined, members seen after {members_seen:?}, shares held {rebalanced:?} later: {}",
        queue_status(&a).await
    );
    assert!(
        rebalanced <= 2 * VISIBILITY,
        "the shares took {rebalanced:?}, more than twice the visibility timeout"
    );
    // Hand-overs between live processes deliver nothing twice.
    let before_kill = arrival_ids(&sink);
    let repeats = before_kill.len() - before_kill.iter().collect::<BTreeSet<_>>().len();
    assert_eq!(repeats, 0, "the hand-overs delivered events twice");
    assert_in_order(&before_kill);
    let sent = sink.received().len();
    until("events flow to the new owners", || async {
        sink.received().len() >= sent + 50
    })
    .await;

    // D stops (SIGTERM): it leaves the members and frees its leases as its
    // workers finish, so the others take its partitions without waiting for
    // the leases to expire.
    producer.drop_target(&d.addr);
    signal(&d.child, "-TERM");
    let _ = d.child.wait();
    let handed = until_balanced(&a, &["a", "b", "c"]).await;
    eprintln!("rebalance: D stopped (SIGTERM), its partitions held by the others {handed:?} later");
    assert!(
        handed < VISIBILITY,
        "D's partitions took {handed:?} to move: they waited for the leases to expire"
    );
    let so_far = arrival_ids(&sink);
    let repeats = so_far.len() - so_far.iter().collect::<BTreeSet<_>>().len();
    assert_eq!(repeats, 0, "a graceful stop delivered events twice");

    // C dies (kill -9) with entries in hand: they are routed again by the new
    // owners of its partitions once its lease and membership run out, before
    // anything later of the same keys.
    sink.close();
    until("C holds entries in hand", || async {
        queue_status(&a).await["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .any(|p| p["owner"] == "c" && p["pending"].as_u64() > Some(0))
    })
    .await;
    let accepted = kill_and_finish("rebalance", &mut c, &a, &["a", "b"], producer, &sink).await;
    assert!(accepted.len() >= 200, "only {} accepted", accepted.len());
    // Everything routed: no partition is behind or holds unacknowledged entries.
    until("/admin/queue shows no lag and nothing pending", || async {
        let status = queue_status(&a).await;
        status["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .chain([&status])
            .all(|p| p["lag"] == 0 && p["pending"] == 0)
    })
    .await;
    for served in [&a, &b] {
        signal(&served.child, "-TERM");
    }
}

/// A router killed while it still holds partitions it is handing over (its
/// workers stuck on entries in hand): the new owners take them after the leases
/// run out and route its entries first; nothing lost, each key in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_killed_while_handing_over_loses_nothing_and_keeps_order() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let (_dir, config) = config(&redis, "t:handover", &sink);
    let mut a = router(&config, "a");
    until_balanced(&a, &["a"]).await;
    let producer = Producer::start(vec![a.addr.clone()]);
    sink.wait_for(20).await;

    // A's workers are each stuck on an entry in hand, so it cannot let go of the
    // partitions the newcomers should now own.
    sink.close();
    until("A holds four entries at the sink", || async { sink.waiting() >= 4 }).await;
    let (b, c) = (router(&config, "b"), router(&config, "c"));
    producer
        .targets
        .lock()
        .expect("lock")
        .extend([b.addr.clone(), c.addr.clone()]);
    until(
        "B and C are members while A still holds their partitions",
        || async {
            let held = holdings(&queue_status(&b).await);
            held.len() == 3 && held.get("a").is_some_and(|&n| n > PARTITIONS.div_ceil(3))
        },
    )
    .await;

    kill_and_finish("handover kill", &mut a, &b, &["b", "c"], producer, &sink).await;
    for served in [&b, &c] {
        signal(&served.child, "-TERM");
    }
}

/// The queue's state exists only in durable mode: without `[queue]`, a 404 that
/// says why.
#[tokio::test]
async fn admin_queue_is_404_without_a_queue() {
    let router =
        TestRouter::start("[[route]]\nname = \"r\"\nforward = \"http://127.0.0.1:9/\"\n").await;
    let answer = client()
        .get(format!("{}/admin/queue", router.admin_url()))
        .send()
        .await
        .expect("GET /admin/queue");
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    let body: serde_json::Value =
        serde_json::from_slice(&answer.bytes().await.expect("body")).expect("JSON");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("[queue]")),
        "{body}"
    );
}
