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
