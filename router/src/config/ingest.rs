//! `[ingest]`: who may send events (credentials, origins), and how much.

use super::{ConfigError, Name, Source};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;
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
    pub webhook_secrets: Vec<WebhookSecret>,
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
    /// Checks that exactly one kind of secret is set (webhook secrets are decoded,
    /// hence checked, while the TOML is read).
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
    }
}

/// A Standard Webhooks secret: `whsec_` (optional) then base64, decoded while the
/// TOML is read. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Vec<u8>);

/// Why a webhook secret cannot be decoded. Messages never contain the secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookSecretError {
    /// Nothing after `whsec_`.
    #[error("the secret is empty")]
    Empty,
    /// Not base64.
    #[error("the secret is not base64 after `whsec_`: {0}")]
    NotBase64(base64::DecodeError),
}

impl WebhookSecret {
    /// The decoded key, for the HMAC.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for WebhookSecret {
    type Err = WebhookSecretError;

    fn from_str(secret: &str) -> Result<Self, WebhookSecretError> {
        let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
        match BASE64.decode(b64) {
            Ok(key) if !key.is_empty() => Ok(Self(key)),
            Ok(_) => Err(WebhookSecretError::Empty),
            Err(e) => Err(WebhookSecretError::NotBase64(e)),
        }
    }
}

impl<'de> Deserialize<'de> for WebhookSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Source};

    #[test]
    fn webhook_secrets_decode_with_or_without_the_prefix() {
        let with: WebhookSecret = "whsec_c2VjcmV0".parse().unwrap();
        let without: WebhookSecret = "c2VjcmV0".parse().unwrap();
        assert_eq!(with.as_bytes(), b"secret");
        assert_eq!(with, without);
        assert_eq!(format!("{with:?}"), "WebhookSecret(<redacted>)");
    }

    #[test]
    fn bad_webhook_secrets_are_config_errors_at_their_path() {
        assert_eq!(
            "whsec_".parse::<WebhookSecret>(),
            Err(WebhookSecretError::Empty)
        );
        let e = "whsec_not base64!".parse::<WebhookSecret>().unwrap_err();
        assert!(
            e.to_string()
                .starts_with("the secret is not base64 after `whsec_`: "),
            "{e}"
        );
        let text = "[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"whsec_c2VjcmV0\", \"whsec_%%\"]\n";
        let errors = Config::parse(Source::new("t.toml", text), |_| None).unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        let e = &errors.0[0];
        assert_eq!(e.path, "ingest.credential[0].webhook_secrets[1]");
        assert_eq!(e.line, 3);
        assert!(
            e.message
                .starts_with("the secret is not base64 after `whsec_`: "),
            "{e}"
        );
    }
}
