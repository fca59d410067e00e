//! The circuit breaker of a plugin.

use std::sync::atomic::{AtomicU32, AtomicU64};

/// Counts consecutive traps and timeouts; past the threshold the plugin refuses
/// events until the cooldown has passed.
#[derive(Default)]
pub(super) struct Breaker {
    pub(super) consecutive: AtomicU32,
    /// Milliseconds since `epoch` until which the plugin is paused; 0 when not.
    pub(super) paused_until_ms: AtomicU64,
}
