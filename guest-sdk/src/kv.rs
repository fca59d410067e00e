//! A key-value store private to the plugin: no other plugin can read or change its
//! keys. It outlives instances and reloads, so it is where state between events
//! belongs (a stock level, a projection, "already seen").
//!
//! ```
//! use router_guest::kv;
//!
//! kv::set("greeting", b"hello", None).unwrap();
//! assert_eq!(kv::get("greeting").unwrap().as_deref(), Some(&b"hello"[..]));
//! assert_eq!(kv::increment("visits", 2).unwrap(), 2);
//! assert!(kv::delete("greeting").unwrap());
//! ```
//!
//! Outside WebAssembly (in a plugin's unit tests) the store is an in-memory map per
//! thread, that is per test; [`testing::clear_kv`](crate::testing::clear_kv)
//! empties it.

use crate::HandlerError;
use std::time::Duration;

/// Why a key-value operation failed (a key or value over the limits, a value
/// that is not an integer for [`increment`], the store unavailable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError(pub String);

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key-value store: {}", self.0)
    }
}

impl std::error::Error for KvError {}

impl From<KvError> for HandlerError {
    /// A failed store operation is worth retrying: the store may be back, or the
    /// value fixed, by then.
    fn from(e: KvError) -> Self {
        HandlerError::retryable(e.to_string())
    }
}

/// The value of `key`, if it is set and has not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::get(key).map_err(KvError);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_get(key).map_err(KvError);
}

/// Sets `key` to `value`, expiring after `ttl` when given.
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
    let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::set(key, value, ttl_ms).map_err(KvError);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_set(key, value, ttl_ms).map_err(KvError);
}

/// Removes `key`; true when it was set.
pub fn delete(key: &str) -> Result<bool, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::delete(key).map_err(KvError);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_delete(key).map_err(KvError);
}

/// Adds `delta` to the integer at `key` (0 when unset), atomically, and returns
/// the new value.
pub fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::increment(key, delta).map_err(KvError);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_increment(key, delta).map_err(KvError);
}
