//! One service of the broker example (examples/broker-services): a publisher and a
//! subscriber that talk to the router, the event broker, over plain HTTP.
//!
//! ```text
//! broker-service --name billing --listen 127.0.0.1:7002 \
//!     --router http://127.0.0.1:8080/events --on order.placed=invoice.issued
//! ```
//!
//! - It prints the address it listens on as the first line of its stdout (so
//!   `--listen 127.0.0.1:0` works for tests).
//! - Subscriber: `POST /events` takes the events the router forwards (CloudEvents
//!   binary or structured mode). It records each one (`GET /received`) and, for a
//!   type named in a reaction (`--on TYPE=REACTION`, repeatable), publishes a
//!   `REACTION` event about the same order, with an id derived from the incoming
//!   one, `causationid` the incoming id and the same `correlationid`. An id it has
//!   already received is answered 200 and not reacted to again (an idempotent
//!   consumer: the router may deliver twice after a timeout).
//! - Publisher: `POST /publish?type=order.placed&count=50` starts `count` new
//!   orders (`o-1`, `o-2`, ...). Every event, started or a reaction, goes through
//!   one outbox that publishes them one after the other: the next only once the
//!   router has answered the previous (retried on 5xx, 429 and network errors). So
//!   the router sees this service's events in the order of their `seq`, the
//!   service's own sequence number in the data, and the audit trail keeps that
//!   order. `GET /published` lists what was published and the router's answers.
//!   `GET /received/count` and `GET /published/count` answer the lengths of the
//!   two lists as plain numbers.
//!
//! The event source is `/services/NAME`; the data is `{"orderId", "seq"}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use clap::Parser;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A service that publishes events through the router and subscribes to events
/// the router forwards to it.
#[derive(Debug, Parser)]
#[command(name = "broker-service")]
struct Args {
    /// The service's name: its events have source `/services/NAME`.
    #[arg(long)]
    name: String,
    /// Where to listen for forwarded events (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The router's events URL, where this service publishes.
    #[arg(long, default_value = "http://127.0.0.1:8080/events")]
    router: String,
    /// `TYPE=REACTION`: on receiving an event of TYPE, publish one of REACTION.
    #[arg(long = "on", value_parser = parse_reaction)]
    reactions: Vec<(String, String)>,
    /// Attempts per event before the outbox gives up on it.
    #[arg(long, default_value_t = 5)]
    attempts: u32,
}

fn parse_reaction(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((on, emit)) if !on.is_empty() && !emit.is_empty() => {
            Ok((on.to_owned(), emit.to_owned()))
        }
        _ => Err(format!("{text:?} is not TYPE=REACTION")),
    }
}

/// An event waiting in the outbox.
struct Outgoing {
    /// Its type.
    ty: String,
    /// The order it is about.
    order_id: String,
    /// Its id when derived from an incoming event; a new one otherwise.
    id: Option<String>,
    /// The incoming event's id and correlation id, for a reaction.
    cause: Option<(String, String)>,
}

/// What the HTTP handlers share.
struct Service {
    name: String,
    source: String,
    reactions: HashMap<String, String>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Orders started so far, for the next order id.
    started: Mutex<u64>,
    /// Every event received, in arrival order.
    received: Mutex<Vec<Value>>,
    /// Ids received, to react once per event.
    seen: Mutex<HashSet<String>>,
    /// Every event published (or given up), in publishing order.
    published: Mutex<Vec<Value>>,
}

type Shared = Arc<Service>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let (outbox, queue) = mpsc::unbounded_channel();
    let service = Arc::new(Service {
        source: format!("/services/{}", args.name),
        name: args.name,
        reactions: args.reactions.into_iter().collect(),
        outbox,
        started: Mutex::new(0),
        received: Mutex::default(),
        seen: Mutex::default(),
        published: Mutex::default(),
    });
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    // The first line of stdout is the address: whoever started us reads it.
    println!("{addr}");
    std::io::stdout().flush()?;
    eprintln!(
        "{}: listening on http://{addr}/events, publishing to {}",
        service.name, args.router
    );

    tokio::spawn(publish_all(
        service.clone(),
        queue,
        args.router,
        args.attempts.max(1),
    ));
    let app = Router::new()
        .route("/events", post(receive))
        .route("/publish", post(start_orders))
        .route(
            "/received",
            get(|State(s): State<Shared>| async move { list(&s.received) }),
        )
        .route(
            "/published",
            get(|State(s): State<Shared>| async move { list(&s.published) }),
        )
        // Plain numbers, so that a shell script needs no JSON tool to wait.
        .route(
            "/received/count",
            get(|State(s): State<Shared>| async move { count(&s.received) }),
        )
        .route(
            "/published/count",
            get(|State(s): State<Shared>| async move { count(&s.published) }),
        )
        .with_state(service);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

fn list(items: &Mutex<Vec<Value>>) -> Json<Value> {
    Json(Value::Array(items.lock().expect("lock").clone()))
}

fn count(items: &Mutex<Vec<Value>>) -> String {
    format!("{}\n", items.lock().expect("lock").len())
}

/// The parameters of `POST /publish`.
#[derive(serde::Deserialize)]
struct Start {
    #[serde(rename = "type")]
    ty: String,
    #[serde(default = "one")]
    count: u64,
}

fn one() -> u64 {
    1
}

/// `POST /publish?type=T&count=N`: queues N new orders, answering with their ids.
async fn start_orders(State(service): State<Shared>, Query(start): Query<Start>) -> Response {
    let mut started = service.started.lock().expect("lock");
    let mut orders = Vec::new();
    for _ in 0..start.count {
        *started += 1;
        let order_id = format!("o-{started}");
        orders.push(order_id.clone());
        let _ = service.outbox.send(Outgoing {
            ty: start.ty.clone(),
            order_id,
            id: None,
            cause: None,
        });
    }
    (StatusCode::ACCEPTED, Json(json!({ "orders": orders }))).into_response()
}

/// `POST /events`: an event the router forwards (binary or structured mode).
async fn receive(State(service): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let event = match decode(&headers, &body) {
        Ok(event) => event,
        // 400: the router does not retry a malformed event.
        Err(problem) => return (StatusCode::BAD_REQUEST, problem).into_response(),
    };
    let id = event["id"].as_str().unwrap_or_default().to_owned();
    let ty = event["type"].as_str().unwrap_or_default().to_owned();
    let first_time = service.seen.lock().expect("lock").insert(id.clone());
    service.received.lock().expect("lock").push(event.clone());
    if !first_time {
        return StatusCode::OK.into_response();
    }
    if let Some(reaction) = service.reactions.get(&ty) {
        let Some(order_id) = event["data"]["orderId"].as_str() else {
            return (
                StatusCode::BAD_REQUEST,
                format!("{ty} event {id} has no orderId"),
            )
                .into_response();
        };
        let correlation = event["correlationid"].as_str().unwrap_or(&id).to_owned();
        let _ = service.outbox.send(Outgoing {
            ty: reaction.clone(),
            order_id: order_id.to_owned(),
            // Derived: a second delivery of the same event would publish the same
            // id, which the router's dedup window drops.
            id: Some(format!("{id}-{reaction}")),
            cause: Some((id, correlation)),
        });
    }
    // Answered once the reaction is queued, not published: the router's forward
    // does not wait for the next hop (temporal decoupling).
    StatusCode::OK.into_response()
}

/// The event's attributes and JSON data as one JSON object.
fn decode(headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/cloudevents+json") {
        let event: Value =
            serde_json::from_slice(body).map_err(|e| format!("structured event: {e}"))?;
        return match ["id", "source", "type"]
            .iter()
            .find(|a| event[**a].as_str().is_none())
        {
            Some(missing) => Err(format!("the event has no {missing}")),
            None => Ok(event),
        };
    }
    let mut event = serde_json::Map::new();
    for (name, value) in headers {
        if let Some(attribute) = name.as_str().strip_prefix("ce-") {
            let value = value.to_str().map_err(|_| format!("{name} is not text"))?;
            event.insert(attribute.to_owned(), json!(value));
        }
    }
    if let Some(missing) = ["id", "source", "type"]
        .iter()
        .find(|a| !event.contains_key(**a))
    {
        return Err(format!("no ce-{missing} header"));
    }
    let data =
        serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)));
    event.insert("data".to_owned(), data);
    Ok(Value::Object(event))
}

/// The outbox: publishes queued events one at a time, in order, each retried until
/// the router takes it or `attempts` run out.
async fn publish_all(
    service: Shared,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
    router: String,
    attempts: u32,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let mut seq = 0u64;
    while let Some(out) = queue.recv().await {
        seq += 1;
        let id = out.id.unwrap_or_else(|| format!("{}-{seq}", service.name));
        let data = json!({ "orderId": out.order_id, "seq": seq }).to_string();
        let mut outcome = String::new();
        for attempt in 1..=attempts {
            let mut request = client
                .post(&router)
                .header("ce-specversion", "1.0")
                .header("ce-id", &id)
                .header("ce-source", &service.source)
                .header("ce-type", &out.ty)
                .header("ce-subject", &out.order_id)
                .header("content-type", "application/json")
                .body(data.clone());
            if let Some((causation, correlation)) = &out.cause {
                request = request
                    .header("ce-causationid", causation)
                    .header("ce-correlationid", correlation);
            }
            let retry = match request.send().await {
                Ok(answer) => {
                    let status = answer.status();
                    outcome = status.as_u16().to_string();
                    if !status.is_success() {
                        let text = answer.text().await.unwrap_or_default();
                        eprintln!("{}: {id} answered {status}: {text}", service.name);
                    }
                    status.is_server_error() || status.as_u16() == 429
                }
                Err(e) => {
                    eprintln!("{}: cannot publish {id}: {e}", service.name);
                    outcome = "unreachable".to_owned();
                    true
                }
            };
            if !retry || attempt == attempts {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
        }
        service.published.lock().expect("lock").push(json!({
            "id": id,
            "type": out.ty,
            "orderId": out.order_id,
            "seq": seq,
            "status": outcome,
        }));
    }
}
