//! The plugin's configuration: the `config` table of its `[[plugin]]` entry in
//! the router's TOML, for example `config = { source = "/inventory" }`.
//!
//! Values arrive as strings (a number or boolean in the TOML as its text), with
//! `${VAR:-default}` already interpolated by the router.

use crate::HandlerError;

/// The value configured for `key`, if any.
///
/// Outside WebAssembly (in a plugin's unit tests) the values come from
/// `router_guest::testing::set_config`.
pub fn get(key: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    return cached(key);
    #[cfg(not(target_arch = "wasm32"))]
    return crate::testing::config(key);
}

/// An instance's configuration never changes (a reload brings new instances), so
/// each key is asked of the host once per instance: a plugin that reads its
/// configuration for every event then makes no host call for it.
#[cfg(target_arch = "wasm32")]
fn cached(key: &str) -> Option<String> {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    thread_local! {
        static CACHE: RefCell<BTreeMap<String, Option<String>>> = const { RefCell::new(BTreeMap::new()) };
    }
    CACHE.with(|cache| {
        if let Some(value) = cache.borrow().get(key) {
            return value.clone();
        }
        let value = crate::bindings::router::plugin::config::get(key);
        cache.borrow_mut().insert(key.to_owned(), value.clone());
        value
    })
}

/// The value configured for `key`, or `default` when there is none.
pub fn get_or(key: &str, default: &str) -> String {
    get(key).unwrap_or_else(|| default.to_owned())
}

/// The value configured for `key`, or a [`HandlerError::Fatal`] naming the
/// missing key: without it the plugin cannot handle any event, and redelivery
/// will not add it.
pub fn require(key: &str) -> Result<String, HandlerError> {
    get(key).ok_or_else(|| {
        HandlerError::fatal(format!(
            "missing plugin config `{key}`: set it in the plugin's `config` table"
        ))
    })
}
