//! Durable mode against real `redis-server` processes that each test starts on its
//! own port (with an append-only file synced on every write), kills and restarts.

use crate::common::*;
use axum::http::StatusCode;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A `redis-server` of this test's own. A test that needs one fails loudly when it
/// cannot be started: it is never skipped.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            port,
            dir: tempfile::tempdir().expect("tempdir"),
            child: None,
        };
        server.restart().await;
        server
    }

    /// Starts (again) on the same port and data directory: what was acknowledged
    /// before a kill comes back from the append-only file.
    pub async fn restart(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server (apt-get install redis-server): {e}")
            });
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while self.ping().await.is_none() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not come up on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn ping(&self) -> Option<()> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        stream.write_all(b"PING\r\n").await.ok()?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await.ok()?;
        (&answer == b"+PONG\r\n").then_some(())
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server hangs with its connections open, as a stalled host
    /// would; [`RedisServer::resume`] lets it go on with what it was sent.
    pub fn hang(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::hang`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server runs");
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill {signal} redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A command's answer, for the test's own checks.
    pub async fn query<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> T {
        let client = redis::Client::open(self.url()).expect("client");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect to the test's redis-server");
        command.query_async(&mut conn).await.expect("redis command")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn durable(redis: &RedisServer, stream: &str, extra: &str) -> String {
    format!(
        "[queue]\nkind = \"redis\"\nurl = \"{}\"\nstream = \"{stream}\"\n{extra}\n",
        redis.url()
    )
}

/// A configuration file for `router serve` processes: durable mode on `stream`
/// (with `queue` added to `[queue]`), then `extra` tables, and one route
/// forwarding everything to `sink`. Keep the directory until the processes end.
pub(crate) fn process_config(
    redis: &RedisServer,
    stream: &str,
    queue: &str,
    extra: &str,
    sink: &Sink,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n{extra}[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
            durable(redis, stream, queue),
            sink.url()
        ),
    )
    .expect("write config");
    (dir, config)
}

pub(crate) async fn wait_ready(router: &TestRouter) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = client()
            .get(format!("http://{}/readyz", router.addr))
            .send()
            .await
            .map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            return;
        }
        assert!(Instant::now() < deadline, "never ready: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + PATIENCE;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether the group `router` has no pending entry on `stream`.
pub(crate) async fn all_acknowledged(redis: &RedisServer, stream: &str) -> bool {
    let pending: redis::Value = redis
        .query(redis::cmd("XPENDING").arg(stream).arg("router"))
        .await;
    matches!(pending, redis::Value::Array(ref p) if p.first() == Some(&redis::Value::Int(0)))
}

fn ids(received: &[Received]) -> BTreeSet<String> {
    received.iter().filter_map(|r| r.ce("id")).collect()
}

#[tokio::test]
async fn accepted_events_are_acknowledged_after_xadd_delivered_and_trimmed() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "{}\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
        durable(&redis, "t:flow", "concurrency = 4"),
        sink.url()
    ))
    .await;
    wait_ready(&router).await;
    let mut expected = BTreeSet::new();
    for i in 0..50 {
        let id = format!("single-{i}");
        let (status, body) =
            post_binary(&router.events_url(), &ce_headers(&id, "test.durable"), "{}").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["accepted"], 1);
        expected.insert(id);
    }
    let batch: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            expected.insert(format!("batch-{i}"));
            serde_json::json!({"specversion": "1.0", "id": format!("batch-{i}"), "source": "/tests", "type": "test.durable"})
        })
        .collect();
    let (status, body) = post(
        &router.events_url(),
        "application/cloudevents-batch+json",
        serde_json::to_vec(&batch).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["entries"].as_array().map(Vec::len), Some(50));

    let got = sink.wait_for(100).await;
    assert_eq!(ids(&got), expected, "every accepted event reached the sink");
    until("every entry is acknowledged and trimmed", || async {
        let length: u64 = redis.query(redis::cmd("XLEN").arg("t:flow")).await;
        all_acknowledged(&redis, "t:flow").await && length == 0
    })
    .await;
}

#[tokio::test]
async fn an_ingest_only_router_appends_and_leaves_the_routing_to_consumers() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let config = |queue: &str| {
        format!(
            "{}\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
            durable(&redis, "t:tiers", queue),
            sink.url()
        )
    };
    let ingest = TestRouter::start(&config("consume = false")).await;
    wait_ready(&ingest).await;
    let mut expected = BTreeSet::new();
    for i in 0..20 {
        let id = format!("tier-{i}");
        let (status, body) =
            post_binary(&ingest.events_url(), &ce_headers(&id, "test.tiers"), "{}").await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        expected.insert(id);
    }
    let length: u64 = redis.query(redis::cmd("XLEN").arg("t:tiers")).await;
    assert_eq!(length, 20, "every accepted event is in the stream");
    let groups: Vec<redis::Value> = redis
        .query(redis::cmd("XINFO").arg("GROUPS").arg("t:tiers"))
        .await;
    assert!(
        groups.is_empty(),
        "the ingest-only process read nothing (it joined no group): {groups:?}"
    );

    let _worker = TestRouter::start(&config("")).await;
    let got = sink.wait_for(20).await;
    assert_eq!(
        ids(&got),
        expected,
        "the consumer routed what the other accepted"
    );
    until("every entry is acknowledged", || async {
        all_acknowledged(&redis, "t:tiers").await
    })
    .await;
}

/// How many times Redis ran `EVAL` and `EVALSHA` (`INFO commandstats`).
async fn script_calls(redis: &RedisServer) -> (u64, u64) {
    let stats: String = redis.query(redis::cmd("INFO").arg("commandstats")).await;
    let calls = |name: &str| {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
            .and_then(|rest| rest.split(',').next()?.parse().ok())
            .unwrap_or(0)
    };
    (calls("eval"), calls("evalsha"))
}

/// Each append calls its script by its SHA-1 rather than sending its text; a
/// Redis that lost the script (restarted, `SCRIPT FLUSH`) says so, nothing is
/// appended by that call, and the append is sent whole: still accepted once.
#[tokio::test]
async fn appends_call_their_script_by_its_sha1_and_send_it_again_when_redis_lost_it() {
    let redis = RedisServer::start().await;
    let ingest = TestRouter::start(&durable(&redis, "t:sha", "consume = false")).await;
    wait_ready(&ingest).await;
    let post_twenty = |round: usize| {
        let url = ingest.events_url();
        async move {
            for i in 0..20 {
                let id = format!("sha-{round}-{i}");
                let (status, body) = post_binary(&url, &ce_headers(&id, "test.sha"), "{}").await;
                assert_eq!(status, StatusCode::ACCEPTED, "round {round}: {body}");
            }
        }
    };
    post_twenty(0).await;
    let before = script_calls(&redis).await;
    post_twenty(1).await;
    let after = script_calls(&redis).await;
    assert!(
        after.1 - before.1 >= 20,
        "20 appends, {} by SHA-1",
        after.1 - before.1
    );
    assert!(
        after.0 - before.0 < 20,
        "20 appends sent the script whole {} times",
        after.0 - before.0
    );
    let _: String = redis.query(redis::cmd("SCRIPT").arg("FLUSH")).await;
    post_twenty(2).await;
    let length: u64 = redis.query(redis::cmd("XLEN").arg("t:sha")).await;
    assert_eq!(length, 60, "each accepted event appended once");
}

#[tokio::test]
async fn a_redis_outage_answers_503_loses_nothing_and_heals() {
    let mut redis = RedisServer::start().await;
    let sink = Sink::start().await;
    // Held at the sink: accepted entries are still in Redis when it dies.
    sink.close();
    let router = TestRouter::start(&format!(
        "{}\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
        durable(
            &redis,
            "t:outage",
            "concurrency = 2\nvisibility_timeout = \"1s\""
        ),
        sink.url()
    ))
    .await;
    wait_ready(&router).await;
    let mut accepted = BTreeSet::new();
    for i in 0..5 {
        let id = format!("before-{i}");
        let (status, _) =
            post_binary(&router.events_url(), &ce_headers(&id, "test.outage"), "{}").await;
        assert_eq!(status, StatusCode::ACCEPTED);
        accepted.insert(id);
    }
    redis.kill();
    let started = Instant::now();
    let answer = client()
        .post(router.events_url())
        .header("ce-specversion", "1.0")
        .header("ce-id", "during")
        .header("ce-source", "/tests")
        .header("ce-type", "test.outage")
        .body("{}")
        .send()
        .await
        .expect("request");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the answer came after {:?}",
        started.elapsed()
    );
    let ready = client()
        .get(format!("http://{}/readyz", router.addr))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);

    redis.restart().await;
    wait_ready(&router).await;
    for i in 0..5 {
        let id = format!("after-{i}");
        until("ingest takes events again", || {
            let url = router.events_url();
            let id = id.clone();
            async move {
                post_binary(&url, &ce_headers(&id, "test.outage"), "{}")
                    .await
                    .0
                    == StatusCode::ACCEPTED
            }
        })
        .await;
        accepted.insert(id);
    }
    sink.open();
    until("every accepted event reached the sink", || async {
        ids(&sink.received()).is_superset(&accepted)
    })
    .await;
    assert!(
        !ids(&sink.received()).contains("during"),
        "the event answered 503 was not kept"
    );
}

/// Durable mode against a Redis that hangs (stopped, not dead: its connections
/// stay open and nothing answers): ingest answers 503 within `queue.timeout`, and
/// the refused event is not kept, not even once Redis resumes and reads what it
/// was sent meanwhile.
#[tokio::test]
async fn a_hung_redis_answers_503_within_the_timeout_and_keeps_nothing() {
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "{}\n[[route]]\nname = \"to-sink\"\nforward = \"{}\"\n",
        durable(&redis, "t:hang", "timeout = \"500ms\""),
        sink.url()
    ))
    .await;
    wait_ready(&router).await;
    // The connection is made and in use before Redis hangs.
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers("before", "test.hang"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    sink.wait_for(1).await;

    redis.hang();
    let started = Instant::now();
    let answer = client()
        .post(router.events_url())
        .header("ce-specversion", "1.0")
        .header("ce-id", "refused")
        .header("ce-source", "/tests")
        .header("ce-type", "test.hang")
        .body("{}")
        .send()
        .await;
    let took = started.elapsed();
    redis.resume();
    let answer = answer.expect("an answer while Redis hangs");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "1");
    assert!(
        took < Duration::from_millis(500) + Duration::from_secs(2),
        "answered after {took:?}, with a 500 ms queue timeout"
    );

    // Redis goes on with what was sent to it while it hung; an event accepted
    // after it resumed comes after that on the router's connection.
    until("ingest takes events again", || async {
        post_binary(
            &router.events_url(),
            &ce_headers("after", "test.hang"),
            "{}",
        )
        .await
        .0 == StatusCode::ACCEPTED
    })
    .await;
    let expected: BTreeSet<String> = ["before".to_owned(), "after".to_owned()].into();
    sink.wait_for_ids(&expected).await;
    until("every entry is acknowledged", || {
        all_acknowledged(&redis, "t:hang")
    })
    .await;
    let entries: redis::Value = redis
        .query(redis::cmd("XRANGE").arg("t:hang").arg("-").arg("+"))
        .await;
    assert!(
        !format!("{entries:?}").contains("refused"),
        "the refused event is in the stream: {entries:?}"
    );
    let routed = ids(&sink.received());
    assert!(
        !routed.contains("refused"),
        "the refused event was routed: {routed:?}"
    );
}

/// Parks an entry as if a consumer named `ghost` had read it and died just now:
/// appended, marked delivered to the group (so no reader gets it as new) and
/// pending for `ghost`, in one script, so the router's blocked reader never sees
/// it. Returns its id.
async fn abandon(redis: &RedisServer, stream: &str, event: &serde_json::Value) -> String {
    const ABANDON: &str = "local id = redis.call('XADD', KEYS[1], '*', 'event', ARGV[1]) \
        redis.call('XGROUP', 'SETID', KEYS[1], 'router', id) \
        redis.call('XCLAIM', KEYS[1], 'router', 'ghost', 0, id, 'FORCE', 'JUSTID') \
        return id";
    redis
        .query(
            redis::cmd("EVAL")
                .arg(ABANDON)
                .arg(1)
                .arg(stream)
                .arg(event.to_string()),
        )
        .await
}

/// A handling longer than the visibility timeout keeps its lease. The proof that
/// the claimer looked while the held entries were older than the timeout: it took
/// over an entry abandoned after they were taken (newer, so a held entry whose
/// lease lapsed would have been claimed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_handling_keeps_its_lease_so_no_one_else_takes_the_entry() {
    let redis = RedisServer::start().await;
    let (sink, rescued) = (Sink::start().await, Sink::start().await);
    sink.close();
    let router = TestRouter::start(&format!(
        r#"{}
[[route]]
name = "slow"
filter = {{ exact = {{ type = "test.lease" }} }}
forward = "{}"

[[route]]
name = "rescue"
filter = {{ exact = {{ type = "test.abandoned" }} }}
forward = "{}"
"#,
        durable(
            &redis,
            "t:lease",
            "concurrency = 4\nvisibility_timeout = \"2s\""
        ),
        sink.url(),
        rescued.url()
    ))
    .await;
    wait_ready(&router).await;
    for i in 0..3 {
        let (status, _) = post_binary(
            &router.events_url(),
            &ce_headers(&format!("slow-{i}"), "test.lease"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    until("the three deliveries are held at the sink", || async {
        sink.waiting() == 3
    })
    .await;
    let abandoned = abandon(
        &redis,
        "t:lease",
        &serde_json::json!({"specversion": "1.0", "id": "abandoned", "source": "/tests", "type": "test.abandoned"}),
    )
    .await;
    until(
        "the claimer took over the abandoned entry (or a held one)",
        || async { !rescued.received().is_empty() || sink.waiting() > 3 },
    )
    .await;
    assert_eq!(
        sink.waiting(),
        3,
        "a held entry was delivered twice: its lease was not renewed"
    );
    let got = rescued.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].ce("id").as_deref(), Some("abandoned"));
    sink.open();
    let got = sink.wait_for(3).await;
    assert_eq!(ids(&got).len(), 3);
    until("all acknowledged", || all_acknowledged(&redis, "t:lease")).await;
    assert_eq!(sink.received().len(), 3, "and none after the sink opened");
    let pending: redis::Value = redis
        .query(
            redis::cmd("XPENDING")
                .arg("t:lease")
                .arg("router")
                .arg("-")
                .arg("+")
                .arg(10),
        )
        .await;
    assert!(
        !format!("{pending:?}").contains(&abandoned),
        "the rescued entry was acknowledged: {pending:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_the_stream_and_a_kill_9_loses_nothing() {
    use crate::process::{serve, signal};
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let (_dir, config) = process_config(
        &redis,
        "t:kill",
        "concurrency = 8\nvisibility_timeout = \"1s\"",
        "",
        &sink,
    );
    let args = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut a = serve(&args);
    let b = serve(&args);
    let mut accepted = BTreeSet::new();
    let mut refused = 0;
    for batch in 0..100 {
        if batch == 30 {
            // Hold the sink so that A dies with entries in hand.
            sink.close();
            let pid = format!("-{}", a.child.id());
            until("A holds pending entries", || async {
                let summary: redis::Value = redis
                    .query(redis::cmd("XPENDING").arg("t:kill").arg("router"))
                    .await;
                format!("{summary:?}").contains(&pid)
            })
            .await;
            signal(&a.child, "-9");
            let _ = a.child.wait();
            sink.open();
        }
        if batch == 60 {
            a = serve(&args);
        }
        let target = if batch % 2 == 0 && !(30..60).contains(&batch) {
            &a.addr
        } else {
            &b.addr
        };
        let events: Vec<serde_json::Value> = (0..100)
            .map(|i| serde_json::json!({"specversion": "1.0", "id": format!("k-{batch}-{i}"), "source": "/kill", "type": "test.kill"}))
            .collect();
        let answer = client()
            .post(format!("http://{target}/events"))
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::to_vec(&events).unwrap())
            .send()
            .await;
        match answer {
            Ok(r) if r.status() == StatusCode::ACCEPTED => {
                accepted.extend(events.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
            }
            _ => refused += 1,
        }
    }
    assert!(
        accepted.len() >= 9_000,
        "{} accepted, {refused} batches refused",
        accepted.len()
    );
    let posted = Instant::now();
    let (received, distinct) = sink.wait_for_ids(&accepted).await;
    let distinct = distinct.len();
    eprintln!(
        "kill -9 test: {} accepted, {refused} batches refused, {received} deliveries, {} duplicates, 0 lost; the last arrived {:?} after the last batch",
        accepted.len(),
        received - distinct,
        posted.elapsed()
    );
    for served in [a, b] {
        signal(&served.child, "-TERM");
    }
}

/// The Redis dedup window remembers an event once it was delivered, not when it
/// arrived: a router killed in the middle of a delivery leaves no mark, and the
/// process that takes the entry over delivers it instead of dropping it as a
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cut_short_by_kill_9_is_not_taken_for_a_duplicate() {
    use crate::process::{serve, signal};
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let (_dir, config) = process_config(
        &redis,
        "t:crash",
        "visibility_timeout = \"1s\"",
        "[delivery.dedup]\nwindow = \"1h\"\nstore = \"redis\"\n\n",
        &sink,
    );
    let args = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut a = serve(&args);
    sink.close();
    let (status, body) = post_binary(
        &format!("http://{}/events", a.addr),
        &ce_headers("crash-1", "test.crash"),
        "{}",
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    until("A is delivering the event", || async {
        sink.waiting() == 1
    })
    .await;
    signal(&a.child, "-9");
    let _ = a.child.wait();
    // A's request stays counted as waiting (the sink drops it unanswered); B's
    // own delivery of the entry it took over makes two. Were A's unfinished
    // delivery remembered, B would drop the event as a duplicate instead.
    let b = serve(&args);
    until("B delivers the entry A held", || async {
        sink.waiting() == 2
    })
    .await;
    sink.open();
    let got = sink.wait_for(1).await;
    assert!(
        got.iter().all(|r| r.ce("id").as_deref() == Some("crash-1")),
        "{got:?}"
    );
    until("B acknowledged the entry", || async {
        all_acknowledged(&redis, "t:crash").await
    })
    .await;
    let remembered: u64 = redis
        .query(redis::cmd("EXISTS").arg(format!(
            "t:crash:seen:{}",
            dedup_digest("", "/tests", "crash-1")
        )))
        .await;
    assert_eq!(remembered, 1, "delivered now, so remembered");
    signal(&b.child, "-TERM");
}

#[tokio::test]
async fn a_redis_kv_store_is_shared_by_routers_and_namespaced_per_plugin() {
    let redis = RedisServer::start().await;
    let config = format!(
        r#"
[kv]
store = "redis"
url = "{url}"

[[plugin]]
name = "stock-r"
path = {path:?}
config = {{ stock = 5 }}

[[route]]
name = "orders"
filter = {{ exact = {{ type = "com.example.order.created" }} }}
handler = "stock-r"
"#,
        url = redis.url(),
        path = plugin_artifacts::INVENTORY
    );
    let (one, two) = (
        TestRouter::start(&config).await,
        TestRouter::start(&config).await,
    );
    let place = |router: &TestRouter, id: &'static str, qty: i64| {
        let url = router.events_url();
        async move {
            let mut headers = ce_headers(id, "com.example.order.created");
            headers.push(("content-type", "application/json"));
            let (status, body) = post_binary(&url, &headers, order(id, &[("p-r", qty)])).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["events"][0]["routes"][0]["emitted"][0]["type"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(
        place(&one, "r-1", 4).await,
        "com.example.inventory.reserved"
    );
    assert_eq!(
        place(&two, "r-2", 4).await,
        "com.example.order.rejected",
        "the other router sees the same stock"
    );
    let reserved: String = redis
        .query(redis::cmd("GET").arg("router:kv:stock-r:reserved:p-r"))
        .await;
    assert_eq!(reserved, "4", "keys live under the plugin's own prefix");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_what_is_in_hand_and_leaves_the_rest_for_others() {
    use crate::process::{serve, signal};
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    sink.close();
    let (_dir, config) = process_config(&redis, "t:term", "concurrency = 2", "", &sink);
    let args = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut a = serve(&args);
    for i in 0..6 {
        let (status, _) = post_binary(
            &format!("http://{}/events", a.addr),
            &ce_headers(&format!("term-{i}"), "test.term"),
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    until("A holds two entries at the sink", || async {
        sink.waiting() == 2
    })
    .await;
    signal(&a.child, "-TERM");
    // A closed port means A has stopped taking entries.
    let port = a.addr.clone();
    until("A stops listening", || {
        let port = port.clone();
        async move { tokio::net::TcpStream::connect(port).await.is_err() }
    })
    .await;
    sink.open();
    let status = tokio::task::spawn_blocking(move || {
        let status = a.child.wait();
        drop(a);
        status
    })
    .await
    .expect("join")
    .expect("wait");
    assert!(status.success(), "A exits 0 after SIGTERM: {status:?}");
    assert_eq!(
        sink.received().len(),
        2,
        "A finished what it held, and took nothing more"
    );
    assert!(
        all_acknowledged(&redis, "t:term").await,
        "and acknowledged it"
    );

    let b = serve(&args);
    let got = sink.wait_for(6).await;
    assert_eq!(ids(&got).len(), 6, "B routed the four A left in the stream");
    signal(&b.child, "-TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_with_one_partition_key_are_routed_in_order_across_processes() {
    use crate::process::{serve, signal};
    let redis = RedisServer::start().await;
    let sink = Sink::start().await;
    let (_dir, config) = process_config(
        &redis,
        "t:order",
        "concurrency = 8\nvisibility_timeout = \"1s\"\npartitions = 4",
        "",
        &sink,
    );
    let args = [std::ffi::OsStr::new("--config"), config.as_os_str()];
    let mut a = serve(&args);
    let b = serve(&args);
    let keys = ["acct-1", "acct-2", "acct-3"];
    // Every partition has an owner (A, the first up) before events flow.
    until("every partition has an owner", || async {
        let owners: Vec<Option<String>> = redis
            .query(
                redis::cmd("MGET")
                    .arg("t:order:p0:owner")
                    .arg("t:order:p1:owner")
                    .arg("t:order:p2:owner")
                    .arg("t:order:p3:owner"),
            )
            .await;
        owners.iter().all(Option::is_some)
    })
    .await;
    for seq in 0..300 {
        if seq == 150 {
            // Whichever partitions A holds move to B after the lease expires.
            signal(&a.child, "-9");
            let _ = a.child.wait();
        }
        let target = if seq % 2 == 0 && seq < 150 {
            &a.addr
        } else {
            &b.addr
        };
        let key = keys[seq % keys.len()];
        let id = format!("{key}-{seq:04}");
        let (status, body) = post_binary(
            &format!("http://{target}/events"),
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", &id),
                ("ce-source", "/order"),
                ("ce-type", "test.order"),
                ("ce-partitionkey", key),
            ],
            "{}",
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let sent: BTreeSet<String> = (0..300)
        .map(|seq| format!("{}-{seq:04}", keys[seq % keys.len()]))
        .collect();
    sink.wait_for_ids(&sent).await;
    let arrivals: Vec<String> = sink.received().iter().filter_map(|r| r.ce("id")).collect();
    for key in keys {
        let mut seen = BTreeSet::new();
        let firsts: Vec<&String> = arrivals
            .iter()
            .filter(|id| id.starts_with(key) && seen.insert(id.as_str()))
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        assert_eq!(firsts, sorted, "events of {key} arrived out of order");
    }
    signal(&b.child, "-TERM");
}
