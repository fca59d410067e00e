//! Duplicate suppression: which (`source`, `id`) pairs were delivered within a
//! window.
//!
//! A pair is remembered once its delivery succeeded, not when it arrives: a
//! router that crashes while delivering (or a delivery that fails) leaves no mark,
//! so the redelivery or the sender's retry is delivered instead of being dropped
//! as a duplicate of an event that never got through. The price is that two
//! copies arriving while the first is still being delivered are both delivered:
//! at least once, never lost.
//!
//! In memory, bounded and time-expiring: entries leave after their window, and
//! when the set is full the oldest leave first. The set outlives reloads (the
//! dispatcher owns it), so a reload does not reopen the window.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The pairs seen recently.
#[derive(Debug, Default)]
pub struct Seen {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Key -> when it expires.
    expiry: HashMap<Box<str>, Instant>,
    /// Keys in the order they were marked, with their expiry, for eviction. A key
    /// unmarked or marked again leaves a stale entry here, skipped on eviction.
    order: VecDeque<(Instant, Box<str>)>,
}

/// The key of an event, optionally scoped to a route: `\0` cannot occur in an
/// attribute value the router accepted, so keys cannot collide.
pub fn key(scope: &str, source: &str, id: &str) -> String {
    format!("{scope}\0{source}\0{id}")
}

impl Seen {
    /// Whether `key` was remembered within its window.
    pub fn seen(&self, key: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner
            .expiry
            .get(key)
            .is_some_and(|&until| until > Instant::now())
    }

    /// Remembers `key` for `window` (its event was delivered). At most
    /// `max_entries` keys are kept.
    pub fn remember(&self, key: &str, window: Duration, max_entries: usize) {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expire(now, max_entries.saturating_sub(1));
        let until = now + window;
        let key: Box<str> = key.into();
        inner.expiry.insert(key.clone(), until);
        inner.order.push_back((until, key));
    }

    /// How many keys are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expiry
            .len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Drops expired keys, then the oldest until at most `keep` remain. Windows
    /// differ per route, so the queue is not sorted by expiry; an entry stays until
    /// the ones before it go, which the size bound keeps finite.
    fn expire(&mut self, now: Instant, keep: usize) {
        while let Some((until, key)) = self.order.front() {
            let stale = self.expiry.get(key) != Some(until);
            if stale || *until <= now || self.expiry.len() > keep {
                if !stale {
                    self.expiry.remove(key);
                }
                self.order.pop_front();
            } else {
                break;
            }
        }
        // Stale entries behind live ones: compact when they dominate.
        if self.order.len() > 2 * self.expiry.len() + 1024 {
            let expiry = &self.expiry;
            self.order
                .retain(|(until, key)| expiry.get(key) == Some(until));
        }
    }
}

/// Delivered pairs kept in Redis (`SET key 1 PX window`), shared by every router
/// process that points at the same server.
#[derive(Clone)]
pub struct RedisSeen {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisSeen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSeen")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl RedisSeen {
    /// A store on the Redis at `url`; keys are `prefix` followed by the pair's key.
    pub fn new(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let timeout = Duration::from_secs(1);
        Ok(Self {
            conn: crate::queue::lazy_connection(&redis::Client::open(url)?, timeout, None)?,
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    /// Whether `key` was remembered within its window. When Redis cannot answer,
    /// the event counts as new: delivering twice is better than dropping it.
    pub async fn seen(&self, key: &str) -> bool {
        let mut conn = self.conn.clone();
        let command = redis::cmd("EXISTS")
            .arg(format!("{}{key}", self.prefix))
            .to_owned();
        match tokio::time::timeout(self.timeout, command.query_async::<u64>(&mut conn)).await {
            Ok(Ok(n)) => n > 0,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "dedup store unavailable; treating the event as new");
                false
            }
            Err(_) => {
                tracing::warn!("dedup store timed out; treating the event as new");
                false
            }
        }
    }

    /// Remembers `key` for `window` (its event was delivered).
    pub async fn remember(&self, key: &str, window: Duration) {
        let mut conn = self.conn.clone();
        let command = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1))
            .to_owned();
        if let Ok(Err(e)) | Err(e) =
            tokio::time::timeout(self.timeout, command.query_async::<()>(&mut conn))
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
        {
            tracing::warn!(error = %e, "cannot remember a dedup key: a copy may be delivered again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_only() {
        let seen = Seen::default();
        let w = Duration::from_millis(50);
        assert!(!seen.seen("a"));
        seen.remember("a", w, 10);
        assert!(seen.seen("a"));
        assert!(!seen.seen("b"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!seen.seen("a"), "the window has passed");
    }

    #[test]
    fn the_set_is_bounded_oldest_first() {
        let seen = Seen::default();
        let w = Duration::from_secs(3600);
        for i in 0..100 {
            seen.remember(&i.to_string(), w, 10);
        }
        assert_eq!(seen.len(), 10);
        assert!(!seen.seen("0"), "the oldest was forgotten");
        assert!(seen.seen("99"), "the newest is kept");
    }
}
