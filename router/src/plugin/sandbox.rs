//! What a plugin instance may use, and how much: its memory and table limits,
//! its log budget and the streams that write its stdout and stderr to the
//! router's log, and the allow-list of its outbound HTTP.

use crate::config::{HttpGrant, HttpTarget};
use rustls::pki_types::ServerName;
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
/// `destination-IP-prohibited`. The request then goes to the address that was
/// checked (`https` verifying the certificate for the name), so a second DNS
/// answer cannot steer it elsewhere (DNS rebinding).
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

    /// The address to connect to for the host name of `target`: the first it
    /// resolves to that may be reached (any, when `private`).
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
            let [a, b, c, _] = v4.octets();
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
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
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
            // address it may reach, and then at that very address.
            let addr = match target.ip {
                Some(ip) => std::net::SocketAddr::new(ip, target.port),
                None => policy.resolve(&target, private).await?,
            };
            let tls = if target.https {
                let name = match target.ip {
                    Some(ip) => ServerName::IpAddress(ip.into()),
                    None => ServerName::try_from(target.host.clone())?,
                };
                Some((name, Arc::clone(&TLS)))
            } else {
                None
            };
            let options = options.unwrap_or_default();
            let cap = |t: Option<Duration>| t.map_or(policy.timeout, |t| t.min(policy.timeout));
            let timeouts = Timeouts {
                connect: cap(options.connect_timeout),
                first_byte: cap(options.first_byte_timeout),
                between_bytes: cap(options.between_bytes_timeout),
            };
            // The response is handed to the guest as it is: a 3xx is not
            // followed (one request on one connection), so a redirect cannot
            // lead out of the allow-list.
            let (response, io) = send_to(request, addr, tls, timeouts).await?;
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
            Ok((response, io))
        })
    }
}

/// The TLS client settings of plugins' outbound `https`: the Mozilla roots, as
/// wasmtime's own sender uses.
static TLS: std::sync::LazyLock<Arc<rustls::ClientConfig>> = std::sync::LazyLock::new(|| {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.into(),
    };
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
});

/// The time limits of one outbound request.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// TCP connect, TLS handshake and HTTP handshake, each.
    connect: Duration,
    /// From the request to the response's head.
    first_byte: Duration,
    /// Between two frames of the response body.
    between_bytes: Duration,
}

/// The future that drives a connection after the response's head arrived.
type Io = Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>;

/// A connection's byte stream, plain or TLS.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

/// Sends `request` on a new HTTP/1.1 connection to `addr`, the address the
/// allow-list checked (not what a new DNS lookup might answer), over TLS when
/// `tls` is given, the certificate verified for its server name. This is
/// wasmtime's `default_send_request` except that it connects to an address
/// instead of resolving the request's host again.
async fn send_to(
    mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    addr: std::net::SocketAddr,
    tls: Option<(ServerName<'static>, Arc<rustls::ClientConfig>)>,
    timeouts: Timeouts,
) -> Result<(http::Response<wasmtime_wasi_http::WasiBody>, Io), wasmtime_wasi_http::Error> {
    use http_body_util::BodyExt as _;
    use std::task::ready;
    use wasmtime_wasi_http::Error;
    let tcp = tokio::time::timeout(timeouts.connect, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectionTimeout)?
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Error::ConnectionRefused,
            _ => Error::Connect(e),
        })?;
    let stream: Box<dyn Stream> = match tls {
        Some((name, config)) => {
            let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
            Box::new(
                tokio::time::timeout(timeouts.connect, connect)
                    .await
                    .map_err(|_| Error::ConnectionTimeout)?
                    .map_err(Error::Tls)?,
            )
        }
        None => Box::new(tcp),
    };
    let (mut sender, conn) = tokio::time::timeout(
        timeouts.connect,
        hyper::client::conn::http1::handshake::<_, wasmtime_wasi_http::WasiBody>(
            hyper_util::rt::TokioIo::new(stream),
        ),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // Origin form: the scheme and authority are not sent (`Host` carries the
    // host, as wasi-http set it).
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str)
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let send = async move {
        tokio::time::timeout(timeouts.first_byte, sender.send_request(request))
            .await
            .map_err(|_| Error::ConnectionReadTimeout)?
            .map_err(Error::from)
    };
    let mut send = std::pin::pin!(send);
    let mut conn = Some(conn);
    // The response's head, while driving the connection's I/O.
    let response = std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(result) = send.as_mut().poll(cx) {
            return std::task::Poll::Ready(result);
        }
        let Some(driving) = conn.as_mut() else {
            return std::task::Poll::Pending;
        };
        let done = ready!(std::pin::Pin::new(driving).poll(cx));
        conn = None;
        // The connection may end (even uncleanly) right after the head it
        // delivered: the head wins over the connection's error.
        match (send.as_mut().poll(cx), done) {
            (std::task::Poll::Ready(result), _) => std::task::Poll::Ready(result),
            (std::task::Poll::Pending, Err(e)) => std::task::Poll::Ready(Err(Error::from(e))),
            (std::task::Poll::Pending, Ok(())) => std::task::Poll::Pending,
        }
    })
    .await?;
    let response = response.map(|incoming| {
        IdleLimited {
            incoming,
            idle: timeouts.between_bytes,
            deadline: Box::pin(tokio::time::sleep(timeouts.between_bytes)),
        }
        .boxed_unsync()
    });
    let io = async move {
        match conn {
            None => Ok(()),
            Some(conn) => conn.await.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    Error::from(e)
                }
            }),
        }
    };
    Ok((response, Box::new(io)))
}

/// A response body that fails when no frame arrives for `idle`.
struct IdleLimited {
    incoming: hyper::body::Incoming,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for IdleLimited {
    type Data = bytes::Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + this.idle;
                this.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                wasmtime_wasi_http::Error::HttpResponseTimeout
            } else {
                wasmtime_wasi_http::Error::from(e)
            }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    Poll::Ready(Some(Err(wasmtime_wasi_http::Error::ConnectionReadTimeout)))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.incoming.size_hint()
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

    /// A TLS server with the test certificate (for `localhost` and 127.0.0.1)
    /// that answers one request `200 hello`, and hands back the request head.
    async fn tls_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
        let certs = rustls_pemfile::certs(&mut &*std::fs::read(format!("{dir}/cert.pem")).unwrap())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key =
            rustls_pemfile::private_key(&mut &*std::fs::read(format!("{dir}/key.pem")).unwrap())
                .unwrap()
                .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return String::new();
            };
            let mut head = Vec::new();
            let mut buf = [0; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = tls.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request head ended early");
                head.extend_from_slice(&buf[..n]);
            }
            tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                .await
                .unwrap();
            tls.shutdown().await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (addr, served)
    }

    fn trusting_the_test_ca() -> Arc<rustls::ClientConfig> {
        let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/ca.pem");
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut &*std::fs::read(ca).unwrap()) {
            roots.add(cert.unwrap()).unwrap();
        }
        Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    fn get(url: &str, host: &str) -> http::Request<wasmtime_wasi_http::WasiBody> {
        use http_body_util::BodyExt as _;
        http::Request::get(url)
            .header(http::header::HOST, host)
            .body(
                http_body_util::Empty::<bytes::Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
            .unwrap()
    }

    const PATIENT: Timeouts = Timeouts {
        connect: Duration::from_secs(20),
        first_byte: Duration::from_secs(20),
        between_bytes: Duration::from_secs(20),
    };

    /// `https` to a granted name goes to the address that was checked, and the
    /// certificate is verified for the name, not for the address.
    #[tokio::test]
    async fn https_goes_to_the_checked_address_and_verifies_the_name() {
        use http_body_util::BodyExt as _;
        let (addr, served) = tls_server().await;
        let host = format!("localhost:{}", addr.port());
        let name = ServerName::try_from("localhost").unwrap();
        let (response, io) = send_to(
            get(&format!("https://{host}/rates?x=1"), &host),
            addr,
            Some((name, trusting_the_test_ca())),
            PATIENT,
        )
        .await
        .expect("sent");
        tokio::spawn(Pin::from(io));
        assert_eq!(response.status(), 200);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(&body[..], b"hello");
        let head = served.await.unwrap();
        assert!(head.starts_with("GET /rates?x=1 HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase().contains(&format!("host: {host}")),
            "{head}"
        );

        // The same address under a name its certificate does not hold: refused.
        let (addr, _served) = tls_server().await;
        let name = ServerName::try_from("rates.example.com").unwrap();
        let refused = send_to(
            get("https://rates.example.com/", "rates.example.com"),
            addr,
            Some((name, trusting_the_test_ca())),
            PATIENT,
        )
        .await;
        assert!(
            matches!(refused, Err(wasmtime_wasi_http::Error::Tls(_))),
            "{:?}",
            refused.map(|_| ())
        );
    }

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "192.0.32.10",
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
            "192.0.0.9",
            "198.18.0.1",
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
