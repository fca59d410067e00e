//! The HTTP surface, as two applications on two listeners: ingest (`POST
//! /events`, `GET /healthz`, `GET /readyz`), which faces the senders, and the
//! admin API (`/admin/*`), which faces operators; `/metrics` on either.

mod admin;
mod error;

pub use admin::app as admin_app;
pub use error::IngestError;

use crate::config::MetricsListener;
use crate::dispatch::{Dispatcher, EventReport, Failure};
use crate::event::Event;
use crate::event::http::{ContentMode, content_mode, decode_binary};
use crate::event::json::{decode_batch, decode_structured};
use crate::gate::Authenticated;
use crate::reload::Reloader;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::future::join_all;
use http_body_util::BodyExt;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Routes the events.
    pub dispatcher: Arc<Dispatcher>,
    /// Rebuilds the runtime on demand.
    pub reloader: Arc<Reloader>,
    /// Ingest limits. Credentials, rate limits and load shedding are the
    /// runtime snapshot's gate, so that they change with a reload.
    pub limits: Limits,
    /// The Redis stream accepted events go to, in durable mode.
    pub queue: Option<Arc<crate::queue::RedisQueue>>,
}

/// Limits applied to every ingest request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body, in bytes.
    pub body: u64,
    /// Most events per batch.
    pub batch: usize,
    /// Most events of one batch in dispatch at once.
    pub batch_concurrency: usize,
    /// Longest time to receive the body.
    pub body_timeout: Duration,
}

/// The ingest listener's application, without the listener: `/events`,
/// `/healthz`, `/readyz`, and `/metrics` when `metrics` puts it here. The admin
/// API is not served here, whatever the path: see [`admin_app`].
pub fn ingest_app(state: AppState, metrics: MetricsListener) -> Router {
    let mut router = Router::new()
        .route(
            "/events",
            post(ingest)
                .options(handshake)
                .fallback(|method: Method| async move { method_not_allowed(&method) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz));
    if metrics == MetricsListener::Ingest {
        router = router.route("/metrics", get(metrics_text));
    }
    router
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "not found: events are POSTed to /events" })),
            )
        })
        .with_state(state)
}

fn method_not_allowed(method: &Method) -> Response {
    let mut response = (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(serde_json::json!({
            "error": format!("method {method} is not allowed on /events: use POST"),
        })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
    response
}

/// Ready once a runtime is loaded (which a running server always has) and, in
/// durable mode, Redis answers.
async fn readyz(State(state): State<AppState>) -> Response {
    let generation = state.dispatcher.runtime().generation();
    if let Some(queue) = &state.queue
        && !queue.ready().await
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "ready": false,
                "generation": generation,
                "reason": "Redis does not answer",
            })),
        )
            .into_response();
    }
    Json(serde_json::json!({ "ready": true, "generation": generation })).into_response()
}

async fn metrics_text() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().encode(),
    )
        .into_response()
}

/// The CloudEvents HTTP webhook abuse-protection handshake (`OPTIONS` with
/// `WebHook-Request-Origin`).
async fn handshake(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(origin) = headers
        .get("webhook-request-origin")
        .and_then(|v| v.to_str().ok())
    else {
        let mut response = StatusCode::NO_CONTENT.into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        return response;
    };
    let runtime = state.dispatcher.runtime();
    let gate = runtime.gate();
    match gate.allowed_origin(origin) {
        Some(allowed) => {
            let mut response = StatusCode::OK.into_response();
            let h = response.headers_mut();
            h.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
            if let Ok(v) = HeaderValue::from_str(&allowed) {
                h.insert("webhook-allowed-origin", v);
            }
            if let Ok(v) = HeaderValue::from_str(&gate.allowed_rate()) {
                h.insert("webhook-allowed-rate", v);
            }
            response
        }
        None => (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({ "error": format!("origin {origin:?} is not allowed to send events here") })),
        )
            .into_response(),
    }
}

/// The answer to an ingest request: one report per event, in request order.
#[derive(Serialize)]
struct IngestResponse {
    events: Vec<EventReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `POST /events` through axum's router, where the client's address, if any,
/// comes as a `ConnectInfo` extension.
async fn ingest(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|p| p.0);
    ingest_request(&state, peer, request).await
}

/// Answers one `POST /events` request from `peer`. The listener calls it
/// directly for that method and path, without axum's routing: the hot path
/// then pays for no route lookup, service clone or extension map.
pub async fn ingest_request(
    state: &AppState,
    peer: Option<std::net::SocketAddr>,
    request: axum::extract::Request,
) -> Response {
    let metrics = crate::metrics::metrics();
    // The whole request, not a `HeaderMap` extractor: that one clones the
    // headers of every request.
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // One snapshot for the whole request: its gate (credentials, limits) goes
    // with its routes and schemas, across a reload.
    let runtime = state.dispatcher.runtime();
    let peer = peer.map(|p| p.ip());
    let admitted = match admit(state, &runtime, peer, headers, body).await {
        Ok(admitted) => admitted,
        Err(e) => {
            metrics.rejected(e.reason());
            tracing::debug!(error = %e, client = ?runtime.gate().client(headers, peer), "refused a request");
            return e.into_response();
        }
    };
    let Admitted {
        events,
        permit: _permit,
        sender,
    } = admitted;
    if let Some(queue) = &state.queue {
        return accepted_if_success(enqueue(queue, events, headers).await, sender);
    }
    let n = events.len() as i64;
    metrics.events_received.inc_by(n as u64);
    metrics.events_in_flight.inc_by(n);
    let trace = crate::trace::RequestTrace::of(headers);
    let dispatch = |mut event: Event| {
        trace.adopt(&mut event);
        state.dispatcher.dispatch(event)
    };
    // One event (binary and structured mode) is awaited in place: `join_all`
    // would box its future, a large allocation and copy per request.
    let reports = match <[Event; 1]>::try_from(events) {
        Ok([event]) => vec![dispatch(event).await],
        Err(events) => dispatch_batch(events, state.limits.batch_concurrency, dispatch).await,
    };
    metrics.events_in_flight.dec_by(n);
    let delivered = reports.iter().filter(|r| r.failure().is_none()).count();
    metrics.events_accepted.inc_by(delivered as u64);
    accepted_if_success(respond(reports), sender)
}

/// Keeps the request's webhook id as used only when it was accepted: a retry
/// of a request that failed (400, 502, 503...) carries the same id and must pass.
fn accepted_if_success(response: Response, sender: Authenticated) -> Response {
    if response.status().is_success() {
        sender.accepted();
    }
    response
}

/// Dispatches a batch's events, at most `lanes` at a time (the server's
/// `batch_concurrency`), and reports them in request order. Each lane takes
/// the next event as soon as its previous one is done, so a slow event (a
/// forward to a slow sink) holds up one lane, not the batch. Lanes rather than one future per event: a
/// dispatch future is several kilobytes, and `join_all` over a hundred of them
/// boxed each one and moved it twice, which was an eighth of a batch's CPU.
async fn dispatch_batch<F, Fut>(events: Vec<Event>, lanes: usize, dispatch: F) -> Vec<EventReport>
where
    F: Fn(Event) -> Fut,
    Fut: std::future::Future<Output = EventReport>,
{
    let n = events.len();
    // A mutex, not a `RefCell`, so the request's future stays `Send`; the lanes
    // are polled by one task, so it is never contended.
    let next = std::sync::Mutex::new(events.into_iter().enumerate());
    let take = || crate::sync::lock(&next).next();
    let lane = || async {
        let mut done = Vec::new();
        while let Some((i, event)) = take() {
            done.push((i, dispatch(event).await));
        }
        done
    };
    let mut reports: Vec<Option<EventReport>> = (0..n).map(|_| None).collect();
    for (i, report) in join_all((0..n.min(lanes.max(1))).map(|_| lane()))
        .await
        .into_iter()
        .flatten()
    {
        reports[i] = Some(report);
    }
    reports.into_iter().flatten().collect()
}

/// The answer to an ingest request in durable mode.
#[derive(Serialize)]
struct Accepted {
    /// Events appended.
    accepted: usize,
    /// Their stream entry ids, in request order.
    entries: Vec<String>,
}

/// Durable mode: 202 once Redis has every event; 503 with `Retry-After` (and
/// nothing kept) when it cannot take them in time.
async fn enqueue(
    queue: &crate::queue::RedisQueue,
    mut events: Vec<Event>,
    headers: &HeaderMap,
) -> Response {
    let metrics = crate::metrics::metrics();
    let n = events.len() as u64;
    metrics.events_received.inc_by(n);
    let trace = crate::trace::RequestTrace::of(headers);
    for event in &mut events {
        trace.adopt(event);
    }
    match queue.enqueue(&events).await {
        Ok(ids) => {
            metrics.events_accepted.inc_by(n);
            metrics.queue_enqueued.inc_by(n);
            (
                StatusCode::ACCEPTED,
                Json(Accepted {
                    accepted: ids.len(),
                    entries: ids,
                }),
            )
                .into_response()
        }
        Err(e) => {
            metrics.rejected("unavailable");
            tracing::warn!(error = %e, "cannot append to the Redis stream");
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({
                    "error": format!("the event store is unavailable ({e}); nothing was accepted, retry later"),
                })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// A request let in: its events, their room in flight, and who sent them.
struct Admitted {
    events: Vec<Event>,
    permit: tokio::sync::OwnedSemaphorePermit,
    sender: Authenticated,
}

/// Everything between the request and routing: what the headers alone decide
/// (credentials present, bearer token, webhook headers, the rate of a known
/// sender), load shedding, body, webhook signature, decoding, and the sender's
/// allowed content mode and sources.
async fn admit(
    state: &AppState,
    runtime: &crate::runtime::Runtime,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Admitted, IngestError> {
    let gate = runtime.gate();
    let identity = gate.identify(headers, peer)?;
    gate.check_capacity()?;
    let (mode, body) = read_body(&state.limits, headers, body).await?;
    let sender = gate.authenticate(identity, &body).await?;
    gate.check_mode(&sender, mode)?;
    let events = decode(&state.limits, mode, headers, body)?;
    gate.check_sources(&sender, &events)?;
    if !runtime.schemas().is_empty() {
        for (index, event) in events.iter().enumerate() {
            runtime
                .schemas()
                .validate(event)
                .map_err(|error| IngestError::Schema { index, error })?;
        }
    }
    let permit = gate.admit(events.len())?;
    Ok(Admitted {
        events,
        permit,
        sender,
    })
}

/// 200 when every route of every event (and of what they caused) delivered; a
/// 502 naming the failed routes when any failure may pass on a retry; 422 when
/// the failures are permanent, so the sender does not retry in vain.
fn respond(reports: Vec<EventReport>) -> Response {
    let failure = reports.iter().filter_map(EventReport::failure).max();
    let (status, error) = match failure {
        None => (StatusCode::OK, None),
        Some(kind) => {
            let mut routes: Vec<&str> = reports.iter().flat_map(|r| r.failed_routes()).collect();
            routes.dedup();
            let (status, advice) = match kind {
                Failure::Retryable => (StatusCode::BAD_GATEWAY, "retry the request"),
                Failure::Fatal => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "a retry of the same event cannot succeed",
                ),
            };
            let message = format!("route(s) failed: {}; {advice}", routes.join(", "));
            (status, Some(message))
        }
    };
    let mut response = (
        status,
        Json(IngestResponse {
            events: reports,
            error,
        }),
    )
        .into_response();
    if status == StatusCode::BAD_GATEWAY {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Checks the declared size and content mode, then reads the body.
async fn read_body(
    limits: &Limits,
    headers: &HeaderMap,
    body: Body,
) -> Result<(ContentMode, Bytes), IngestError> {
    // Refuse early on Content-Length: a client announcing too much is not read at all.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body) {
        return Err(IngestError::TooLarge { limit: limits.body });
    }
    let mode = content_mode(headers)?;
    Ok((mode, collect_body(body, limits).await?))
}

fn decode(
    limits: &Limits,
    mode: ContentMode,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Vec<Event>, IngestError> {
    let events = match mode {
        ContentMode::Binary => vec![decode_binary(headers, body)?],
        ContentMode::Structured => vec![decode_structured(&body)?],
        ContentMode::Batch => decode_batch(&body, limits.batch)?,
    };
    for event in &events {
        for name in event.long_extension_names() {
            tracing::warn!(event = %event, extension = name, "extension name longer than 20 characters");
        }
    }
    Ok(events)
}

/// Reads at most `limits.body` bytes within `limits.body_timeout`; chunked bodies
/// that grow past the limit are cut off as soon as they do.
async fn collect_body(body: Body, limits: &Limits) -> Result<Bytes, IngestError> {
    let limit = usize::try_from(limits.body).unwrap_or(usize::MAX);
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => Err(IngestError::BodyTimeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(IngestError::TooLarge { limit: limits.body })
        }
        Ok(Err(e)) => Err(IngestError::Body(e.to_string())),
    }
}
