//! The broker example (`examples/broker-services`, seed ADR 0003 "Event-Driven
//! Architecture"), end to end: three real service processes (the `broker-service`
//! example program) publish through the router and subscribe through its forward
//! routes; the audit trail (a JSON-lines file, or a Redis stream with
//! `router-redis.toml`) must hold every event once, in publishing order per
//! source; the read model plugin answers queries from kv.

use crate::common::*;
use crate::durable::RedisServer;
use axum::http::StatusCode;
use router::config::{Config, Source};
use router::server::Server;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// Orders each test places: enough for ordering mistakes to show.
const ORDERS: usize = 30;

/// The `broker-service` example program, built once per test run by cargo itself
/// (`cargo test --test it` does not build examples); cargo answers at once when
/// it is up to date, and names the executable.
fn service_program() -> &'static PathBuf {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| {
        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let output = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "--example",
                "broker-service",
                "--message-format=json",
            ])
            .args(["--manifest-path", manifest])
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run cargo to build the broker-service example");
        assert!(
            output.status.success(),
            "cargo build --example broker-service failed"
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| {
                m["reason"] == "compiler-artifact" && m["target"]["name"] == "broker-service"
            })
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo names the broker-service executable")
    })
}

/// One service: a `broker-service` process of its own.
struct Service {
    name: &'static str,
    url: String,
    _process: Child,
}

impl Service {
    /// Starts `name` publishing to `router`, with its reactions (`TYPE=REACTION`),
    /// and reads the address it prints first.
    async fn start(name: &'static str, router: &str, reactions: &[&str]) -> Self {
        let mut command = Command::new(service_program());
        command.args([
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--router",
            router,
        ]);
        for reaction in reactions {
            command.args(["--on", reaction]);
        }
        let mut process = command
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} service: {e}"));
        let stdout = process.stdout.take().expect("piped stdout");
        let first = tokio::time::timeout(PATIENCE, async {
            tokio::io::BufReader::new(stdout).lines().next_line().await
        })
        .await
        .unwrap_or_else(|_| panic!("the {name} service printed no address"))
        .expect("read stdout")
        .unwrap_or_else(|| panic!("the {name} service exited before listening"));
        Self {
            name,
            url: format!("http://{first}"),
            _process: process,
        }
    }

    fn events_url(&self) -> String {
        format!("{}/events", self.url)
    }

    /// `GET /received` or `GET /published`.
    async fn list(&self, what: &str) -> Vec<Value> {
        let answer = client()
            .get(format!("{}/{what}", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} /{what}: {e}", self.name));
        let list: Value =
            serde_json::from_slice(&answer.bytes().await.expect("body")).expect("a JSON list");
        list.as_array().cloned().unwrap_or_default()
    }

    /// Waits until `what` has `n` entries, and returns them.
    async fn until(&self, what: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let list = self.list(what).await;
            if list.len() >= n {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "{} has {} {what} events, expected {n}: {list:?}",
                self.name,
                list.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// The router and the three services of the example, wired together.
struct Broker {
    events_url: String,
    trail: Trail,
    orders: Service,
    billing: Service,
    shipping: Service,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Broker {
    /// Binds the router's port first (the services need its URL), starts the
    /// services, then the router on `config(service URLs as env)`, whose audit
    /// trail is `trail`.
    async fn start(
        trail: Trail,
        config: impl FnOnce(Vec<(&'static str, String)>) -> Config,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let events_url = format!("http://{}/events", listener.local_addr().expect("addr"));
        let orders = Service::start("orders", &events_url, &[]).await;
        let billing =
            Service::start("billing", &events_url, &["order.placed=invoice.issued"]).await;
        let shipping = Service::start(
            "shipping",
            &events_url,
            &["invoice.issued=shipment.dispatched"],
        )
        .await;
        let config = config(vec![
            ("ORDERS_URL", orders.events_url()),
            ("BILLING_URL", billing.events_url()),
            ("SHIPPING_URL", shipping.events_url()),
        ]);
        let server = Server::build(&config)
            .await
            .unwrap_or_else(|e| panic!("cannot build the router: {e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(listener, async {
            let _ = stopped.await;
        }));
        Self {
            events_url,
            trail,
            orders,
            billing,
            shipping,
            _stop: stop,
        }
    }

    /// Places `ORDERS` orders at the orders service and waits until every
    /// service has published its part and the last event is back at orders.
    /// Returns what each service published, by source.
    async fn run_the_order_flow(&self) -> BTreeMap<String, Vec<Value>> {
        let answer = client()
            .post(format!(
                "{}/publish?type=order.placed&count={ORDERS}",
                self.orders.url
            ))
            .send()
            .await
            .expect("POST /publish");
        assert_eq!(answer.status().as_u16(), 202);

        let mut published = BTreeMap::new();
        for service in [&self.orders, &self.billing, &self.shipping] {
            let list = service.until("published", ORDERS).await;
            assert_eq!(list.len(), ORDERS, "{}: {list:?}", service.name);
            for event in &list {
                // Every publication was answered 200: delivered to every route,
                // the audit trail's append included.
                assert_eq!(event["status"], "200", "{}: {event}", service.name);
            }
            published.insert(format!("/services/{}", service.name), list);
        }
        let placed = &published["/services/orders"];
        let invoiced = &published["/services/billing"];

        // Subscriptions: each service got exactly the type it subscribed to,
        // from the service that published it, with the correlation of the order.
        let at_billing = self.billing.until("received", ORDERS).await;
        let at_shipping = self.shipping.until("received", ORDERS).await;
        let at_orders = self.orders.until("received", ORDERS).await;
        for (received, ty, from) in [
            (&at_billing, "order.placed", "/services/orders"),
            (&at_shipping, "invoice.issued", "/services/billing"),
            (&at_orders, "shipment.dispatched", "/services/shipping"),
        ] {
            assert_eq!(received.len(), ORDERS, "{received:?}");
            assert!(
                received
                    .iter()
                    .all(|e| e["type"] == ty && e["source"] == from),
                "{ty}: {received:?}"
            );
        }
        for (n, (order, invoice)) in placed.iter().zip(invoiced).enumerate() {
            assert_eq!(order["orderId"], format!("o-{}", n + 1));
            assert_eq!(
                invoice["orderId"], order["orderId"],
                "billing kept the order"
            );
            let shipped = at_orders
                .iter()
                .find(|e| e["data"]["orderId"] == order["orderId"])
                .unwrap_or_else(|| panic!("no shipment of {order} reached orders"));
            assert_eq!(shipped["correlationid"], order["id"], "{shipped}");
            assert_eq!(shipped["causationid"], invoice["id"], "{shipped}");
        }
        published
    }

    /// Asks the read model with a query event; returns the answer's data. The
    /// query's answer names the answer event (id, type) but not its data, so the
    /// data is read where every event lands: the audit trail.
    async fn ask(&self, id: &str, data: Value) -> Value {
        let query = json!({
            "specversion": "1.0", "id": id, "source": "/tests/broker", "type": "readmodel.query",
            "datacontenttype": "application/json", "data": data,
        });
        let (status, body) = post(
            &self.events_url,
            "application/cloudevents+json",
            query.to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let route = body["events"][0]["routes"]
            .as_array()
            .and_then(|routes| routes.iter().find(|r| r["route"] == "read-model"))
            .unwrap_or_else(|| panic!("the query did not reach the read model: {body}"));
        let answer = &route["emitted"][0];
        let answer_id = format!("{id}-answer");
        assert_eq!(answer["type"], "readmodel.answer", "{body}");
        assert_eq!(answer["id"], answer_id, "{body}");
        // Answered 200: the query and the answer were appended before that.
        let trail = self.trail.read().await;
        assert!(trail.iter().any(|e| e["id"] == id), "{id} is not audited");
        let answer = trail
            .iter()
            .find(|e| e["id"] == answer_id)
            .unwrap_or_else(|| panic!("{answer_id} is not in the audit trail"));
        assert_eq!(answer["source"], "/readmodel", "{answer}");
        assert_eq!(answer["correlationid"], id, "{answer}");
        answer["data"].clone()
    }

    /// The read model knows every order as shipped, and the counts.
    async fn check_the_read_model(&self, published: &BTreeMap<String, Vec<Value>>) {
        for n in [1, ORDERS / 2, ORDERS] {
            let order_id = format!("o-{n}");
            let by = |source: &str| published[source][n - 1]["id"].clone();
            let data = self
                .ask(&format!("q-{n}"), json!({ "orderId": order_id }))
                .await;
            assert_eq!(
                data,
                json!({
                    "orderId": order_id,
                    "status": "shipped",
                    "stages": {
                        "placed": by("/services/orders"),
                        "invoiced": by("/services/billing"),
                        "shipped": by("/services/shipping"),
                    },
                    "counts": {
                        "order.placed": ORDERS,
                        "invoice.issued": ORDERS,
                        "shipment.dispatched": ORDERS,
                    },
                })
            );
        }
        let unknown = self.ask("q-unknown", json!({ "orderId": "o-0" })).await;
        assert_eq!(unknown["status"], Value::Null, "{unknown}");
    }
}

/// Where the router appends the audit trail.
enum Trail {
    /// A JSON-lines file (router.toml).
    File(PathBuf),
    /// A Redis stream: server URL and stream (router-redis.toml).
    Stream(String, &'static str),
}

impl Trail {
    /// The events of the trail, in journal order.
    async fn read(&self) -> Vec<Value> {
        match self {
            Self::File(path) => std::fs::read_to_string(path)
                .unwrap_or_else(|e| panic!("the audit trail {}: {e}", path.display()))
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect(),
            Self::Stream(url, stream) => {
                let client = redis::Client::open(url.as_str()).expect("redis client");
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("connect to the test's redis-server");
                let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
                    .arg(*stream)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .expect("XRANGE");
                entries
                    .iter()
                    .map(|(entry, fields)| stream_event(entry, fields))
                    .collect()
            }
        }
    }
}

/// The event of one audit stream entry, whose `type` and `source` fields must
/// agree with it.
fn stream_event(entry: &str, fields: &[String]) -> Value {
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair.get(1).cloned())
            .unwrap_or_else(|| panic!("entry {entry} has no field {name}: {fields:?}"))
    };
    let event: Value = serde_json::from_str(&field("event")).expect("structured JSON");
    assert_eq!(event["type"], field("type"), "{entry}");
    assert_eq!(event["source"], field("source"), "{entry}");
    event
}

/// Checks the audit trail (structured events, in journal order) against what the
/// services published: every event once, and per source in publishing order.
fn check_the_trail(trail: &[Value], published: &BTreeMap<String, Vec<Value>>) {
    assert_eq!(
        trail.len(),
        3 * ORDERS,
        "the services' events, nothing else yet"
    );
    assert!(
        trail
            .iter()
            .all(|e| e["specversion"] == "1.0" && e["data"]["orderId"].is_string()),
        "structured CloudEvents with their data: {trail:?}"
    );
    let mut by_source: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for event in trail {
        let source = event["source"].as_str().unwrap_or_default();
        if source.starts_with("/services/") {
            by_source.entry(source.to_owned()).or_default().push(event);
        }
    }
    assert_eq!(
        by_source.keys().collect::<Vec<_>>(),
        published.keys().collect::<Vec<_>>(),
        "the trail has every service's events"
    );
    for (source, events) in &by_source {
        let ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
        let expected: Vec<&str> = published[source]
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        assert_eq!(
            ids, expected,
            "{source}: complete, once, in publishing order"
        );
        let seqs: Vec<u64> = events
            .iter()
            .filter_map(|e| e["data"]["seq"].as_u64())
            .collect();
        assert_eq!(seqs, (1..=ORDERS as u64).collect::<Vec<_>>(), "{source}");
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ORDERS, "{source}: no duplicates");
    }
}

#[tokio::test]
async fn three_services_publish_and_subscribe_through_the_router_with_a_file_audit_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let audit = dir.path().join("audit-trail.jsonl");
    let dead_letters = dir.path().join("dead-letters.jsonl");
    let broker = Broker::start(Trail::File(audit.clone()), |mut env| {
        env.push(("AUDIT_FILE", audit.display().to_string()));
        env.push(("DEAD_LETTER_FILE", dead_letters.display().to_string()));
        super::example_config("broker-services", &env)
    })
    .await;

    let published = broker.run_the_order_flow().await;
    check_the_trail(&broker.trail.read().await, &published);
    broker.check_the_read_model(&published).await;
    assert!(
        !dead_letters.exists(),
        "every subscriber took its events: no dead letters"
    );
}

#[tokio::test]
async fn with_router_redis_toml_the_audit_trail_is_a_redis_stream_and_the_read_model_in_redis() {
    let redis = RedisServer::start().await;
    let stream = "broker:audit:test";
    let broker = Broker::start(Trail::Stream(redis.url(), stream), |mut env| {
        env.push(("REDIS_URL", redis.url()));
        env.push(("AUDIT_STREAM", stream.to_owned()));
        let path = "../examples/broker-services/router-redis.toml";
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Config::parse(Source::new(path, text), |name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
        .unwrap_or_else(|e| panic!("{path} is invalid: {e}"))
    })
    .await;

    let published = broker.run_the_order_flow().await;
    check_the_trail(&broker.trail.read().await, &published);
    broker.check_the_read_model(&published).await;
    // The read model lives in Redis, under the plugin's own prefix.
    let placed: Option<String> = redis
        .query(redis::cmd("GET").arg("router:kv:readmodel:count:order.placed"))
        .await;
    assert_eq!(placed, Some(ORDERS.to_string()));
    let dead: usize = redis
        .query(redis::cmd("XLEN").arg("broker:dead-letters"))
        .await;
    assert_eq!(dead, 0, "every subscriber took its events: no dead letters");
}

/// The README's service command lines (the block that starts them by hand), one
/// per service, continuation lines joined.
fn readme_service_commands(readme: &str) -> Vec<String> {
    let start = readme
        .find("```sh\ntarget/debug/examples/broker-service ")
        .expect("the README starts the services by hand");
    let block = &readme[start + "```sh\n".len()..];
    let block = &block[..block.find("```").expect("the block closes")];
    block
        .replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The README's "Without the script" section, as written: the router on
/// `router.toml` (the test's own `router serve`, its forwards pointed at the
/// services' free ports), the three services started with the README's command
/// lines (ports, router address and program substituted), then the README's
/// commands: ten orders, billing's received count and published list once the
/// tenth shipment is back at orders, and the read model's answer about `o-7`
/// from the router and from the audit trail.
#[tokio::test]
async fn the_readme_runs_as_written() {
    let readme = "examples/broker-services/README.md";
    let text = std::fs::read_to_string(crate::readme::repo_root().join(readme)).expect("README");
    assert!(
        text.contains(
            "```sh\ntarget/debug/router serve --config examples/broker-services/router.toml\n```"
        ),
        "the README starts the router on router.toml"
    );
    let commands = readme_service_commands(&text);
    assert_eq!(commands.len(), 3, "three services: {commands:?}");
    let dir = tempfile::tempdir().expect("tempdir");
    let trail = dir.path().join("audit-trail.jsonl");
    let dead_letters = dir.path().join("dead-letters.jsonl");
    let (trail, dead_letters) = (
        trail.to_str().expect("UTF-8 path"),
        dead_letters.to_str().expect("UTF-8 path"),
    );
    let ports: Vec<(String, String)> = (7001..=7003)
        .map(|port| (format!("127.0.0.1:{port}"), crate::readme::free_addr()))
        .collect();
    let url = |n: usize| format!("http://{}/events", ports[n].1);
    let (orders_url, billing_url, shipping_url) = (url(0), url(1), url(2));
    let mut substitutions: Vec<(&str, &str)> = ports
        .iter()
        .map(|(from, to)| (from.as_str(), to.as_str()))
        .collect();
    substitutions.push(("examples/broker-services/audit-trail.jsonl", trail));
    let mut session = crate::readme::Session::start(
        readme,
        "examples/broker-services/router.toml",
        &[
            ("ORDERS_URL", &orders_url),
            ("BILLING_URL", &billing_url),
            ("SHIPPING_URL", &shipping_url),
            ("AUDIT_FILE", trail),
            ("DEAD_LETTER_FILE", dead_letters),
        ],
        &substitutions,
    );
    let router = session.router_addr().to_owned();
    let mut services = Vec::new();
    for command in &commands {
        let mut words = command.split_whitespace();
        assert_eq!(
            words.next(),
            Some("target/debug/examples/broker-service"),
            "{command}"
        );
        let args: Vec<String> = words
            .map(|word| {
                ports
                    .iter()
                    .fold(word.replace("127.0.0.1:8080", &router), |w, (from, to)| {
                        w.replace(from.as_str(), to)
                    })
            })
            .collect();
        let mut process = Command::new(service_program())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let stdout = process.stdout.take().expect("piped stdout");
        let first = tokio::time::timeout(PATIENCE, async {
            tokio::io::BufReader::new(stdout).lines().next_line().await
        })
        .await
        .unwrap_or_else(|_| panic!("{command} printed no address"))
        .expect("read stdout");
        assert!(
            first.is_some_and(|addr| ports.iter().any(|(_, to)| *to == addr)),
            "{command} listens where the router forwards"
        );
        services.push(process);
    }
    assert_eq!(session.run().await, 6, "the marked steps of the README");
    // Every order went the whole way, once: the trail holds ten of each fact.
    let lines = std::fs::read_to_string(trail).expect("audit trail");
    for ty in ["order.placed", "invoice.issued", "shipment.dispatched"] {
        let n = lines
            .lines()
            .filter(|l| {
                serde_json::from_str::<Value>(l).expect("a JSON line")["type"].as_str() == Some(ty)
            })
            .count();
        assert_eq!(n, 10, "{ty} in the trail:\n{lines}");
    }
}
