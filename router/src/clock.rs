//! Cheap time for what is done on every request: a coarse clock for
//! deadlines measured in seconds.
//!
//! `Instant::now()` reads the TSC through the vDSO (about 18 ns on the 2-core
//! VM of the benchmarks); the coarse clock reads the time of the last scheduler
//! tick (about 3.5 ns), at most a tick (1 to 10 ms) behind.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Now, to within a scheduler tick: for deadlines and ages of seconds (a retry
/// policy's `max_age`), not for durations that are measured.
pub fn coarse_now() -> Instant {
    // `Instant` has no constructor from a time of the clock: the coarse clock
    // is measured from the moment this first ran.
    static ORIGIN: OnceLock<(Instant, Duration)> = OnceLock::new();
    let (origin, at) = *ORIGIN.get_or_init(|| (Instant::now(), coarse()));
    origin + coarse().saturating_sub(at)
}

#[cfg(target_os = "linux")]
fn coarse() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[cfg(not(target_os = "linux"))]
fn coarse() -> Duration {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coarse_clock_keeps_up_with_the_precise_one() {
        // Warmed up, and then some time for the clocks to drift apart.
        coarse_now();
        std::thread::sleep(Duration::from_millis(50));
        // Bounds that a preemption between the reads only loosens: a tick
        // behind and a tick ahead at most (the origin's lag), 10 ms each.
        let before = Instant::now();
        let coarse = coarse_now();
        let after = Instant::now();
        assert!(
            coarse + Duration::from_millis(20) >= before,
            "{coarse:?} {before:?}"
        );
        assert!(
            coarse <= after + Duration::from_millis(20),
            "{coarse:?} {after:?}"
        );
    }
}
