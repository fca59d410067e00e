//! The floor of one event per request over HTTP: the bare axum baseline
//! (`bench/baseline`) plus the work the router cannot skip, and nothing else.
//! Each `POST /events` is decoded as the router decodes binary mode (or a
//! batch), and each event is given to a reused instance of the component in
//! bare wasmtime ([`floor`]); the answer is the baseline's. No routing,
//! limits, metrics, timeouts or report.
//!
//! `bench/run.py` measures it beside bare axum and the router in the same run:
//! what the router costs over this server is its own; what this server costs
//! over axum is the floor the section 2 targets of the benchmarks sit on.

#[path = "floor.rs"]
mod floor;

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use wasmtime::Store;

/// The router's allocator (`router/src/main.rs`): the floor is the work the
/// router must do, on the router's allocator. Bare axum keeps the system's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The router's default `server.body_limit`.
const BODY_LIMIT: usize = 1 << 20;

/// The most events in a batch (`bench/run.py` sets the router's
/// `server.batch_limit` to the same).
const BATCH_LIMIT: usize = 1000;

/// Reused instances, one per call in flight: taken for a call, put back after.
struct Instances {
    floor: floor::Floor,
    idle: Mutex<Vec<(Store<floor::State>, router::plugin::bindings::Handler)>>,
}

/// The request whole, as the router takes it: axum's `HeaderMap` extractor
/// would clone the headers of every request, a cost the router does not pay.
/// Binary mode, or a batch (`application/cloudevents-batch+json`) whose
/// events are called one after the other on one instance.
async fn events(State(instances): State<Arc<Instances>>, request: Request) -> impl IntoResponse {
    let json = [("content-type", "application/json")];
    let refused = (StatusCode::BAD_REQUEST, json, "{\"ok\":false}");
    let (parts, body) = request.into_parts();
    let (Ok(body), true) = (
        to_bytes(body, BODY_LIMIT).await,
        parts.method == Method::POST,
    ) else {
        return refused;
    };
    let batch = parts.headers.get("content-type").is_some_and(|t| {
        t.as_bytes()
            .starts_with(b"application/cloudevents-batch+json")
    });
    let events = if batch {
        router::event::json::decode_batch(&body, BATCH_LIMIT).ok()
    } else {
        router::event::http::decode_binary(&parts.headers, body)
            .ok()
            .map(|event| vec![event])
    };
    let Some(events) = events else {
        return refused;
    };
    let taken = instances.idle.lock().expect("pool").pop();
    let (mut store, handler) = match taken {
        Some(instance) => instance,
        None => instances.floor.instance().await,
    };
    for event in &events {
        std::hint::black_box(floor::call(&mut store, &handler, event).await);
    }
    instances.idle.lock().expect("pool").push((store, handler));
    (StatusCode::OK, json, "{\"ok\":true}")
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(component), listen) = (args.next(), args.next()) else {
        eprintln!("usage: floor-server COMPONENT.wasm [ADDRESS (127.0.0.1:8091)]");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen
        .as_deref()
        .unwrap_or("127.0.0.1:8091")
        .parse()
        .map_err(std::io::Error::other)?;
    let instances = Arc::new(Instances {
        floor: floor::Floor::new(&component),
        idle: Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/events", post(events))
        .with_state(instances);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    eprintln!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
