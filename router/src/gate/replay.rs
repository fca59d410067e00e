//! Replay detection for Standard Webhooks: the ids of accepted requests, kept
//! until their timestamp leaves the tolerance, in memory or in Redis.
//!
//! An id is claimed when its signature checks out (so two copies in flight at
//! once cannot both pass) and kept only when the request is accepted: a claim
//! dropped without [`Claim::keep`] (an error answer, a client gone) releases
//! the id, so the sender's retry with the same id passes, as the specification
//! requires.

use super::GateError;
use crate::redis::Redis;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the ids are remembered.
pub(crate) enum ReplayStore {
    /// This process's memory, bounded in entries (fixed-size digests).
    Memory(Mutex<MemoryIds>),
    /// Redis (`SET NX PX`), shared by every router pointing at it.
    Redis {
        /// The server.
        redis: Redis,
        /// Keys are this followed by the hex digest.
        prefix: String,
    },
}

/// Ids in memory: digest to (expiry, claim number), and the claims oldest first.
pub(crate) struct MemoryIds {
    expiry: HashMap<[u8; 32], (Instant, u64)>,
    order: VecDeque<([u8; 32], u64)>,
    next: u64,
    max: usize,
}

impl MemoryIds {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            expiry: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            max: max.max(1),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Records `key` until `until`, unless it is there and not expired. The
    /// oldest claims go first when full, and expired ones as they reach the front.
    fn claim(&mut self, key: [u8; 32], until: Instant, now: Instant) -> Option<u64> {
        if self.expiry.get(&key).is_some_and(|(at, _)| *at > now) {
            return None;
        }
        while let Some((front, n)) = self.order.front().copied() {
            match self.expiry.get(&front) {
                // Released, or claimed again since: this entry is stale.
                Some((_, m)) if *m != n => {}
                None => {}
                Some((at, _)) if *at <= now || self.expiry.len() >= self.max => {
                    self.expiry.remove(&front);
                }
                Some(_) => break,
            }
            self.order.pop_front();
        }
        let n = self.next;
        self.next += 1;
        self.expiry.insert(key, (until, n));
        self.order.push_back((key, n));
        Some(n)
    }

    fn release(&mut self, key: &[u8; 32], n: u64) {
        if self.expiry.get(key).is_some_and(|(_, m)| *m == n) {
            self.expiry.remove(key);
        }
        // The stale entry of `order` goes when it reaches the front; bound it
        // here too, so many releases cannot grow it.
        if self.order.len() > self.max.saturating_mul(2) {
            let expiry = &self.expiry;
            self.order
                .retain(|(k, n)| expiry.get(k).is_some_and(|(_, m)| m == n));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.expiry.len()
    }
}

/// A webhook id claimed by a request in flight; released when dropped unless kept.
pub struct Claim {
    store: Arc<ReplayStore>,
    key: [u8; 32],
    token: u64,
    kept: bool,
}

impl Claim {
    /// The request was accepted: the id stays remembered until it expires.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        match &*self.store {
            ReplayStore::Memory(ids) => crate::sync::lock(ids).release(&self.key, self.token),
            ReplayStore::Redis { redis, prefix } => {
                // Deleted only if it is still this claim's value.
                let command = redis::cmd("EVAL")
                    .arg("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
                    .arg(1)
                    .arg(redis_key(prefix, &self.key))
                    .arg(self.token)
                    .to_owned();
                let redis = redis.clone();
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        if let Err(e) = redis.run::<i64>(&command).await {
                            tracing::warn!(error = %e, "cannot release a webhook id: a retry of it will be refused as a replay until it expires");
                        }
                    });
                }
            }
        }
    }
}

fn redis_key(prefix: &str, key: &[u8; 32]) -> String {
    format!("{prefix}{}", crate::digest::hex(key))
}

impl ReplayStore {
    /// Claims `key` for `ttl`, or refuses it as a replay. When Redis cannot
    /// answer, the request is refused with a 503: accepting it would give up
    /// replay protection while Redis is down.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        key: [u8; 32],
        ttl: Duration,
    ) -> Result<Claim, GateError> {
        let token = match &**self {
            ReplayStore::Memory(ids) => {
                let now = Instant::now();
                crate::sync::lock(ids).claim(key, now + ttl, now)
            }
            ReplayStore::Redis { redis, prefix } => {
                let token = fastrand::u64(..);
                let command = redis::cmd("SET")
                    .arg(redis_key(prefix, &key))
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
                    .to_owned();
                match redis.run::<Option<String>>(&command).await {
                    Ok(Some(_)) => Some(token),
                    Ok(None) => None,
                    Err(e) => {
                        tracing::warn!(error = %e, "the webhook replay store does not answer");
                        return Err(GateError::ReplayStoreUnavailable);
                    }
                }
            }
        };
        let token = token.ok_or(GateError::Unauthorized("replayed webhook-id"))?;
        Ok(Claim {
            store: Arc::clone(self),
            key,
            token,
            kept: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> [u8; 32] {
        [i; 32]
    }

    #[test]
    fn a_full_store_forgets_the_oldest_never_the_newest() {
        let mut ids = MemoryIds::new(2);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(600);
        assert!(ids.claim(key(1), later, t0).is_some());
        assert!(ids.claim(key(2), later, t0).is_some());
        assert!(ids.claim(key(3), later, t0).is_some(), "full: 1 goes");
        assert_eq!(ids.len(), 2);
        assert!(ids.claim(key(3), later, t0).is_none(), "the newest is kept");
        assert!(ids.claim(key(2), later, t0).is_none());
        assert!(ids.claim(key(1), later, t0).is_some(), "the oldest went");
    }

    #[test]
    fn released_ids_pass_again_and_expired_ones_go() {
        let mut ids = MemoryIds::new(10);
        let t0 = Instant::now();
        let n = ids.claim(key(1), t0 + Duration::from_secs(1), t0).unwrap();
        assert!(ids.claim(key(1), t0 + Duration::from_secs(1), t0).is_none());
        ids.release(&key(1), n);
        let m = ids.claim(key(1), t0 + Duration::from_secs(1), t0).unwrap();
        // A stale release (an older claim's) does not free the newer one.
        ids.release(&key(1), n);
        assert!(ids.claim(key(1), t0 + Duration::from_secs(1), t0).is_none());
        let t1 = t0 + Duration::from_secs(2);
        assert!(ids.claim(key(2), t1 + Duration::from_secs(1), t1).is_some());
        assert_eq!(ids.len(), 1, "the expired id left: {m}");
        assert!(ids.claim(key(1), t1 + Duration::from_secs(1), t1).is_some());
    }

    #[tokio::test]
    async fn a_claim_dropped_unkept_is_released() {
        let store = Arc::new(ReplayStore::Memory(Mutex::new(MemoryIds::new(10))));
        let ttl = Duration::from_secs(60);
        drop(store.claim(key(1), ttl).await.unwrap());
        store.claim(key(1), ttl).await.unwrap().keep();
        assert_eq!(
            store.claim(key(1), ttl).await.err(),
            Some(GateError::Unauthorized("replayed webhook-id"))
        );
    }
}
