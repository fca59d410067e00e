//! The circuit breaker of a plugin: consecutive traps and timeouts pause it.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counts consecutive traps and timeouts; past the threshold the plugin refuses
/// events until the cooldown has passed.
pub(super) struct Breaker {
    /// Failures in a row that pause the plugin; 0 never pauses it.
    threshold: u32,
    /// How long a pause lasts.
    cooldown: Duration,
    /// The origin of `paused_until_ms`.
    epoch: Instant,
    consecutive: AtomicU32,
    /// Milliseconds since `epoch` until which the plugin is paused; 0 when not.
    paused_until_ms: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` failures in a row, for
    /// `cooldown`.
    pub(super) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            epoch: Instant::now(),
            consecutive: AtomicU32::new(0),
            paused_until_ms: AtomicU64::new(0),
        }
    }

    /// How long the plugin stays paused, if it is.
    pub(super) fn paused_for(&self) -> Option<Duration> {
        let until = self.paused_until_ms.load(Ordering::Relaxed);
        // 0: never paused, or a pause seen over; no clock read on every call.
        if until == 0 {
            return None;
        }
        let now = self.now_ms();
        if until > now {
            return Some(Duration::from_millis(until - now));
        }
        let _ =
            self.paused_until_ms
                .compare_exchange(until, 0, Ordering::Relaxed, Ordering::Relaxed);
        None
    }

    /// Counts a trap or timeout; the number of failures in a row when this one
    /// paused the plugin.
    pub(super) fn failed(&self) -> Option<u32> {
        let failures = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if self.threshold == 0 || failures < self.threshold {
            return None;
        }
        let cooldown = u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX);
        self.paused_until_ms
            .store(self.now_ms().saturating_add(cooldown), Ordering::Relaxed);
        self.consecutive.store(0, Ordering::Relaxed);
        Some(failures)
    }

    /// Ends a run of failures.
    pub(super) fn succeeded(&self) {
        // Read first: a store on every call would take the line from the
        // other cores' caches, though it almost always holds 0 already.
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}
