//! `[delivery]`: retries, the dead-letter sink and duplicate suppression, with the
//! per-route `retry` and `dedup` overrides.

use super::{ByteSize, ConfigError, Duration, Source};
use serde::Deserialize;
use std::path::PathBuf;

/// `[delivery]`: defaults for every route, and the process-wide sinks.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// `[delivery.retry]`: how every route retries unless it says otherwise.
    #[serde(default)]
    pub retry: RetrySpec,
    /// `[delivery.dead_letter]`: where events go once their retries are spent.
    #[serde(default)]
    pub dead_letter: Option<DeadLetterSpec>,
    /// `[delivery.dedup]`: drop an event whose (`source`, `id`) was already seen.
    #[serde(default)]
    pub dedup: Option<DedupSpec>,
}

/// Retry settings; every key is optional so that a route's `retry` table overrides
/// the `[delivery.retry]` defaults key by key.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included (1: no retry).
    pub max_attempts: Option<u32>,
    /// No attempt starts later than this after the first one.
    pub max_age: Option<Duration>,
    /// `exponential` (base, 2 base, 4 base ...) or `linear` (base, 2 base, 3 base ...),
    /// each capped and with full jitter.
    pub backoff: Option<BackoffKind>,
    /// The first delay before jitter.
    pub backoff_base: Option<Duration>,
    /// The largest delay before jitter.
    pub backoff_cap: Option<Duration>,
    /// The time limit of one attempt (a forward's request, a handler's call).
    pub attempt_timeout: Option<Duration>,
    /// The longest `Retry-After` from a forward target that is honoured.
    pub retry_after_max: Option<Duration>,
}

/// How the delay grows between attempts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackoffKind {
    /// Doubles each time.
    #[default]
    Exponential,
    /// Grows by the base each time.
    Linear,
}

/// The resolved retry policy of one route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, at least 1.
    pub max_attempts: u32,
    /// No attempt starts later than this after the first.
    pub max_age: std::time::Duration,
    /// How delays grow.
    pub backoff: BackoffKind,
    /// The first delay.
    pub base: std::time::Duration,
    /// The largest delay.
    pub cap: std::time::Duration,
    /// The time limit of one attempt, if any beyond the targets' own.
    pub attempt_timeout: Option<std::time::Duration>,
    /// The longest honoured `Retry-After`.
    pub retry_after_max: std::time::Duration,
}

impl RetrySpec {
    /// This spec's values, falling back to `defaults`, then to the built-in ones:
    /// one attempt (no retry, as Knative without `retry`), exponential from 100 ms
    /// capped at 10 s, at most 5 minutes in all, `Retry-After` honoured up to 60 s.
    pub fn resolve(&self, defaults: &RetrySpec) -> RetryPolicy {
        let ms = std::time::Duration::from_millis;
        let pick = |own: Option<Duration>, default: Option<Duration>, builtin| {
            own.or(default).map_or(builtin, |d| d.0)
        };
        RetryPolicy {
            max_attempts: self
                .max_attempts
                .or(defaults.max_attempts)
                .unwrap_or(1)
                .max(1),
            max_age: pick(self.max_age, defaults.max_age, ms(300_000)),
            backoff: self.backoff.or(defaults.backoff).unwrap_or_default(),
            base: pick(self.backoff_base, defaults.backoff_base, ms(100)),
            cap: pick(self.backoff_cap, defaults.backoff_cap, ms(10_000)),
            attempt_timeout: self
                .attempt_timeout
                .or(defaults.attempt_timeout)
                .map(|d| d.0),
            retry_after_max: pick(self.retry_after_max, defaults.retry_after_max, ms(60_000)),
        }
    }
}

/// `[delivery.dead_letter]`: exactly one of `file`, `url` and `stream`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSpec {
    /// An append-only JSON-lines file (relative to the configuration file); the
    /// router can list, show and redrive its entries.
    pub file: Option<PathBuf>,
    /// An HTTP endpoint that receives each dead letter as a structured CloudEvent.
    pub url: Option<String>,
    /// A Redis stream, on `redis` (or `[queue] url`); listable and redrivable like a
    /// file, and shared by every router process.
    pub stream: Option<String>,
    /// The Redis server of a `stream` sink.
    pub redis: Option<String>,
}

/// A route's `append` target: exactly one of `file` and `stream`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppendSpec {
    /// A JSON-lines file (relative to the configuration file): one structured
    /// CloudEvent per line.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// A Redis stream: one entry per event.
    #[serde(default)]
    pub stream: Option<String>,
    /// The Redis server of a `stream`; `[queue] url` when absent.
    #[serde(default)]
    pub redis: Option<String>,
}

/// `[delivery.dedup]`, and the per-route `dedup` window.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DedupSpec {
    /// How long an (`source`, `id`) pair is remembered, e.g. `24h`.
    pub window: Duration,
    /// The most pairs remembered in memory; the oldest are forgotten first.
    #[serde(default = "default_dedup_entries")]
    pub max_entries: usize,
    /// The most memory the in-memory pairs take; each takes a fixed size (a
    /// digest), whatever the length of its `source` and `id`.
    #[serde(default = "default_dedup_memory")]
    pub memory_limit: ByteSize,
    /// `memory` (this process) or `redis` (shared by every router process).
    #[serde(default)]
    pub store: DedupStore,
    /// The Redis server of a `redis` store; `[queue] url` when absent.
    #[serde(default)]
    pub url: Option<String>,
}

/// Where seen (`source`, `id`) pairs are kept.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DedupStore {
    /// In this process's memory: bounded, time-expiring, lost on restart.
    #[default]
    Memory,
    /// In Redis (`SET NX PX`): shared by every router process, kept across restarts.
    Redis,
}

fn default_dedup_entries() -> usize {
    1_000_000
}

fn default_dedup_memory() -> ByteSize {
    ByteSize(128 << 20)
}

impl DeliveryConfig {
    /// Checks the dead-letter sink and the dedup store (their Redis URLs are
    /// checked when the runtime builds them). The retry defaults are checked with
    /// the routes' overrides, by [`RetrySpec::validate`].
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if let Some(dl) = &self.dead_letter {
            dl.validate(source, errors);
        }
        if let Some(d) = &self.dedup {
            d.validate(source, errors);
        }
    }
}

impl RetrySpec {
    /// Checks the values; `path` is the table's TOML path.
    pub fn validate(&self, source: &Source, path: &str, errors: &mut Vec<ConfigError>) {
        if self.max_attempts == Some(0) {
            errors.push(source.error(
                None,
                format!("{path}.max_attempts"),
                "must be at least 1 (1 attempt means no retry)",
            ));
        }
        if let (Some(base), Some(cap)) = (self.backoff_base, self.backoff_cap)
            && base > cap
        {
            errors.push(source.error(
                None,
                format!("{path}.backoff_base"),
                format!("{base} is above backoff_cap ({cap})"),
            ));
        }
    }
}

impl DeadLetterSpec {
    /// Checks that exactly one sink is named, and its URL's syntax.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        let set = [
            self.file.is_some(),
            self.url.is_some(),
            self.stream.is_some(),
        ];
        if set.iter().filter(|&&b| b).count() != 1 {
            errors.push(source.error(
                None,
                "delivery.dead_letter",
                "set exactly one of `file`, `url` and `stream`",
            ));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            errors.push(source.error(
                None,
                "delivery.dead_letter.url",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
    }
}

impl DedupSpec {
    /// Checks the size; a Redis store's URL is checked when the store is built.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.max_entries == 0 {
            errors.push(source.error(None, "delivery.dedup.max_entries", "must be at least 1"));
        }
        if self.memory_limit.0 < 1024 {
            errors.push(source.error(None, "delivery.dedup.memory_limit", "must be at least 1KiB"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_values_override_defaults_key_by_key() {
        let defaults: RetrySpec =
            toml::from_str("max_attempts = 5\nbackoff_base = \"1s\"").unwrap();
        let route: RetrySpec = toml::from_str("max_attempts = 2\nbackoff = \"linear\"").unwrap();
        let p = route.resolve(&defaults);
        assert_eq!(p.max_attempts, 2);
        assert_eq!(p.backoff, BackoffKind::Linear);
        assert_eq!(p.base, std::time::Duration::from_secs(1));
        assert_eq!(p.cap, std::time::Duration::from_secs(10));
        let none = RetrySpec::default().resolve(&RetrySpec::default());
        assert_eq!(none.max_attempts, 1);
    }
}
