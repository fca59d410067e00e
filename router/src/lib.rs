//! A WebAssembly-extensible CloudEvents router.
//!
//! Events arrive over HTTP ([`http`]), are decoded and validated ([`event`]),
//! matched against the routes of a TOML configuration ([`config`], [`policy`]),
//! and delivered by the [`dispatch`]er to sandboxed WASM handler components
//! ([`plugin`]) and HTTP sinks ([`forward`]). Everything routing needs lives in an
//! immutable [`runtime::Runtime`] snapshot, which [`reload`] rebuilds and swaps
//! when files change; [`server::Server`] serves it.

pub mod config;
pub(crate) mod delivery;
mod digest;
pub mod dispatch;
pub mod event;
pub mod explain;
pub(crate) mod forward;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod metrics;
pub mod plugin;
pub mod policy;
pub(crate) mod queue;
pub(crate) mod redis;
pub(crate) mod reload;
pub(crate) mod retryable;
pub mod runtime;
pub mod server;
mod sync;
pub mod tls;
pub(crate) mod trace;

/// OpenTelemetry export of the router's spans (feature `otel`), for the binary's
/// log set-up.
#[cfg(feature = "otel")]
pub use trace::otel;
