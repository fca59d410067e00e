//! `[admin]`: the admin API's own listener and its credential.
//!
//! The admin API can redrive dead letters, read their payloads, run transform
//! plugins on chosen events and reload the configuration, so it never shares the
//! ingest listener, which faces the senders (and often the internet).

use super::{ConfigError, Source};
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;

/// The shortest admin token accepted: shorter ones can be guessed.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// `[admin]`: where the admin API listens, and the token it requires.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener; `serve --admin-listen` overrides it.
    pub listen: SocketAddr,
    /// The token expected in `Authorization: Bearer <token>` on every admin
    /// request; required when the listener is not on a loopback address.
    pub token: Option<AdminToken>,
    /// Which listener serves `GET /metrics`.
    pub metrics: MetricsListener,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9180)),
            token: None,
            metrics: MetricsListener::Admin,
        }
    }
}

/// The listener that serves `GET /metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsListener {
    /// The admin listener, behind its token (the default).
    #[default]
    Admin,
    /// The ingest listener, without credentials (for scrapers that reach only it).
    Ingest,
}

/// The admin bearer token. Only its SHA-256 digest is kept, so that comparing
/// takes the same time whatever the guess, and its `Debug` never shows it. No
/// `PartialEq`: [`AdminToken::matches`] is the only comparison.
#[derive(Clone)]
pub struct AdminToken {
    digest: [u8; 32],
    len: usize,
}

impl AdminToken {
    /// The token `token`.
    pub fn new(token: &str) -> Self {
        Self {
            digest: crate::digest::sha256(token.as_bytes()),
            len: token.len(),
        }
    }

    /// A digest of the token's digest: tells two tokens apart (a reload compares
    /// them) without showing anything that helps to guess either.
    pub fn fingerprint(&self) -> String {
        crate::digest::hex(&crate::digest::sha256(&self.digest))
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        crate::digest::constant_time_eq(&crate::digest::sha256(presented.as_bytes()), &self.digest)
    }
}

impl<'de> Deserialize<'de> for AdminToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let token = String::deserialize(d)?;
        Ok(Self::new(token.trim()))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why an admin listener may not be opened as configured.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminError {
    /// A listener others can reach, and no token.
    #[error(
        "`admin.token` is required when the admin API listens on {0}, which is not a loopback address: whoever reaches it could redrive dead letters, read their payloads and reload the configuration (set `token = \"${{ROUTER_ADMIN_TOKEN}}\"`, or listen on 127.0.0.1)"
    )]
    TokenRequired(SocketAddr),
    /// A token short enough to guess.
    #[error(
        "the admin token is {0} characters long; use at least {MIN_ADMIN_TOKEN_LEN} (such as `openssl rand -hex 32`)"
    )]
    TokenTooShort(usize),
}

impl AdminConfig {
    /// Whether the admin API may listen on `listen` with this configuration's
    /// token: `serve --admin-listen` checks its address with it too.
    pub fn check_listen(&self, listen: SocketAddr) -> Result<(), AdminError> {
        match &self.token {
            None if !listen.ip().is_loopback() => Err(AdminError::TokenRequired(listen)),
            _ => Ok(()),
        }
    }

    /// Checks the listener against the token, and the token's length.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if let Err(e) = self.check_listen(self.listen) {
            errors.push(source.error(
                source.span_of(&["admin", "listen"]),
                "admin.token",
                e.to_string(),
            ));
        }
        if let Some(token) = &self.token
            && token.len < MIN_ADMIN_TOKEN_LEN
        {
            errors.push(source.error(
                source.span_of(&["admin", "token"]),
                "admin.token",
                AdminError::TokenTooShort(token.len).to_string(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(text: &str) -> Result<Config, crate::config::ConfigErrors> {
        Config::parse(Source::new("t.toml", text.to_owned()), |name| {
            (name == "ADMIN_TOKEN").then(|| "0123456789abcdef0123".to_owned())
        })
    }

    #[test]
    fn loopback_needs_no_token_and_others_do() {
        let c = parse("").unwrap();
        assert!(c.admin.listen.ip().is_loopback());
        assert_eq!(c.admin.metrics, MetricsListener::Admin);
        parse("[admin]\nlisten = \"[::1]:9000\"\n").unwrap();
        let errors = parse("[admin]\nlisten = \"0.0.0.0:9000\"\n").unwrap_err();
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!(errors.0[0].path, "admin.token");
        assert_eq!(errors.0[0].line, 2);
        let c = parse("[admin]\nlisten = \"0.0.0.0:9000\"\ntoken = \"${ADMIN_TOKEN}\"\n").unwrap();
        assert!(
            c.admin
                .token
                .as_ref()
                .unwrap()
                .matches("0123456789abcdef0123")
        );
        assert_eq!(
            c.admin.check_listen("10.0.0.1:1".parse().unwrap()),
            Ok(()),
            "with a token any address is allowed"
        );
        assert_eq!(
            parse("")
                .unwrap()
                .admin
                .check_listen("10.0.0.1:1".parse().unwrap()),
            Err(AdminError::TokenRequired("10.0.0.1:1".parse().unwrap()))
        );
    }

    #[test]
    fn tokens_compare_by_digest_and_never_print() {
        let token = AdminToken::new("0123456789abcdef");
        assert!(token.matches("0123456789abcdef"));
        assert!(!token.matches("0123456789abcdeF"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
        let errors = parse("[admin]\ntoken = \"short\"\n").unwrap_err();
        assert_eq!(errors.0[0].path, "admin.token");
        assert!(errors.0[0].message.contains("at least 16"), "{errors}");
        let errors = parse("[admin]\nmetrics = \"both\"\n").unwrap_err();
        assert_eq!(errors.0[0].path, "admin.metrics", "{errors}");
    }
}
