//! The key-value store behind the `kv` interface of plugins: one namespace per
//! plugin, so that no plugin can read or change another's keys.
//!
//! In memory by default, shared by every runtime of the process (it outlives
//! instances and reloads, not restarts), with per-key expiry and limits on key
//! size, value size and keys per plugin, so that a guest cannot grow the host
//! without bound. With `[kv] store = "redis"` the keys live in Redis
//! (`<prefix><plugin>:<key>`), shared by every router process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most keys one plugin may hold.
pub const MAX_KEYS_PER_PLUGIN: usize = 100_000;

/// Why an operation failed; the message reaches the guest.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    /// The key is empty or too long.
    #[error("key of {0} bytes: keys are 1 to {MAX_KEY_BYTES} bytes")]
    Key(usize),
    /// The value is too large.
    #[error("value of {0} bytes is over the {MAX_VALUE_BYTES}-byte limit")]
    Value(usize),
    /// The plugin holds too many keys.
    #[error("the plugin already holds {MAX_KEYS_PER_PLUGIN} keys")]
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
    Memory(Arc<KvStore>),
    /// Redis.
    Redis(Arc<RedisKv>),
}

impl Default for Kv {
    fn default() -> Self {
        Self::Memory(KvStore::shared())
    }
}

impl Kv {
    /// The value of `key` in `plugin`'s namespace.
    pub async fn get(&self, plugin: &Arc<str>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        match self {
            Self::Memory(m) => m.get(plugin, key),
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
            Self::Memory(m) => m.set(plugin, key, value, ttl),
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
            Self::Memory(m) => m.delete(plugin, key),
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
            Self::Memory(m) => m.increment(plugin, key, delta),
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

/// The store: plugin name -> key -> entry.
#[derive(Debug, Default)]
pub struct KvStore {
    namespaces: Mutex<HashMap<Arc<str>, HashMap<String, Entry>>>,
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

    fn with<T>(
        &self,
        plugin: &Arc<str>,
        f: impl FnOnce(&mut HashMap<String, Entry>, Instant) -> T,
    ) -> T {
        let mut namespaces = crate::sync::lock(&self.namespaces);
        let keys = namespaces.entry(Arc::clone(plugin)).or_default();
        f(keys, Instant::now())
    }

    /// The value of `key` in `plugin`'s namespace.
    pub fn get(&self, plugin: &Arc<str>, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        check_key(key)?;
        Ok(self.with(plugin, |keys, now| {
            keys.get(key)
                .filter(|e| e.live(now))
                .map(|e| e.value.clone())
        }))
    }

    /// Sets `key`, expiring after `ttl` when given.
    pub fn set(
        &self,
        plugin: &Arc<str>,
        key: &str,
        value: Vec<u8>,
        ttl: Option<Duration>,
    ) -> Result<(), KvError> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(KvError::Value(value.len()));
        }
        self.with(plugin, |keys, now| {
            make_room(keys, key, now)?;
            keys.insert(
                key.to_owned(),
                Entry {
                    value,
                    expires: ttl.map(|t| now + t),
                },
            );
            Ok(())
        })
    }

    /// Removes `key`; true when it was set (and live).
    pub fn delete(&self, plugin: &Arc<str>, key: &str) -> Result<bool, KvError> {
        check_key(key)?;
        Ok(self.with(plugin, |keys, now| {
            keys.remove(key).is_some_and(|e| e.live(now))
        }))
    }

    /// Adds `delta` to the integer at `key` (0 when unset), keeping its expiry.
    pub fn increment(&self, plugin: &Arc<str>, key: &str, delta: i64) -> Result<i64, KvError> {
        check_key(key)?;
        self.with(plugin, |keys, now| {
            let (current, expires) = match keys.get(key).filter(|e| e.live(now)) {
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
            make_room(keys, key, now)?;
            keys.insert(
                key.to_owned(),
                Entry {
                    value: next.to_string().into_bytes(),
                    expires,
                },
            );
            Ok(next)
        })
    }
}

/// Makes sure `key` can be inserted: drops expired keys when the namespace is
/// full, and refuses a new key when it is still full.
fn make_room(keys: &mut HashMap<String, Entry>, key: &str, now: Instant) -> Result<(), KvError> {
    if keys.len() < MAX_KEYS_PER_PLUGIN || keys.contains_key(key) {
        return Ok(());
    }
    keys.retain(|_, e| e.live(now));
    if keys.len() < MAX_KEYS_PER_PLUGIN {
        Ok(())
    } else {
        Err(KvError::Full)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_separate_and_values_expire() {
        let store = KvStore::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        store.set(&a, "k", b"1".to_vec(), None).unwrap();
        assert_eq!(store.get(&a, "k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(store.get(&b, "k").unwrap(), None, "another plugin's key");
        assert_eq!(store.increment(&b, "k", 5).unwrap(), 5);
        assert_eq!(store.increment(&a, "k", -3).unwrap(), -2);
        assert!(store.delete(&a, "k").unwrap());
        assert!(!store.delete(&a, "k").unwrap());
        store
            .set(&a, "t", b"x".to_vec(), Some(Duration::from_millis(20)))
            .unwrap();
        assert!(store.get(&a, "t").unwrap().is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(store.get(&a, "t").unwrap(), None);
    }

    #[test]
    fn limits_and_bad_values_are_errors() {
        let store = KvStore::default();
        let p: Arc<str> = "p".into();
        assert_eq!(store.get(&p, ""), Err(KvError::Key(0)));
        assert!(matches!(
            store.set(&p, &"k".repeat(2000), vec![], None),
            Err(KvError::Key(2000))
        ));
        assert!(matches!(
            store.set(&p, "big", vec![0; MAX_VALUE_BYTES + 1], None),
            Err(KvError::Value(_))
        ));
        store.set(&p, "text", b"abc".to_vec(), None).unwrap();
        assert!(matches!(
            store.increment(&p, "text", 1),
            Err(KvError::NotInteger(_))
        ));
        store
            .set(&p, "max", i64::MAX.to_string().into_bytes(), None)
            .unwrap();
        assert!(matches!(
            store.increment(&p, "max", 1),
            Err(KvError::Overflow(_))
        ));
    }
}
