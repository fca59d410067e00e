//! Duplicate suppression: which (`source`, `id`) pairs were seen within a window.
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
    /// Marks `key` as seen for `window`; false when it was already seen within its
    /// window (a duplicate). At most `max_entries` keys are kept.
    pub fn first_sighting(&self, key: &str, window: Duration, max_entries: usize) -> bool {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expire(now, max_entries.saturating_sub(1));
        if inner.expiry.get(key).is_some_and(|&until| until > now) {
            return false;
        }
        let until = now + window;
        let key: Box<str> = key.into();
        inner.expiry.insert(key.clone(), until);
        inner.order.push_back((until, key));
        true
    }

    /// Forgets `key`, so that the event can be sent again (its delivery failed).
    pub fn forget(&self, key: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.expiry.remove(key);
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

/// Seen pairs kept in Redis (`SET key 1 NX PX window`), shared by every router
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

    /// Marks `key` for `window`; false when it was already marked. When Redis
    /// cannot answer, the event counts as new: delivering twice is better than
    /// dropping it.
    pub async fn first_sighting(&self, key: &str, window: Duration) -> bool {
        let mut conn = self.conn.clone();
        let command = redis::cmd("SET")
            .arg(format!("{}{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1))
            .to_owned();
        match tokio::time::timeout(self.timeout, command.query_async::<redis::Value>(&mut conn))
            .await
        {
            Ok(Ok(redis::Value::Nil)) => false,
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "dedup store unavailable; treating the event as new");
                true
            }
            Err(_) => {
                tracing::warn!("dedup store timed out; treating the event as new");
                true
            }
        }
    }

    /// Forgets `key`.
    pub async fn forget(&self, key: &str) {
        let mut conn = self.conn.clone();
        let command = redis::cmd("DEL")
            .arg(format!("{}{key}", self.prefix))
            .to_owned();
        if let Ok(Err(e)) | Err(e) =
            tokio::time::timeout(self.timeout, command.query_async::<u64>(&mut conn))
                .await
                .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "timed out")))
        {
            tracing::warn!(error = %e, "cannot forget a dedup key");
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
        assert!(seen.first_sighting("a", w, 10));
        assert!(!seen.first_sighting("a", w, 10));
        assert!(seen.first_sighting("b", w, 10));
        std::thread::sleep(Duration::from_millis(60));
        assert!(seen.first_sighting("a", w, 10), "the window has passed");
        seen.forget("a");
        assert!(seen.first_sighting("a", w, 10), "forgotten");
    }

    #[test]
    fn the_set_is_bounded_oldest_first() {
        let seen = Seen::default();
        let w = Duration::from_secs(3600);
        for i in 0..100 {
            assert!(seen.first_sighting(&i.to_string(), w, 10));
        }
        assert_eq!(seen.len(), 10);
        assert!(seen.first_sighting("0", w, 10), "the oldest was forgotten");
        assert!(!seen.first_sighting("99", w, 10), "the newest is kept");
    }
}
