//! Who may send events, over real HTTP (issue 19, findings 1, 2, 6, 8 and 12):
//! Standard Webhooks signatures that cannot be made to burn CPU, credentials that
//! change on reload, replay detection that lets retries through and can be
//! shared through Redis, a rate limit the client cannot dodge, and `sources`
//! matched on path segments.

use crate::common::*;
use crate::durable::RedisServer;
use axum::http::StatusCode;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;
use std::time::{Duration, Instant, SystemTime};

/// The key of `whsec_c2VjcmV0LTE=`.
const SECRET: &str = "whsec_c2VjcmV0LTE=";
const KEY: &[u8] = b"secret-1";

fn webhook_credential(extra: &str) -> String {
    format!("[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"{SECRET}\"]\n{extra}\n")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The `v1,<base64>` signature of `body` under `KEY`.
fn signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("any key length");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn structured(id: &str, source: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "specversion": "1.0", "id": id, "source": source, "type": "com.example.t", "data": {"n": 1},
    }))
    .expect("json")
}

/// POSTs `body` as a structured event with Standard Webhooks headers.
async fn post_signed(
    url: &str,
    id: &str,
    timestamp: &str,
    signatures: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    post_binary(
        url,
        &[
            ("content-type", "application/cloudevents+json"),
            ("webhook-id", id),
            ("webhook-timestamp", timestamp),
            ("webhook-signature", signatures),
        ],
        body,
    )
    .await
}

/// POSTs a correctly signed structured event.
async fn send_signed(url: &str, id: &str, source: &str) -> (StatusCode, Value) {
    let body = structured(&format!("e-{id}"), source);
    let ts = now().to_string();
    let sig = signature(id, &ts, &body);
    post_signed(url, id, &ts, &sig, body).await
}

async fn router_with_sink(ingest: &str) -> (TestRouter, Sink) {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "{ingest}\n[[route]]\nname = \"all\"\nforward = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
        sink.url()
    ))
    .await;
    (router, sink)
}

fn error_of(body: &Value) -> String {
    body["error"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn more_signatures_than_the_cap_are_refused_naming_it() {
    let (router, _sink) = router_with_sink(&webhook_credential("")).await;
    let body = structured("e-1", "/hooks");
    let ts = now().to_string();
    let good = signature("msg-cap", &ts, &body);
    // Eight wrong candidates before the right one: a sender sends a handful.
    let mut entries: Vec<String> = (0..8)
        .map(|i| format!("v1,{}", BASE64.encode([i as u8; 32])))
        .collect();
    entries.push(good.clone());
    let (status, answer) = post_signed(
        &router.events_url(),
        "msg-cap",
        &ts,
        &entries.join(" "),
        body.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    let error = error_of(&answer);
    assert!(
        error.contains("more than 8 signatures"),
        "the answer names the cap: {error}"
    );
    // Empty entries are no candidates, and the right one alone passes.
    let (status, answer) = post_signed(
        &router.events_url(),
        "msg-cap",
        &ts,
        &format!("v1, {good}"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Finding 1: thousands of `v1,` entries over a large body used to compute one
/// HMAC over the body per entry, on a runtime worker, freezing the listener.
/// The router takes heads of up to 1 MiB here: the default `header_limit`
/// (64 KiB) would refuse these 340 KB headers with 431 before the gate saw
/// them, and the gate must hold on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_answer_while_huge_signature_headers_arrive() {
    let (router, _sink) = router_with_sink(&format!(
        "[server]\nheader_limit = \"1MiB\"\n{}",
        webhook_credential("")
    ))
    .await;
    let entry = format!("v1,{}", BASE64.encode([7u8; 32]));
    let header = vec![entry; 7_000].join(" ");
    let body = vec![b'x'; (1 << 20) - 1024];
    let attacks: Vec<_> = (0..3)
        .map(|i| {
            let (url, header, body) = (router.events_url(), header.clone(), body.clone());
            tokio::spawn(async move {
                client()
                    .post(url)
                    .header("content-type", "application/cloudevents+json")
                    .header("webhook-id", format!("attack-{i}"))
                    .header("webhook-timestamp", now().to_string())
                    .header("webhook-signature", header)
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let healthz = format!("http://{}/healthz", router.addr);
    // Only catches a stall: a loaded machine answers a health check in well
    // under a second, and the attack used to hold the workers for tens.
    let stall = Duration::from_secs(5);
    for _ in 0..5 {
        let started = Instant::now();
        let answer = tokio::time::timeout(PATIENCE, client().get(&healthz).send())
            .await
            .expect("healthz answers")
            .expect("healthz request");
        assert_eq!(answer.status(), 200);
        assert!(
            started.elapsed() < stall,
            "/healthz took {:?} while signature floods arrived",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for attack in attacks {
        let outcome = tokio::time::timeout(PATIENCE, attack)
            .await
            .expect("the flood is answered")
            .expect("task");
        // Refused before its body is read: a 401, or the connection closed
        // while the client was still sending.
        assert!(matches!(outcome, Ok(401) | Err(_)), "{outcome:?}");
    }
}

/// Finding 6: timestamps past `i64::MAX` seconds used to panic while adding
/// them to the epoch; none may panic, each is a 401 naming the header.
#[tokio::test]
async fn webhook_timestamps_that_overflow_are_refused_clearly() {
    let (router, _sink) = router_with_sink(&webhook_credential("")).await;
    let body = structured("e-ts", "/hooks");
    for ts in [
        "9223372036854775808",
        "18446744073709551615",
        "-1",
        "-9223372036854775808",
        "99999999999999999999999999999999",
        "+1",
        "",
        "1e9",
    ] {
        let sig = signature("msg-ts", ts, &body);
        let (status, answer) =
            post_signed(&router.events_url(), "msg-ts", ts, &sig, body.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{ts}: {answer}");
        assert!(
            error_of(&answer).contains("webhook-timestamp"),
            "{ts}: {answer}"
        );
    }
    let (status, answer) = send_signed(&router.events_url(), "msg-after", "/hooks").await;
    assert_eq!(status, StatusCode::OK, "the router still serves: {answer}");
}

/// Finding 6: a retry of a request that failed (here 502, the sink down) carries
/// the same `webhook-id` and must pass; once accepted, the id is a replay.
#[tokio::test]
async fn a_retry_after_a_failed_request_is_not_a_replay() {
    let (router, sink) = router_with_sink(&webhook_credential("")).await;
    let body = structured("e-retry", "/hooks");
    let ts = now().to_string();
    let sig = signature("msg-retry", &ts, &body);
    sink.answer(StatusCode::SERVICE_UNAVAILABLE);
    let (status, answer) =
        post_signed(&router.events_url(), "msg-retry", &ts, &sig, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    sink.answer(StatusCode::OK);
    let (status, answer) =
        post_signed(&router.events_url(), "msg-retry", &ts, &sig, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "the retry passes: {answer}");
    let (status, answer) = post_signed(&router.events_url(), "msg-retry", &ts, &sig, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(error_of(&answer).contains("replayed"), "{answer}");
    // A request refused before routing (400) does not burn its id either.
    let bad = b"{\"specversion\":\"1.0\"}".to_vec();
    let sig = signature("msg-bad", &ts, &bad);
    let (status, _) = post_signed(&router.events_url(), "msg-bad", &ts, &sig, bad.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = post_signed(&router.events_url(), "msg-bad", &ts, &sig, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "not a replay: {answer}");
}

/// Finding 6: a full replay cache used to stop recording new ids, so they could
/// be replayed; it now forgets the oldest.
#[tokio::test]
async fn a_full_replay_cache_still_refuses_new_replays() {
    let (router, _sink) = router_with_sink(&format!(
        "[ingest]\nreplay_max_entries = 2\n{}",
        webhook_credential("")
    ))
    .await;
    for i in 0..3 {
        let (status, answer) = send_signed(&router.events_url(), &format!("full-{i}"), "/h").await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let body = structured("e-full-2", "/h");
    let ts = now().to_string();
    let sig = signature("full-2", &ts, &body);
    let (status, answer) = post_signed(&router.events_url(), "full-2", &ts, &sig, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(error_of(&answer).contains("replayed"), "{answer}");
}

/// Finding 6: routers that share a Redis see each other's webhook ids.
#[tokio::test]
async fn routers_sharing_redis_refuse_each_others_replays() {
    let redis = RedisServer::start().await;
    let ingest = format!(
        "[ingest]\nreplay_store = \"redis\"\nreplay_url = \"{}\"\n{}",
        redis.url(),
        webhook_credential("")
    );
    let (a, sink_a) = router_with_sink(&ingest).await;
    let (b, _sink_b) = router_with_sink(&ingest).await;
    let keys = || async {
        redis
            .query::<Vec<String>>(redis::cmd("KEYS").arg("*"))
            .await
    };
    let ts = now().to_string();
    // A request that fails (502: A's sink is down) releases its id in Redis, so
    // the sender's retry passes on any router.
    let failing = structured("e-failing", "/h");
    let sig = signature("shared-0", &ts, &failing);
    sink_a.answer(StatusCode::SERVICE_UNAVAILABLE);
    let (status, answer) =
        post_signed(&a.events_url(), "shared-0", &ts, &sig, failing.clone()).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let deadline = Instant::now() + PATIENCE;
    while !keys().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the failed request's id is never released"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, answer) = post_signed(&b.events_url(), "shared-0", &ts, &sig, failing).await;
    assert_eq!(status, StatusCode::OK, "the retry passes: {answer}");
    sink_a.answer(StatusCode::OK);
    let body = structured("e-shared", "/h");
    let sig = signature("shared-1", &ts, &body);
    let (status, answer) = post_signed(&a.events_url(), "shared-1", &ts, &sig, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = post_signed(&b.events_url(), "shared-1", &ts, &sig, body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert!(error_of(&answer).contains("replayed"), "{answer}");
    let keys = keys().await;
    assert_eq!(keys.len(), 2, "two ids recorded: {keys:?}");
    let ttl: i64 = redis.query(redis::cmd("TTL").arg(&keys[0])).await;
    assert!(
        (1..=600).contains(&ttl),
        "expires within twice the tolerance: {ttl}"
    );
}

/// Finding 6: binary mode's `ce-*` headers are outside the signature, so a
/// credential may require structured (or batched) bodies.
#[tokio::test]
async fn binary_mode_is_refused_where_structured_is_required() {
    let (router, _sink) = router_with_sink(&webhook_credential(
        "require_structured = true\nsources = [\"/h\"]",
    ))
    .await;
    let body = br#"{"n":1}"#.to_vec();
    let ts = now().to_string();
    let sig = signature("bin-1", &ts, &body);
    let mut headers = ce_headers("b-1", "com.example.t");
    headers[2] = ("ce-source", "/h");
    headers.extend([
        ("content-type", "application/json"),
        ("webhook-id", "bin-1"),
        ("webhook-timestamp", ts.as_str()),
        ("webhook-signature", sig.as_str()),
    ]);
    let (status, answer) = post_binary(&router.events_url(), &headers, body).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{answer}");
    assert!(error_of(&answer).contains("require_structured"), "{answer}");
    let (status, answer) = send_signed(&router.events_url(), "struct-1", "/h").await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

/// Finding 8: the limit used to be keyed on `Origin`, which the client picks.
#[tokio::test]
async fn a_new_origin_per_request_does_not_dodge_the_rate_limit() {
    let (router, _sink) =
        router_with_sink("[ingest]\nrate_limit = { per_second = 1, burst = 2 }\n").await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let origin = format!("https://o{i}.example");
        let (status, _) = post_binary(
            &router.events_url(),
            &[
                ("ce-specversion", "1.0"),
                ("ce-id", "x"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
                ("origin", origin.as_str()),
                ("webhook-request-origin", origin.as_str()),
            ],
            "{}",
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert!(
        statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
}

/// Finding 8: each credential has its own bucket, whatever address it comes from.
#[tokio::test]
async fn the_rate_limit_is_per_credential() {
    let (router, _sink) = router_with_sink(
        "[ingest]\nrate_limit = { per_second = 1, burst = 1 }\n\
         [[ingest.credential]]\nname = \"a\"\nbearer = \"token-a\"\n\
         [[ingest.credential]]\nname = \"b\"\nbearer = \"token-b\"\n",
    )
    .await;
    let send = |token: &'static str| {
        let url = router.events_url();
        async move {
            let auth = format!("Bearer {token}");
            let mut headers = ce_headers("x", "t");
            headers.push(("authorization", auth.as_str()));
            post_binary(&url, &headers, "{}").await
        }
    };
    assert_eq!(send("token-a").await.0, StatusCode::OK);
    let (status, answer) = send("token-a").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(
        error_of(&answer).contains("`a`"),
        "names the credential: {answer}"
    );
    assert_eq!(
        send("token-b").await.0,
        StatusCode::OK,
        "b has its own bucket"
    );
}

/// Finding 8: behind a trusted proxy, the client is the `X-Forwarded-For`
/// address; from anyone else, that header is ignored.
#[tokio::test]
async fn forwarded_for_counts_only_from_trusted_proxies() {
    let send = |url: String, forwarded: &'static str| async move {
        let mut headers = ce_headers("x", "t");
        headers.push(("x-forwarded-for", forwarded));
        post_binary(&url, &headers, "{}").await.0
    };
    let (trusting, _s1) = router_with_sink(
        "[ingest]\nrate_limit = { per_second = 1, burst = 1 }\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    )
    .await;
    assert_eq!(
        send(trusting.events_url(), "203.0.113.1").await,
        StatusCode::OK
    );
    assert_eq!(
        send(trusting.events_url(), "203.0.113.2").await,
        StatusCode::OK,
        "another client behind the proxy"
    );
    assert_eq!(
        send(trusting.events_url(), "198.51.100.9, 203.0.113.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "the nearest untrusted hop is the client, not what it claims before it"
    );
    let (plain, _s2) =
        router_with_sink("[ingest]\nrate_limit = { per_second = 1, burst = 1 }\n").await;
    assert_eq!(
        send(plain.events_url(), "203.0.113.1").await,
        StatusCode::OK
    );
    assert_eq!(
        send(plain.events_url(), "203.0.113.2").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Finding 12: a credential for `/shop` used to accept `/shopping-evil`.
#[tokio::test]
async fn sources_match_on_path_segments() {
    let (router, _sink) = router_with_sink(
        "[[ingest.credential]]\nname = \"shop\"\nbearer = \"s3cret\"\nsources = [\"/shop\"]\n",
    )
    .await;
    for (source, expected) in [
        ("/shop", StatusCode::OK),
        ("/shop/eu", StatusCode::OK),
        ("/shopping-evil", StatusCode::FORBIDDEN),
        ("/shop-evil/x", StatusCode::FORBIDDEN),
    ] {
        let headers = [
            ("ce-specversion", "1.0"),
            ("ce-id", "1"),
            ("ce-source", source),
            ("ce-type", "t"),
            ("authorization", "Bearer s3cret"),
        ];
        let (status, answer) = post_binary(&router.events_url(), &headers, "{}").await;
        assert_eq!(status, expected, "{source}: {answer}");
    }
}

async fn generation(router: &TestRouter) -> u64 {
    let answer = client()
        .get(format!("http://{}/readyz", router.addr))
        .send()
        .await
        .expect("readyz");
    let body: Value = serde_json::from_str(&answer.text().await.expect("body")).expect("json");
    body["generation"].as_u64().unwrap_or_default()
}

fn bearer_config(tokens: &[(&str, &str)], origins: &str, extra: &str) -> String {
    let mut text = format!("[ingest]\nallowed_origins = [\"{origins}\"]\n{extra}\n");
    for (name, token) in tokens {
        text.push_str(&format!(
            "[[ingest.credential]]\nname = \"{name}\"\nbearer = \"{token}\"\n"
        ));
    }
    text
}

/// Finding 2: `[ingest]` used to be read once, so a reload reported success while
/// a revoked token kept working.
#[tokio::test]
async fn a_reload_revokes_and_adds_credentials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("router.toml");
    let write = |text: &str| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, &path).expect("rename");
    };
    write(&bearer_config(&[("old", "leaked")], "a.example", ""));
    let router = TestRouter::start_file(&path).await;
    let send = |token: &'static str| {
        let url = router.events_url();
        async move {
            let auth = format!("Bearer {token}");
            let mut headers = ce_headers("r", "t");
            headers.push(("authorization", auth.as_str()));
            post_binary(&url, &headers, "{}").await
        }
    };
    let handshake = |origin: &'static str| {
        let url = router.events_url();
        async move {
            client()
                .request(reqwest::Method::OPTIONS, url)
                .header("webhook-request-origin", origin)
                .send()
                .await
                .expect("handshake")
                .status()
                .as_u16()
        }
    };
    assert_eq!(send("leaked").await.0, StatusCode::OK);
    assert_eq!(send("fresh").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(handshake("a.example").await, 200);
    write(&bearer_config(
        &[("new", "fresh")],
        "b.example",
        "rate_limit = { per_second = 1, burst = 1 }",
    ));
    let deadline = Instant::now() + PATIENCE;
    while generation(&router).await < 2 {
        assert!(Instant::now() < deadline, "the rewrite was never reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, answer) = send("leaked").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked by the reload: {answer}"
    );
    let (status, answer) = send("fresh").await;
    assert_eq!(status, StatusCode::OK, "added by the reload: {answer}");
    assert_eq!(handshake("a.example").await, 403);
    assert_eq!(handshake("b.example").await, 200);
    // The rate limit added by the reload counts: one per second, so a 429
    // comes at once unless the machine is slower than that.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, answer) = send("fresh").await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(
            Instant::now() < deadline,
            "the reloaded rate limit never counted"
        );
    }
}

/// A shared replay store that does not answer refuses webhook requests with a
/// 503 to retry, rather than letting them through unchecked.
#[tokio::test]
async fn an_unreachable_replay_store_refuses_with_retry_after() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let (router, _sink) = router_with_sink(&format!(
        "[ingest]\nreplay_store = \"redis\"\nreplay_url = \"redis://127.0.0.1:{port}/\"\n{}",
        webhook_credential("")
    ))
    .await;
    let body = structured("e-down", "/h");
    let ts = now().to_string();
    let sig = signature("down-1", &ts, &body);
    let response = client()
        .post(router.events_url())
        .header("content-type", "application/cloudevents+json")
        .header("webhook-id", "down-1")
        .header("webhook-timestamp", ts)
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let text = response.text().await.expect("body");
    assert!(text.contains("replay store"), "{text}");
}
