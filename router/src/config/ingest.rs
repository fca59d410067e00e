//! `[ingest]`: who may send events (credentials, origins), and how much.

use super::{ConfigError, Name, Source};
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

impl IngestConfig {
    /// Checks the gate's size and that each credential is one usable kind.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.max_in_flight == 0 {
            errors.push(source.error(None, "ingest.max_in_flight", "must be at least 1"));
        }
        for (i, c) in self.credential.iter().enumerate() {
            c.validate(source, &format!("ingest.credential[{i}]"), errors);
        }
    }
}

impl CredentialConfig {
    /// Checks that exactly one kind of secret is set, and that it is usable.
    pub fn validate(&self, source: &Source, at: &str, errors: &mut Vec<ConfigError>) {
        match (&self.bearer, self.webhook_secrets.is_empty()) {
            (Some(_), false) | (None, true) => errors.push(source.error(
                Some(self.name.span()),
                at,
                "set exactly one of `bearer` and `webhook_secrets`",
            )),
            (Some(token), true) if token.is_empty() => errors.push(source.error(
                Some(self.name.span()),
                format!("{at}.bearer"),
                "the token must not be empty",
            )),
            _ => {}
        }
        for (j, secret) in self.webhook_secrets.iter().enumerate() {
            if let Err(e) = crate::http::decode_webhook_secret(secret) {
                errors.push(source.error(
                    Some(self.name.span()),
                    format!("{at}.webhook_secrets[{j}]"),
                    e,
                ));
            }
        }
    }
}
