//! Logging into the router's log.
//!
//! The router tags every line with the plugin's name and filters by level as its
//! own log configuration says, so there is nothing to set up in the plugin.
//! Messages are plain text; keep them to one line. Outside WebAssembly (a
//! plugin's unit tests) they go to stderr, where the test harness captures them.

use crate::bindings::router::plugin::log::Level;

/// Logs `message` at error level: something failed.
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message.as_ref());
}

/// Logs `message` at warn level: something unexpected that the plugin recovered from.
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message.as_ref());
}

/// Logs `message` at info level: normal operation.
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message.as_ref());
}

/// Logs `message` at debug level: diagnostics for developers.
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message.as_ref());
}

/// Logs `message` at trace level: very detailed diagnostics.
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message.as_ref());
}

#[cfg(target_arch = "wasm32")]
fn write(level: Level, message: &str) {
    crate::bindings::router::plugin::log::log(level, message);
}

#[cfg(not(target_arch = "wasm32"))]
fn write(level: Level, message: &str) {
    eprintln!("{level:?}: {message}");
}
