//! `[ingest]`: who may send events (credentials, origins), and how much.

use super::{ConfigError, DedupStore, Name, Source};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::IpAddr;
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
    /// Requests per second allowed per sender: the authenticated credential, else
    /// the client's address (never a header the client chooses); unlimited when
    /// absent.
    pub rate_limit: Option<RateLimitConfig>,
    /// Peers (addresses or CIDR ranges) trusted to name the client in
    /// `X-Forwarded-For`; from anyone else that header is ignored.
    pub trusted_proxies: Vec<ProxyRange>,
    /// Where accepted `webhook-id`s are remembered, to refuse replays: this
    /// process's memory, or Redis (shared by every router pointing at it).
    pub replay_store: DedupStore,
    /// The Redis of `replay_store = "redis"`; `[queue] url` when absent.
    pub replay_url: Option<String>,
    /// Most ids remembered in memory; past it the oldest are forgotten first.
    pub replay_max_entries: usize,
    /// Credentials; when any is configured, every request must present one.
    pub credential: Vec<CredentialConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 10_000,
            allowed_origins: vec!["*".to_owned()],
            rate_limit: None,
            trusted_proxies: Vec::new(),
            replay_store: DedupStore::Memory,
            replay_url: None,
            replay_max_entries: 100_000,
            credential: Vec::new(),
        }
    }
}

/// A token bucket per sender (credential, else client address).
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
    /// Event `source`s this sender may use, each with everything below it on a
    /// path-segment boundary (`/shop` allows `/shop` and `/shop/eu`, not
    /// `/shopping`); any source when empty.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Accept only structured or batched bodies from this sender: the body
    /// signature of a webhook does not cover binary mode's `ce-*` headers.
    #[serde(default)]
    pub require_structured: bool,
}

impl IngestConfig {
    /// Checks the gate's size and that each credential is one usable kind.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.max_in_flight == 0 {
            errors.push(source.error(None, "ingest.max_in_flight", "must be at least 1"));
        }
        if self.replay_max_entries == 0 {
            errors.push(source.error(
                source.span_of(&["ingest", "replay_max_entries"]),
                "ingest.replay_max_entries",
                "must be at least 1",
            ));
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

/// An address or CIDR range of `trusted_proxies` (`10.0.0.0/8`, `::1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

/// Why a `trusted_proxies` entry cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProxyRangeError {
    /// Not an IP address.
    #[error("{0:?} is not an IP address or CIDR range (such as 10.0.0.0/8)")]
    NotAnAddress(String),
    /// The prefix length is not a number up to the address's bits.
    #[error("the prefix length of {0:?} must be 0 to 32 for IPv4, 0 to 128 for IPv6")]
    BadPrefix(String),
}

impl ProxyRange {
    /// Whether `ip` (IPv4-mapped IPv6 counts as IPv4) is in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyRange {
    type Err = ProxyRangeError;

    fn from_str(s: &str) -> Result<Self, ProxyRangeError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let network = addr
            .trim()
            .parse::<IpAddr>()
            .map_err(|_| ProxyRangeError::NotAnAddress(s.to_owned()))?
            .to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= bits)
                .ok_or_else(|| ProxyRangeError::BadPrefix(s.to_owned()))?,
        };
        Ok(Self { network, prefix })
    }
}

impl<'de> Deserialize<'de> for ProxyRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
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
    fn proxy_ranges_contain_their_addresses() {
        let range: ProxyRange = "10.1.0.0/16".parse().unwrap();
        assert!(range.contains("10.1.200.3".parse().unwrap()));
        assert!(range.contains("::ffff:10.1.0.1".parse().unwrap()));
        assert!(!range.contains("10.2.0.1".parse().unwrap()));
        assert!(!range.contains("::1".parse().unwrap()));
        let one: ProxyRange = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        let all: ProxyRange = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert!(matches!(
            "10.0.0.0/33".parse::<ProxyRange>(),
            Err(ProxyRangeError::BadPrefix(_))
        ));
        assert!(matches!(
            "proxy.example".parse::<ProxyRange>(),
            Err(ProxyRangeError::NotAnAddress(_))
        ));
        let text =
            "[ingest]\ntrusted_proxies = [\"10.0.0.0/8\", \"nope\"]\nreplay_max_entries = 0\n";
        let errors = Config::parse(Source::new("t.toml", text), |_| None).unwrap_err();
        let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["ingest.trusted_proxies[1]"], "{errors}");
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
