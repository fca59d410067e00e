//! The per-instance store data and the host side of the plugin interfaces: `log`,
//! `config` and `kv` (in every version served), and the WASI views.

use super::sandbox::{HttpPolicy, Limiter, LogBudget};
use super::world::bindings::router::plugin::{config, kv, log, types};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Longest single log message kept from a guest.
const MAX_LOG_MESSAGE: usize = 4096;

/// What one plugin instance's store holds.
pub struct HostState {
    /// The plugin's name, tagging its log lines.
    pub plugin: Arc<str>,
    /// The plugin's `config` values from TOML.
    pub config: Arc<BTreeMap<String, String>>,
    /// The key-value store; the plugin sees its own namespace only.
    pub kv: crate::kv::Kv,
    /// WASI with only what the configuration grants.
    pub wasi: WasiCtx,
    /// Resources the guest holds through WASI.
    pub table: ResourceTable,
    /// Memory and table limits, enforced by wasmtime.
    pub limits: Limiter,
    /// Log output budget of the current call.
    pub log_budget: Arc<LogBudget>,
    /// `wasi:http` state.
    pub http: WasiHttpCtx,
    /// The allow-list and limits of outbound HTTP.
    pub http_policy: HttpPolicy,
    /// When the current call (or instantiation) is interrupted: checked at every
    /// epoch tick, against the clock rather than a count of ticks, so a ticker
    /// that wakes late on a loaded machine does not stretch the limit.
    pub deadline: Instant,
    /// The thread's CPU time at the current call's last epoch tick, telling a
    /// long call from a short one (see `offload::at_tick`).
    pub busy_mark: Option<Duration>,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.http_policy,
        }
    }
}

impl types::Host for HostState {}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String) {
        if !self.log_budget.spend(message.len()) {
            return;
        }
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

impl kv::Host for HostState {
    async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, kv::KvError> {
        Ok(self.kv.get(&self.plugin, &key).await?)
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
    ) -> Result<(), kv::KvError> {
        let ttl = ttl_ms.map(Duration::from_millis);
        Ok(self.kv.set(&self.plugin, &key, value, ttl).await?)
    }

    async fn delete(&mut self, key: String) -> Result<bool, kv::KvError> {
        Ok(self.kv.delete(&self.plugin, &key).await?)
    }

    async fn increment(&mut self, key: String, delta: i64) -> Result<i64, kv::KvError> {
        Ok(self.kv.increment(&self.plugin, &key, delta).await?)
    }
}

/// The store's error as the guest sees it: the case says whether the same call
/// can succeed later, the message says why it failed.
impl From<crate::kv::KvError> for kv::KvError {
    fn from(e: crate::kv::KvError) -> Self {
        use crate::kv::KvError as E;
        let message = e.to_string();
        match e {
            E::Key(_) => Self::InvalidKey(message),
            E::Value(_) | E::NotInteger(_) | E::Overflow(_) => Self::InvalidValue(message),
            E::Full => Self::QuotaExceeded(message),
            E::Unavailable(_) => Self::Unavailable(message),
        }
    }
}

/// The 0.1.0 interfaces: the same host, with `kv-error` as a string (its
/// message alone).
mod v0_1 {
    use super::HostState;
    use crate::plugin::world::v0_1::router::plugin::{config, kv, log};
    use std::time::Duration;

    impl log::Host for HostState {
        fn log(&mut self, level: log::Level, message: String) {
            use super::log::Level as Current;
            let level = match level {
                log::Level::Trace => Current::Trace,
                log::Level::Debug => Current::Debug,
                log::Level::Info => Current::Info,
                log::Level::Warn => Current::Warn,
                log::Level::Error => Current::Error,
            };
            super::log::Host::log(self, level, message);
        }
    }

    impl config::Host for HostState {
        fn get(&mut self, key: String) -> Option<String> {
            super::config::Host::get(self, key)
        }
    }

    impl kv::Host for HostState {
        async fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, String> {
            self.kv
                .get(&self.plugin, &key)
                .await
                .map_err(|e| e.to_string())
        }

        async fn set(
            &mut self,
            key: String,
            value: Vec<u8>,
            ttl_ms: Option<u64>,
        ) -> Result<(), String> {
            let ttl = ttl_ms.map(Duration::from_millis);
            self.kv
                .set(&self.plugin, &key, value, ttl)
                .await
                .map_err(|e| e.to_string())
        }

        async fn delete(&mut self, key: String) -> Result<bool, String> {
            self.kv
                .delete(&self.plugin, &key)
                .await
                .map_err(|e| e.to_string())
        }

        async fn increment(&mut self, key: String, delta: i64) -> Result<i64, String> {
            self.kv
                .increment(&self.plugin, &key, delta)
                .await
                .map_err(|e| e.to_string())
        }
    }
}
