//! What a plugin instance may use, and how much: its memory and table limits,
//! its log budget and the streams that write its stdout and stderr to the
//! router's log, and the allow-list of its outbound HTTP.

use crate::config::HttpGrant;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::WasiHttpHooks;

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
    pub(super) fn spend(&self, n: usize) -> bool {
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
