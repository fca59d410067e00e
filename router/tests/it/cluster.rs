//! Durable mode on a real Redis Cluster: three masters with a replica each,
//! started by the test (`redis-server --cluster-enabled yes`, `redis-cli
//! --cluster create`), two `router serve` processes, and a master killed with
//! SIGKILL (or all its slots moved to another) while events flow. With
//! `replicas = 1` every event answered 202 is routed, each partition key's in
//! order; with `replicas = 0` the test reports what the failover lost.

use crate::common::*;
use crate::durable::until;
use crate::process::{Served, serve_with_env, signal};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A Redis Cluster of this test's own: `masters` masters and one replica each,
/// on free ports, with a short `cluster-node-timeout` so that a failover takes
/// seconds. Fails loudly when it cannot be started.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    nodes: BTreeMap<u16, std::process::Child>,
    /// Each node's cluster bus port, by its port.
    buses: BTreeMap<u16, u16>,
}

/// How long a silent master takes to be counted out (ms).
const NODE_TIMEOUT_MS: u64 = 1000;

impl RedisCluster {
    pub async fn start(masters: usize) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        // Each node needs a client port and a cluster bus port (by default the
        // port plus 10000, which may be taken or past 65535, so both are
        // chosen). Held until every one is chosen, so none is picked twice.
        let listeners: Vec<std::net::TcpListener> = (0..masters * 4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
            .collect();
        let chosen: Vec<u16> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port())
            .collect();
        drop(listeners);
        let (ports, buses) = chosen.split_at(masters * 2);
        let mut cluster = Self {
            dir,
            nodes: BTreeMap::new(),
            buses: ports.iter().copied().zip(buses.iter().copied()).collect(),
        };
        for &port in ports {
            std::fs::create_dir(cluster.dir.path().join(port.to_string())).expect("node directory");
            cluster.spawn(port);
        }
        for &port in ports {
            until(&format!("redis-server on {port} answers"), || async move {
                node_query::<String>(port, &redis::cmd("PING"))
                    .await
                    .is_ok()
            })
            .await;
        }
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli --cluster create: {e}"));
        assert!(
            created.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&created.stdout),
            String::from_utf8_lossy(&created.stderr)
        );
        cluster.until_healthy(masters).await;
        cluster
    }

    /// Starts the node of `port` (again: its `nodes.conf` in its directory
    /// tells it which cluster it belongs to).
    fn spawn(&mut self, port: u16) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-port", &self.buses[&port].to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path().join(port.to_string()))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (apt-get install redis-server): {e}")
            });
        self.nodes.insert(port, child);
    }

    /// `redis+cluster://` naming every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .keys()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The live nodes' ports.
    fn live(&self) -> impl Iterator<Item = u16> + '_ {
        self.nodes.keys().copied()
    }

    /// Waits until every live node sees the cluster as `ok`, with `masters`
    /// masters covering every slot, each with a replica whose link is up.
    async fn until_healthy(&self, masters: usize) {
        until("the cluster is healthy", || async {
            for port in self.live() {
                let Ok(info) = node_query::<String>(port, redis::cmd("CLUSTER").arg("INFO")).await
                else {
                    return false;
                };
                if !info.contains("cluster_state:ok") || !info.contains("cluster_slots_ok:16384") {
                    return false;
                }
            }
            let Some(port) = self.live().next() else {
                return false;
            };
            let topology = self.topology(port).await;
            topology.len() == masters
                && topology.values().all(|replicas| !replicas.is_empty())
                && self.replicas_in_sync().await
        })
        .await;
    }

    /// Whether every live replica's link to its master is up.
    async fn replicas_in_sync(&self) -> bool {
        for port in self.live() {
            let Ok(info) = node_query::<String>(port, redis::cmd("INFO").arg("replication")).await
            else {
                return false;
            };
            if info.contains("role:slave") && !info.contains("master_link_status:up") {
                return false;
            }
        }
        true
    }

    /// The masters serving slots, by port, with their live replicas' ports, as
    /// node `port` sees them.
    async fn topology(&self, port: u16) -> BTreeMap<u16, Vec<u16>> {
        let nodes: String = node_query(port, redis::cmd("CLUSTER").arg("NODES"))
            .await
            .unwrap_or_default();
        let mut ids = BTreeMap::new();
        let mut masters = BTreeMap::new();
        let mut replicas = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 || fields[2].contains("fail") {
                continue;
            }
            let Some(node_port) = fields[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse::<u16>().ok())
            else {
                continue;
            };
            ids.insert(fields[0].to_owned(), node_port);
            if fields[2].contains("master") && fields.len() > 8 {
                masters.insert(node_port, Vec::new());
            } else if fields[2].contains("slave") {
                replicas.push((node_port, fields[3].to_owned()));
            }
        }
        for (replica, master) in replicas {
            if let Some(list) = ids.get(&master).and_then(|m| masters.get_mut(m)) {
                list.push(replica);
            }
        }
        masters
    }

    /// Kills the node at `port` (SIGKILL), as a crash would.
    fn kill(&mut self, port: u16) {
        let mut child = self.nodes.remove(&port).expect("a node of the cluster");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Waits until the live nodes agree that `masters` masters, none of them
    /// `dead`, serve every slot: the failover is over.
    async fn until_failed_over(&self, dead: u16, masters: usize) {
        until("a replica took over the dead master's slots", || async {
            for port in self.live() {
                let Ok(info) = node_query::<String>(port, redis::cmd("CLUSTER").arg("INFO")).await
                else {
                    return false;
                };
                if !info.contains("cluster_state:ok") {
                    return false;
                }
                let topology = self.topology(port).await;
                if topology.len() != masters || topology.contains_key(&dead) {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// Moves every slot of the master at `from` to another master, keys and
    /// all, with `redis-cli --cluster reshard` (clients meanwhile get MOVED and
    /// ASK answers).
    async fn move_slots(&self, from: u16) {
        let port = self.live().next().expect("a live node");
        let to = *self
            .topology(port)
            .await
            .keys()
            .find(|&&p| p != from)
            .expect("another master");
        let id = |port: u16| async move {
            node_query::<String>(port, redis::cmd("CLUSTER").arg("MYID"))
                .await
                .expect("CLUSTER MYID")
        };
        let (from_id, to_id) = (id(from).await, id(to).await);
        let slots = self.slot_ranges().await;
        let count: i64 = slots
            .iter()
            .filter(|(_, _, master)| *master == from)
            .map(|(first, last, _)| last - first + 1)
            .sum();
        let moved = tokio::task::spawn_blocking(move || {
            std::process::Command::new("redis-cli")
                .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
                .args(["--cluster-from", &from_id, "--cluster-to", &to_id])
                .args(["--cluster-slots", &count.to_string(), "--cluster-yes"])
                .output()
                .expect("redis-cli --cluster reshard")
        })
        .await
        .expect("reshard");
        assert!(
            moved.status.success(),
            "redis-cli --cluster reshard failed: {}{}",
            String::from_utf8_lossy(&moved.stdout),
            String::from_utf8_lossy(&moved.stderr)
        );
        // The nodes that took no part in the move learn of it by gossip.
        until("every node sees the slots moved", || async {
            for port in self.live() {
                if !self
                    .slot_ranges_seen_by(port)
                    .await
                    .iter()
                    .all(|(_, _, m)| *m != from)
                {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// `CLUSTER SLOTS` as (first, last, master's port), as the first live
    /// node sees it.
    async fn slot_ranges(&self) -> Vec<(i64, i64, u16)> {
        self.slot_ranges_seen_by(self.live().next().expect("a live node"))
            .await
    }

    /// `CLUSTER SLOTS` as (first, last, master's port), as node `port` sees it.
    async fn slot_ranges_seen_by(&self, port: u16) -> Vec<(i64, i64, u16)> {
        let slots: redis::Value = node_query(port, redis::cmd("CLUSTER").arg("SLOTS"))
            .await
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = slots else {
            panic!("CLUSTER SLOTS: {slots:?}")
        };
        let number = |v: &redis::Value| match v {
            redis::Value::Int(n) => *n,
            _ => -1,
        };
        ranges
            .iter()
            .filter_map(|range| {
                let redis::Value::Array(parts) = range else {
                    return None;
                };
                let redis::Value::Array(master) = parts.get(2)? else {
                    return None;
                };
                let port = u16::try_from(number(master.get(1)?)).ok()?;
                Some((number(&parts[0]), number(&parts[1]), port))
            })
            .collect()
    }

    /// The highest `cluster_current_epoch` among the live nodes: each failover
    /// (the test's, or one the nodes started themselves) raises it by one.
    async fn current_epoch(&self) -> u64 {
        let mut highest = 0;
        for port in self.live() {
            let info: String = node_read(port, redis::cmd("CLUSTER").arg("INFO")).await;
            let epoch: u64 = info
                .lines()
                .find_map(|l| l.strip_prefix("cluster_current_epoch:"))
                .and_then(|e| e.trim().parse().ok())
                .unwrap_or_else(|| panic!("node {port}: no cluster_current_epoch in {info:?}"));
            highest = highest.max(epoch);
        }
        highest
    }

    /// Everything the streams `streams` hold, as text, each read from its
    /// master: what a search for an event's id needs.
    async fn stream_contents(&self, streams: &[String]) -> String {
        let mut contents = String::new();
        for stream in streams {
            let master = self.master_of(stream).await;
            let entries: redis::Value =
                node_read(master, redis::cmd("XRANGE").arg(stream).arg("-").arg("+")).await;
            push_text(&entries, &mut contents);
        }
        contents
    }

    /// The master serving the slot of `key`, as the first live node sees it.
    async fn master_of(&self, key: &str) -> u16 {
        let port = self.live().next().expect("a live node");
        let slot: i64 = node_query(port, redis::cmd("CLUSTER").arg("KEYSLOT").arg(key))
            .await
            .expect("CLUSTER KEYSLOT");
        self.slot_ranges()
            .await
            .into_iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, master)| master)
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Appends every string in `value` to `text`.
fn push_text(value: &redis::Value, text: &mut String) {
    match value {
        redis::Value::BulkString(bytes) => text.push_str(&String::from_utf8_lossy(bytes)),
        redis::Value::SimpleString(s) => text.push_str(s),
        redis::Value::Array(values) => values.iter().for_each(|v| push_text(v, text)),
        _ => {}
    }
}

/// A read that the test's checks rest on, from one node: retried while the
/// node does not answer (a loaded machine, a node just restarted), and a panic
/// once it has not answered for [`PATIENCE`], so that a failed read can never
/// pass for an empty stream or an unchanged epoch.
async fn node_read<T: redis::FromRedisValue>(port: u16, command: &redis::Cmd) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match node_query(port, command).await {
            Ok(value) => return value,
            Err(error) if Instant::now() < deadline => {
                eprintln!("node {port} did not answer a check ({error}); asking again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("node {port} did not answer a check for {PATIENCE:?}: {error}"),
        }
    }
}

/// A command sent to one node (no cluster redirection), for the test's checks.
async fn node_query<T: redis::FromRedisValue>(
    port: u16,
    command: &redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    command.query_async(&mut conn).await
}

const EVENTS: usize = 10_000;
const KEYS: usize = 100;
const BATCH: usize = 20;
const PARTITIONS: u32 = 12;

/// Starts `router serve` on the cluster, named `name`.
fn router(config: &std::path::Path, name: &str) -> Served {
    serve_with_env(
        &["--config".as_ref(), config.as_os_str()],
        &[("ROUTER_NAME", name.to_owned())],
    )
}

/// What one run of [`under_load`] saw.
struct Outcome {
    delivered: BTreeSet<String>,
    deliveries: usize,
    first_202_after_kill: Option<Duration>,
    unanswered: usize,
    /// Each accepted event's id, and when its 202 came.
    phases: BTreeMap<String, Phase>,
    /// The cluster's current epoch before the disruption and once drained.
    epochs: (u64, u64),
    /// The lost events that the queue's streams still hold once drained: the
    /// router's to deliver, not Redis's loss.
    still_queued: Vec<String>,
    /// The streams whose master was disrupted: the only ones a failover with
    /// `replicas = 0` may lose entries of.
    victim_streams: BTreeSet<String>,
    /// Events that arrived again after a later event of their key: a
    /// redelivery (at least once), not a break of the key's order.
    late_redeliveries: usize,
}

/// Where the disruption stood when an event was accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    BeforeTheKill,
    BeforeTheFailover,
    BeforeTheRejoin,
    AfterTheRejoin,
}

impl Outcome {
    /// How many events were accepted.
    fn accepted(&self) -> usize {
        self.phases.len()
    }

    /// The accepted events that never arrived.
    fn lost(&self) -> Vec<&String> {
        self.phases
            .keys()
            .filter(|id| !self.delivered.contains(*id))
            .collect()
    }

    /// What was lost, by when it was accepted, and how many failovers the
    /// cluster went through: what a failure needs to be understood.
    fn losses(&self) -> String {
        let mut by_phase: BTreeMap<Phase, (usize, usize)> = BTreeMap::new();
        for (id, phase) in &self.phases {
            let counts = by_phase.entry(*phase).or_default();
            counts.0 += 1;
            if !self.delivered.contains(id) {
                counts.1 += 1;
            }
        }
        let phases: Vec<String> = by_phase
            .iter()
            .map(|(phase, (accepted, lost))| format!("{phase:?}: {lost} of {accepted} lost"))
            .collect();
        let lost = self.lost();
        format!(
            "{}; cluster epoch {} -> {} (one failover adds one); {} of the lost still queued, {} not of the disrupted master's streams {:?}; {} late redeliveries; first lost {:?}",
            phases.join(", "),
            self.epochs.0,
            self.epochs.1,
            self.still_queued.len(),
            self.lost_elsewhere().len(),
            self.victim_streams,
            self.late_redeliveries,
            &lost[..lost.len().min(5)]
        )
    }

    /// Whether the cluster went through the test's failover and no other (a
    /// starved node can be counted out by the others and replaced).
    fn one_failover(&self) -> bool {
        self.epochs.1 == self.epochs.0 + 1
    }

    /// The lost events whose stream was not on the disrupted master: no
    /// failover of it can explain their loss.
    fn lost_elsewhere(&self) -> Vec<&String> {
        self.lost()
            .into_iter()
            .filter(|id| !self.victim_streams.contains(&stream_of(id)))
            .collect()
    }
}

/// The stream the router appends an event of the test to: its partition key's
/// (the `key-NNN` part of its id) partition, by FNV-1a as the queue's docs say
/// every router computes it.
fn stream_of(id: &str) -> String {
    let (key, _) = id.rsplit_once('-').expect("key-seq");
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("t:cluster:p{}", hash % PARTITIONS)
}

/// What happens to the cluster after 3,000 events.
#[derive(Clone, Copy, PartialEq)]
enum Disruption {
    /// The master of partition 0 is killed (SIGKILL); its replica takes over,
    /// and the dead node is started again and rejoins as a replica.
    KillMaster,
    /// Every slot of partition 0's master moves to another master, keys and
    /// all (`redis-cli --cluster reshard`): MOVED and ASK answers meanwhile.
    MoveSlots,
}

/// Two routers on a fresh cluster with `replicas`; 10,000 events of 100
/// partition keys posted in batches, alternating between the routers; the
/// `disruption` after 3,000. Waits until the queue is drained and checks that
/// each key's events arrived in order (the first time each came).
async fn under_load(replicas: u32, disruption: Disruption) -> Outcome {
    let mut cluster = RedisCluster::start(3).await;
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[queue]\nkind = \"redis\"\nurl = \"{}\"\nstream = \"t:cluster\"\nconsumer = \"${{ROUTER_NAME}}\"\n\
             concurrency = 8\nvisibility_timeout = \"2s\"\ntimeout = \"2s\"\npartitions = {PARTITIONS}\n\
             shards = 3\nreplicas = {replicas}\n\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
            cluster.url(),
            sink.url()
        ),
    )
    .expect("write config");
    let routers = [router(&config, "a"), router(&config, "b")];
    for served in &routers {
        until("the router is ready", || async {
            client()
                .get(format!("http://{}/readyz", served.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
    }
    // The master of partition 0's stream is disrupted mid-load. A killed one is
    // started again once a replica has taken over, and rejoins as a replica (as
    // an operator would restart it), so that `replicas = 1` can be met again.
    let victim = cluster.master_of("t:cluster:p0").await;
    let epoch_before = cluster.current_epoch().await;
    let streams: Vec<String> = (0..PARTITIONS)
        .map(|n| format!("t:cluster:p{n}"))
        .chain([
            "t:cluster".to_owned(),
            "t:cluster:s1".to_owned(),
            "t:cluster:s2".to_owned(),
        ])
        .collect();
    let mut victim_streams = BTreeSet::new();
    for stream in &streams {
        if cluster.master_of(stream).await == victim {
            victim_streams.insert(stream.clone());
        }
    }
    // Where the disruption stands, for the producer to label what it sends.
    let phase = std::cell::Cell::new(Phase::BeforeTheKill);
    let (kill, killing) = tokio::sync::oneshot::channel::<tokio::sync::oneshot::Sender<Instant>>();
    let supervisor = async {
        let Ok(killed) = killing.await else {
            return None;
        };
        let at = Instant::now();
        phase.set(Phase::BeforeTheFailover);
        if disruption == Disruption::MoveSlots {
            let _ = killed.send(at);
            cluster.move_slots(victim).await;
            let moved = at.elapsed();
            return Some((moved, moved));
        }
        cluster.kill(victim);
        let _ = killed.send(at);
        cluster.until_failed_over(victim, 3).await;
        let failover = at.elapsed();
        phase.set(Phase::BeforeTheRejoin);
        cluster.spawn(victim);
        cluster.until_healthy(3).await;
        phase.set(Phase::AfterTheRejoin);
        Some((failover, at.elapsed()))
    };
    let producer = async {
        let http = client();
        let mut kill = Some(kill);
        let mut phases = BTreeMap::new();
        let (mut killed_at, mut first_202_after_kill, mut unanswered) = (None, None, 0);
        for (n, batch) in (0..EVENTS).collect::<Vec<_>>().chunks(BATCH).enumerate() {
            if n * BATCH >= 3_000
                && let Some(kill) = kill.take()
            {
                let (killed, at) = tokio::sync::oneshot::channel();
                kill.send(killed).expect("the supervisor waits");
                killed_at = Some(at.await.expect("killed"));
            }
            let events: Vec<serde_json::Value> = batch
                .iter()
                .map(|&i| {
                    let key = format!("key-{:03}", i % KEYS);
                    serde_json::json!({
                        "specversion": "1.0",
                        "id": format!("{key}-{i:06}"),
                        "source": "/cluster",
                        "type": "test.cluster",
                        "partitionkey": key,
                        "data": {"i": i},
                    })
                })
                .collect();
            let answer = http
                .post(format!("http://{}/events", routers[n % 2].addr))
                .header("content-type", "application/cloudevents-batch+json")
                .body(serde_json::to_vec(&events).expect("JSON"))
                .send()
                .await;
            match answer {
                Ok(answer) if answer.status().as_u16() == 202 => {
                    for event in &events {
                        let id = event["id"].as_str().expect("id").to_owned();
                        phases.insert(id, phase.get());
                    }
                    if let (Some(at), None) = (killed_at, first_202_after_kill) {
                        first_202_after_kill = Some(at.elapsed());
                    }
                }
                Ok(answer) => {
                    // Refused while a master was away: 503 with advice to retry,
                    // never another error.
                    let retry = answer.headers().contains_key("retry-after");
                    assert_eq!(answer.status().as_u16(), 503, "{:?}", answer.text().await);
                    assert!(retry, "a 503 without Retry-After");
                }
                Err(_) => unanswered += 1,
            }
        }
        (phases, first_202_after_kill, unanswered)
    };
    let ((phases, first_202_after_kill, unanswered), recovery) = tokio::join!(producer, supervisor);
    let (failover, rejoined) = recovery.expect("the master was disrupted");
    if disruption == Disruption::MoveSlots {
        eprintln!("cluster: every slot of a master moved under load in {failover:?}");
    } else {
        eprintln!(
            "cluster, replicas = {replicas}: failover {failover:?} after the kill, the old master back as a replica {rejoined:?} after it"
        );
    }
    // Drained: nothing behind, nothing pending, on any stream. Routing 10,000
    // events takes a while on a loaded machine: only a sink that gets nothing
    // for the usual patience is a hang.
    until_drained(&sink, || async {
        let Ok(answer) = client()
            .get(format!("http://{}/admin/queue", routers[0].admin_addr))
            .send()
            .await
        else {
            return false;
        };
        let Ok(body) = answer.bytes().await else {
            return false;
        };
        let Ok(status) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return false;
        };
        status["partitions"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(status["shards"].as_array().into_iter().flatten())
            .all(|p| p["lag"] == 0 && p["pending"] == 0)
            && status["partitions"].as_array().is_some()
    })
    .await;
    // Let the last forwards in flight land: the sink holds nothing back.
    until("the sink is idle", || async { sink.waiting() == 0 }).await;

    let arrivals: Vec<String> = sink.received().iter().filter_map(|r| r.ce("id")).collect();
    // Each key's events arrive in order the first time. An event may come
    // again later (a lease that ran out on a starved machine, a consumer
    // group's state that a failover set back): at least once, not out of order.
    let mut delivered: BTreeSet<String> = BTreeSet::new();
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    let mut late_redeliveries = 0;
    for id in &arrivals {
        let (key, seq) = id.rsplit_once('-').expect("key-seq");
        if !delivered.insert(id.clone()) {
            late_redeliveries += usize::from(last.get(key).is_some_and(|l| seq < *l));
            continue;
        }
        if let Some(previous) = last.get(key) {
            assert!(
                seq > *previous,
                "{key}: {seq} arrived for the first time after {previous}: out of order"
            );
        }
        last.insert(key, seq);
    }
    for served in &routers {
        signal(&served.child, "-TERM");
    }
    let contents = cluster.stream_contents(&streams).await;
    let still_queued = phases
        .keys()
        .filter(|id| !delivered.contains(*id) && contents.contains(id.as_str()))
        .cloned()
        .collect();
    Outcome {
        delivered,
        still_queued,
        deliveries: arrivals.len(),
        first_202_after_kill,
        unanswered,
        phases,
        epochs: (epoch_before, cluster.current_epoch().await),
        victim_streams,
        late_redeliveries,
    }
}

/// Waits until `drained` holds, failing only when the sink got nothing new
/// for [`PATIENCE`] meanwhile.
async fn until_drained<F: std::future::Future<Output = bool>>(
    sink: &Sink,
    mut drained: impl FnMut() -> F,
) {
    let (mut seen, mut progress) = (sink.received().len(), Instant::now());
    while !drained().await {
        let now = sink.received().len();
        if now != seen {
            (seen, progress) = (now, Instant::now());
        }
        assert!(
            progress.elapsed() < PATIENCE,
            "the queue is not drained and nothing arrived for {PATIENCE:?} ({seen} arrivals)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With `replicas = 1`, a 202 means a replica has the events: killing a master
/// mid-load loses none of them, and each key's arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_loses_no_accepted_event_with_one_replica() {
    let outcome = under_load(1, Disruption::KillMaster).await;
    let lost = outcome.lost();
    eprintln!(
        "cluster, replicas = 1: {} of {EVENTS} accepted, {} delivered ({} deliveries, {} duplicates), {} lost, {} unanswered posts, first 202 after the kill {:?}; {}",
        outcome.accepted(),
        outcome.delivered.len(),
        outcome.deliveries,
        outcome.deliveries - outcome.delivered.len(),
        lost.len(),
        outcome.unanswered,
        outcome.first_202_after_kill,
        outcome.losses(),
    );
    assert!(
        outcome.accepted() >= EVENTS / 2,
        "only {} accepted",
        outcome.accepted()
    );
    assert!(
        outcome.first_202_after_kill.is_some(),
        "nothing was accepted after the kill"
    );
    assert!(
        lost.is_empty(),
        "{} accepted events were lost, such as {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}

/// With `replicas = 0`, a 202 means the master has the events: what it had
/// not passed on to its replica when killed is lost. The test reports how much;
/// order per key still holds for what arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_without_replica_acknowledgement_reports_its_losses() {
    let outcome = under_load(0, Disruption::KillMaster).await;
    let lost = outcome.lost().len();
    eprintln!(
        "cluster, replicas = 0: {} of {EVENTS} accepted, {} delivered ({} duplicates), {lost} lost, first 202 after the kill {:?}; {}",
        outcome.accepted(),
        outcome.delivered.len(),
        outcome.deliveries - outcome.delivered.len(),
        outcome.first_202_after_kill,
        outcome.losses(),
    );
    assert!(
        outcome.accepted() >= EVENTS / 2,
        "only {} accepted",
        outcome.accepted()
    );
    // Whatever Redis lost, the router delivers all that the queue holds.
    assert!(
        outcome.still_queued.is_empty(),
        "accepted events were left in the queue: {}",
        outcome.losses()
    );
    // What is lost can only be what the dead master held: events of its
    // streams, and nothing accepted once it was back. That holds for the test's
    // failover alone: a node the others count out on a starved machine is
    // replaced too, and what it had not replicated is lost as well.
    if outcome.one_failover() {
        assert!(
            outcome.lost_elsewhere().is_empty(),
            "{lost} of {} lost, some on masters that were never disrupted: {}",
            outcome.accepted(),
            outcome.losses()
        );
        let after_the_rejoin = outcome
            .lost()
            .into_iter()
            .filter(|id| outcome.phases.get(*id) == Some(&Phase::AfterTheRejoin))
            .count();
        assert_eq!(
            after_the_rejoin,
            0,
            "lost after the cluster was whole again: {}",
            outcome.losses()
        );
    }
}

/// Every slot of a master moves to another while events flow: the cluster
/// client follows MOVED and ASK, nothing accepted is lost, each key's events
/// arrive in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_moved_under_load_are_followed_and_lose_nothing() {
    let outcome = under_load(1, Disruption::MoveSlots).await;
    let lost = outcome.lost();
    eprintln!(
        "cluster, slots moved: {} of {EVENTS} accepted, {} delivered ({} duplicates), {} lost",
        outcome.accepted(),
        outcome.delivered.len(),
        outcome.deliveries - outcome.delivered.len(),
        lost.len(),
    );
    assert!(
        outcome.accepted() >= EVENTS * 9 / 10,
        "only {} of {EVENTS} accepted while slots moved",
        outcome.accepted()
    );
    assert!(
        lost.is_empty(),
        "{} accepted events were lost, such as {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
}
