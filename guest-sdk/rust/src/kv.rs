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

/// Why a key-value operation failed. The variant says whether the same call can
/// succeed later ([`KvError::is_retryable`]); the message says why it failed.
///
/// `?` in a handler turns it into the matching [`HandlerError`]: a bad key or
/// value is [`Fatal`](HandlerError::Fatal) (delivering the event again makes the
/// same call), a full or unavailable store [`Retryable`](HandlerError::Retryable).
/// Match on it to do otherwise:
///
/// ```
/// use router_guest::kv::{self, KvError};
///
/// kv::set("stock", b"many", None).unwrap();
/// match kv::increment("stock", -1) {
///     Err(KvError::InvalidValue(_)) => kv::set("stock", b"0", None).unwrap(),
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvError {
    /// The key is empty or longer than 1024 bytes.
    InvalidKey(String),
    /// The value cannot be used: over 1 MiB for [`set`], or for [`increment`]
    /// not a decimal integer or past the 64-bit range.
    InvalidValue(String),
    /// The plugin holds as many keys as it may; the call may succeed once keys
    /// expire or are deleted.
    QuotaExceeded(String),
    /// The store did not answer, or failed; the call may succeed later.
    Unavailable(String),
}

impl KvError {
    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::QuotaExceeded(_) | Self::Unavailable(_))
    }

    /// The message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Self::InvalidKey(message)
            | Self::InvalidValue(message)
            | Self::QuotaExceeded(message)
            | Self::Unavailable(message) => message,
        }
    }
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "key-value store: {}", self.message())
    }
}

impl std::error::Error for KvError {}

impl From<KvError> for HandlerError {
    /// Retryable when the same call may succeed later, fatal otherwise.
    fn from(e: KvError) -> Self {
        if e.is_retryable() {
            HandlerError::retryable(e.to_string())
        } else {
            HandlerError::fatal(e.to_string())
        }
    }
}

#[cfg(target_arch = "wasm32")]
impl From<crate::bindings::router::plugin::kv::KvError> for KvError {
    fn from(e: crate::bindings::router::plugin::kv::KvError) -> Self {
        use crate::bindings::router::plugin::kv::KvError as Wit;
        match e {
            Wit::InvalidKey(message) => Self::InvalidKey(message),
            Wit::InvalidValue(message) => Self::InvalidValue(message),
            Wit::QuotaExceeded(message) => Self::QuotaExceeded(message),
            Wit::Unavailable(message) => Self::Unavailable(message),
        }
    }
}

/// The value of `key`, if it is set and has not expired.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::get(key).map_err(KvError::from);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_get(key);
}

/// Sets `key` to `value`, expiring after `ttl` when given.
pub fn set(key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
    let ttl_ms = ttl.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::set(key, value, ttl_ms).map_err(KvError::from);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_set(key, value, ttl_ms);
}

/// Removes `key`; true when it was set.
pub fn delete(key: &str) -> Result<bool, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::delete(key).map_err(KvError::from);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_delete(key);
}

/// Adds `delta` to the integer at `key` (0 when unset), atomically, and returns
/// the new value.
pub fn increment(key: &str, delta: i64) -> Result<i64, KvError> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::router::plugin::kv::increment(key, delta).map_err(KvError::from);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::kv_increment(key, delta);
}
