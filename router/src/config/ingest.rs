//! `[ingest]`: who may send events (credentials, origins), and how much.

use super::Name;
use serde::Deserialize;
use std::num::NonZeroU32;
use toml::Spanned;

/// `[ingest]`: who may send events, and how much.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Most events routed at once; past it requests get 503 with Retry-After.
    pub max_in_flight: u32,
    /// Origins allowed by the CloudEvents webhook handshake (`OPTIONS`); `*` allows all.
    pub allowed_origins: Vec<String>,
    /// Requests per second allowed per origin (the `WebHook-Request-Origin` or
    /// `Origin` header, else the client's address); unlimited when absent.
    pub rate_limit: Option<RateLimitConfig>,
    /// Credentials; when any is configured, every request must present one.
    pub credential: Vec<CredentialConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            allowed_origins: vec!["*".to_owned()],
            rate_limit: None,
            credential: Vec::new(),
        }
    }
}

/// A per-origin token bucket.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests allowed in a burst; `per_second` when absent.
    pub burst: Option<NonZeroU32>,
}

/// `[[ingest.credential]]`: one sender's credential: a bearer token, or the
/// secrets of Standard Webhooks signatures (several, for rotation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialConfig {
    /// Names the sender in logs.
    pub name: Spanned<Name>,
    /// The token expected in `Authorization: Bearer <token>`.
    #[serde(default)]
    pub bearer: Option<String>,
    /// Standard Webhooks secrets (`whsec_` followed by base64).
    #[serde(default)]
    pub webhook_secrets: Vec<String>,
    /// Event `source` prefixes this sender may use; any source when empty.
    #[serde(default)]
    pub sources: Vec<String>,
}
