//! The error a handler returns when it cannot handle an event.

use crate::bindings::router::plugin::types as wit;
use std::fmt;

/// Why a plugin could not handle an event.
///
/// The variant tells the router what to do next: a [`Retryable`](Self::Retryable)
/// error is retried as the route's delivery policy says, a [`Fatal`](Self::Fatal)
/// one goes straight to the dead-letter sink. The message ends up in the router's
/// log and in the dead letter, so name the event and the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerError {
    /// A transient failure (a dependency is down, a limit was hit): the router may
    /// deliver the same event again later.
    Retryable(String),
    /// A permanent failure (bad input, a broken invariant): delivering the same
    /// event again cannot help.
    Fatal(String),
}

impl HandlerError {
    /// A [`Retryable`](Self::Retryable) error with `message`.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A [`Fatal`](Self::Fatal) error with `message`.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }

    /// Whether the router may deliver the event again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::Retryable(message) | Self::Fatal(message) => message,
        }
    }

    pub(crate) fn into_wit(self) -> wit::HandlerError {
        match self {
            Self::Retryable(message) => wit::HandlerError::Retryable(message),
            Self::Fatal(message) => wit::HandlerError::Fatal(message),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(message) => write!(f, "retryable: {message}"),
            Self::Fatal(message) => write!(f, "fatal: {message}"),
        }
    }
}

impl std::error::Error for HandlerError {}

/// JSON that does not parse or encode is fatal: the same bytes fail the same way
/// on every delivery. This is what lets `?` work on `serde_json` calls.
impl From<serde_json::Error> for HandlerError {
    fn from(error: serde_json::Error) -> Self {
        Self::Fatal(format!("invalid JSON: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_build_the_matching_variant() {
        let retry = HandlerError::retryable("database is down");
        assert_eq!(retry, HandlerError::Retryable("database is down".into()));
        assert!(retry.is_retryable());
        assert_eq!(retry.message(), "database is down");
        assert_eq!(retry.to_string(), "retryable: database is down");

        let fatal = HandlerError::fatal("no orderId");
        assert!(!fatal.is_retryable());
        assert_eq!(fatal.to_string(), "fatal: no orderId");
    }

    #[test]
    fn json_errors_are_fatal() {
        let error = serde_json::from_str::<u32>("nope").unwrap_err();
        let error = HandlerError::from(error);
        assert!(!error.is_retryable());
        assert!(error.message().starts_with("invalid JSON: "), "{error}");
    }

    #[test]
    fn converts_to_the_wit_variant() {
        assert_eq!(
            HandlerError::retryable("r").into_wit(),
            wit::HandlerError::Retryable("r".into())
        );
        assert_eq!(
            HandlerError::fatal("f").into_wit(),
            wit::HandlerError::Fatal("f".into())
        );
    }
}
