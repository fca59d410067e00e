//! `[server]`: the listener, its TLS and the limits of the HTTP ingest.

use super::{ByteSize, ConfigError, Duration, Source};
use serde::Deserialize;
use std::net::SocketAddr;
use std::num::NonZeroUsize;

/// `[server]`: the listener and the limits of the HTTP ingest.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on; `serve --listen` overrides it.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413 without being kept.
    pub body_limit: ByteSize,
    /// Most events in one batched request.
    pub batch_limit: usize,
    /// Most events of one batched request in dispatch at once: each of these
    /// lanes takes the next event when its previous one is done.
    pub batch_concurrency: NonZeroUsize,
    /// How long a client may take to send its request headers.
    pub header_timeout: Duration,
    /// Most bytes of a request's line and headers; a larger head gets 431. A
    /// connection's buffer grows to twice this at most while it reads them.
    pub header_limit: ByteSize,
    /// How long a client may take to send its request body.
    pub body_timeout: Duration,
    /// How many times an event may be re-emitted along a chain of handlers.
    pub hop_limit: u32,
    /// Timeout of one forward request.
    pub forward_timeout: Duration,
    /// How long shutdown waits for events in flight.
    pub shutdown_timeout: Duration,
    /// Most connections open at once; past it new connections are closed as
    /// soon as they are accepted.
    pub max_connections: NonZeroUsize,
    /// Most request body bytes held by all requests at once, reserved before a
    /// body is read; past it requests get 503 with `Retry-After`.
    pub max_buffered_bytes: ByteSize,
    /// Longest event `id`, in bytes.
    pub id_limit: usize,
    /// Longest event `source`, in bytes.
    pub source_limit: usize,
    /// What a successful ingest answer says when the client does not ask
    /// (`Prefer: return=minimal|representation`, `?report=minimal|full`).
    pub report: Report,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<TlsConfig>,
}

/// How much the answer to a successful ingest request says. A failed request
/// (4xx, 5xx) always gets the full report: the sender needs it to act.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Report {
    /// The count of events taken, `{"accepted":N}`: a sender that only looks
    /// at the status pays for no report it throws away.
    Minimal,
    /// Every event's routes, outcomes and emitted events: the default, as a
    /// person trying the router wants to see where an event went.
    #[default]
    Full,
}

/// `[server.tls]`: PEM files, relative to the configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, leaf first.
    pub cert: String,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let secs = |s| Duration(std::time::Duration::from_secs(s));
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: ByteSize(1 << 20),
            batch_limit: 1000,
            batch_concurrency: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            header_timeout: secs(10),
            header_limit: ByteSize(64 * 1024),
            body_timeout: secs(30),
            hop_limit: 8,
            forward_timeout: secs(10),
            shutdown_timeout: secs(30),
            max_connections: NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN),
            max_buffered_bytes: ByteSize(64 << 20),
            id_limit: 1024,
            source_limit: 4096,
            report: Report::default(),
            tls: None,
        }
    }
}

/// The smallest body limit allowed: the spec's 64 KiB floor for intermediaries.
pub const MIN_BODY_LIMIT: u64 = 64 * 1024;

/// The smallest header limit allowed: the least read buffer hyper takes.
pub const MIN_HEADER_LIMIT: u64 = 8 * 1024;

impl ServerConfig {
    /// Checks the limits that the types alone do not.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.body_limit.0 < MIN_BODY_LIMIT {
            errors.push(source.error(
                None,
                "server.body_limit",
                format!(
                    "{} bytes is below the 64 KiB that CloudEvents intermediaries must accept",
                    self.body_limit.0
                ),
            ));
        }
        if self.max_buffered_bytes.0 < self.body_limit.0 {
            errors.push(source.error(
                None,
                "server.max_buffered_bytes",
                format!(
                    "{} bytes is below server.body_limit ({} bytes): a body of the largest size could never be read",
                    self.max_buffered_bytes.0, self.body_limit.0
                ),
            ));
        }
        if self.header_limit.0 < MIN_HEADER_LIMIT {
            errors.push(source.error(
                None,
                "server.header_limit",
                format!(
                    "{} bytes is below the 8 KiB that one connection's read buffer needs",
                    self.header_limit.0
                ),
            ));
        } else if self.header_limit.0 < self.id_limit.saturating_add(self.source_limit) as u64 {
            errors.push(source.error(
                None,
                "server.header_limit",
                format!(
                    "{} bytes cannot hold an id and a source at their limits ({} + {} bytes): such an event could never arrive in binary mode",
                    self.header_limit.0, self.id_limit, self.source_limit
                ),
            ));
        }
        for (key, value) in [
            ("server.id_limit", self.id_limit),
            ("server.source_limit", self.source_limit),
        ] {
            if value == 0 {
                errors.push(source.error(None, key, "must be at least 1"));
            }
        }
        if self.batch_limit == 0 {
            errors.push(source.error(None, "server.batch_limit", "must be at least 1"));
        }
        if self.header_timeout.0.is_zero() {
            errors.push(source.error(
                None,
                "server.header_timeout",
                "must be more than 0: every connection would be closed before its first request",
            ));
        }
    }
}
