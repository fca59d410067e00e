//! The per-instance store data and the host side of the `log` and `config`
//! interfaces.

use super::bindings::router::plugin::{config, log, types};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Longest log message kept from a guest; the rest is cut so a chatty plugin
/// cannot flood the router's log.
const MAX_LOG_MESSAGE: usize = 4096;

/// What one plugin instance's store holds.
pub struct HostState {
    /// The plugin's name, tagging its log lines.
    pub plugin: Arc<str>,
    /// The plugin's `config` values from TOML.
    pub config: Arc<BTreeMap<String, String>>,
    /// WASI with nothing granted: no files, no environment, no sockets, no stdio.
    pub wasi: WasiCtx,
    /// Resources the guest holds through WASI.
    pub table: ResourceTable,
    /// Memory and table limits, enforced by wasmtime.
    pub limits: StoreLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        let mut message = message;
        if message.len() > MAX_LOG_MESSAGE {
            let mut cut = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str(" [truncated]");
        }
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, "{message}"),
            log::Level::Info => tracing::info!(plugin, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, "{message}"),
            log::Level::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl config::Host for HostState {
    fn get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }
}
