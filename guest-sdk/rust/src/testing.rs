//! Running a plugin's handler natively, in its unit tests.
//!
//! The host interfaces exist only inside the router, so outside WebAssembly the
//! SDK stands in for them: [`config::get`](crate::config::get) reads the values
//! set here and [`log`](crate::log) writes to stderr. A handler is a plain
//! function, so a test calls it directly:
//!
//! ```
//! use router_guest::{Event, HandlerError, config, testing};
//!
//! fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
//!     let region = config::get_or("region", "unknown");
//!     Ok(vec![event.derive("e-2", "t.seen").with_extension("region", region)])
//! }
//!
//! testing::set_config("region", "eu-west-1");
//! let out = handle(Event::new("e-1", "/test", "t")).unwrap();
//! assert_eq!(out[0].extension("region"), Some("eu-west-1"));
//! ```
//!
//! Run the tests for the host, not for wasm32-wasip2:
//! `cargo test --manifest-path plugins/Cargo.toml -p my-plugin`.

use crate::kv::KvError;
use std::cell::RefCell;
use std::collections::HashMap;

thread_local! {
    // Per thread because the test harness runs each test on its own thread:
    // one test's configuration never leaks into another.
    static CONFIG: RefCell<HashMap<String, String>> = RefCell::new(HashMap::new());
    // The stand-in key-value store, per thread for the same reason. Expiry is
    // ignored: a unit test runs in far less than any sensible TTL.
    static KV: RefCell<HashMap<String, Vec<u8>>> = RefCell::new(HashMap::new());
}

/// Empties the stand-in [`kv`](crate::kv) store of the current thread.
pub fn clear_kv() {
    KV.with(|kv| kv.borrow_mut().clear());
}

/// The host's limits, so that a unit test meets the errors the router would give.
const MAX_KEY_BYTES: usize = 1024;
const MAX_VALUE_BYTES: usize = 1 << 20;

fn check_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(KvError::InvalidKey(format!(
            "key of {} bytes: keys are 1 to {MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

pub(crate) fn kv_get(key: &str) -> Result<Option<Vec<u8>>, KvError> {
    check_key(key)?;
    Ok(KV.with(|kv| kv.borrow().get(key).cloned()))
}

pub(crate) fn kv_set(key: &str, value: &[u8], _ttl_ms: Option<u64>) -> Result<(), KvError> {
    check_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(KvError::InvalidValue(format!(
            "value of {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
            value.len()
        )));
    }
    KV.with(|kv| kv.borrow_mut().insert(key.to_owned(), value.to_vec()));
    Ok(())
}

pub(crate) fn kv_delete(key: &str) -> Result<bool, KvError> {
    check_key(key)?;
    Ok(KV.with(|kv| kv.borrow_mut().remove(key).is_some()))
}

pub(crate) fn kv_increment(key: &str, delta: i64) -> Result<i64, KvError> {
    check_key(key)?;
    KV.with(|kv| {
        let mut kv = kv.borrow_mut();
        let current: i64 = match kv.get(key) {
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| {
                    KvError::InvalidValue(format!("the value of {key:?} is not an integer"))
                })?,
            None => 0,
        };
        let next = current.checked_add(delta).ok_or_else(|| {
            KvError::InvalidValue(format!("incrementing {key:?} overflows 64 bits"))
        })?;
        kv.insert(key.to_owned(), next.to_string().into_bytes());
        Ok(next)
    })
}

/// Sets the value [`config::get`](crate::config::get) returns for `key`, on the
/// current thread (that is, for the current test).
pub fn set_config(key: impl Into<String>, value: impl Into<String>) {
    CONFIG.with(|config| config.borrow_mut().insert(key.into(), value.into()));
}

/// Removes every value set with [`set_config`] on the current thread.
pub fn clear_config() {
    CONFIG.with(|config| config.borrow_mut().clear());
}

pub(crate) fn config(key: &str) -> Option<String> {
    CONFIG.with(|config| config.borrow().get(key).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn config_reads_what_the_test_set() {
        assert_eq!(config::get("source"), None);
        assert_eq!(config::get_or("source", "/default"), "/default");
        assert!(config::require("source").is_err_and(|e| e.message().contains("`source`")));

        set_config("source", "/configured");
        assert_eq!(config::get("source").as_deref(), Some("/configured"));
        assert_eq!(config::require("source"), Ok("/configured".to_owned()));

        clear_config();
        assert_eq!(config::get("source"), None);
    }

    #[test]
    fn kv_errors_say_whether_a_retry_can_help() {
        use crate::{HandlerError, kv};
        clear_kv();
        let bad_key = kv::get("").unwrap_err();
        assert!(matches!(bad_key, KvError::InvalidKey(_)), "{bad_key:?}");
        kv::set("word", b"abc", None).unwrap();
        let not_integer = kv::increment("word", 1).unwrap_err();
        assert!(
            matches!(not_integer, KvError::InvalidValue(_)),
            "{not_integer:?}"
        );
        assert!(!not_integer.is_retryable());
        assert!(matches!(
            HandlerError::from(not_integer),
            HandlerError::Fatal(m) if m.contains("not an integer")
        ));
        let unavailable = KvError::Unavailable("no answer".into());
        assert!(unavailable.is_retryable());
        assert!(HandlerError::from(unavailable).is_retryable());
        assert!(HandlerError::from(KvError::QuotaExceeded("full".into())).is_retryable());
    }
}
