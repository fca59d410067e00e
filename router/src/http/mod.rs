//! The HTTP surface: `POST /events` (ingest), `GET /healthz`, and `/admin/*`.

mod admin;
mod error;

pub use error::IngestError;

use crate::dispatch::{Dispatcher, EventReport, Failure};
use crate::event::Event;
use crate::event::http::{ContentMode, content_mode, decode_binary};
use crate::event::json::{decode_batch, decode_structured};
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
    /// Ingest limits.
    pub limits: Limits,
}

/// Limits applied to every ingest request.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest body, in bytes.
    pub body: u64,
    /// Most events per batch.
    pub batch: usize,
    /// Longest time to receive the body.
    pub body_timeout: Duration,
}

/// The router's HTTP application, without the listener: tests drive it directly.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route(
            "/events",
            post(ingest).fallback(|method: Method| async move { method_not_allowed(&method) }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/admin/plugins", get(admin::plugins))
        .route("/admin/routes", get(admin::routes))
        .route("/admin/reload", post(admin::reload))
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
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    response
}

/// The answer to an ingest request: one report per event, in request order.
#[derive(Serialize)]
struct IngestResponse {
    events: Vec<EventReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    match read_events(&state.limits, &headers, body).await {
        Ok(events) => {
            let reports = join_all(
                events
                    .into_iter()
                    .map(|event| state.dispatcher.dispatch(event)),
            )
            .await;
            respond(reports)
        }
        Err(e) => {
            tracing::debug!(error = %e, "refused a request");
            e.into_response()
        }
    }
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

async fn read_events(
    limits: &Limits,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<Event>, IngestError> {
    // Refuse early on Content-Length: a client announcing too much is not read at all.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body) {
        return Err(IngestError::TooLarge { limit: limits.body });
    }
    let mode = content_mode(headers)?;
    let body = read_body(body, limits).await?;
    Ok(match mode {
        ContentMode::Binary => vec![decode_binary(headers, body)?],
        ContentMode::Structured => vec![decode_structured(&body)?],
        ContentMode::Batch => decode_batch(&body, limits.batch)?,
    })
    .inspect(|events: &Vec<Event>| {
        for event in events {
            for name in event.long_extension_names() {
                tracing::warn!(event = %event, extension = name, "extension name longer than 20 characters");
            }
        }
    })
}

/// Reads at most `limits.body` bytes within `limits.body_timeout`; chunked bodies
/// that grow past the limit are cut off as soon as they do.
async fn read_body(body: Body, limits: &Limits) -> Result<Bytes, IngestError> {
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
