//! Operations: metrics, trace propagation, readiness, load shedding, ingest
//! credentials, the webhook handshake and rate limits.

use crate::common::*;
use axum::http::StatusCode;
use base64::Engine as _;
use hmac::Mac as _;

/// Metrics are counted per process, so this test runs its own `router serve`:
/// every figure it reads moved only by its own requests, and each is checked
/// exactly.
#[tokio::test]
async fn metrics_move_as_events_flow() {
    let sink = Sink::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[route]]\nname = \"metrics-fwd\"\nforward = \"{}\"\n\n[[route]]\nname = \"metrics-trap\"\nfilter = {{ exact = {{ type = \"metrics.trap\" }} }}\nhandler = \"trap\"\n\n{}",
            sink.url(),
            plugin_tables()
        ),
    )
    .expect("write config");
    let served = crate::process::serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let events = format!("http://{}/events", served.addr);
    let scrape = || served.metrics();
    let before = scrape().await;
    for i in 0..3 {
        let (status, _) =
            post_binary(&events, &ce_headers(&format!("m-{i}"), "metrics.ok"), "").await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = post_binary(&events, &ce_headers("m-trap", "metrics.trap"), "panic").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _) = post_binary(&events, &ce_headers("", "metrics.bad"), "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let after = scrape().await;
    let delta =
        |name: &str, label: &str| metric(&after, name, label) - metric(&before, name, label);
    assert_eq!(
        delta("router_route_delivered_total", "route=\"metrics-fwd\""),
        4.0,
        "{after}"
    );
    assert_eq!(
        delta("router_route_matched_total", "route=\"metrics-trap\""),
        1.0
    );
    assert_eq!(
        delta("router_route_failed_total", "route=\"metrics-trap\""),
        1.0
    );
    assert_eq!(
        delta("router_plugin_traps_total", "plugin=\"trap\""),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta("router_requests_rejected_total", "reason=\"invalid\""),
        1.0,
        "{after}"
    );
    assert_eq!(delta("router_events_received_total", ""), 4.0, "{after}");
    assert!(after.contains("router_build_info{version="));
    assert!(after.contains("router_plugin_call_seconds_bucket"));
}

#[tokio::test]
async fn a_forwarded_event_carries_the_incoming_trace_context() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[[route]]\nname = \"relay\"\nfilter = {{ exact = {{ type = \"t\" }} }}\nhandler = \"enricher\"\n\n[[route]]\nname = \"out\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let mut headers = ce_headers("traced", "t");
    headers.push(("traceparent", &traceparent));
    headers.push(("tracestate", "congo=t61rcWkgMzE"));
    let (status, _) = post_binary(&router.events_url(), &headers, "").await;
    assert_eq!(status, StatusCode::OK);
    let got = sink.wait_for(2).await;
    for r in &got {
        let hop = r.headers["traceparent"].to_str().expect("ascii");
        assert!(hop.starts_with(&format!("00-{trace}-")), "{hop}");
        assert_ne!(hop, traceparent, "each hop has its own span id");
        // The distributed tracing extension records the creation trace, unchanged.
        assert_eq!(r.headers["ce-traceparent"], traceparent.as_str());
        assert_eq!(r.headers["ce-tracestate"], "congo=t61rcWkgMzE");
    }
}

#[tokio::test]
async fn readiness_and_liveness() {
    let router = TestRouter::start("").await;
    let ready = client()
        .get(format!("http://{}/readyz", router.addr))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&ready.bytes().await.expect("body")).expect("readyz JSON");
    assert_eq!(body["ready"], true, "{body}");
    assert_eq!(body["generation"], 1, "{body}");
    let health = client()
        .get(format!("http://{}/healthz", router.addr))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
}

/// At twice the capacity some requests are shed with 503 + Retry-After, none
/// fails otherwise, and the router serves normally once the load drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_past_capacity_is_shed_and_recovers() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[ingest]\nmax_in_flight = 8\n\n[[route]]\nname = \"out\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    sink.close();
    let url = router.events_url();
    let requests: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                let response = client()
                    .post(&url)
                    .header("ce-specversion", "1.0")
                    .header("ce-id", format!("shed-{i}"))
                    .header("ce-source", "/t")
                    .header("ce-type", "t")
                    .send()
                    .await
                    .expect("request");
                (
                    response.status().as_u16(),
                    response.headers().get("retry-after").cloned(),
                )
            })
        })
        .collect();
    // Eight are held at the sink; the other eight are refused at once. The sink
    // opens only once all sixteen have been either held or answered: a request
    // still on its way when it opened would find room again.
    tokio::time::timeout(PATIENCE, async {
        while sink.waiting() < 8 || requests.iter().filter(|r| r.is_finished()).count() < 8 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("eight events in flight, eight answered");
    sink.open();
    let mut shed = 0;
    for r in futures_util::future::join_all(requests).await {
        let (status, retry_after) = r.expect("task");
        match status {
            200 => {}
            503 => {
                shed += 1;
                assert!(retry_after.is_some(), "503 without Retry-After");
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(shed, 8);
    let (status, _) = post_binary(&url, &ce_headers("after", "t"), "").await;
    assert_eq!(status, StatusCode::OK);
}

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM=";

fn webhook_headers(id: &str, body: &str) -> Vec<(String, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("key");
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

#[tokio::test]
async fn credentials_are_required_when_configured() {
    let router = TestRouter::start(&format!(
        "[[ingest.credential]]\nname = \"shop\"\nbearer = \"tok-123\"\nsources = [\"/shop\"]\n\n[[ingest.credential]]\nname = \"hooks\"\nwebhook_secrets = [\"{SECRET}\"]\n"
    ))
    .await;
    let url = router.events_url();
    let event = |source: &str| {
        serde_json::json!({"specversion": "1.0", "id": "a-1", "source": source, "type": "t"})
            .to_string()
    };
    let send = |headers: Vec<(String, String)>, body: String| {
        let url = url.clone();
        async move {
            let mut request = client()
                .post(&url)
                .header("content-type", "application/cloudevents+json")
                .body(body);
            for (k, v) in headers {
                request = request.header(k, v);
            }
            let response = request.send().await.expect("request");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        }
    };
    let (status, body) = send(vec![], event("/shop")).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("tok-123"));
    let bearer = |t: &str| vec![("authorization".to_owned(), format!("Bearer {t}"))];
    assert_eq!(send(bearer("wrong"), event("/shop")).await.0, 401);
    assert_eq!(send(bearer("tok-123"), event("/shop/eu")).await.0, 200);
    let (status, body) = send(bearer("tok-123"), event("/bank")).await;
    assert_eq!(status, 403, "{body}");

    let body = event("/anything");
    assert_eq!(
        send(webhook_headers("msg-1", &body), body.clone()).await.0,
        200
    );
    let (status, text) = send(webhook_headers("msg-1", &body), body.clone()).await;
    assert_eq!(status, 401, "a replayed id is refused");
    assert!(text.contains("replayed"), "{text}");
    let mut tampered = webhook_headers("msg-2", &body);
    tampered[2].1 = "v1,AAAA".into();
    assert_eq!(send(tampered, body).await.0, 401);
}

#[tokio::test]
async fn webhook_handshake_and_rate_limits() {
    let router = TestRouter::start(
        "[ingest]\nallowed_origins = [\"sender.example\"]\nrate_limit = { per_second = 1, burst = 2 }\n",
    )
    .await;
    let url = router.events_url();
    let options = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("webhook-request-origin", origin)
            .send()
    };
    let ok = options("sender.example").await.expect("options");
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.headers()["webhook-allowed-origin"], "sender.example");
    assert_eq!(ok.headers()["webhook-allowed-rate"], "60");
    assert_eq!(
        options("evil.example")
            .await
            .expect("options")
            .status()
            .as_u16(),
        403
    );

    // Events from one client, `origin` naming it or not, until the limiter
    // refuses one: `burst` pass, and no more than the tokens refilled meanwhile
    // (one per second) on a slow machine. Returns the refusal.
    let until_refused = |origin: Option<&'static str>, burst: u32| {
        let url = url.clone();
        async move {
            let started = std::time::Instant::now();
            let mut passed = 0u32;
            loop {
                let mut request = client()
                    .post(&url)
                    .header("ce-specversion", "1.0")
                    .header("ce-id", format!("r-{passed}"))
                    .header("ce-source", "/t")
                    .header("ce-type", "t");
                if let Some(origin) = origin {
                    request = request.header("webhook-request-origin", origin);
                }
                let response = request.send().await.expect("post");
                match response.status().as_u16() {
                    200 => passed += 1,
                    429 => {
                        let refilled = started.elapsed().as_secs() as u32 + 1;
                        assert!(
                            (burst..=burst + refilled).contains(&passed),
                            "{passed} passed before the first 429"
                        );
                        return response;
                    }
                    other => panic!("unexpected status {other}"),
                }
                assert!(started.elapsed() < PATIENCE, "never rate-limited");
            }
        }
    };
    let refused = until_refused(Some("sender.example"), 2).await;
    assert!(refused.headers().get("retry-after").is_some());

    // The limit counts the client's address: naming another origin, or none,
    // opens no budget of its own (issue 19, finding 8).
    let refused = until_refused(None, 0).await;
    let body = refused.text().await.expect("body");
    assert!(body.contains("127.0.0.1"), "{body}");
}

/// `[server.tls]` serves HTTPS; a client that trusts the certificate gets its
/// event routed. `tests/tls/cert.pem` (localhost, 127.0.0.1, valid for a century)
/// is signed by `tests/tls/ca.pem`, whose key was discarded after signing.
#[tokio::test]
async fn tls_listener_serves_https() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
    let router = TestRouter::start_tls(&format!(
        "[server.tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n"
    ))
    .await;
    let pem = std::fs::read(format!("{dir}/ca.pem")).expect("test CA");
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(
        b"POST /events HTTP/1.1\r\nHost: localhost\r\nce-specversion: 1.0\r\nce-id: tls-1\r\nce-source: /t\r\nce-type: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"id\":\"tls-1\""), "{answer}");
}

/// A client that opens a TLS connection and never finishes its handshake is
/// closed by the header timeout, as one that never finishes its headers is.
#[tokio::test]
async fn a_tls_handshake_that_never_finishes_is_closed_by_the_header_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls");
    let router = TestRouter::start_tls(&format!(
        "[server]\nheader_timeout = \"200ms\"\n[server.tls]\ncert = \"{dir}/cert.pem\"\nkey = \"{dir}/key.pem\"\n"
    ))
    .await;
    let opened = std::time::Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(router.addr)
        .await
        .expect("connect");
    // The first bytes of a ClientHello record, and no more.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
        .await
        .expect("write");
    // Closed by the configured 200 ms, not the default 10 s: the bound leaves
    // a loaded machine seconds of slack and still tells the two apart.
    let patience = std::time::Duration::from_secs(5).saturating_sub(opened.elapsed());
    let read = tokio::time::timeout(patience, tcp.read_to_end(&mut Vec::new())).await;
    assert!(
        read.is_ok(),
        "the router kept a half-done handshake past 5 s"
    );
    // Not at once for the partial record: by the timeout.
    assert!(
        opened.elapsed() >= std::time::Duration::from_millis(200),
        "closed after {:?}",
        opened.elapsed()
    );
}
