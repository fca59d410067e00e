//! A seeded fuzz of ingest over real HTTP: random and mutated requests in the
//! three content modes, with hostile webhook and bearer headers, against a router
//! without credentials (so the decoders see everything) and one with them (so the
//! gate sees everything, and correctly signed requests reach the decoders). No
//! input may panic the router or get a 5xx; a failure prints the request that
//! caused it. `FUZZ_COUNT` and `FUZZ_SEED` widen a local run.

use crate::common::*;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, SystemTime};

/// The webhook secret of the guarded router, so some requests are signed right.
const SECRET: &str = "whsec_ZnV6ei1zZWNyZXQ=";
const SECRET_KEY: &[u8] = b"fuzz-secret";
const TOKEN: &str = "fuzz-token";

/// One generated request, printable as a reproducer.
struct Case {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body);
        let shown: String = body.chars().take(400).collect();
        f.debug_struct("Case")
            .field("headers", &self.headers)
            .field("body", &shown)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Strings a decoder should find awkward: empty, huge, control characters,
/// non-ASCII, percent signs, JSON and CESQL syntax, numbers at their limits.
fn nasty(rng: &mut fastrand::Rng) -> String {
    let pick = [
        "",
        " ",
        "a",
        "%",
        "%zz",
        "%C3%A9",
        "caf\u{e9}",
        "\u{0}",
        "line\nbreak",
        "tab\tthere",
        "\"quoted\"",
        "{\"a\":",
        "[]",
        "null",
        "-0",
        "1e999",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "2147483648",
        "0x7fffffff",
        "1985-04-12T23:20:50.52Z",
        "2024-13-45T99:99:99Z",
        "9999-12-31T23:59:59.999999999+14:00",
        "0000-00-00T00:00:00Z",
        "/shop/../admin",
        "http://[::1]:80/",
        "'; DROP",
        "a' OR 'a' = 'a",
        "\u{202e}rtl",
        "\u{fffd}",
        "😀",
    ];
    match rng.u8(0..10) {
        0 => "x".repeat(rng.usize(1000..70_000)),
        1 => (0..rng.usize(0..40))
            .map(|_| rng.char('\u{0}'..='\u{2fff}'))
            .collect(),
        2 => format!("{}{}", pick[rng.usize(0..pick.len())], rng.u64(..)),
        _ => pick[rng.usize(0..pick.len())].to_owned(),
    }
}

/// `s` without the ASCII control characters that no header value may hold.
fn header_safe(s: &str) -> String {
    s.chars()
        .filter(|c| *c == '\t' || !c.is_ascii_control())
        .collect()
}

fn json_value(rng: &mut fastrand::Rng, depth: u32) -> serde_json::Value {
    use serde_json::Value;
    match rng.u8(0..if depth > 3 { 5 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => serde_json::json!(rng.i64(..)),
        3 => serde_json::json!(rng.f64() * 1e300),
        4 => Value::String(nasty(rng)),
        5 => Value::Array(
            (0..rng.usize(0..4))
                .map(|_| json_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.usize(0..4))
                .map(|_| (nasty(rng), json_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// A structured event: mostly valid attributes, each sometimes replaced by
/// something hostile, plus random extensions and data.
fn structured(rng: &mut fastrand::Rng) -> serde_json::Value {
    let mut event = serde_json::json!({
        "specversion": "1.0",
        "id": format!("fuzz-{}", rng.u64(..)),
        "source": "/fuzz",
        "type": "fuzz.event",
    });
    let object = event.as_object_mut().expect("an object");
    for name in [
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "dataschema",
        "data",
        "data_base64",
    ] {
        match rng.u8(0..30) {
            0 => {
                object.remove(name);
            }
            1 => {
                object.insert(name.to_owned(), json_value(rng, 0));
            }
            2 => {
                object.insert(name.to_owned(), serde_json::Value::String(nasty(rng)));
            }
            _ => {}
        }
    }
    for _ in 0..rng.usize(0..3) {
        let name: String = if rng.bool() {
            (0..rng.usize(1..25))
                .map(|_| rng.alphanumeric().to_ascii_lowercase())
                .collect()
        } else {
            nasty(rng)
        };
        object.insert(name, json_value(rng, 1));
    }
    event
}

fn mutate(rng: &mut fastrand::Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    if rng.bool() {
        return bytes;
    }
    for _ in 0..rng.usize(1..4) {
        if bytes.is_empty() {
            break;
        }
        let at = rng.usize(0..bytes.len());
        match rng.u8(0..3) {
            0 => bytes[at] = rng.u8(..),
            1 => bytes.truncate(at),
            _ => bytes.insert(at, rng.u8(..)),
        }
    }
    bytes
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Adds webhook and bearer headers: absent, hostile, or (sometimes) right.
fn credentials(rng: &mut fastrand::Rng, case: &mut Case) {
    match rng.u8(0..6) {
        0 => {}
        1 => {
            let token = if rng.bool() {
                TOKEN.to_owned()
            } else {
                nasty(rng)
            };
            let scheme = ["Bearer ", "bearer ", "Basic ", ""][rng.usize(0..4)];
            case.headers.push((
                "authorization".into(),
                header_safe(&format!("{scheme}{token}")),
            ));
        }
        _ => {
            let id = if rng.bool() {
                format!("msg-{}", rng.u64(..))
            } else {
                nasty(rng)
            };
            let timestamp = match rng.u8(0..6) {
                0 => nasty(rng),
                1 => [
                    "9223372036854775808",
                    "18446744073709551615",
                    "18446744073709551616",
                    "-1",
                    "0",
                    "",
                ][rng.usize(0..6)]
                .to_owned(),
                2 => (now() + rng.u64(0..1_000_000_000)).to_string(),
                _ => now().to_string(),
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET_KEY).expect("HMAC takes any key");
            mac.update(format!("{id}.{timestamp}.").as_bytes());
            mac.update(&case.body);
            let right = BASE64.encode(mac.finalize().into_bytes());
            let mut signatures: Vec<String> = (0..rng.usize(0..6))
                .map(|_| match rng.u8(0..4) {
                    0 => "v1,".to_owned(),
                    1 => format!("v1,{}", BASE64.encode(nasty(rng))),
                    2 => nasty(rng),
                    _ => format!("v2,{right}"),
                })
                .collect();
            if rng.u8(0..8) == 0 {
                signatures.extend((0..rng.usize(100..5_000)).map(|_| "v1,".to_owned()));
            }
            if rng.bool() {
                signatures.insert(rng.usize(0..=signatures.len()), format!("v1,{right}"));
            }
            case.headers.push(("webhook-id".into(), header_safe(&id)));
            case.headers
                .push(("webhook-timestamp".into(), header_safe(&timestamp)));
            case.headers.push((
                "webhook-signature".into(),
                header_safe(&signatures.join(" ")),
            ));
        }
    }
}

fn case(rng: &mut fastrand::Rng) -> Case {
    let mut case = Case {
        headers: Vec::new(),
        body: Vec::new(),
    };
    match rng.u8(0..4) {
        // Binary mode: every ce- header sometimes hostile, random extensions.
        0 => {
            let mut attributes = vec![
                ("ce-specversion", "1.0".to_owned()),
                ("ce-id", format!("fuzz-{}", rng.u64(..))),
                ("ce-source", "/fuzz".to_owned()),
                ("ce-type", "fuzz.event".to_owned()),
            ];
            for optional in ["ce-time", "ce-subject", "ce-dataschema"] {
                if rng.bool() {
                    attributes.push((optional, String::new()));
                }
            }
            for (name, value) in attributes {
                let value = if rng.u8(0..12) == 0 {
                    nasty(rng)
                } else {
                    value
                };
                if rng.u8(0..30) != 0 {
                    case.headers.push((name.into(), header_safe(&value)));
                }
            }
            for _ in 0..rng.usize(0..3) {
                let name: String = (0..rng.usize(1..30))
                    .map(|_| rng.alphanumeric().to_ascii_lowercase())
                    .collect();
                case.headers
                    .push((format!("ce-{name}"), header_safe(&nasty(rng))));
            }
            let content_type = [
                "application/json",
                "text/plain",
                "application/octet-stream",
                "application/json; charset=latin1",
                "",
            ][rng.usize(0..5)];
            if !content_type.is_empty() {
                case.headers
                    .push(("content-type".into(), content_type.into()));
            }
            let data = json_value(rng, 0).to_string().into_bytes();
            case.body = mutate(rng, data);
        }
        // Structured mode.
        1 => {
            case.headers
                .push(("content-type".into(), "application/cloudevents+json".into()));
            let event = structured(rng).to_string().into_bytes();
            case.body = mutate(rng, event);
        }
        // Batched mode.
        2 => {
            case.headers.push((
                "content-type".into(),
                "application/cloudevents-batch+json".into(),
            ));
            let batch: Vec<serde_json::Value> = (0..rng.usize(0..6))
                .map(|_| {
                    if rng.u8(0..5) == 0 {
                        json_value(rng, 1)
                    } else {
                        structured(rng)
                    }
                })
                .collect();
            let batch = serde_json::Value::Array(batch).to_string().into_bytes();
            case.body = mutate(rng, batch);
        }
        // Anything at all.
        _ => {
            case.headers
                .push(("content-type".into(), header_safe(&nasty(rng))));
            case.body = (0..rng.usize(0..2_000)).map(|_| rng.u8(..)).collect();
        }
    }
    credentials(rng, &mut case);
    case
}

async fn send(client: &reqwest::Client, url: &str, case: &Case) -> reqwest::StatusCode {
    let mut request = client.post(url).body(case.body.clone());
    for (name, value) in &case.headers {
        let Ok(value) = reqwest::header::HeaderValue::from_str(value) else {
            continue;
        };
        request = request.header(name.as_str(), value);
    }
    match request.send().await {
        Ok(response) => response.status(),
        Err(e) => panic!("the router dropped a request ({e}): {case:?}"),
    }
}

async fn fuzz(
    router: &TestRouter,
    seed: u64,
    count: usize,
) -> std::collections::BTreeMap<u16, usize> {
    let client = reqwest::Client::builder()
        .timeout(PATIENCE)
        .build()
        .expect("client");
    let url = router.events_url();
    let mut rng = fastrand::Rng::with_seed(seed);
    let cases: Vec<Case> = (0..count).map(|_| case(&mut rng)).collect();
    let mut statuses = std::collections::BTreeMap::new();
    for chunk in cases.chunks(8) {
        let answers =
            futures_util::future::join_all(chunk.iter().map(|c| send(&client, &url, c))).await;
        for (status, case) in answers.into_iter().zip(chunk) {
            assert!(
                !status.is_server_error(),
                "{status} for an input (seed {seed}): {case:?}"
            );
            *statuses.entry(status.as_u16()).or_insert(0) += 1;
        }
    }
    let health = client
        .get(format!("http://{}/healthz", router.addr))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the router still answers after the fuzz");
    assert!(health.status().is_success());
    statuses
}

fn settings() -> (u64, usize) {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee);
    let count = std::env::var("FUZZ_COUNT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_200);
    (seed, count)
}

const ROUTES: &str = "[[route]]\nname = \"typed\"\nfilter = { prefix = { type = \"fuzz.\" } }\nforward = \"SINK\"\n\n[[route]]\nname = \"sql\"\nfilter = { sql = \"subject LIKE 'a%' OR (EXISTS tenant AND tenant + 0 > 3 AND LENGTH(type) < 50)\" }\nforward = \"SINK\"\n";

#[tokio::test]
async fn seeded_ingest_fuzz_never_panics_or_answers_5xx() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&ROUTES.replace("SINK", &sink.url())).await;
    let (seed, count) = settings();
    let statuses = fuzz(&router, seed, count).await;
    // The generator must reach the decoders' success path too, or it tests little.
    assert!(
        statuses.get(&200).copied().unwrap_or_default() > count / 20,
        "too few inputs were valid events: {statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or_default() > count / 20,
        "too few inputs were refused: {statuses:?}"
    );
}

#[tokio::test]
async fn seeded_fuzz_of_the_credential_gate_never_panics_or_answers_5xx() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"{SECRET}\"]\n\n[[ingest.credential]]\nname = \"token\"\nbearer = \"{TOKEN}\"\n\n{}",
        ROUTES.replace("SINK", &sink.url())
    ))
    .await;
    let (seed, count) = settings();
    let statuses = fuzz(&router, seed.wrapping_add(1), count).await;
    assert!(
        statuses.get(&401).copied().unwrap_or_default() > count / 20,
        "too few inputs were refused by the gate: {statuses:?}"
    );
    assert!(
        statuses.get(&200).copied().unwrap_or_default() > 0,
        "no input got past the gate: {statuses:?}"
    );
}
