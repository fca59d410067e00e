//! Who may send events, and how many: credentials (bearer tokens, Standard
//! Webhooks signatures), the sources each may use, rate limits per sender, and
//! load shedding.
//!
//! A gate is built from `[ingest]` with each runtime snapshot, so a reload
//! changes credentials and limits together with the routes: a request sees the
//! old gate with the old routes, or the new with the new. What a gate holds
//! (remembered webhook ids, rate buckets, events in flight) passes on to its
//! successor when the settings it depends on did not change.

mod limit;
mod replay;
mod webhook;

pub use limit::Sender;
pub use replay::Claim;
pub use webhook::WEBHOOK_TOLERANCE;

use crate::config::{CredentialConfig, IngestConfig, ProxyRange, WebhookSecret};
use crate::event::Event;
use crate::event::http::ContentMode;
use crate::redis::Redis;
use http::HeaderMap;
use limit::RateLimiter;
use replay::{MemoryIds, ReplayStore};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a request was not let in. Messages never contain a secret.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
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
    /// The credential may send structured or batched bodies only.
    #[error(
        "credential `{credential}` has require_structured = true: send application/cloudevents+json or application/cloudevents-batch+json (binary mode's ce-* headers are not covered by the webhook signature)"
    )]
    StructuredRequired {
        /// The credential's name.
        credential: String,
    },
    /// The sender sent more than its rate.
    #[error("rate limit exceeded for {sender}")]
    RateLimited {
        /// Whom the limit counts: a credential or a client address.
        sender: String,
        /// When to come back.
        retry_after: Duration,
    },
    /// Too many events in flight.
    #[error("overloaded: {0} events in flight; retry later")]
    Overloaded(u32),
    /// The shared replay store (Redis) does not answer, so a webhook id cannot
    /// be checked; the sender should retry.
    #[error("the webhook replay store is unavailable; retry later")]
    ReplayStoreUnavailable,
}

enum Secret {
    /// SHA-256 of the token, so the comparison time says nothing about it.
    Bearer([u8; 32]),
    Webhook(Vec<WebhookSecret>),
}

struct Credential {
    name: Arc<str>,
    secret: Secret,
    sources: Vec<String>,
    require_structured: bool,
}

/// Who a request says it is, from its headers alone (before its body is read).
pub enum Identity<'h> {
    /// No credentials are configured: everyone is let in, counted by address.
    Anonymous,
    /// A bearer token that matched credential `index`.
    Bearer(usize),
    /// Standard Webhooks headers, to check against the body.
    Webhook(webhook::Claimed<'h>),
}

/// The sender a request was authenticated as, and the webhook id it claimed.
#[derive(Default)]
pub struct Authenticated {
    credential: Option<usize>,
    /// Released unless [`Authenticated::accepted`] is called.
    claim: Option<Claim>,
}

impl Authenticated {
    /// The request was accepted (answered 2xx): its webhook id, if any, is now
    /// remembered as used.
    pub fn accepted(self) {
        if let Some(claim) = self.claim {
            claim.keep();
        }
    }
}

/// The ingest gate of one runtime snapshot, built from `[ingest]`.
pub struct Gate {
    credentials: Vec<Credential>,
    replay: Arc<ReplayStore>,
    limiter: Option<Arc<RateLimiter>>,
    trusted_proxies: Vec<ProxyRange>,
    in_flight: Arc<Semaphore>,
    max_in_flight: u32,
    allowed_origins: Vec<String>,
    /// MACs computed, so tests can tell that a request costs one per key.
    macs: AtomicU64,
}

impl Gate {
    /// A gate for a validated `config`; `replay_redis` is the Redis of
    /// `replay_store = "redis"` (opened with the runtime's other backends).
    pub fn new(config: &IngestConfig, replay_redis: Option<(Redis, String)>) -> Self {
        let replay = match replay_redis {
            Some((redis, prefix)) => ReplayStore::Redis { redis, prefix },
            None => ReplayStore::Memory(Mutex::new(MemoryIds::new(config.replay_max_entries))),
        };
        Self {
            credentials: config.credential.iter().map(credential).collect(),
            replay: Arc::new(replay),
            limiter: config.rate_limit.map(|r| Arc::new(RateLimiter::new(r))),
            trusted_proxies: config.trusted_proxies.clone(),
            in_flight: Arc::new(Semaphore::new(config.max_in_flight as usize)),
            max_in_flight: config.max_in_flight,
            allowed_origins: config.allowed_origins.clone(),
            macs: AtomicU64::new(0),
        }
    }

    /// Takes over what `previous` holds wherever the settings allow: remembered
    /// webhook ids (same kind of store), rate buckets (same rate), and the
    /// events in flight (same `max_in_flight`). Credentials, sources, origins
    /// and trusted proxies are always this gate's own.
    pub fn succeed(&mut self, previous: &Gate) {
        if let (ReplayStore::Memory(old), ReplayStore::Memory(new)) =
            (&*previous.replay, &*self.replay)
        {
            let max = crate::sync::lock(new).max();
            crate::sync::lock(old).set_max(max);
            self.replay = Arc::clone(&previous.replay);
        }
        if let (Some(old), Some(new)) = (&previous.limiter, &self.limiter)
            && old.same_rate(new)
        {
            self.limiter = Some(Arc::clone(old));
        }
        if previous.max_in_flight == self.max_in_flight {
            self.in_flight = Arc::clone(&previous.in_flight);
        }
    }

    /// Reads who the request says it is from its headers, and counts it against
    /// its rate when that is known now: a bearer token is checked here, before
    /// the body is read; a webhook sender is counted once its signature checks
    /// out ([`Gate::authenticate`]); without credentials configured, the client
    /// address counts.
    pub fn identify<'h>(
        &self,
        headers: &'h HeaderMap,
        peer: Option<IpAddr>,
    ) -> Result<Identity<'h>, GateError> {
        if self.credentials.is_empty() {
            self.count(|| limit::client_key(self.client(headers, peer)))?;
            return Ok(Identity::Anonymous);
        }
        if let Some(auth) = headers.get(http::header::AUTHORIZATION) {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or(GateError::Unauthorized(
                    "the Authorization header is not `Bearer <token>`",
                ))?;
            let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
            let index = self
                .credentials
                .iter()
                .position(|c| {
                    matches!(&c.secret, Secret::Bearer(d) if crate::digest::constant_time_eq(d, &digest))
                })
                .ok_or(GateError::Unauthorized("invalid bearer token"))?;
            self.count(|| Sender::Credential(Arc::clone(&self.credentials[index].name)))?;
            return Ok(Identity::Bearer(index));
        }
        if headers.contains_key("webhook-signature") {
            return webhook::claimed(headers, unix_now()).map(Identity::Webhook);
        }
        Err(GateError::Unauthorized(
            "credentials required: a bearer token or a Standard Webhooks signature",
        ))
    }

    /// Checks a webhook signature against the body (one MAC per configured key,
    /// whatever the number of signatures offered), counts the credential against
    /// its rate, and claims the webhook id. A bearer or anonymous identity is
    /// already checked.
    pub async fn authenticate(
        &self,
        identity: Identity<'_>,
        body: &[u8],
    ) -> Result<Authenticated, GateError> {
        let claimed = match identity {
            Identity::Anonymous => return Ok(Authenticated::default()),
            Identity::Bearer(index) => {
                return Ok(Authenticated {
                    credential: Some(index),
                    claim: None,
                });
            }
            Identity::Webhook(claimed) => claimed,
        };
        let index = self
            .credentials
            .iter()
            .position(|c| match &c.secret {
                Secret::Webhook(keys) => keys.iter().any(|key| {
                    self.macs.fetch_add(1, Ordering::Relaxed);
                    claimed.signed_with(key, body)
                }),
                Secret::Bearer(_) => false,
            })
            .ok_or(GateError::Unauthorized("invalid webhook signature"))?;
        let name = &self.credentials[index].name;
        self.count(|| Sender::Credential(Arc::clone(name)))?;
        // Remembered until the timestamp leaves the tolerance: a replay after
        // that is refused for its timestamp.
        let expires = claimed.sent.saturating_add(WEBHOOK_TOLERANCE.as_secs());
        let ttl = Duration::from_secs(expires.saturating_sub(unix_now()).max(1));
        let key = replay_key(name, claimed.id);
        let claim = self.replay.claim(key, ttl).await?;
        Ok(Authenticated {
            credential: Some(index),
            claim: Some(claim),
        })
    }

    /// Refuses binary mode from credentials with `require_structured`.
    pub fn check_mode(&self, sender: &Authenticated, mode: ContentMode) -> Result<(), GateError> {
        match sender.credential.map(|i| &self.credentials[i]) {
            Some(c) if c.require_structured && mode == ContentMode::Binary => {
                Err(GateError::StructuredRequired {
                    credential: c.name.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Refuses events whose source the credential may not use.
    pub fn check_sources(&self, sender: &Authenticated, events: &[Event]) -> Result<(), GateError> {
        let Some(c) = sender.credential.map(|i| &self.credentials[i]) else {
            return Ok(());
        };
        if c.sources.is_empty() {
            return Ok(());
        }
        match events
            .iter()
            .find(|e| !c.sources.iter().any(|p| source_allowed(&e.source, p)))
        {
            Some(e) => Err(GateError::Forbidden {
                credential: c.name.to_string(),
                event_source: e.source.clone(),
            }),
            None => Ok(()),
        }
    }

    /// The client address of a request from `peer`, per `trusted_proxies`: for
    /// rate limits and logs.
    pub fn client(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        limit::client(headers, peer, &self.trusted_proxies)
    }

    fn count(&self, sender: impl FnOnce() -> Sender) -> Result<(), GateError> {
        match &self.limiter {
            Some(limiter) => limiter.check(sender()),
            None => Ok(()),
        }
    }

    /// Reserves room for `events` events in flight, or refuses.
    pub fn admit(&self, events: usize) -> Result<OwnedSemaphorePermit, GateError> {
        let n = u32::try_from(events.max(1)).unwrap_or(u32::MAX);
        Arc::clone(&self.in_flight)
            .try_acquire_many_owned(n)
            .map_err(|_| GateError::Overloaded(self.max_in_flight))
    }

    /// Refuses at once when no event could be admitted, before the body is read.
    pub fn check_capacity(&self) -> Result<(), GateError> {
        if self.in_flight.available_permits() == 0 {
            Err(GateError::Overloaded(self.max_in_flight))
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
        self.limiter
            .as_ref()
            .map_or_else(|| "*".to_owned(), |l| l.per_minute().to_string())
    }

    /// MACs computed since the gate was built.
    #[cfg(test)]
    fn macs_computed(&self) -> u64 {
        self.macs.load(Ordering::Relaxed)
    }
}

/// Whether `source` is `allowed` or below it on a path-segment boundary.
fn source_allowed(source: &str, allowed: &str) -> bool {
    source
        .strip_prefix(allowed)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || allowed.ends_with('/'))
}

/// A fixed-size key for (credential, webhook id): ids from different senders
/// do not collide, and a long id costs no more memory than a short one.
fn replay_key(credential: &str, id: &str) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(credential.as_bytes());
    hash.update([0]);
    hash.update(id.as_bytes());
    hash.finalize().into()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn credential(c: &CredentialConfig) -> Credential {
    let secret = match &c.bearer {
        Some(token) => Secret::Bearer(Sha256::digest(token.as_bytes()).into()),
        None => Secret::Webhook(c.webhook_secrets.clone()),
    };
    Credential {
        name: Arc::from(c.name.get_ref().as_str()),
        secret,
        sources: c.sources.clone(),
        require_structured: c.require_structured,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Source};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use hmac::{Hmac, Mac};

    fn config(toml: &str) -> IngestConfig {
        Config::parse(Source::new("t.toml", toml.to_owned()), |_| None)
            .unwrap()
            .ingest
    }

    fn gate(toml: &str) -> Gate {
        Gate::new(&config(toml), None)
    }

    fn sign(secret: &str, id: &str, ts: u64, body: &[u8]) -> String {
        let key: WebhookSecret = secret.parse().unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        BASE64.encode(mac.finalize().into_bytes())
    }

    fn headers(id: &str, ts: u64, signatures: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.to_string().parse().unwrap());
        h.insert("webhook-signature", signatures.parse().unwrap());
        h
    }

    async fn authenticate(
        g: &Gate,
        h: &HeaderMap,
        body: &[u8],
    ) -> Result<Option<String>, GateError> {
        let identity = g.identify(h, None)?;
        let sender = g.authenticate(identity, body).await?;
        let name = sender.credential.map(|i| g.credentials[i].name.to_string());
        sender.accepted();
        Ok(name)
    }

    const WEBHOOK: &str = "[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"whsec_b2xkLXNlY3JldA==\", \"whsec_c2VjcmV0LTI=\"]\n";

    #[tokio::test]
    async fn webhook_signatures_verify_with_any_key_and_reject_replays_and_skew() {
        let g = gate(WEBHOOK);
        let body = b"{\"x\":1}";
        let now = unix_now();
        let sig =
            |id: &str, ts: u64| format!("v1,AAAA v1,{}", sign("whsec_c2VjcmV0LTI=", id, ts, body));
        let h = headers("msg-1", now, &sig("msg-1", now));
        assert_eq!(authenticate(&g, &h, body).await, Ok(Some("hooks".into())));
        assert_eq!(
            authenticate(&g, &h, body).await,
            Err(GateError::Unauthorized("replayed webhook-id"))
        );
        let h = headers("msg-2", now, &sig("msg-2", now));
        assert!(authenticate(&g, &h, b"tampered").await.is_err());
        let h = headers("msg-3", now - 301, &sig("msg-3", now - 301));
        assert!(
            matches!(authenticate(&g, &h, body).await, Err(GateError::Unauthorized(m)) if m.contains("tolerance"))
        );
        let wrong = format!("v1,{}", sign("whsec_d3Jvbmc=", "msg-4", now, body));
        assert_eq!(
            authenticate(&g, &headers("msg-4", now, &wrong), body).await,
            Err(GateError::Unauthorized("invalid webhook signature"))
        );
    }

    /// Finding 1: the MAC used to be computed once per offered signature.
    #[tokio::test]
    async fn one_mac_per_key_however_many_signatures_are_offered() {
        let g = gate(WEBHOOK);
        let now = unix_now();
        let body = vec![b'x'; 4096];
        let wrong: Vec<String> = (0..webhook::MAX_SIGNATURES)
            .map(|i| format!("v1,{}", BASE64.encode([i as u8; 32])))
            .collect();
        let h = headers("m", now, &wrong.join(" "));
        assert_eq!(
            authenticate(&g, &h, &body).await,
            Err(GateError::Unauthorized("invalid webhook signature"))
        );
        assert_eq!(g.macs_computed(), 2, "one per key of the one credential");
    }

    #[tokio::test]
    async fn an_id_is_released_unless_the_request_is_accepted() {
        let g = gate(WEBHOOK);
        let now = unix_now();
        let body = b"{}";
        let h = headers(
            "r",
            now,
            &format!("v1,{}", sign("whsec_c2VjcmV0LTI=", "r", now, body)),
        );
        let first = g
            .authenticate(g.identify(&h, None).unwrap(), body)
            .await
            .unwrap();
        // In flight: a copy is refused.
        assert!(
            g.authenticate(g.identify(&h, None).unwrap(), body)
                .await
                .is_err()
        );
        drop(first);
        let second = g
            .authenticate(g.identify(&h, None).unwrap(), body)
            .await
            .unwrap();
        second.accepted();
        assert!(
            g.authenticate(g.identify(&h, None).unwrap(), body)
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn bearer_tokens_and_sources_on_segment_boundaries() {
        let g = gate(
            "[[ingest.credential]]\nname = \"shop\"\nbearer = \"s3cret\"\nsources = [\"/shop\", \"https://x.example/\"]\n",
        );
        let mut h = HeaderMap::new();
        assert!(g.identify(&h, None).is_err());
        h.insert("authorization", "Bearer wrong".parse().unwrap());
        assert!(matches!(
            g.identify(&h, None),
            Err(GateError::Unauthorized("invalid bearer token"))
        ));
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        let sender = g
            .authenticate(g.identify(&h, None).unwrap(), b"")
            .await
            .unwrap();
        let check = |source: &str| {
            g.check_sources(&sender, &[Event::new("1", source, "t")])
                .is_ok()
        };
        assert!(check("/shop"));
        assert!(check("/shop/eu"));
        assert!(check("https://x.example/a"));
        assert!(!check("/shopping-evil"));
        assert!(!check("/sho"));
        assert!(!check("/bank"));
    }

    #[tokio::test]
    async fn structured_only_credentials_refuse_binary_mode() {
        let g = gate(&format!("{WEBHOOK}require_structured = true\n"));
        let sender = Authenticated {
            credential: Some(0),
            claim: None,
        };
        assert!(g.check_mode(&sender, ContentMode::Structured).is_ok());
        assert!(g.check_mode(&sender, ContentMode::Batch).is_ok());
        assert!(matches!(
            g.check_mode(&sender, ContentMode::Binary),
            Err(GateError::StructuredRequired { .. })
        ));
    }

    #[test]
    fn without_credentials_everyone_is_let_in() {
        let g = gate("");
        assert!(matches!(
            g.identify(&HeaderMap::new(), None),
            Ok(Identity::Anonymous)
        ));
        assert_eq!(g.allowed_origin("x.example"), Some("*".into()));
        assert_eq!(g.allowed_rate(), "*");
    }

    #[test]
    fn rate_limit_by_address_not_origin_and_shedding() {
        let g = gate(
            "[ingest]\nmax_in_flight = 2\nrate_limit = { per_second = 1, burst = 2 }\nallowed_origins = [\"a.example\"]\n",
        );
        let peer = Some("192.0.2.1".parse().unwrap());
        let mut h = HeaderMap::new();
        for i in 0..3 {
            h.insert("origin", format!("o{i}.example").parse().unwrap());
            let outcome = g.identify(&h, peer);
            assert_eq!(outcome.is_ok(), i < 2, "{i}");
        }
        assert!(g.identify(&h, Some("192.0.2.2".parse().unwrap())).is_ok());
        let permit = g.admit(2).unwrap();
        assert!(g.check_capacity().is_err());
        assert!(g.admit(1).is_err());
        drop(permit);
        assert!(g.admit(1).is_ok());
        assert_eq!(g.allowed_origin("A.example"), Some("a.example".into()));
        assert_eq!(g.allowed_origin("b.example"), None);
        assert_eq!(g.allowed_rate(), "60");
    }

    #[tokio::test]
    async fn a_successor_keeps_state_only_where_the_settings_match() {
        let old_text = "[ingest]\nmax_in_flight = 2\nrate_limit = { per_second = 1 }\n";
        let old = gate(old_text);
        let peer = Some("192.0.2.1".parse().unwrap());
        assert!(old.identify(&HeaderMap::new(), peer).is_ok());
        let _permit = old.admit(1).unwrap();
        let mut same = gate(old_text);
        same.succeed(&old);
        assert!(
            same.identify(&HeaderMap::new(), peer).is_err(),
            "buckets kept"
        );
        assert!(same.admit(2).is_err(), "events in flight kept");
        let text = "[ingest]\nmax_in_flight = 3\nrate_limit = { per_second = 2 }\n";
        let mut changed = gate(text);
        changed.succeed(&old);
        assert!(
            changed.identify(&HeaderMap::new(), peer).is_ok(),
            "new rate, new buckets"
        );
        assert!(changed.admit(3).is_ok(), "new size, new count");
        assert!(Arc::ptr_eq(&changed.replay, &old.replay), "ids kept");
    }
}
