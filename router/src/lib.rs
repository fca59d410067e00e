//! A WebAssembly-extensible CloudEvents router.
//!
//! Events arrive over HTTP ([`http`]), are decoded and validated ([`event`]),
//! matched against the routes of a TOML configuration ([`config`], [`policy`]),
//! and delivered by the [`dispatch`]er to sandboxed WASM handler components
//! ([`plugin`]) and HTTP sinks ([`forward`]). Everything routing needs lives in an
//! immutable [`runtime::Runtime`] snapshot, which [`reload`] rebuilds and swaps
//! when files change; [`server::Server`] serves it.

pub mod config;
pub mod delivery;
pub mod dispatch;
pub mod event;
pub mod explain;
pub mod forward;
pub mod http;
pub mod kv;
pub mod metrics;
pub mod plugin;
pub mod policy;
pub mod queue;
pub mod redis;
pub mod reload;
pub mod retryable;
pub mod runtime;
pub mod server;
pub mod tls;
pub mod trace;
