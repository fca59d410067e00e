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
//! [`Dedup`] is the one type the dispatcher asks: it holds the global window and
//! one of two stores. In memory (the default), bounded and time-expiring: entries
//! leave after their window, and when the set is full the oldest leave first; the
//! set outlives reloads (each new runtime takes over the previous one's, see
//! [`Dedup::carry_over`]), so a reload does not reopen the window. In Redis
//! (`[delivery.dedup] store = "redis"`), shared by every router process.
//!
//! Both stores keep a [`Key`], a fixed-size digest of the pair (and the route),
//! never the attribute values: what a sender chooses as an id must not decide
//! how much memory (or Redis) the router spends remembering it.

use crate::redis::Redis;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Duplicate suppression as configured: the window of every event (if any), and
/// the store that remembers delivered pairs for it and for the routes' windows.
#[derive(Clone, Debug)]
pub struct Dedup {
    /// The window of every event (`[delivery.dedup] window`); routes may have
    /// their own.
    pub window: Option<Duration>,
    store: Store,
}

/// Where delivered pairs are remembered.
#[derive(Clone, Debug)]
enum Store {
    /// This process's memory, keeping at most `max_entries` keys.
    Memory {
        seen: Arc<MemorySeen>,
        max_entries: usize,
    },
    /// Redis.
    Redis(RedisSeen),
}

/// The most keys the memory store keeps unless `[delivery.dedup] max_entries`
/// says otherwise.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;

/// The memory store's size unless `[delivery.dedup] memory_limit` says otherwise.
pub const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;

/// The most memory one remembered key takes in the memory store, in bytes: its
/// slot in the hash table (a 16-byte digest, an 8-byte expiry and a control
/// byte, in a table at least 7/16 full: 57) and in the eviction queue (24 bytes
/// an entry, up to three entries a key counting the stale ones, in a queue at
/// least half full: 144), rounded up.
pub const ENTRY_BYTES: u64 = 208;

impl Default for Dedup {
    fn default() -> Self {
        Self::memory(None, DEFAULT_MAX_ENTRIES, DEFAULT_MEMORY_LIMIT)
    }
}

impl Dedup {
    /// In memory, with `window` for every event (`None`: only the routes' own),
    /// keeping at most `max_entries` keys and at most `memory_limit` bytes
    /// (counted as [`ENTRY_BYTES`] per key).
    pub fn memory(window: Option<Duration>, max_entries: usize, memory_limit: u64) -> Self {
        let by_memory = usize::try_from(memory_limit / ENTRY_BYTES).unwrap_or(usize::MAX);
        Self {
            window,
            store: Store::Memory {
                seen: Arc::default(),
                max_entries: max_entries.min(by_memory).max(1),
            },
        }
    }

    /// In Redis, keys starting with `prefix`, with `window` for every event.
    pub fn redis(window: Option<Duration>, redis: Redis, prefix: &str) -> Self {
        Self {
            window,
            store: Store::Redis(RedisSeen::new(redis, prefix)),
        }
    }

    /// Takes over `previous`'s memory set (a reload must not reopen the window);
    /// nothing to do for Redis, or when the store kind changed.
    pub fn carry_over(&mut self, previous: &Dedup) {
        if let (
            Store::Memory { seen, .. },
            Store::Memory {
                seen: previous_seen,
                ..
            },
        ) = (&mut self.store, &previous.store)
        {
            *seen = Arc::clone(previous_seen);
        }
    }

    /// Whether `key` was delivered within its window.
    pub async fn seen(&self, key: &Key) -> bool {
        match &self.store {
            Store::Memory { seen, .. } => seen.seen(key),
            // Boxed: the Redis round trip's future is large, and this path is
            // only taken when the Redis store is configured.
            Store::Redis(store) => Box::pin(store.seen(key)).await,
        }
    }

    /// Remembers `key` as delivered for `window`.
    pub async fn remember(&self, key: &Key, window: Duration) {
        match &self.store {
            Store::Memory { seen, max_entries } => seen.remember(key, window, *max_entries),
            Store::Redis(store) => Box::pin(store.remember(key, window)).await,
        }
    }
}

/// The pairs seen recently, in memory.
#[derive(Debug, Default)]
pub struct MemorySeen {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// When the store was made: expiries are kept as milliseconds since then,
    /// half the size of an `Instant`.
    epoch: Instant,
    /// Key -> when it expires.
    expiry: HashMap<Key, Millis>,
    /// Keys in the order they were marked, with their expiry, for eviction. A key
    /// unmarked or marked again leaves a stale entry here, skipped on eviction.
    order: VecDeque<(Millis, Key)>,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            expiry: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

/// Milliseconds since the store's epoch.
type Millis = u64;

/// What is remembered of an event: the first 128 bits of the SHA-256 of its
/// route scope, `source` and `id`, each preceded by its length so that no two
/// triples share an encoding. Fixed-size whatever the sender put in the
/// attributes; finding two pairs with the same key takes about 2^64 hashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key([u8; 16]);

/// The key of an event, optionally scoped to a route (`""`: the global window).
pub fn key(scope: &str, source: &str, id: &str) -> Key {
    use sha2::{Digest as _, Sha256};
    let mut hash = Sha256::new();
    for part in [scope, source, id] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    let digest: [u8; 32] = hash.finalize().into();
    let mut key = [0; 16];
    key.copy_from_slice(&digest[..16]);
    Key(key)
}

impl Key {
    /// The key in lowercase hex, as it is named in Redis.
    pub fn hex(&self) -> String {
        crate::digest::hex(&self.0)
    }
}

impl MemorySeen {
    /// Whether `key` was remembered within its window.
    pub fn seen(&self, key: &Key) -> bool {
        self.seen_at(key, Instant::now())
    }

    /// [`MemorySeen::seen`] as of `now`: the unit tests choose the time rather
    /// than sleep through a window.
    fn seen_at(&self, key: &Key, now: Instant) -> bool {
        let inner = crate::sync::lock(&self.inner);
        let now = inner.millis(now);
        inner.expiry.get(key).is_some_and(|&until| until > now)
    }

    /// Remembers `key` for `window` (its event was delivered). At most
    /// `max_entries` keys are kept.
    pub fn remember(&self, key: &Key, window: Duration, max_entries: usize) {
        self.remember_at(key, window, max_entries, Instant::now());
    }

    /// [`MemorySeen::remember`] as of `now`.
    fn remember_at(&self, key: &Key, window: Duration, max_entries: usize, now: Instant) {
        let mut inner = crate::sync::lock(&self.inner);
        let now = inner.millis(now);
        inner.expire(now, max_entries.saturating_sub(1));
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let until = now.saturating_add(window);
        inner.expiry.insert(*key, until);
        inner.order.push_back((until, *key));
    }

    /// How many keys are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        crate::sync::lock(&self.inner).expiry.len()
    }
}

impl Inner {
    fn millis(&self, at: Instant) -> Millis {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Drops expired keys, then the oldest until at most `keep` remain. Windows
    /// differ per route, so the queue is not sorted by expiry; an entry stays until
    /// the ones before it go, which the size bound keeps finite.
    fn expire(&mut self, now: Millis, keep: usize) {
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
#[derive(Clone, Debug)]
pub struct RedisSeen {
    redis: Redis,
    prefix: String,
}

impl RedisSeen {
    /// A store on `redis`; keys are `prefix` followed by the pair's key.
    pub fn new(redis: Redis, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    /// Whether `key` was remembered within its window. When Redis cannot answer,
    /// the event counts as new: delivering twice is better than dropping it.
    pub async fn seen(&self, key: &Key) -> bool {
        let command = redis::cmd("EXISTS")
            .arg(format!("{}{}", self.prefix, key.hex()))
            .to_owned();
        match self.redis.run::<u64>(&command).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!(error = %e, "dedup store unavailable; treating the event as new");
                false
            }
        }
    }

    /// Remembers `key` for `window` (its event was delivered).
    pub async fn remember(&self, key: &Key, window: Duration) {
        let command = redis::cmd("SET")
            .arg(format!("{}{}", self.prefix, key.hex()))
            .arg(1)
            .arg("PX")
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1))
            .to_owned();
        if let Err(e) = self.redis.run::<()>(&command).await {
            tracing::warn!(error = %e, "cannot remember a dedup key: a copy may be delivered again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str) -> Key {
        key("", "/s", name)
    }

    #[test]
    fn duplicates_within_the_window_only() {
        let seen = MemorySeen::default();
        let w = Duration::from_millis(50);
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert!(!seen.seen_at(&k("a"), t0));
        seen.remember_at(&k("a"), w, 10, t0);
        assert!(seen.seen_at(&k("a"), t0));
        assert!(seen.seen_at(&k("a"), at(49)), "still within the window");
        assert!(!seen.seen_at(&k("b"), at(1)));
        assert!(!seen.seen_at(&k("a"), at(50)), "the window has passed");
        // Remembered again (delivered again): a new window from then.
        seen.remember_at(&k("a"), w, 10, at(60));
        assert!(seen.seen_at(&k("a"), at(109)));
        assert!(!seen.seen_at(&k("a"), at(110)));
        // An expired key leaves the set when the next one is remembered.
        seen.remember_at(&k("b"), w, 10, at(200));
        assert_eq!(seen.len(), 1, "only b is kept");
    }

    #[test]
    fn the_set_is_bounded_oldest_first() {
        let seen = MemorySeen::default();
        let w = Duration::from_secs(3600);
        for i in 0..100 {
            seen.remember(&k(&i.to_string()), w, 10);
        }
        assert_eq!(seen.len(), 10);
        assert!(!seen.seen(&k("0")), "the oldest was forgotten");
        assert!(seen.seen(&k("99")), "the newest is kept");
    }

    #[test]
    fn keys_are_fixed_size_and_keep_the_parts_apart() {
        let long = "x".repeat(1 << 20);
        assert_eq!(key("", "/s", &long).hex().len(), 32);
        assert_ne!(key("", "/s", "1"), key("", "/s", "2"));
        assert_ne!(key("", "/s", "1"), key("r", "/s", "1"), "scoped per route");
        assert_ne!(key("", "a", "bc"), key("", "ab", "c"), "lengths are hashed");
        assert_eq!(key("r", "/s", "1"), key("r", "/s", "1"));
    }

    #[test]
    fn the_memory_limit_caps_the_entries() {
        let Store::Memory { max_entries, .. } =
            Dedup::memory(None, 1_000_000, 10 * ENTRY_BYTES).store
        else {
            unreachable!("a memory store")
        };
        assert_eq!(max_entries, 10);
    }
}
