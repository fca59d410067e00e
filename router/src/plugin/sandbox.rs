//! What a plugin instance may use, and how much: its memory and table limits,
//! its log budget and the streams that write its stdout and stderr to the
//! router's log, and the allow-list of its outbound HTTP.

use crate::config::{HttpGrant, HttpTarget};
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

/// Outbound HTTP policy: only allow-listed schemes, hosts, ports and methods,
/// with a timeout and a response size limit. Anything else is refused with
/// `HTTP-request-denied`, which the guest sees as an error.
///
/// A grant that names a host resolves it here, and only public addresses are
/// used (unless the grant says `allow_private`): a name that resolves to
/// loopback, a private network or link-local (cloud metadata) is refused with
/// `destination-IP-prohibited`. Plain `http` then connects to the address that
/// was checked, so a second DNS answer cannot steer it elsewhere; `https`
/// connects by name (the certificate must match it), which resolves again.
#[derive(Clone, Debug, Default)]
pub struct HttpPolicy {
    /// The plugin, for logs.
    pub plugin: Arc<str>,
    /// Allowed targets and methods.
    pub grants: Arc<[HttpGrant]>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Largest response body.
    pub max_response_bytes: u64,
}

/// What the allow-list says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// No grant matches scheme, host, port and method.
    Denied,
    /// Allowed; whether a host name may resolve to non-public addresses.
    Allowed {
        /// Some matching grant says `allow_private`.
        private: bool,
    },
}

impl HttpPolicy {
    /// Whether `method` to `target` is allowed, and how.
    pub fn grant(&self, target: &HttpTarget, method: &str) -> Grant {
        let mut found = Grant::Denied;
        for g in self.grants.iter() {
            let matches = HttpTarget::parse(&g.host).is_ok_and(|t| t == *target)
                && (g.methods.is_empty()
                    || g.methods.iter().any(|m| m.eq_ignore_ascii_case(method)));
            if matches {
                let private = g.allow_private || matches!(found, Grant::Allowed { private: true });
                found = Grant::Allowed { private };
            }
        }
        found
    }

    /// The address to connect to for `target` (a host name granted with
    /// `private`): the first that resolves and may be reached.
    async fn resolve(
        &self,
        target: &HttpTarget,
        private: bool,
    ) -> Result<std::net::SocketAddr, wasmtime_wasi_http::Error> {
        use wasmtime_wasi_http::Error;
        let lookup = tokio::net::lookup_host((target.host.as_str(), target.port));
        let addrs = match tokio::time::timeout(self.timeout, lookup).await {
            Err(_) => return Err(Error::DnsTimeout),
            Ok(Err(e)) => {
                tracing::debug!(plugin = &*self.plugin, %target, error = %e, "outbound HTTP: the host does not resolve");
                return Err(Error::DnsError {
                    rcode: Some("address not available".into()),
                    info_code: Some(0),
                });
            }
            Ok(Ok(addrs)) => addrs,
        };
        let mut refused = Vec::new();
        for addr in addrs {
            if private || is_public(addr.ip()) {
                return Ok(addr);
            }
            refused.push(addr.ip());
        }
        tracing::warn!(plugin = &*self.plugin, %target, addresses = ?refused, "outbound HTTP refused: the host resolves only to non-public addresses (grant the address, or set allow_private)");
        Err(Error::DestinationIpProhibited)
    }
}

/// Whether `ip` is a public unicast address: not loopback, unspecified,
/// private, shared (CGNAT), link-local, multicast, broadcast, documentation or
/// reserved, also when wrapped in an IPv6 form.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 198 && (18..20).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., hi, lo] = segments;
                let v4 = std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // unique local
                || (segments[0] & 0xffc0) == 0xfe80 // link-local
                || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8) // documentation
                || segments[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

impl WasiHttpHooks for HttpPolicy {
    fn send_request(
        &mut self,
        mut request: http::Request<wasmtime_wasi_http::WasiBody>,
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
        let uri = request.uri();
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let plain = uri.scheme() == Some(&http::uri::Scheme::HTTP);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let target = (https || plain)
            .then(|| HttpTarget::from_authority(https, &authority).ok())
            .flatten();
        let method = request.method().as_str().to_owned();
        let grant = target
            .as_ref()
            .map_or(Grant::Denied, |t| self.grant(t, &method));
        let policy = self.clone();
        Box::new(async move {
            let (Some(target), Grant::Allowed { private }) = (target, grant) else {
                tracing::warn!(plugin = &*policy.plugin, authority = %crate::event::Escaped(&authority), %method, "outbound HTTP refused: not in the plugin's allow-list");
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            };
            // An address in the grant is reached as granted; a name only at an
            // address it may reach.
            if target.ip.is_none() {
                let addr = policy.resolve(&target, private).await?;
                if !target.https {
                    // Connect to the address that was checked; `Host` still
                    // names the host (wasi-http set it from the authority).
                    let path = request
                        .uri()
                        .path_and_query()
                        .map_or("/", http::uri::PathAndQuery::as_str);
                    *request.uri_mut() = http::Uri::builder()
                        .scheme(http::uri::Scheme::HTTP)
                        .authority(addr.to_string())
                        .path_and_query(path)
                        .build()
                        .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
                }
            }
            let mut options = options.unwrap_or_default();
            let cap =
                |t: Option<Duration>| Some(t.map_or(policy.timeout, |t| t.min(policy.timeout)));
            options.connect_timeout = cap(options.connect_timeout);
            options.first_byte_timeout = cap(options.first_byte_timeout);
            options.between_bytes_timeout = cap(options.between_bytes_timeout);
            // The response is handed to the guest as it is: a 3xx is not
            // followed (default_send_request speaks one request on one
            // connection), so a redirect cannot lead out of the allow-list.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(grants: &[(&str, &[&str], bool)]) -> HttpPolicy {
        HttpPolicy {
            grants: grants
                .iter()
                .map(|(host, methods, allow_private)| HttpGrant {
                    host: (*host).to_owned(),
                    methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                    allow_private: *allow_private,
                })
                .collect(),
            ..HttpPolicy::default()
        }
    }

    fn request(https: bool, authority: &str) -> HttpTarget {
        HttpTarget::from_authority(https, authority).expect(authority)
    }

    #[test]
    fn a_grant_matches_scheme_host_and_port() {
        let p = policy(&[
            ("rates.example.com", &[], false),
            ("http://127.0.0.1:8080", &["GET"], false),
        ]);
        let allowed = Grant::Allowed { private: false };
        assert_eq!(p.grant(&request(true, "rates.example.com"), "GET"), allowed);
        assert_eq!(
            p.grant(&request(true, "RATES.example.com:443"), "POST"),
            allowed
        );
        assert_eq!(
            p.grant(&request(false, "rates.example.com"), "GET"),
            Grant::Denied
        );
        assert_eq!(
            p.grant(&request(false, "rates.example.com:6379"), "GET"),
            Grant::Denied
        );
        assert_eq!(
            p.grant(&request(true, "rates.example.com:8443"), "GET"),
            Grant::Denied
        );
        assert_eq!(p.grant(&request(false, "127.0.0.1:8080"), "GET"), allowed);
        assert_eq!(
            p.grant(&request(false, "127.0.0.1:8080"), "POST"),
            Grant::Denied
        );
        assert_eq!(
            p.grant(&request(false, "127.0.0.1:8081"), "GET"),
            Grant::Denied
        );
        assert_eq!(p.grant(&request(false, "127.0.0.1"), "GET"), Grant::Denied);
        assert_eq!(
            p.grant(&request(false, "localhost:8080"), "GET"),
            Grant::Denied
        );
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::127.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
