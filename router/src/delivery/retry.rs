//! Retrying one target of a route: capped exponential or linear backoff with full
//! jitter, a maximum number of attempts and a maximum age (whichever comes first),
//! and a target's `Retry-After` honoured up to a maximum.

use crate::clock::coarse_now;
use crate::config::{BackoffKind, RetryPolicy};
use prometheus_client::metrics::counter::Counter;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

pub use crate::retryable::Retryable;

/// Why the attempts stopped without success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GaveUp {
    /// The error was permanent: no retry was made.
    NotRetryable,
    /// `max_attempts` attempts failed.
    MaxAttempts,
    /// The next attempt would have started past `max_age`.
    MaxAge,
}

/// The attempts made for one target. Times are monotonic instants, turned into
/// wall-clock times by [`Attempts::wall`] only when a record needs them: every
/// delivery makes one attempt, and reading the wall clock twice for each was a
/// measurable part of a WASM call.
#[derive(Clone, Copy, Debug)]
pub struct Attempts {
    /// How many were made.
    pub count: u32,
    /// When the first started.
    pub first: Instant,
    /// When the last started.
    pub last: Instant,
    /// Why they stopped, when the last one failed.
    pub gave_up: Option<GaveUp>,
}

impl Attempts {
    /// One attempt, just now, that cannot be retried (a failed transform, a
    /// handler past the hop limit).
    pub fn once() -> Self {
        let now = Instant::now();
        Self {
            count: 1,
            first: now,
            last: now,
            gave_up: Some(GaveUp::NotRetryable),
        }
    }

    /// Whichever of `self` and `other` made more attempts (`self` on a tie).
    pub fn most(self, other: Self) -> Self {
        if other.count > self.count {
            other
        } else {
            self
        }
    }

    /// The wall-clock time of `at`, one of these attempts' instants.
    pub fn wall(at: Instant) -> SystemTime {
        let now = SystemTime::now();
        now.checked_sub(at.elapsed()).unwrap_or(now)
    }
}

/// The delay before the attempt after failed attempt number `attempt` (1-based),
/// before jitter: `base * 2^(attempt-1)` or `base * attempt`, capped.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let raw = match policy.backoff {
        BackoffKind::Exponential => {
            let factor = 1u32
                .checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX);
            policy.base.saturating_mul(factor)
        }
        BackoffKind::Linear => policy.base.saturating_mul(attempt),
    };
    raw.min(policy.cap)
}

/// The delay actually slept: full jitter (uniform in `[0, backoff]`), but never
/// less than the target's `Retry-After`, itself capped at `retry_after_max`.
pub fn delay(policy: &RetryPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = backoff(policy, attempt);
    let jittered = Duration::from_nanos(fastrand::u64(
        0..=u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX),
    ));
    match retry_after {
        Some(asked) => jittered.max(asked.min(policy.retry_after_max)),
        None => jittered,
    }
}

/// Runs `attempt` until it succeeds, fails permanently, or the policy's attempts
/// or age run out; counts each retry in `retried`.
pub async fn run<T, E, F, Fut>(
    policy: &RetryPolicy,
    retried: &Counter,
    mut attempt: F,
) -> (Result<T, E>, Attempts)
where
    E: Retryable,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // Coarse: an age of seconds or more, and a time in a dead letter; read
    // for every delivery.
    let started = coarse_now();
    let mut attempts = Attempts {
        count: 0,
        first: started,
        last: started,
        gave_up: None,
    };
    loop {
        attempts.count += 1;
        if attempts.count > 1 {
            attempts.last = coarse_now();
        }
        let error = match attempt().await {
            Ok(value) => return (Ok(value), attempts),
            Err(error) => error,
        };
        let gave_up = if !error.is_retryable() {
            Some(GaveUp::NotRetryable)
        } else if attempts.count >= policy.max_attempts {
            Some(GaveUp::MaxAttempts)
        } else {
            let wait = delay(policy, attempts.count, error.retry_after());
            if coarse_now().saturating_duration_since(started) + wait > policy.max_age {
                Some(GaveUp::MaxAge)
            } else {
                retried.inc();
                tokio::time::sleep(wait).await;
                None
            }
        };
        if let Some(reason) = gave_up {
            // One attempt and no retry configured is the ordinary failure, not a
            // policy giving up.
            attempts.gave_up = Some(reason);
            return (Err(error), attempts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(kind: BackoffKind) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            max_age: Duration::from_secs(60),
            backoff: kind,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            attempt_timeout: None,
            retry_after_max: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let e = policy(BackoffKind::Exponential);
        let ms = |p: &RetryPolicy, n| backoff(p, n).as_millis();
        assert_eq!(
            [ms(&e, 1), ms(&e, 2), ms(&e, 3), ms(&e, 4), ms(&e, 5)],
            [100, 200, 400, 800, 1000]
        );
        assert_eq!(ms(&e, 200), 1000, "no overflow for large attempt numbers");
        let l = policy(BackoffKind::Linear);
        assert_eq!(
            [ms(&l, 1), ms(&l, 2), ms(&l, 3), ms(&l, 20)],
            [100, 200, 300, 1000]
        );
    }

    #[test]
    fn jitter_stays_in_range_and_retry_after_is_a_floor_up_to_its_cap() {
        let p = policy(BackoffKind::Exponential);
        for _ in 0..1000 {
            assert!(delay(&p, 3, None) <= Duration::from_millis(400));
            let d = delay(&p, 1, Some(Duration::from_secs(2)));
            assert!(d >= Duration::from_secs(2), "{d:?}");
            let d = delay(&p, 1, Some(Duration::from_secs(3600)));
            assert_eq!(d, Duration::from_secs(5), "capped at retry_after_max");
        }
    }
}
