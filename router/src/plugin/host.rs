//! The per-instance store data and the host side of the plugin interfaces: `log`,
//! `config` and `kv` (in every version served), guest stdout/stderr, and outbound
//! `wasi:http` behind an allow-list.

use super::world::bindings::router::plugin::{config, kv, log, types};
use crate::config::HttpGrant;
use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

/// Longest single log message kept from a guest.
const MAX_LOG_MESSAGE: usize = 4096;

/// The log bytes one call may still write (log interface, stdout and stderr
/// together). Reset before each call; output past it is dropped, and counted.
#[derive(Debug, Default)]
pub struct LogBudget {
    remaining: AtomicU64,
    dropped: AtomicU64,
}

impl LogBudget {
    /// Starts a call with `bytes` to spend.
    pub fn reset(&self, bytes: u64) {
        self.remaining.store(bytes, Ordering::Relaxed);
        self.dropped.store(0, Ordering::Relaxed);
    }

    /// Spends `n` bytes; false when the budget cannot cover them.
    fn spend(&self, n: usize) -> bool {
        let n = n as u64;
        let ok = self
            .remaining
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok();
        if !ok {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
        ok
    }

    /// Bytes dropped in this call.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

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
    /// Epoch ticks spent in the current call.
    pub ticks: u64,
    /// Ticks after which the current call is interrupted.
    pub max_ticks: u64,
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

/// The plugin's memory and table limits. Going past one traps the call with a
/// message naming the limit (wasmtime's own `StoreLimits` would only make the
/// guest's allocation fail, which Rust guests turn into an anonymous abort).
#[derive(Debug)]
pub struct Limiter {
    /// Bytes of linear memory per instance.
    pub memory: usize,
    /// Elements per table.
    pub table_elements: usize,
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            wasmtime::bail!(
                "memory_limit of {} bytes reached: the guest asked to grow its memory from {current} to {desired} bytes",
                self.memory
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            wasmtime::bail!(
                "table limit of {} elements reached (asked for {desired})",
                self.table_elements
            );
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        64
    }

    fn tables(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        16
    }
}

/// Guest stdout or stderr, written line by line to the router's log under the
/// plugin's name, within the call's log budget.
#[derive(Clone)]
pub struct LogStream {
    plugin: Arc<str>,
    stream: &'static str,
    budget: Arc<LogBudget>,
}

impl LogStream {
    /// A stream named `stream` (`stdout`, `stderr`) of `plugin`.
    pub fn new(plugin: Arc<str>, stream: &'static str, budget: Arc<LogBudget>) -> Self {
        Self {
            plugin,
            stream,
            budget,
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for LogStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        // Accept everything, so a chatty guest is never blocked or failed: what is
        // over the budget is dropped and reported once, after the call.
        if self.budget.spend(buf.len()) {
            let text = String::from_utf8_lossy(buf);
            for line in text.lines().filter(|l| !l.is_empty()) {
                tracing::info!(plugin = &*self.plugin, stream = self.stream, "{line}");
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Outbound HTTP policy: only allow-listed hosts and methods, with a timeout and
/// a response size limit. Anything else is refused with `HTTP-request-denied`,
/// which the guest sees as an error.
#[derive(Clone, Debug, Default)]
pub struct HttpPolicy {
    /// The plugin, for logs.
    pub plugin: Arc<str>,
    /// Allowed hosts and methods.
    pub grants: Arc<[HttpGrant]>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Largest response body.
    pub max_response_bytes: u64,
}

impl HttpPolicy {
    /// Whether `method` to `authority` is allowed.
    pub fn allows(&self, authority: &str, method: &str) -> bool {
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        self.grants.iter().any(|g| {
            (g.host.eq_ignore_ascii_case(authority) || g.host.eq_ignore_ascii_case(host))
                && (g.methods.is_empty()
                    || g.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
        })
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let method = request.method().as_str().to_owned();
        let allowed = self.allows(&authority, &method);
        let policy = self.clone();
        Box::new(async move {
            if !allowed {
                tracing::warn!(plugin = &*policy.plugin, %authority, %method, "outbound HTTP refused: not in the plugin's allow-list");
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let mut options = options.unwrap_or_default();
            let cap =
                |t: Option<Duration>| Some(t.map_or(policy.timeout, |t| t.min(policy.timeout)));
            options.connect_timeout = cap(options.connect_timeout);
            options.first_byte_timeout = cap(options.first_byte_timeout);
            options.between_bytes_timeout = cap(options.between_bytes_timeout);
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            let limit = usize::try_from(policy.max_response_bytes).unwrap_or(usize::MAX);
            let response = response.map(|body| {
                use http_body_util::BodyExt as _;
                http_body_util::Limited::new(body, limit)
                    .map_err(|e| match e.downcast::<wasmtime_wasi_http::Error>() {
                        Ok(inner) => *inner,
                        Err(_) => wasmtime_wasi_http::Error::HttpResponseBodySize(None),
                    })
                    .boxed_unsync()
            });
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}
