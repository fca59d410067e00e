//! Why a plugin could not be loaded, and why a call into one did not produce
//! events.

use super::{HANDLER_WORLD, TRANSFORM_WORLD};
use crate::event::EventError;
use std::time::Duration;

/// Why the process-wide WebAssembly engine could not be started. Kept as text
/// because the engine is started once and its error is handed to every caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Wasmtime refused the engine's configuration.
    #[error("wasmtime refused the engine configuration: {0}")]
    Config(String),
    /// The thread that advances the epoch could not be started.
    #[error("the epoch ticker thread did not start: {0}")]
    Ticker(String),
    /// WASI or the plugin interfaces could not be added to the linker.
    #[error("the host interfaces could not be linked: {0}")]
    Link(String),
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The `.wasm` file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `.wasm` file does not exist: the plugin was not built (yet).
    #[error(
        "{path} does not exist: build the plugin first (Rust: `cargo build --release --target wasm32-wasip2` in its crate; Python: `router-py build`; JavaScript: `npm run build` or `router-js build`; this repository's plugins: `cargo build -p router --features examples`)"
    )]
    Missing {
        /// The file.
        path: String,
    },
    /// The file is not WebAssembly at all (no `\0asm` magic).
    #[error(
        "{path} is not a WebAssembly file (it does not start with `\\0asm`): `path` must name the `.wasm` a plugin build produces"
    )]
    NotWasm {
        /// The file.
        path: String,
    },
    /// The file is a core module, not a component.
    #[error(
        "{path} is a core WebAssembly module, not a component: build the plugin for `wasm32-wasip2` (not `wasm32-unknown-unknown` or `wasm32-wasip1`)"
    )]
    CoreModule {
        /// The file.
        path: String,
    },
    /// The file is not a valid component.
    #[error("{path} is not a valid WebAssembly component: {reason}")]
    Compile {
        /// The file.
        path: String,
        /// Wasmtime's explanation.
        reason: String,
    },
    /// The component does not implement the `handler` world of this router.
    #[error(
        "{path} implements neither `{HANDLER_WORLD}` nor `{TRANSFORM_WORLD}` (nor their 0.1.0 versions): {reason}"
    )]
    World {
        /// The file.
        path: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// The plugin's limits are out of range.
    #[error("{0}")]
    Limits(String),
}

/// Why a call into a plugin did not produce events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The handler returned `handler-error.retryable`.
    #[error("plugin `{plugin}` failed (retryable): {message}")]
    Retryable {
        /// The plugin.
        plugin: String,
        /// The guest's message.
        message: String,
    },
    /// The handler returned `handler-error.fatal`.
    #[error("plugin `{plugin}` failed (fatal): {message}")]
    Fatal {
        /// The plugin.
        plugin: String,
        /// The guest's message.
        message: String,
    },
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted ...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and its backtrace summary.
        message: String,
    },
    /// The call ran past the plugin's time limit and was interrupted.
    #[error(
        "plugin `{plugin}` exceeded its time limit of {limit:?} (interrupted after {elapsed:?})"
    )]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit: Duration,
        /// When the call was stopped.
        elapsed: Duration,
    },
    /// The plugin emitted more, or larger, output than its limits allow.
    #[error("plugin `{plugin}` exceeded its {limit} limit: {detail}")]
    OutputLimit {
        /// The plugin.
        plugin: String,
        /// `max_emitted` or `max_event_bytes`.
        limit: &'static str,
        /// By how much.
        detail: String,
    },
    /// The plugin emitted an event that is not a valid CloudEvent.
    #[error("plugin `{plugin}` emitted an invalid event #{index}: {error}")]
    InvalidOutput {
        /// The plugin.
        plugin: String,
        /// Position of the event in the returned list.
        index: usize,
        /// What is wrong with it.
        error: EventError,
    },
    /// The plugin failed too often in a row and is paused.
    #[error(
        "plugin `{plugin}` is paused for {remaining:?} after {failures} consecutive traps or timeouts"
    )]
    Paused {
        /// The plugin.
        plugin: String,
        /// Failures that tripped the breaker.
        failures: u32,
        /// Until it serves again.
        remaining: Duration,
    },
}

impl CallError {
    /// Whether delivering the event again might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Retryable { .. } | Self::Trap { .. } | Self::Timeout { .. } | Self::Paused { .. }
        )
    }

    /// Whether this failure counts towards the circuit breaker: the plugin
    /// misbehaved, as opposed to reporting an error about the event.
    pub(super) fn trips_breaker(&self) -> bool {
        matches!(self, Self::Trap { .. } | Self::Timeout { .. })
    }
}

impl crate::retryable::Retryable for CallError {
    fn is_retryable(&self) -> bool {
        CallError::is_retryable(self)
    }
}
