//! The Standard Webhooks headers: read and bounded before the body is, and the
//! signature checked with one MAC per key, however many signatures are offered.

use super::GateError;
use crate::config::WebhookSecret;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::time::Duration;

/// How far a webhook timestamp may be from now (Standard Webhooks recommends 5 minutes).
pub const WEBHOOK_TOLERANCE: Duration = Duration::from_secs(300);

/// Most `v1,` signatures one request may offer: senders send one per secret
/// they are rotating through, a handful at most.
pub const MAX_SIGNATURES: usize = 8;

/// Longest `webhook-signature` header, in bytes: room for the signatures above
/// and for those of other schemes (`v1a,` Ed25519), which are not checked.
pub const MAX_SIGNATURE_HEADER: usize = 2048;

/// Longest `webhook-id`, in bytes.
pub const MAX_WEBHOOK_ID: usize = 1024;

/// The webhook headers of one request, checked for everything that needs no body.
pub struct Claimed<'h> {
    pub(crate) id: &'h str,
    timestamp: &'h str,
    /// When the sender signed, in seconds since the epoch.
    pub(crate) sent: u64,
    candidates: Vec<[u8; 32]>,
}

/// Reads the webhook headers: all three present, the id and the signature list
/// within their bounds, the timestamp a plain number of seconds within the
/// tolerance of `now` (seconds since the epoch).
pub(crate) fn claimed(headers: &HeaderMap, now: u64) -> Result<Claimed<'_>, GateError> {
    let header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or(GateError::Unauthorized(
                "webhook-id, webhook-timestamp and webhook-signature are all required, in visible ASCII",
            ))
    };
    let (id, timestamp) = (header("webhook-id")?, header("webhook-timestamp")?);
    let signatures = header("webhook-signature")?;
    if id.is_empty() || id.len() > MAX_WEBHOOK_ID {
        return Err(GateError::Unauthorized(
            "webhook-id must be 1 to 1024 bytes long",
        ));
    }
    if signatures.len() > MAX_SIGNATURE_HEADER {
        return Err(GateError::Unauthorized(
            "webhook-signature is longer than 2048 bytes",
        ));
    }
    let sent = parse_timestamp(timestamp).ok_or(GateError::Unauthorized(
        "webhook-timestamp is not a whole number of seconds since the epoch",
    ))?;
    if sent.abs_diff(now) > WEBHOOK_TOLERANCE.as_secs() {
        return Err(GateError::Unauthorized(
            "webhook-timestamp is outside the 300 s tolerance",
        ));
    }
    let mut candidates = Vec::new();
    // Empty and undecodable entries are no candidates; other schemes are skipped.
    for entry in signatures.split_ascii_whitespace() {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        if candidates.len() == MAX_SIGNATURES {
            return Err(GateError::Unauthorized(
                "webhook-signature offers more than 8 signatures",
            ));
        }
        if let Some(sig) = BASE64
            .decode(encoded)
            .ok()
            .and_then(|s| <[u8; 32]>::try_from(s).ok())
        {
            candidates.push(sig);
        }
    }
    if candidates.is_empty() {
        return Err(GateError::Unauthorized(
            "webhook-signature holds no `v1,` signature",
        ));
    }
    Ok(Claimed {
        id,
        timestamp,
        sent,
        candidates,
    })
}

impl Claimed<'_> {
    /// Whether any offered signature is `key`'s over `body`: one MAC, then a
    /// constant-time comparison with every candidate.
    pub(crate) fn signed_with(&self, key: &WebhookSecret, body: &[u8]) -> bool {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
            return false;
        };
        for part in [
            self.id.as_bytes(),
            b".",
            self.timestamp.as_bytes(),
            b".",
            body,
        ] {
            mac.update(part);
        }
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        self.candidates.iter().fold(false, |any, c| {
            any | crate::digest::constant_time_eq(c, &expected)
        })
    }
}

/// Plain decimal digits only (no sign, no exponent), at most what a `u64` holds.
fn parse_timestamp(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", id.parse().unwrap());
        h.insert("webhook-timestamp", ts.parse().unwrap());
        h.insert("webhook-signature", sig.parse().unwrap());
        h
    }

    fn refusal(h: &HeaderMap, now: u64) -> &'static str {
        match claimed(h, now) {
            Err(GateError::Unauthorized(m)) => m,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    const SIG: &str = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn timestamps_never_panic_and_are_refused_clearly() {
        for ts in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-1",
            "+1",
            "",
            "1e9",
            " 1",
            "99999999999999999999999999999999",
        ] {
            let h = headers("m", ts, SIG);
            assert!(
                refusal(&h, 1_700_000_000).contains("webhook-timestamp"),
                "{ts}"
            );
        }
        assert!(claimed(&headers("m", "1700000299", SIG), 1_700_000_000).is_ok());
        assert!(claimed(&headers("m", "1699999700", SIG), 1_700_000_000).is_ok());
        assert!(refusal(&headers("m", "1699999699", SIG), 1_700_000_000).contains("tolerance"));
        assert!(refusal(&headers("m", "0", SIG), u64::MAX).contains("tolerance"));
    }

    #[test]
    fn signatures_are_bounded_in_number_and_size() {
        let now = 1_700_000_000;
        let ts = now.to_string();
        let nine = [SIG; MAX_SIGNATURES + 1].join(" ");
        let message = refusal(&headers("m", &ts, &nine), now);
        assert!(
            message.contains(&format!("more than {MAX_SIGNATURES} signatures")),
            "{message}"
        );
        let eight = [SIG; MAX_SIGNATURES].join(" ");
        assert_eq!(
            claimed(&headers("m", &ts, &eight), now)
                .unwrap()
                .candidates
                .len(),
            8
        );
        let long = format!("{SIG} {}", "x".repeat(MAX_SIGNATURE_HEADER));
        assert!(refusal(&headers("m", &ts, &long), now).contains("2048"));
        assert!(refusal(&headers("m", &ts, "v1, v1,"), now).contains("no `v1,` signature"));
        let id = "i".repeat(MAX_WEBHOOK_ID + 1);
        assert!(refusal(&headers(&id, &ts, SIG), now).contains("webhook-id"));
        // Other schemes are skipped, not counted.
        let mixed = format!("{} {SIG}", vec!["v1a,xyz"; 20].join(" "));
        assert_eq!(
            claimed(&headers("m", &ts, &mixed), now)
                .unwrap()
                .candidates
                .len(),
            1
        );
    }
}
