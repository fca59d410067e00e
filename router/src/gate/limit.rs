//! Rate limits per sender: the authenticated credential, else the client's
//! address (from `X-Forwarded-For` only behind a trusted proxy). Never a header
//! the client picks freely, and a bounded number of buckets of a fixed size.

use super::GateError;
use crate::config::{ProxyRange, RateLimitConfig};
use http::HeaderMap;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most buckets kept; past it, idle ones are dropped, and if every one is
/// active, new senders share one overflow bucket until some go idle.
pub const MAX_BUCKETS: usize = 65_536;

/// Most `X-Forwarded-For` hops looked at, from the nearest.
const MAX_HOPS: usize = 32;

/// Whom a request is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    /// An authenticated credential, by name.
    Credential(Arc<str>),
    /// An unauthenticated client: its IPv4 address, or its IPv6 /64 (one
    /// subscriber holds a whole /64).
    Client(IpAddr),
    /// Every new sender while all buckets are busy.
    Overflow,
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Credential(name) => write!(f, "credential `{name}`"),
            Self::Client(ip) => write!(f, "client {ip}"),
            Self::Overflow => f.write_str("new clients (every bucket is busy)"),
        }
    }
}

/// The client of a request from `peer`: the peer itself, or behind trusted
/// proxies the nearest `X-Forwarded-For` hop that is not one of them.
pub(crate) fn client(
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    trusted: &[ProxyRange],
) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Later header lines are nearer hops, as are later entries of a line.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    Some(client)
}

/// The bucket key of a client address.
pub(crate) fn client_key(ip: Option<IpAddr>) -> Sender {
    match ip {
        Some(IpAddr::V6(v6)) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            Sender::Client(IpAddr::V6(Ipv6Addr::from(net)))
        }
        Some(ip) => Sender::Client(ip),
        None => Sender::Client(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    }
}

/// A generic cell rate algorithm per sender: each bucket is the time at which
/// it is next empty (its "theoretical arrival time").
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    /// Time one request is worth.
    emission: Duration,
    /// How far ahead of now a bucket may run: the burst less one request.
    tolerance: Duration,
    buckets: Mutex<Buckets>,
}

struct Buckets {
    next_free: HashMap<Sender, Instant>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        let per_second = config.per_second.get();
        let burst = config.burst.map_or(per_second, std::num::NonZeroU32::get);
        let emission = Duration::from_secs(1) / per_second;
        Self {
            config,
            emission,
            tolerance: emission * (burst - 1),
            buckets: Mutex::new(Buckets {
                next_free: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Whether `other` counts the same rate (then this one's buckets are kept
    /// across a reload).
    pub(crate) fn same_rate(&self, other: &RateLimiter) -> bool {
        (self.emission, self.tolerance) == (other.emission, other.tolerance)
    }

    /// The requests per minute announced by the webhook handshake.
    pub(crate) fn per_minute(&self) -> u64 {
        u64::from(self.config.per_second.get()) * 60
    }

    /// Counts one request of `sender`, or says when to come back.
    pub(crate) fn check(&self, sender: Sender) -> Result<(), GateError> {
        self.check_at(sender, Instant::now())
    }

    fn check_at(&self, mut sender: Sender, now: Instant) -> Result<(), GateError> {
        let mut buckets = crate::sync::lock(&self.buckets);
        if !buckets.next_free.contains_key(&sender) && buckets.next_free.len() >= MAX_BUCKETS {
            // Sweeping is a scan: at most once a second, however hard new
            // senders knock.
            if buckets
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
            {
                buckets.last_sweep = Some(now);
                buckets.next_free.retain(|_, free| *free > now);
            }
            if buckets.next_free.len() >= MAX_BUCKETS {
                sender = Sender::Overflow;
            }
        }
        let free = buckets
            .next_free
            .get(&sender)
            .copied()
            .unwrap_or(now)
            .max(now);
        let limit = now + self.tolerance;
        if free > limit {
            return Err(GateError::RateLimited {
                sender: sender.to_string(),
                retry_after: free - limit,
            });
        }
        buckets.next_free.insert(sender, free + self.emission);
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        crate::sync::lock(&self.buckets).next_free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    fn limiter(per_second: u32, burst: u32) -> RateLimiter {
        RateLimiter::new(RateLimitConfig {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst),
        })
    }

    fn ip(s: &str) -> Sender {
        Sender::Client(s.parse().unwrap())
    }

    #[test]
    fn buckets_refill_at_the_rate_and_allow_the_burst() {
        let l = limiter(10, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at(ip("10.0.0.1"), t0).is_ok());
        }
        let Err(GateError::RateLimited {
            retry_after,
            sender,
        }) = l.check_at(ip("10.0.0.1"), t0)
        else {
            panic!("the burst is spent")
        };
        assert_eq!(retry_after, Duration::from_millis(100));
        assert_eq!(sender, "client 10.0.0.1");
        assert!(l.check_at(ip("10.0.0.2"), t0).is_ok(), "per sender");
        assert!(
            l.check_at(ip("10.0.0.1"), t0 + Duration::from_millis(100))
                .is_ok()
        );
    }

    #[test]
    fn the_number_of_buckets_is_bounded() {
        let l = limiter(1, 1);
        let t0 = Instant::now();
        for i in 0..MAX_BUCKETS as u32 {
            let a = IpAddr::from(i.to_be_bytes());
            assert!(l.check_at(Sender::Client(a), t0).is_ok());
        }
        // Every bucket busy: new senders share one.
        assert!(l.check_at(ip("203.0.113.1"), t0).is_ok());
        assert!(l.check_at(ip("203.0.113.2"), t0).is_err());
        assert_eq!(l.len(), MAX_BUCKETS + 1);
        // Once idle, they are swept to make room.
        let later = t0 + Duration::from_secs(5);
        assert!(l.check_at(ip("203.0.113.3"), later).is_ok());
        assert!(l.len() <= 2, "{}", l.len());
    }

    #[test]
    fn the_client_is_the_peer_unless_it_is_a_trusted_proxy() {
        let trusted: Vec<ProxyRange> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "198.51.100.7, 10.0.0.9".parse().unwrap());
        h.append("x-forwarded-for", "203.0.113.5, 10.1.1.1".parse().unwrap());
        let peer = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(client(&h, peer("192.0.2.1"), &trusted), peer("192.0.2.1"));
        assert_eq!(client(&h, peer("10.0.0.1"), &trusted), peer("203.0.113.5"));
        assert_eq!(client(&h, peer("10.0.0.1"), &[]), peer("10.0.0.1"));
        let mut garbage = HeaderMap::new();
        garbage.insert("x-forwarded-for", "not-an-ip".parse().unwrap());
        assert_eq!(
            client(&garbage, peer("10.0.0.1"), &trusted),
            peer("10.0.0.1")
        );
        assert_eq!(
            client_key(peer("2001:db8::1:2")),
            client_key(peer("2001:db8::ffff:1")),
            "one /64, one bucket"
        );
    }
}
