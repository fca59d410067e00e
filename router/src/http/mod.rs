//! The HTTP surface, as two applications on two listeners: ingest (`POST
//! /events`, `GET /healthz`, `GET /readyz`), which faces the senders, and the
//! admin API (`/admin/*`), which faces operators; `/metrics` on either.

mod admin;
mod budget;
mod dashboard;
mod error;
mod report;

pub use admin::app as admin_app;
pub use budget::{ByteBudget, Reservation};
pub use error::IngestError;

use crate::config::{MetricsListener, Report};
use crate::dispatch::{Dispatcher, EventReport, Failure};
use crate::event::Event;
use crate::event::http::{ContentMode, content_mode, decode_binary};
use crate::event::json::{BatchError, decode_batch, decode_structured};
use crate::gate::Authenticated;
use crate::reload::Reloader;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use report::IngestResponse;
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
    /// The request body bytes all requests may hold at once.
    pub budget: Arc<ByteBudget>,
    /// The Redis stream accepted events go to, in durable mode.
    pub queue: Option<Arc<crate::queue::RedisQueue>>,
    /// The replays of archived events this process runs.
    pub replays: Arc<crate::replay::Replays>,
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
    /// Longest event `id`, in bytes.
    pub id: usize,
    /// Longest event `source`, in bytes.
    pub source: usize,
    /// What a successful answer says unless the client asks.
    pub report: Report,
}

/// A refused body is read and thrown away up to this many times the body limit
/// (see [`linger`]); past that the connection is closed with the rest unread.
const LINGER_FACTOR: u64 = 4;

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

async fn metrics_text(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        crate::metrics::metrics().encode(state.queue.is_some()),
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
    let optional = Optional::of(headers);
    let report = wanted_report(&parts, state.limits.report, optional.prefer);
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
    // The reservation of the body's bytes is held until the answer is made: the
    // events' data points into the body.
    let Admitted {
        events,
        permit: _permit,
        buffered: _buffered,
        sender,
    } = admitted;
    // Archived before any route sees the events and before the answer; an
    // archive that cannot take them refuses them all, like a queue that cannot.
    if let Some(archive) = &runtime.settings.archive {
        match archive.record(&events).await {
            Ok(kept) => {
                metrics.archived.inc_by(kept as u64);
            }
            Err(e) => {
                metrics.rejected("unavailable");
                tracing::warn!(error = %e, "cannot archive the events: nothing accepted");
                return unavailable(format!(
                    "the archive is unavailable ({e}); nothing was accepted, retry later"
                ));
            }
        }
    }
    let trace = if optional.traceparent {
        crate::trace::RequestTrace::of(headers)
    } else {
        crate::trace::RequestTrace::default()
    };
    if let Some(queue) = &state.queue {
        return accepted_if_success(enqueue(queue, events, trace).await, sender);
    }
    let n = events.len() as i64;
    metrics.events_received.inc_by(n as u64);
    metrics.events_in_flight.inc_by(n);
    let adopted = |mut event: Event| {
        trace.adopt(&mut event);
        std::sync::Arc::new(event)
    };
    let dispatch = |event: Event| {
        state
            .dispatcher
            .dispatch_with(&runtime, adopted(event), None)
    };
    // One event (binary and structured mode) is awaited alone: `join_all`
    // would box its future and copy it there. Its future is made in a box
    // (`boxed`): awaited by value, it would be made on the stack and copied
    // into this one's, and this one, larger by it, into hyper's.
    let reports = match <[Event; 1]>::try_from(events) {
        Ok([event]) => {
            let event = adopted(event);
            let dispatch = || state.dispatcher.dispatch_with(&runtime, event, None);
            vec![crate::boxed::pinned(dispatch).await]
        }
        Err(events) => dispatch_batch(events, state.limits.batch_concurrency, dispatch).await,
    };
    metrics.events_in_flight.dec_by(n);
    metrics.accepted_all(
        reports
            .iter()
            .filter(|r| r.failure().is_none())
            .map(EventReport::accepted_outcome),
    );
    accepted_if_success(respond(reports, report), sender)
}

/// The optional headers the ingest path reads, found in one pass over the
/// names. Most requests carry none of them, and a lookup by a name that is not
/// one of HTTP's standard names hashes it first: three such lookups per request
/// cost more than this pass.
#[derive(Clone, Copy, Debug, Default)]
struct Optional {
    /// `Prefer`, read by [`wanted_report`].
    prefer: bool,
    /// `traceparent`, without which `tracestate` means nothing.
    traceparent: bool,
}

impl Optional {
    fn of(headers: &HeaderMap) -> Self {
        let mut found = Self::default();
        for name in headers.keys() {
            match name.as_str() {
                "prefer" => found.prefer = true,
                crate::trace::TRACEPARENT => found.traceparent = true,
                _ => {}
            }
        }
        found
    }
}

/// The report the client asked for: `?report=full|minimal`, else the
/// `return` preference of RFC 7240 (`Prefer: return=representation|minimal`,
/// read when `prefer` says the header is there), else the server's default.
/// Whether the answer names the preference it applied (`Preference-Applied`)
/// comes with it.
fn wanted_report(
    parts: &axum::http::request::Parts,
    default: Report,
    prefer: bool,
) -> (Report, bool) {
    let by_query = parts.uri.query().into_iter().flat_map(|q| q.split('&'));
    for pair in by_query {
        match pair {
            "report=full" => return (Report::Full, false),
            "report=minimal" => return (Report::Minimal, false),
            _ => {}
        }
    }
    if !prefer {
        return (default, false);
    }
    // Made once: a lookup by `&str` parses the name first.
    static PREFER: axum::http::HeaderName = axum::http::HeaderName::from_static("prefer");
    let preferences = parts
        .headers
        .get_all(&PREFER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        // A preference's parameters follow its `;`.
        .filter_map(|p| p.split(';').next());
    for preference in preferences {
        let Some((name, value)) = preference.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("return") {
            continue;
        }
        let value = value.trim().trim_matches('"');
        if value.eq_ignore_ascii_case("representation") {
            return (Report::Full, true);
        }
        if value.eq_ignore_ascii_case("minimal") {
            return (Report::Minimal, true);
        }
    }
    (default, false)
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
/// forward to a slow sink) holds up one lane, not the batch.
///
/// Lanes start one at a time, and only while every lane already started is
/// waiting: a batch whose events finish without waiting (a handler that only
/// computes) runs in one lane. Starting all of them at once made a large
/// allocation per request (a dispatch future is kilobytes, and there were 16)
/// and cost a sixth of a batch's CPU.
async fn dispatch_batch<F, Fut>(events: Vec<Event>, lanes: usize, dispatch: F) -> Vec<EventReport>
where
    F: Fn(Event) -> Fut,
    Fut: std::future::Future<Output = EventReport>,
{
    use futures_util::StreamExt as _;
    use std::task::Poll;
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
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut started = 0;
    std::future::poll_fn(|cx| {
        loop {
            while let Poll::Ready(Some(done)) = running.poll_next_unpin(cx) {
                for (i, report) in done {
                    reports[i] = Some(report);
                }
            }
            // Here every running lane waits (or none runs). A lane that only
            // used up the task's scheduling budget is not waiting for anything:
            // the next lane starts when the task is polled again, with a new one.
            let waiting = crate::sync::lock(&next).len() > 0;
            if waiting && started < lanes.max(1) {
                if running.is_empty() || tokio::task::coop::has_budget_remaining() {
                    running.push(lane());
                    started += 1;
                    continue;
                }
                cx.waker().wake_by_ref();
            }
            return if running.is_empty() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
    })
    .await;
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
    trace: crate::trace::RequestTrace<'_>,
) -> Response {
    let metrics = crate::metrics::metrics();
    let n = events.len() as u64;
    metrics.events_received.inc_by(n);
    for event in &mut events {
        trace.adopt(event);
    }
    match queue.enqueue(&events).await {
        Ok(ids) => {
            metrics.accepted("queued", n);
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
            unavailable(match e {
                crate::queue::EnqueueError::Unavailable(e) => format!(
                    "the event store is unavailable ({e}); nothing was accepted, retry later"
                ),
                crate::queue::EnqueueError::Unconfirmed(why) => format!(
                    "the event store did not confirm the events ({why}); retry later: a retry may deliver some of them twice"
                ),
            })
        }
    }
}

/// 503 with `Retry-After` and `error`: a store the events must reach first
/// (the queue, the archive) cannot take them now.
fn unavailable(error: String) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({ "error": error })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A request let in: its events, their room in flight, its body's bytes, and
/// who sent them.
struct Admitted {
    events: Vec<Event>,
    permit: tokio::sync::OwnedSemaphorePermit,
    /// The body's bytes in the buffer budget.
    buffered: Reservation,
    sender: Authenticated,
}

/// Everything between the request and routing: what the headers alone decide
/// (credentials present, bearer token, webhook headers, the rate of a known
/// sender), load shedding, body (its bytes reserved from the buffer budget
/// before it is read), webhook signature, decoding, and the sender's allowed
/// content mode and sources.
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
    let (mode, body, buffered) = read_body(state, headers, body).await?;
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
        buffered,
        sender,
    })
}

/// 200 when every route of every event (and of what they caused) delivered,
/// with the minimal answer or the full report as asked; a 502 naming the
/// failed routes when any failure may pass on a retry; 422 when
/// the failures are permanent, so the sender does not retry in vain.
fn respond(reports: Vec<EventReport>, (report, asked): (Report, bool)) -> Response {
    let failure = reports.iter().filter_map(EventReport::failure).max();
    let (status, error) = match failure {
        None if report == Report::Minimal => return minimal(reports.len(), asked),
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
    let mut response = report_json(
        status,
        &IngestResponse {
            events: reports,
            error,
        },
    );
    if status == StatusCode::BAD_GATEWAY {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if asked && report == Report::Full {
        response.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=representation"),
        );
    }
    response
}

/// `status` with the full report.
fn report_json(status: StatusCode, report: &IngestResponse) -> Response {
    json_body(status, report.to_json())
}

/// `status` with a JSON body made by hand. Not `(status, [(CONTENT_TYPE,
/// ..)], body).into_response()`: that sets the body's own content type
/// (`application/octet-stream`) and then replaces it, two header insertions
/// per answer where one does.
fn json_body(status: StatusCode, body: impl Into<Body>) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The minimal answer to a request whose every event was delivered (or had
/// nothing to do): 200 and how many events it carried.
fn minimal(events: usize, asked: bool) -> Response {
    let mut response = json_body(StatusCode::OK, format!("{{\"accepted\":{events}}}"));
    if asked {
        response.headers_mut().insert(
            "preference-applied",
            HeaderValue::from_static("return=minimal"),
        );
    }
    response
}

/// Checks the declared size and content mode, reserves the body's bytes from
/// the buffer budget, then reads the body.
async fn read_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(ContentMode, Bytes, Reservation), IngestError> {
    let limits = &state.limits;
    // Refuse early on Content-Length: a client announcing too much is not kept.
    // hyper has read that header (and refused a request whose value is not a
    // number, or differs between two of them): the body's exact size is it,
    // without a second lookup and parse.
    let declared = axum::body::HttpBody::size_hint(&body).exact();
    if let Some(n) = declared.filter(|&n| n > limits.body) {
        linger(body, headers, limits, 0, Some(n));
        return Err(IngestError::TooLarge { limit: limits.body });
    }
    let mode = content_mode(headers)?;
    // A chunked body reserves its chunks as they come.
    let reserved = declared.unwrap_or(0);
    let buffered = state
        .budget
        .reserve(reserved)
        .ok_or_else(|| IngestError::Buffers {
            limit: state.budget.total(),
        })?;
    let (body, buffered) = collect_body(body, state, headers, buffered).await?;
    Ok((mode, body, buffered))
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
    for (index, event) in events.iter().enumerate() {
        event
            .check_lengths(limits.id, limits.source)
            .map_err(|error| match mode {
                ContentMode::Batch => IngestError::Batch(BatchError::Event { index, error }),
                _ => IngestError::Event(error),
            })?;
    }
    for event in &events {
        for name in event.long_extension_names() {
            tracing::warn!(event = %event, extension = name, "extension name longer than 20 characters");
        }
    }
    Ok(events)
}

/// Reads at most `limits.body` bytes within `limits.body_timeout`, reserving
/// what a chunked body brings beyond its reservation; a chunked body that grows
/// past the limit is refused as soon as it does.
async fn collect_body(
    mut body: Body,
    state: &AppState,
    headers: &HeaderMap,
    mut buffered: Reservation,
) -> Result<(Bytes, Reservation), IngestError> {
    let limits = &state.limits;
    // Set when a frame is first awaited: a small body has come with its
    // headers, and its frames are read without a clock read or a timer.
    let mut deadline = None;
    // A body of one frame (the common case) is kept without an allocation.
    let mut chunks: smallvec::SmallVec<[Bytes; 1]> = smallvec::SmallVec::new();
    let mut received: u64 = 0;
    let mut reserved = buffered.bytes();
    loop {
        let frame = match within(body.frame(), &mut deadline, limits.body_timeout).await {
            None => return Err(IngestError::BodyTimeout),
            Some(None) => break,
            Some(Some(Err(e))) => return Err(IngestError::Body(e.to_string())),
            Some(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing the router reads
        };
        received += data.len() as u64;
        if received > limits.body {
            linger(body, headers, limits, received, None);
            return Err(IngestError::TooLarge { limit: limits.body });
        }
        if received > reserved {
            if !buffered.grow(received - reserved) {
                return Err(IngestError::Buffers {
                    limit: state.budget.total(),
                });
            }
            reserved = received;
        }
        chunks.push(data);
    }
    buffered.shrink_to(received);
    let body = match chunks.as_mut_slice() {
        [one] => std::mem::take(one),
        chunks => {
            let mut joined = bytes::BytesMut::with_capacity(usize::try_from(received).unwrap_or(0));
            for chunk in chunks.iter() {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    Ok((body, buffered))
}

/// `future`'s output, or `None` once `deadline` has passed. The deadline is
/// `limit` after the first call that has to wait, and is kept for the calls
/// after it; a future ready at once makes neither it nor a timer (a clock
/// read, a clone of the runtime's handle and a timer entry).
async fn within<F: Future>(
    future: F,
    deadline: &mut Option<tokio::time::Instant>,
    limit: Duration,
) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(future.as_mut().poll(cx))).await;
    if let std::task::Poll::Ready(output) = first {
        return Some(output);
    }
    let at = *deadline.get_or_insert_with(|| tokio::time::Instant::now() + limit);
    tokio::time::timeout_at(at, future).await.ok()
}

/// Reads and throws away the rest of a refused body in the background (a
/// lingering close, as Go's server and nginx do), so that a client that sends
/// its whole body before reading the answer reads the 413 instead of a
/// connection reset, which it would take for a failure worth retrying. At most
/// [`LINGER_FACTOR`] times the body limit in all (`read` bytes of it were read
/// already) and for the body timeout; a body `announced` larger than that is
/// not read at all. A client that sent `Expect: 100-continue` has not sent its
/// body and is not invited to: its connection closes without a `100 Continue`.
fn linger(mut body: Body, headers: &HeaderMap, limits: &Limits, read: u64, announced: Option<u64>) {
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let most = limits.body.saturating_mul(LINGER_FACTOR);
    if expects_continue || announced.is_some_and(|n| n > most) {
        return;
    }
    let mut left = most.saturating_sub(read);
    let time = limits.body_timeout;
    tokio::spawn(async move {
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let n = frame.data_ref().map_or(0, |d| d.len() as u64);
                match left.checked_sub(n) {
                    Some(rest) => left = rest,
                    None => break,
                }
            }
        };
        let _ = tokio::time::timeout(time, drain).await;
    });
}
