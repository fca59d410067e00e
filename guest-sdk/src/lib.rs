//! Write router plugins in Rust.
//!
//! A plugin is a WebAssembly component of the router's `handler` world: it
//! receives one CloudEvent at a time and returns the events it emits. This crate
//! wraps the generated bindings in a small API:
//!
//! ```ignore
//! use router_guest::{Event, HandlerError, handler, log};
//!
//! #[derive(serde::Deserialize)]
//! struct Greeting { name: String }
//!
//! fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
//!     let greeting: Greeting = event.data_json()?;
//!     log::info(&format!("hello, {}", greeting.name));
//!     let reply = Event::new(format!("{}-reply", event.id()), "/greeter", "com.example.greeted")
//!         .with_json_data(&serde_json::json!({ "greeted": greeting.name }))?;
//!     Ok(vec![reply])
//! }
//!
//! handler!(handle);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` as a `cdylib`.
#![deny(missing_docs)]

mod event;

pub use event::{Event, HandlerError};
pub use serde;
pub use serde_json;

/// The generated bindings; use the curated API of this crate instead.
#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "handler",
        pub_export_macro: true,
        default_bindings_module: "router_guest::bindings",
        additional_derives: [PartialEq, Eq],
    });
}

/// Logging into the router's log; every line is tagged with the plugin's name.
pub mod log {
    use crate::bindings::router::plugin::log::{Level, log};

    /// Logs at error level.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }

    /// Logs at warn level.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }

    /// Logs at info level.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }

    /// Logs at debug level.
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }

    /// Logs at trace level.
    pub fn trace(message: &str) {
        log(Level::Trace, message);
    }
}

/// The plugin's configuration values, from its `config` table in the router's TOML.
pub mod config {
    /// The value configured for `key`, if any.
    pub fn get(key: &str) -> Option<String> {
        crate::bindings::router::plugin::config::get(key)
    }

    /// The value configured for `key`, or `default`.
    pub fn get_or(key: &str, default: &str) -> String {
        get(key).unwrap_or_else(|| default.to_owned())
    }
}

#[doc(hidden)]
pub mod __private {
    use crate::bindings::router::plugin::types as wit;

    /// Adapts a plugin's `fn(Event) -> Result<Vec<Event>, HandlerError>` to the
    /// generated export.
    pub fn handle(
        event: wit::Event,
        f: fn(crate::Event) -> Result<Vec<crate::Event>, crate::HandlerError>,
    ) -> Result<Vec<wit::Event>, wit::HandlerError> {
        f(crate::Event::from_wit(event))
            .map(|events| events.into_iter().map(crate::Event::into_wit).collect())
            .map_err(crate::HandlerError::into_wit)
    }
}

/// Exports `fn(Event) -> Result<Vec<Event>, HandlerError>` as the plugin's handler.
///
/// Use it once per plugin crate: `router_guest::handler!(handle);`.
#[macro_export]
macro_rules! handler {
    ($handle:path) => {
        struct __RouterGuestHandler;

        impl $crate::bindings::Guest for __RouterGuestHandler {
            fn handle(
                event: $crate::bindings::router::plugin::types::Event,
            ) -> ::core::result::Result<
                ::std::vec::Vec<$crate::bindings::router::plugin::types::Event>,
                $crate::bindings::router::plugin::types::HandlerError,
            > {
                $crate::__private::handle(event, $handle)
            }
        }

        $crate::bindings::export!(__RouterGuestHandler with_types_in $crate::bindings);
    };
}
