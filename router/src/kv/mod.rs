//! The key-value store behind the `kv` interface of plugins: one namespace per
//! plugin, so that no plugin can read or change another's keys.
//!
//! In memory by default, shared by every runtime of the process (it outlives
//! instances and reloads, not restarts), with per-key expiry and limits on key
//! size, value size, keys and bytes per plugin, so that a guest cannot grow the
//! host without bound. Expired keys leave a few at a time on each write, soonest
//! first, so no call scans a plugin's keys; each plugin has its own lock. With
//! `[kv] store = "redis"` the keys live in Redis (`<prefix><plugin>:<key>`),
//! shared by every router process.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys one plugin may hold.
pub const MAX_KEYS_PER_PLUGIN: usize = 100_000;
/// Most bytes one plugin's keys may take in memory unless `[kv] memory_limit`
/// says otherwise.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 << 20;
/// What a key costs besides the bytes of its name and value: its slot in the
/// table, its expiry and its place in the expiry queue, counted generously.
pub const ENTRY_OVERHEAD: usize = 128;
/// Expired keys removed at most on each write, besides those a full store needs.
const SWEEP_PER_WRITE: usize = 8;

/// Why an operation failed; the message reaches the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("key of {0} bytes: keys are 1 to {MAX_KEY_BYTES} bytes")]
    Key(usize),
    /// The value is too large.
    #[error("value of {0} bytes is over the {MAX_VALUE_BYTES}-byte limit")]
    Value(usize),
    /// The plugin holds as many keys, or as many bytes, as it may.
    #[error(
        "the plugin's store is full (at most {MAX_KEYS_PER_PLUGIN} keys and `kv.memory_limit` bytes); keys make room when they expire or are deleted"
    )]
    Full,
    /// `increment` on a value that is not a decimal integer.
    #[error("the value of {0:?} is not an integer")]
    NotInteger(String),
    /// `increment` past the 64-bit range.
    #[error("incrementing {0:?} overflows 64 bits")]
    Overflow(String),
    /// The Redis store did not answer, or failed.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
}

/// The store a plugin's `kv` calls reach.
#[derive(Clone, Debug)]
pub enum Kv {
    /// This process's memory.
    Memory(MemoryKv),
    /// Redis.
    Redis(Arc<RedisKv>),
    /// A shadow version's scratch namespace over the live store (see
    /// [`ScratchKv`]).
    Scratch(Arc<ScratchKv>),
}

impl Default for Kv {
    fn default() -> Self {
        Self::memory(DEFAULT_MEMORY_LIMIT)
    }
}

/// The process's memory store, with the bytes each plugin may fill in it.
#[derive(Clone, Debug)]
pub struct MemoryKv {
    store: Arc<KvStore>,
    limit: usize,
}

impl MemoryKv {
    /// `store`, with `limit` bytes for each plugin.
    pub fn new(store: Arc<KvStore>, limit: u64) -> Self {
        Self {
            store,
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
    }
}

impl Kv {
    /// The process's memory store, each plugin holding at most `limit` bytes
    /// (names, values and [`ENTRY_OVERHEAD`] per key).
    pub fn memory(limit: u64) -> Self {
        Self::Memory(MemoryKv::new(KvStore::shared(), limit))
    }

    /// The value of `key` in `plugin`'s namespace.
    pub async fn get(&self, plugin: &Arc<str>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Self::Scratch(s) => s.get(plugin, key).await,
            Self::Memory(m) => m.store.get(plugin, key),
            Self::Redis(r) => {
                check_key(key)?;
                r.run(redis::cmd("GET").arg(r.key(plugin, key))).await
            }
        }
    }

    /// Sets `key`, expiring after `ttl` when given.
    pub async fn set(
        &self,
        plugin: &Arc<str>,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        match self {
            Self::Scratch(s) => {
                s.touch(key)?;
                s.scratch.set(plugin, key, value, ttl, s.limit)
            }
            Self::Memory(m) => m.store.set(plugin, key, value, ttl, m.limit),
            Self::Redis(r) => {
                check_key(key)?;
                if value.len() > MAX_VALUE_BYTES {
                    return Err(KvError::Value(value.len()));
                }
                let mut command = redis::cmd("SET");
                command.arg(r.key(plugin, key)).arg(value);
                if let Some(ttl) = ttl {
                    command
                        .arg("PX")
                        .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
                }
                r.run::<()>(&command).await
            }
        }
    }

    /// Removes `key`; true when it was set.
    pub async fn delete(&self, plugin: &Arc<str>, key: &str) -> Result<bool, KvError> {
        match self {
            Self::Scratch(s) => {
                let was = s.get(plugin, key).await?.is_some();
                s.touch(key)?;
                s.scratch.delete(plugin, key)?;
                Ok(was)
            }
            Self::Memory(m) => m.store.delete(plugin, key),
            Self::Redis(r) => {
                check_key(key)?;
                let n: u64 = r.run(redis::cmd("DEL").arg(r.key(plugin, key))).await?;
                Ok(n > 0)
            }
        }
    }

    /// Adds `delta` to the integer at `key` (0 when unset), keeping its expiry.
    pub async fn increment(
        &self,
        plugin: &Arc<str>,
        key: &str,
        delta: i64,
    ) -> Result<i64, KvError> {
        match self {
            Self::Scratch(s) => {
                // Copied first, so the increment starts from the live value.
                s.get(plugin, key).await?;
                s.touch(key)?;
                s.scratch.increment(plugin, key, delta, s.limit)
            }
            Self::Memory(m) => m.store.increment(plugin, key, delta, m.limit),
            Self::Redis(r) => {
                check_key(key)?;
                r.run(redis::cmd("INCRBY").arg(r.key(plugin, key)).arg(delta))
                    .await
                    .map_err(|e| match e {
                        KvError::Unavailable(m) if m.contains("not an integer") => {
                            KvError::NotInteger(key.to_owned())
                        }
                        KvError::Unavailable(m) if m.contains("overflow") => {
                            KvError::Overflow(key.to_owned())
                        }
                        other => other,
                    })
            }
        }
    }
}

/// A shadow version's store: its writes go to a namespace of its own, in this
/// process's memory, that is seeded by reads of the live store (copy on read),
/// so the shadow sees the live version's state and the live version never
/// sees the shadow's. A key the shadow wrote or deleted is never read from
/// the live store again. A value copied from the live store keeps no expiry.
#[derive(Debug)]
pub struct ScratchKv {
    live: Kv,
    scratch: KvStore,
    limit: usize,
    /// Keys the shadow holds in `scratch` (written, deleted or copied).
    touched: Mutex<std::collections::HashSet<String>>,
}

impl ScratchKv {
    /// A scratch namespace over `live`, each plugin holding at most `limit`
    /// bytes in it.
    pub fn new(live: Kv, limit: u64) -> Self {
        Self {
            live,
            scratch: KvStore::default(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            touched: Mutex::default(),
        }
    }

    /// Marks `key` as the shadow's own; refused past the key limit, which
    /// also bounds the tombstones of deleted keys.
    fn touch(&self, key: &str) -> Result<(), KvError> {
        check_key(key)?;
        let mut touched = crate::sync::lock(&self.touched);
        if !touched.contains(key) {
            if touched.len() >= MAX_KEYS_PER_PLUGIN {
                return Err(KvError::Full);
            }
            touched.insert(key.to_owned());
        }
        Ok(())
    }

    async fn get(&self, plugin: &Arc<str>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        if crate::sync::lock(&self.touched).contains(key) {
            return self.scratch.get(plugin, key);
        }
        // Boxed: `Kv::get` reaches this function again through the enum.
        let value = Box::pin(self.live.get(plugin, key)).await?;
        if let Some(value) = &value {
            self.touch(key)?;
            self.scratch
                .set(plugin, key, value.clone(), None, self.limit)?;
        }
        Ok(value)
    }
}

/// Keys in Redis: `<prefix><plugin>:<key>`.
#[derive(Debug)]
pub struct RedisKv {
    redis: crate::redis::Redis,
    prefix: String,
}

impl RedisKv {
    /// A store on `redis`; keys start with `prefix`.
    pub fn new(redis: crate::redis::Redis, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
        }
    }

    fn key(&self, plugin: &str, key: &str) -> String {
        format!("{}{plugin}:{key}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, KvError> {
        use crate::redis::CommandError;
        self.redis.run(command).await.map_err(|e| match e {
            CommandError::Redis(e) => KvError::Unavailable(e.to_string()),
            CommandError::Timeout(t) => KvError::Unavailable(format!("no answer within {t:?}")),
        })
    }
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

/// What a key with `value` costs against the plugin's memory limit.
fn cost(key: &str, value: &[u8]) -> usize {
    key.len() + value.len() + ENTRY_OVERHEAD
}

/// One plugin's keys.
#[derive(Debug, Default)]
struct Namespace {
    keys: HashMap<Arc<str>, Entry>,
    /// The keys that expire, soonest first. A key deleted or set again leaves
    /// its old item here, recognised as stale when its expiry no longer matches.
    expiries: BinaryHeap<Reverse<(Instant, Arc<str>)>>,
    /// What `keys` cost (see [`cost`]); the queue's items are in
    /// [`ENTRY_OVERHEAD`], and the names they keep alive are counted with their key.
    bytes: usize,
}

impl Namespace {
    /// Removes up to `most` expired keys, soonest first.
    fn sweep(&mut self, now: Instant, most: usize) {
        for _ in 0..most {
            match self.expiries.peek() {
                Some(Reverse((at, _))) if *at <= now => {}
                _ => return,
            }
            let Some(Reverse((at, key))) = self.expiries.pop() else {
                return;
            };
            if self.keys.get(&key).is_some_and(|e| e.expires == Some(at)) {
                self.remove(&key);
            }
        }
    }

    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.keys.remove(key)?;
        self.bytes -= cost(key, &entry.value);
        Some(entry)
    }

    /// Sets `key`, when the plugin's limits leave room for it (after removing
    /// what has expired, when needed).
    fn insert(
        &mut self,
        key: &str,
        value: Vec<u8>,
        expires: Option<Instant>,
        now: Instant,
        limit: usize,
    ) -> Result<(), KvError> {
        self.sweep(now, SWEEP_PER_WRITE);
        let fits = |ns: &Self| {
            let old = ns.keys.get(key).map(|e| cost(key, &e.value));
            let count_ok = old.is_some() || ns.keys.len() < MAX_KEYS_PER_PLUGIN;
            let bytes = ns.bytes - old.unwrap_or(0) + cost(key, &value);
            count_ok && bytes <= limit
        };
        if !fits(self) {
            // Only expired keys are visited, each once: the work is what expired.
            self.sweep(now, usize::MAX);
            if !fits(self) {
                return Err(KvError::Full);
            }
        }
        let old = self.remove(key).and_then(|e| e.expires);
        self.bytes += cost(key, &value);
        let key: Arc<str> = key.into();
        // An increment keeps the expiry, whose item is still queued.
        if let Some(at) = expires.filter(|&at| old != Some(at)) {
            self.expiries.push(Reverse((at, Arc::clone(&key))));
            self.compact();
        }
        self.keys.insert(key, Entry { value, expires });
        Ok(())
    }

    /// Drops stale expiry items once they outnumber the keys, so that a key set
    /// again and again with a long expiry does not grow the queue.
    fn compact(&mut self) {
        if self.expiries.len() > 2 * self.keys.len() + 1024 {
            let keys = &self.keys;
            self.expiries
                .retain(|Reverse((at, key))| keys.get(key).is_some_and(|e| e.expires == Some(*at)));
        }
    }
}

/// The store: plugin name -> its keys, each plugin behind its own lock.
#[derive(Debug, Default)]
pub struct KvStore {
    namespaces: Mutex<HashMap<Arc<str>, Arc<Mutex<Namespace>>>>,
}

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        Err(KvError::Key(key.len()))
    } else {
        Ok(())
    }
}

impl KvStore {
    /// The store of this process.
    pub fn shared() -> Arc<KvStore> {
        static STORE: LazyLock<Arc<KvStore>> = LazyLock::new(Arc::default);
        Arc::clone(&STORE)
    }

    fn with<T>(&self, plugin: &Arc<str>, f: impl FnOnce(&mut Namespace, Instant) -> T) -> T {
        let namespace = {
            let mut namespaces = crate::sync::lock(&self.namespaces);
            Arc::clone(namespaces.entry(Arc::clone(plugin)).or_default())
        };
        let mut keys = crate::sync::lock(&namespace);
        f(&mut keys, Instant::now())
    }

    /// The value of `key` in `plugin`'s namespace.
    pub fn get(&self, plugin: &Arc<str>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        Ok(self.with(plugin, |ns, now| {
            ns.keys
                .get(key)
                .filter(|e| e.live(now))
                .map(|e| e.value.clone())
        }))
    }

    /// Sets `key`, expiring after `ttl` when given, if `plugin`'s keys then
    /// take at most `limit` bytes.
    pub fn set(
        &self,
        plugin: &Arc<str>,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
        limit: usize,
    ) -> Result<(), KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::Value(value.len()));
        }
        self.with(plugin, |ns, now| {
            // A TTL past what an `Instant` can hold never expires.
            let expires = ttl.and_then(|t| now.checked_add(t));
            ns.insert(key, value, expires, now, limit)
        })
    }

    /// Removes `key`; true when it was set (and live).
    pub fn delete(&self, plugin: &Arc<str>, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.with(plugin, |ns, now| {
            ns.remove(key).is_some_and(|e| e.live(now))
        }))
    }

    /// Adds `delta` to the integer at `key` (0 when unset), keeping its expiry.
    pub fn increment(
        &self,
        plugin: &Arc<str>,
        key: &str,
        delta: i64,
        limit: usize,
    ) -> Result<i64, KvError> {
        check_key(key)?;
        self.with(plugin, |ns, now| {
            let (current, expires) = match ns.keys.get(key).filter(|e| e.live(now)) {
                Some(entry) => {
                    let text = std::str::from_utf8(&entry.value).unwrap_or("");
                    let n: i64 = text
                        .parse()
                        .map_err(|_| KvError::NotInteger(key.to_owned()))?;
                    (n, entry.expires)
                }
                None => (0, None),
            };
            let next = current
                .checked_add(delta)
                .ok_or_else(|| KvError::Overflow(key.to_owned()))?;
            ns.insert(key, next.to_string().into_bytes(), expires, now, limit)?;
            Ok(next)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: usize = DEFAULT_MEMORY_LIMIT as usize;

    #[test]
    fn a_plugin_holds_at_most_its_memory_limit_and_expired_keys_make_room() {
        let store = KvStore::default();
        let (p, other): (Arc<str>, Arc<str>) = ("p".into(), "other".into());
        let limit = 4 * (1000 + ENTRY_OVERHEAD + 2);
        let value = || vec![0; 1000];
        for i in 0..4 {
            store
                .set(&p, &format!("k{i}"), value(), None, limit)
                .unwrap();
        }
        assert_eq!(
            store.set(&p, "k4", value(), None, limit),
            Err(KvError::Full),
            "a fifth value is over the limit"
        );
        assert!(
            store.set(&p, "k0", value(), None, limit).is_ok(),
            "replacing a key takes no more room"
        );
        assert!(
            store.set(&other, "k4", value(), None, limit).is_ok(),
            "the limit is per plugin"
        );
        store.delete(&p, "k3").unwrap();
        store
            .set(&p, "t", value(), Some(Duration::from_millis(1)), limit)
            .unwrap();
        assert_eq!(
            store.set(&p, "k5", value(), None, limit),
            Err(KvError::Full)
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(
            store.set(&p, "k5", value(), None, limit).is_ok(),
            "the expired key made room"
        );
        assert_eq!(store.increment(&p, "n", 1, limit), Err(KvError::Full));
    }

    #[test]
    fn expired_keys_leave_a_few_at_a_time_without_a_full_store() {
        let store = KvStore::default();
        let p: Arc<str> = "p".into();
        for i in 0..100 {
            store
                .set(
                    &p,
                    &format!("k{i}"),
                    vec![1],
                    Some(Duration::from_millis(1)),
                    L,
                )
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
        store.set(&p, "x", vec![1], None, L).unwrap();
        let left = store.with(&p, |ns, _| ns.keys.len());
        assert_eq!(
            left,
            101 - SWEEP_PER_WRITE,
            "one write removes a few expired keys"
        );
        for i in 0..20 {
            store.set(&p, &format!("y{i}"), vec![1], None, L).unwrap();
        }
        let (left, bytes, counted) = store.with(&p, |ns, _| {
            let counted: usize = ns.keys.iter().map(|(k, e)| cost(k, &e.value)).sum();
            (ns.keys.len(), ns.bytes, counted)
        });
        assert_eq!(left, 21, "every expired key is gone");
        assert_eq!(bytes, counted, "the bytes follow the keys");
    }

    #[test]
    fn increments_keep_one_expiry_item() {
        let store = KvStore::default();
        let p: Arc<str> = "p".into();
        store
            .set(&p, "n", b"0".to_vec(), Some(Duration::from_secs(60)), L)
            .unwrap();
        for _ in 0..10_000 {
            store.increment(&p, "n", 1, L).unwrap();
        }
        assert_eq!(store.with(&p, |ns, _| ns.expiries.len()), 1);
        assert_eq!(store.get(&p, "n").unwrap(), Some(b"10000".to_vec()));
    }

    #[test]
    fn namespaces_are_separate_and_values_expire() {
        let store = KvStore::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        store.set(&a, "k", b"1".to_vec(), None, L).unwrap();
        assert_eq!(store.get(&a, "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(&b, "k").unwrap(), None, "another plugin's key");
        assert_eq!(store.increment(&b, "k", 5, L).unwrap(), 5);
        assert_eq!(store.increment(&a, "k", -3, L).unwrap(), -2);
        assert!(store.delete(&a, "k").unwrap());
        assert!(!store.delete(&a, "k").unwrap());
        store
            .set(&a, "t", b"x".to_vec(), Some(Duration::from_millis(20)), L)
            .unwrap();
        assert!(store.get(&a, "t").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(store.get(&a, "t").unwrap(), None);
    }

    /// A shadow's store reads the live one until it holds the key itself,
    /// and nothing it writes or deletes reaches the live one.
    #[tokio::test]
    async fn a_scratch_namespace_copies_on_read_and_never_writes_the_live_one() {
        let live = Kv::Memory(MemoryKv::new(Arc::new(KvStore::default()), L as u64));
        let p: Arc<str> = "p".into();
        live.set(&p, "n", b"5".to_vec(), None).await.unwrap();
        live.set(&p, "gone", b"x".to_vec(), None).await.unwrap();
        let scratch = Kv::Scratch(Arc::new(ScratchKv::new(live.clone(), L as u64)));
        assert_eq!(
            scratch.increment(&p, "n", 1).await,
            Ok(6),
            "from the live value"
        );
        assert_eq!(live.get(&p, "n").await.unwrap(), Some(b"5".to_vec()));
        assert!(scratch.delete(&p, "gone").await.unwrap());
        assert_eq!(scratch.get(&p, "gone").await.unwrap(), None);
        assert_eq!(live.get(&p, "gone").await.unwrap(), Some(b"x".to_vec()));
        scratch.set(&p, "new", b"1".to_vec(), None).await.unwrap();
        assert_eq!(live.get(&p, "new").await.unwrap(), None);
        live.set(&p, "n", b"100".to_vec(), None).await.unwrap();
        assert_eq!(
            scratch.get(&p, "n").await.unwrap(),
            Some(b"6".to_vec()),
            "the shadow's own copy"
        );
        live.set(&p, "later", b"7".to_vec(), None).await.unwrap();
        assert_eq!(
            scratch.get(&p, "later").await.unwrap(),
            Some(b"7".to_vec()),
            "a key the shadow never held is read from the live store"
        );
    }

    #[test]
    fn limits_and_bad_values_are_errors() {
        let store = KvStore::default();
        let p: Arc<str> = "p".into();
        assert_eq!(store.get(&p, ""), Err(KvError::Key(0)));
        assert!(matches!(
            store.set(&p, &"k".repeat(2000), vec![], None, L),
            Err(KvError::Key(2000))
        ));
        assert!(matches!(
            store.set(&p, "big", vec![0; MAX_VALUE_BYTES + 1], None, L),
            Err(KvError::Value(_))
        ));
        store.set(&p, "text", b"abc".to_vec(), None, L).unwrap();
        assert!(matches!(
            store.increment(&p, "text", 1, L),
            Err(KvError::NotInteger(_))
        ));
        store
            .set(&p, "max", i64::MAX.to_string().into_bytes(), None, L)
            .unwrap();
        assert!(matches!(
            store.increment(&p, "max", 1, L),
            Err(KvError::Overflow(_))
        ));
    }
}
