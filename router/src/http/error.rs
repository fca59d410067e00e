//! Ingest errors and their HTTP answers: a status and a JSON body that names the
//! attribute (and, in a batch, the event's index).

use crate::event::EventError;
use crate::event::http::ModeError;
use crate::event::json::BatchError;
use crate::gate::GateError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request was refused before any event was routed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is larger than the configured limit.
    #[error("the request body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The client stopped sending the body, or sent it too slowly.
    #[error("the request body could not be read: {0}")]
    Body(String),
    /// The client took longer than the body timeout.
    #[error("the request body was not received within the body timeout")]
    BodyTimeout,
    /// The content type is not a CloudEvents mode the router reads.
    #[error(transparent)]
    Mode(#[from] ModeError),
    /// The single event is invalid.
    #[error("invalid CloudEvent: {0}")]
    Event(#[from] EventError),
    /// The batch is malformed, too large, or one of its events is invalid.
    #[error("invalid batch: {0}")]
    Batch(#[from] BatchError),
    /// An event's data does not satisfy the JSON Schema of its type.
    #[error("invalid data: {error}")]
    Schema {
        /// Position of the event in the request (0 for a single event).
        index: usize,
        /// The violation.
        error: crate::policy::schema::SchemaError,
    },
    /// The bodies being received fill the buffer budget
    /// (`server.max_buffered_bytes`): this one is not read.
    #[error(
        "overloaded: request bodies in progress fill the {limit}-byte buffer budget; retry later"
    )]
    Buffers {
        /// The budget, in bytes.
        limit: u64,
    },
    /// Credentials, rate limit or load shedding refused the request.
    #[error(transparent)]
    Gate(#[from] GateError),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    attribute: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_path: Option<&'a str>,
}

impl IngestError {
    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } | Self::Batch(BatchError::TooMany { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Body(_) | Self::Event(_) | Self::Batch(_) | Self::Schema { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Mode(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Gate(GateError::Unauthorized(_)) => StatusCode::UNAUTHORIZED,
            Self::Gate(GateError::Forbidden { .. }) => StatusCode::FORBIDDEN,
            Self::Gate(GateError::StructuredRequired { .. }) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Gate(GateError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
            Self::Gate(GateError::Overloaded(_) | GateError::ReplayStoreUnavailable)
            | Self::Buffers { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The `reason` label of the rejection metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } | Self::Batch(BatchError::TooMany { .. }) => "too_large",
            Self::Body(_) => "body",
            Self::BodyTimeout => "timeout",
            Self::Mode(_) => "unsupported_media_type",
            Self::Event(_) | Self::Batch(_) => "invalid",
            Self::Schema { .. } => "schema",
            Self::Gate(GateError::Unauthorized(_)) => "unauthorized",
            Self::Gate(GateError::Forbidden { .. }) => "forbidden",
            Self::Gate(GateError::StructuredRequired { .. }) => "unsupported_media_type",
            Self::Gate(GateError::RateLimited { .. }) => "rate_limited",
            Self::Gate(GateError::Overloaded(_)) | Self::Buffers { .. } => "overloaded",
            Self::Gate(GateError::ReplayStoreUnavailable) => "unavailable",
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let instance_path = match &self {
            Self::Schema { error, .. } => Some(error.instance_path.as_str()),
            _ => None,
        };
        let (attribute, index) = match &self {
            Self::Schema { index, .. } => (Some("data"), Some(*index)),
            Self::Event(e) => (e.attribute(), None),
            Self::Batch(BatchError::Event { index, error }) => (error.attribute(), Some(*index)),
            _ => (None, None),
        };
        let body = ErrorBody {
            error: self.to_string(),
            attribute,
            index,
            instance_path,
        };
        let mut response = (self.status(), Json(body)).into_response();
        let retry_after = match &self {
            Self::Gate(GateError::RateLimited { retry_after, .. }) => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            Self::Gate(GateError::Overloaded(_) | GateError::ReplayStoreUnavailable)
            | Self::Buffers { .. } => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        // Both are answered before the body was read (or all of it): the
        // connection cannot carry another request.
        if matches!(self, Self::TooLarge { .. } | Self::Buffers { .. }) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if matches!(self, Self::Gate(GateError::Unauthorized(_))) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self, Self::Mode(_)) {
            response.headers_mut().insert(
                header::ACCEPT,
                HeaderValue::from_static(
                    "application/cloudevents+json, application/cloudevents-batch+json",
                ),
            );
        }
        response
    }
}
