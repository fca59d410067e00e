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

pub(crate) fn kv_get(key: &str) -> Result<Option<Vec<u8>>, String> {
    Ok(KV.with(|kv| kv.borrow().get(key).cloned()))
}

pub(crate) fn kv_set(key: &str, value: &[u8], _ttl_ms: Option<u64>) -> Result<(), String> {
    KV.with(|kv| kv.borrow_mut().insert(key.to_owned(), value.to_vec()));
    Ok(())
}

pub(crate) fn kv_delete(key: &str) -> Result<bool, String> {
    Ok(KV.with(|kv| kv.borrow_mut().remove(key).is_some()))
}

pub(crate) fn kv_increment(key: &str, delta: i64) -> Result<i64, String> {
    KV.with(|kv| {
        let mut kv = kv.borrow_mut();
        let current: i64 = match kv.get(key) {
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("the value of {key:?} is not an integer"))?,
            None => 0,
        };
        let next = current
            .checked_add(delta)
            .ok_or_else(|| format!("incrementing {key:?} overflows 64 bits"))?;
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
}
