//! A WebAssembly-extensible CloudEvents router.
//!
//! The path of one event, folder by folder:
//!
//! 1. **ingest**: `http` admits the request (limits; credentials and rates by
//!    the runtime snapshot's `gate`) and answers; in durable mode `queue` appends the event to a Redis stream first
//!    and its consumers take it from there;
//! 2. **decode**: [`event`] reads the binary, structured or batched content mode;
//! 3. **match**: the [`runtime::Runtime`] snapshot finds the routes whose
//!    [`policy`] filter takes the event;
//! 4. **transform**: each route's [`policy`] transform steps (native or WASM);
//! 5. **deliver**: the [`dispatch`]er hands it to the route's handler
//!    ([`plugin`]), forward (`forward`) and journal, with `delivery`'s retries
//!    and dedup, and routes what handlers emit again;
//! 6. **dead letter**: what a route gives up on goes to `delivery`'s dead-letter
//!    sink, from which it can be redriven.
//!
//! [`config`] is data: the specs the runtime compiles. `reload` rebuilds the
//! snapshot and swaps it when files change; [`server::Server`] serves it all.
//!
//! Dependencies point down, and `tests/it/layering.rs` keeps them so:
//! `event`, `config`, `clock`, `graceful` -> `redis`, `kv`, `gate`, `plugin`, `policy`, `forward` ->
//! `delivery` -> `runtime` -> `dispatch` -> `queue`, `reload`, [`explain`] ->
//! `replay` -> [`whatif`] -> `http` -> [`server`] -> the binary (`src/cli/`). The public surface is what
//! the binary, tests and benchmarks need; the rest is crate-private.

mod boxed;
pub(crate) mod clock;
pub mod config;
pub(crate) mod delivery;
mod digest;
pub mod dispatch;
pub mod event;
pub mod explain;
pub(crate) mod forward;
pub(crate) mod gate;
pub(crate) mod graceful;
mod head_timeout;
pub(crate) mod http;
pub(crate) mod kv;
pub(crate) mod metrics;
pub mod plugin;
pub mod policy;
pub(crate) mod queue;
pub(crate) mod redis;
pub(crate) mod reload;
pub(crate) mod replay;
pub(crate) mod retryable;
pub mod runtime;
pub mod server;
mod sync;
pub mod tls;
pub(crate) mod trace;
pub mod whatif;

/// Dead letters, for `router dlq --file` and `--config`, which read a `file`
/// sink without a running router.
pub use delivery::deadletter::{DeadLetter, DeadLetterError, DeadLetterSink};

/// A redirect answer's `Location` for an error message, for the CLI, which
/// does not follow redirects either.
pub use forward::redirect_location;

/// OpenTelemetry export of the router's spans (feature `otel`), for the binary's
/// log set-up.
#[cfg(feature = "otel")]
pub use trace::otel;
