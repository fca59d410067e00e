//! Who may send events, and how many: credentials (bearer tokens, Standard
//! Webhooks signatures), per-origin rate limits, and load shedding.

use crate::config::{CredentialConfig, IngestConfig, WebhookSecret};
use crate::event::Event;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How far a webhook timestamp may be from now (Standard Webhooks recommends 5 minutes).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// Most webhook ids remembered for replay detection; past it the oldest go first.
const MAX_SEEN_IDS: usize = 100_000;

/// Why a request was not let in. Messages never contain a secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// No or wrong credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(&'static str),
    /// The credential may not send events of this source.
    #[error(
        "forbidden: credential `{credential}` may not send events with source {event_source:?}"
    )]
    Forbidden {
        /// The credential's name.
        credential: String,
        /// The refused source.
        event_source: String,
    },
    /// The origin sent more than its rate.
    #[error("rate limit exceeded for origin {origin:?}")]
    RateLimited {
        /// The origin.
        origin: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// Too many events in flight.
    #[error("overloaded: {0} events in flight; retry later")]
    Overloaded(u32),
}

enum Secret {
    /// SHA-256 of the token, so the comparison time says nothing about it.
    Bearer([u8; 32]),
    Webhook(Vec<WebhookSecret>),
}

struct Credential {
    name: String,
    secret: Secret,
    sources: Vec<String>,
}

/// The ingest gate, built once per server from `[ingest]`.
pub struct Guard {
    credentials: Vec<Credential>,
    seen: Mutex<HashMap<String, SystemTime>>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
    per_minute: Option<u64>,
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    allowed_origins: Vec<String>,
}

impl Guard {
    /// A gate for `config` (already validated).
    pub fn new(config: &IngestConfig) -> Self {
        let credentials = config.credential.iter().map(credential).collect();
        let limiter = config.rate_limit.map(|r| {
            let quota =
                Quota::per_second(r.per_second).allow_burst(r.burst.unwrap_or(r.per_second));
            DefaultKeyedRateLimiter::keyed(quota)
        });
        Self {
            credentials,
            seen: Mutex::new(HashMap::new()),
            limiter,
            checks: AtomicU64::new(0),
            per_minute: config
                .rate_limit
                .map(|r| u64::from(r.per_second.get()) * 60),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight as usize)),
            max_in_flight: config.max_in_flight,
            allowed_origins: config.allowed_origins.clone(),
        }
    }

    /// Checks the request's credentials against the body it carries. Returns the
    /// name of the matching credential, or `None` when none are configured.
    pub fn authenticate(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<&str>, GuardError> {
        if self.credentials.is_empty() {
            return Ok(None);
        }
        if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(GuardError::Unauthorized(
                    "the Authorization header is not `Bearer <token>`",
                ))?;
            let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            return self
                .credentials
                .iter()
                .find(|c| matches!(&c.secret, Secret::Bearer(d) if constant_time_eq(d, &digest)))
                .map(|c| Some(c.name.as_str()))
                .ok_or(GuardError::Unauthorized("invalid bearer token"));
        }
        if headers.contains_key("webhook-signature") {
            return self.verify_webhook(headers, body).map(Some);
        }
        Err(GuardError::Unauthorized(
            "credentials required: a bearer token or a Standard Webhooks signature",
        ))
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<&str, GuardError> {
        let header = |name: &'static str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(GuardError::Unauthorized(
                    "webhook-id, webhook-timestamp and webhook-signature are all required",
                ))
        };
        let (id, timestamp, signatures) = (
            header("webhook-id")?,
            header("webhook-timestamp")?,
            header("webhook-signature")?,
        );
        let sent: u64 = timestamp.parse().map_err(|_| {
            GuardError::Unauthorized("webhook-timestamp is not a number of seconds")
        })?;
        let now = SystemTime::now();
        let sent_at = SystemTime::UNIX_EPOCH + Duration::from_secs(sent);
        let skew = now.duration_since(sent_at).unwrap_or_else(|e| e.duration());
        if skew > WEBHOOK_TOLERANCE {
            return Err(GuardError::Unauthorized(
                "webhook-timestamp is outside the 300 s tolerance",
            ));
        }
        let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
        let offered: Vec<Vec<u8>> = signatures
            .split_whitespace()
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|s| BASE64.decode(s).ok())
            .collect();
        let credential = self
            .credentials
            .iter()
            .find(|c| match &c.secret {
                Secret::Webhook(keys) => keys.iter().any(|key| {
                    offered.iter().any(|sig| {
                        Hmac::<Sha256>::new_from_slice(key.as_bytes()).is_ok_and(|mut mac| {
                            mac.update(&signed);
                            mac.verify_slice(sig).is_ok()
                        })
                    })
                }),
                Secret::Bearer(_) => false,
            })
            .ok_or(GuardError::Unauthorized("invalid webhook signature"))?;
        let mut seen = crate::sync::lock(&self.seen);
        if seen.contains_key(id) {
            return Err(GuardError::Unauthorized("replayed webhook-id"));
        }
        if seen.len() >= MAX_SEEN_IDS {
            seen.retain(|_, at| {
                now.duration_since(*at).unwrap_or_default() <= WEBHOOK_TOLERANCE * 2
            });
        }
        if seen.len() < MAX_SEEN_IDS {
            seen.insert(id.to_owned(), now);
        }
        Ok(&credential.name)
    }

    /// Refuses events whose source the credential may not use.
    pub fn check_sources(
        &self,
        credential: Option<&str>,
        events: &[Event],
    ) -> Result<(), GuardError> {
        let Some(c) = credential.and_then(|n| self.credentials.iter().find(|c| c.name == n)) else {
            return Ok(());
        };
        if c.sources.is_empty() {
            return Ok(());
        }
        match events
            .iter()
            .find(|e| !c.sources.iter().any(|p| e.source.starts_with(p.as_str())))
        {
            Some(e) => Err(GuardError::Forbidden {
                credential: c.name.clone(),
                event_source: e.source.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Counts one request against `origin`'s rate.
    pub fn rate_limit(&self, origin: &(dyn Fn() -> String + Sync)) -> Result<(), GuardError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let origin = origin();
        // Forget idle origins now and then, so many one-off clients cannot grow memory.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            limiter.retain_recent();
        }
        limiter
            .check_key(&origin)
            .map_err(|not_until| GuardError::RateLimited {
                origin: origin.clone(),
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }

    /// Reserves room for `events` events in flight, or refuses.
    pub fn admit(&self, events: usize) -> Result<OwnedSemaphorePermit, GuardError> {
        let n = u32::try_from(events.max(1)).unwrap_or(u32::MAX);
        Arc::clone(&self.in_flight)
            .try_acquire_many_owned(n)
            .map_err(|_| GuardError::Overloaded(self.max_in_flight))
    }

    /// Refuses at once when no event could be admitted, before the body is read.
    pub fn check_capacity(&self) -> Result<(), GuardError> {
        if self.in_flight.available_permits() == 0 {
            Err(GuardError::Overloaded(self.max_in_flight))
        } else {
            Ok(())
        }
    }

    /// The CloudEvents webhook handshake: the origin to allow, if it is allowed.
    pub fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.allowed_origins.iter().any(|o| o == "*") {
            Some("*".to_owned())
        } else {
            self.allowed_origins
                .iter()
                .find(|o| o.eq_ignore_ascii_case(origin))
                .cloned()
        }
    }

    /// The rate to announce in `WebHook-Allowed-Rate` (requests per minute), `*` for none.
    pub fn allowed_rate(&self) -> String {
        self.per_minute
            .map_or_else(|| "*".to_owned(), |n| n.to_string())
    }
}

fn credential(c: &CredentialConfig) -> Credential {
    let secret = match &c.bearer {
        Some(token) => Secret::Bearer(Sha256::digest(token.as_bytes()).into()),
        None => Secret::Webhook(c.webhook_secrets.clone()),
    };
    Credential {
        name: c.name.get_ref().to_string(),
        secret,
        sources: c.sources.clone(),
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Source};

    fn guard(toml: &str) -> Guard {
        let config = Config::parse(Source::new("t.toml", toml.to_owned()), |_| None).unwrap();
        Guard::new(&config.ingest)
    }

    fn sign(secret: &str, id: &str, ts: u64, body: &[u8]) -> HeaderMap {
        let key: WebhookSecret = secret.parse().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        let sig = BASE64.encode(mac.finalize().into_bytes());
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert(
            "webhook-signature",
            format!("v1,AAAA v1,{sig}").parse().unwrap(),
        );
        h
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    const WEBHOOK: &str = "[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"whsec_b2xkLXNlY3JldA==\", \"whsec_c2VjcmV0LTI=\"]\n";

    #[test]
    fn webhook_signatures_verify_with_any_key_and_reject_replays_and_skew() {
        let g = guard(WEBHOOK);
        let body = b"{\"x\":1}";
        let h = sign("whsec_c2VjcmV0LTI=", "msg-1", now(), body);
        assert_eq!(g.authenticate(&h, body), Ok(Some("hooks")));
        assert_eq!(
            g.authenticate(&h, body),
            Err(GuardError::Unauthorized("replayed webhook-id"))
        );
        let h = sign("whsec_c2VjcmV0LTI=", "msg-2", now(), body);
        assert!(g.authenticate(&h, b"tampered").is_err());
        let h = sign("whsec_c2VjcmV0LTI=", "msg-3", now() - 301, body);
        assert!(
            matches!(g.authenticate(&h, body), Err(GuardError::Unauthorized(m)) if m.contains("tolerance"))
        );
        let h = sign("whsec_d3Jvbmc=", "msg-4", now(), body);
        assert_eq!(
            g.authenticate(&h, body),
            Err(GuardError::Unauthorized("invalid webhook signature"))
        );
    }

    #[test]
    fn bearer_tokens_and_sources() {
        let g = guard(
            "[[ingest.credential]]\nname = \"shop\"\nbearer = \"s3cret\"\nsources = [\"/shop\"]\n",
        );
        let mut h = HeaderMap::new();
        assert!(g.authenticate(&h, b"").is_err());
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert_eq!(
            g.authenticate(&h, b""),
            Err(GuardError::Unauthorized("invalid bearer token"))
        );
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        assert_eq!(g.authenticate(&h, b""), Ok(Some("shop")));
        let ok = Event::new("1", "/shop/eu", "t");
        let other = Event::new("2", "/bank", "t");
        assert!(
            g.check_sources(Some("shop"), std::slice::from_ref(&ok))
                .is_ok()
        );
        assert!(matches!(
            g.check_sources(Some("shop"), &[ok, other]),
            Err(GuardError::Forbidden { .. })
        ));
    }

    #[test]
    fn without_credentials_everyone_is_let_in() {
        let g = guard("");
        assert_eq!(g.authenticate(&HeaderMap::new(), b""), Ok(None));
        assert_eq!(g.allowed_origin("x.example"), Some("*".into()));
        assert_eq!(g.allowed_rate(), "*");
    }

    #[test]
    fn rate_limit_and_shedding() {
        let g = guard(
            "[ingest]\nmax_in_flight = 2\nrate_limit = { per_second = 1, burst = 2 }\nallowed_origins = [\"a.example\"]\n",
        );
        assert!(g.rate_limit(&|| "a".into()).is_ok());
        assert!(g.rate_limit(&|| "a".into()).is_ok());
        assert!(matches!(
            g.rate_limit(&|| "a".into()),
            Err(GuardError::RateLimited { .. })
        ));
        assert!(
            g.rate_limit(&|| "b".into()).is_ok(),
            "limits are per origin"
        );
        let permit = g.admit(2).unwrap();
        assert!(g.check_capacity().is_err());
        assert!(g.admit(1).is_err());
        drop(permit);
        assert!(g.admit(1).is_ok());
        assert_eq!(g.allowed_origin("A.example"), Some("a.example".into()));
        assert_eq!(g.allowed_origin("b.example"), None);
        assert_eq!(g.allowed_rate(), "60");
    }
}
