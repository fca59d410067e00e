//! The one question every failure below the delivery layer answers: may another
//! attempt succeed? A leaf module, so that `forward` and `plugin` implement it
//! beside their error types without importing `delivery`, the layer above them.

use std::time::Duration;

/// An error that says whether trying again may help.
pub trait Retryable {
    /// Whether another attempt may succeed.
    fn is_retryable(&self) -> bool;
    /// How long the target asked to be left alone, if it did.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
