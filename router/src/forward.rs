//! Forward sinks: events POSTed to an HTTP endpoint in CloudEvents binary mode.

use crate::event::Event;
use crate::event::http::encode_binary;
use std::time::Duration;

/// Why a forward failed. Which failures are worth retrying follows the Knative
/// data-plane contract: timeouts, connection errors, 404, 409, 429 and 5xx.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The sink answered with a status that is not 2xx.
    #[error("{url} answered {status}")]
    Status {
        /// The sink.
        url: String,
        /// Its answer.
        status: u16,
        /// How long it asked the sender to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
    /// No answer within the forward timeout.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The sink.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The request could not be sent (connection refused, reset ...).
    #[error("{url} could not be reached: {reason}")]
    Unreachable {
        /// The sink.
        url: String,
        /// What the client reported.
        reason: String,
    },
}

impl ForwardError {
    /// Whether sending again might succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { status, .. } => matches!(status, 404 | 409 | 429 | 500..),
            Self::Timeout { .. } | Self::Unreachable { .. } => true,
        }
    }
}

impl crate::retryable::Retryable for ForwardError {
    fn is_retryable(&self) -> bool {
        ForwardError::is_retryable(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An HTTP client with a connection pool shared by every forward route.
#[derive(Clone)]
pub struct Forwarder {
    client: reqwest::Client,
}

impl Forwarder {
    /// A forwarder whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// POSTs `event` to `url` in binary mode; a 2xx answer is success.
    pub async fn send(
        &self,
        url: &str,
        event: &Event,
        timeout: Duration,
    ) -> Result<(), ForwardError> {
        let (mut headers, body) = encode_binary(event);
        // This hop's span, child of the trace the event travels in.
        if let Some(tp) = event
            .extension(crate::trace::TRACEPARENT)
            .and_then(crate::trace::TraceParent::parse)
            && let Ok(value) = http::HeaderValue::from_str(&tp.child().to_string())
        {
            headers.insert(crate::trace::TRACEPARENT, value);
            if let Some(state) = event
                .extension(crate::trace::TRACESTATE)
                .and_then(|s| http::HeaderValue::from_str(s).ok())
            {
                headers.insert(crate::trace::TRACESTATE, state);
            }
        }
        let result = self
            .client
            .post(url)
            .headers(headers)
            .body(body)
            .timeout(timeout)
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => Err(ForwardError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
                retry_after: response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after),
            }),
            Err(e) if e.is_timeout() => Err(ForwardError::Timeout {
                url: url.to_owned(),
                timeout,
            }),
            Err(e) => Err(ForwardError::Unreachable {
                url: url.to_owned(),
                reason: error_chain(&e),
            }),
        }
    }
}

/// `Retry-After`: delay-seconds or an HTTP-date (RFC 9110 section 10.2.3).
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_statuses_follow_knative() {
        let status = |s| ForwardError::Status {
            url: String::new(),
            status: s,
            retry_after: None,
        };
        for s in [404, 409, 429, 500, 503] {
            assert!(status(s).is_retryable(), "{s}");
        }
        for s in [400, 401, 403, 413] {
            assert!(!status(s).is_retryable(), "{s}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed > Duration::from_secs(110) && parsed <= Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
