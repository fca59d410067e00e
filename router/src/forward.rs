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
    /// The sink answered with a redirect, which is not followed: the router
    /// posts only to the URL it was configured with, so a sink cannot send
    /// events (and their payloads) somewhere else, such as the admin API.
    #[error("{url} answered {status} redirecting to {location}; redirects are not followed")]
    Redirect {
        /// The sink.
        url: String,
        /// Its answer (3xx).
        status: u16,
        /// Its `Location` header, escaped and cut short, or `(none)`.
        location: String,
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
            // A sink being moved or in maintenance may answer a redirect for a
            // while: retried like an unavailable sink, then dead-lettered.
            Self::Redirect { .. } | Self::Timeout { .. } | Self::Unreachable { .. } => true,
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

/// The HTTP client of everything that posts on the router's behalf (forwards,
/// dead-letter sinks): requests time out after `timeout`, and redirects are
/// never followed, so a 3xx reaches the caller as the answer it is.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Fails only when the TLS backend cannot start, at start-up, where
        // `reqwest::Client::new()` (used before) would panic as well; falling
        // back to a default client would follow redirects again.
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// The `Location` of a redirect answer, for an error message: escaped, at most
/// 200 characters, `(none)` when absent.
pub fn redirect_location(headers: &http::HeaderMap) -> String {
    const MAX: usize = 200;
    let Some(value) = headers.get(http::header::LOCATION) else {
        return "(none)".to_owned();
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let mut shown: String = crate::event::Escaped(&text).to_string();
    if shown.chars().count() > MAX {
        shown = shown.chars().take(MAX).collect::<String>() + "...";
    }
    shown
}

/// An HTTP client with a connection pool shared by every forward route.
#[derive(Clone)]
pub struct Forwarder {
    client: reqwest::Client,
}

impl Forwarder {
    /// A forwarder whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: client(timeout),
        }
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
            Ok(response) if response.status().is_redirection() => Err(ForwardError::Redirect {
                url: url.to_owned(),
                status: response.status().as_u16(),
                location: redirect_location(response.headers()),
            }),
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
    fn a_redirect_names_its_location_escaped_and_bounded() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(redirect_location(&headers), "(none)");
        headers.insert(
            http::header::LOCATION,
            http::HeaderValue::from_bytes(b"http://x/\ty").unwrap(),
        );
        assert_eq!(redirect_location(&headers), "http://x/\\ty");
        let long = "a".repeat(5000);
        headers.insert(http::header::LOCATION, long.parse().unwrap());
        assert_eq!(redirect_location(&headers).len(), 203);
        let e = ForwardError::Redirect {
            url: "http://sink/".into(),
            status: 307,
            location: "http://elsewhere/".into(),
        };
        assert!(e.is_retryable());
        assert_eq!(
            e.to_string(),
            "http://sink/ answered 307 redirecting to http://elsewhere/; redirects are not followed"
        );
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
