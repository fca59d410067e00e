//! What the router sends on its own behalf, and what it writes down: forwards
//! and dead-letter sinks do not follow redirects, a plugin's outbound HTTP
//! reaches only the scheme, host and port it was granted (and a granted name
//! no private address), attributes cannot forge log lines, and dead-letter and
//! journal files are private.

use crate::common::*;
use axum::http::StatusCode;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::Ordering;

fn route_errors(body: &serde_json::Value) -> String {
    body["events"][0]["routes"][0]["errors"].to_string()
}

/// A forward sink answering `307 Location: <another sink>` is a failed
/// delivery: retried per the policy, then dead-lettered (or, without a
/// dead-letter sink, a 502), with an error naming the status and where it
/// pointed; the other sink receives nothing.
#[tokio::test]
async fn a_forward_does_not_follow_a_redirect() {
    let elsewhere = Sink::start().await;
    let (url, hits) = redirector(elsewhere.url()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dlq = dir.path().join("dead-letters.jsonl");
    let route = format!(
        r#"
[delivery.retry]
max_attempts = 2
backoff_base = "5ms"

[[route]]
name = "out"
forward = "{url}"
"#
    );
    let with_dlq = TestRouter::start(&format!(
        "[delivery.dead_letter]\nfile = {:?}\n{route}",
        dlq.display().to_string()
    ))
    .await;
    let (status, body) = post_binary(&with_dlq.events_url(), &ce_headers("r-1", "t"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["events"][0]["routes"][0]["outcome"], "dead_lettered",
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2, "retried per the policy");
    let letter: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&dlq)
            .expect("dead-letter file")
            .lines()
            .next()
            .expect("a dead letter"),
    )
    .expect("JSON");
    let error = letter["error"].as_str().expect("error");
    assert!(
        error.contains("answered 307")
            && error.contains(&elsewhere.url())
            && error.contains("redirects are not followed"),
        "{error}"
    );

    let without = TestRouter::start(&route).await;
    let (status, body) = post_binary(&without.events_url(), &ce_headers("r-2", "t"), "{}").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(
        route_errors(&body).contains("redirects are not followed"),
        "{body}"
    );
    assert!(
        elsewhere.received().is_empty(),
        "the redirect was followed: {} request(s) reached its target",
        elsewhere.received().len()
    );
}

/// An HTTP dead-letter sink answering a redirect does not send the dead letter
/// (the whole event) where it points: the dead letter fails, and so does the
/// route, with the reason.
#[tokio::test]
async fn a_dead_letter_sink_does_not_follow_a_redirect() {
    let elsewhere = Sink::start().await;
    let (url, hits) = redirector(elsewhere.url()).await;
    let failing = Sink::start().await;
    failing.answer(StatusCode::SERVICE_UNAVAILABLE);
    let router = TestRouter::start(&format!(
        r#"
[delivery.dead_letter]
url = "{url}"

[[route]]
name = "out"
forward = "{}"
"#,
        failing.url()
    ))
    .await;
    let (status, body) = post_binary(&router.events_url(), &ce_headers("d-1", "t"), "{}").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(
        body["events"][0]["routes"][0]["outcome"], "failed",
        "{body}"
    );
    let errors = route_errors(&body);
    assert!(
        errors.contains("dead letter")
            && errors.contains("307")
            && errors.contains("redirects are not followed"),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert!(
        elsewhere.received().is_empty(),
        "the dead letter followed the redirect"
    );
}

/// A router with the `hostile` plugin under each grant: plugin `p0`, `p1` ...
/// handle events of type `p0`, `p1` ...
async fn granted(grants: &[&str]) -> TestRouter {
    let mut text = String::new();
    for (n, grant) in grants.iter().enumerate() {
        text.push_str(&format!(
            r#"
[[plugin]]
name = "p{n}"
path = {hostile:?}
timeout = "30s"
http = [{grant}]

[[route]]
name = "p{n}"
filter = {{ exact = {{ type = "p{n}" }} }}
handler = "p{n}"
"#,
            hostile = plugin_artifacts::HOSTILE,
        ));
    }
    TestRouter::start(&text).await
}

/// Has plugin `plugin` GET `url`: the status and the first error.
async fn fetch(router: &TestRouter, plugin: &str, url: &str) -> (StatusCode, String) {
    let (status, body) = post_binary(
        &router.events_url(),
        &ce_headers(&format!("{plugin}-{url}"), plugin),
        format!("http:{url}"),
    )
    .await;
    let error = if status == StatusCode::OK {
        String::new()
    } else {
        first_error(&body)
    };
    (status, error)
}

/// A grant of an address (meant for a sidecar) reaches only the scheme and
/// port granted, not every service on that address: before, `127.0.0.1`
/// reached any port (such as the router's own admin API).
#[tokio::test]
async fn an_address_grant_reaches_only_its_scheme_and_port() {
    let (sidecar, other) = (Sink::start().await, Sink::start().await);
    let router = granted(&[
        r#"{ host = "127.0.0.1" }"#,
        &format!(r#"{{ host = "http://127.0.0.1:{}" }}"#, sidecar.addr.port()),
        &format!(r#"{{ host = "127.0.0.1:{}" }}"#, sidecar.addr.port()),
    ])
    .await;
    let (status, error) = fetch(&router, "p0", &format!("{}admin/routes", other.url())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error.contains("HttpRequestDenied"), "{error}");
    let (status, error) = fetch(&router, "p1", &format!("{}admin/routes", other.url())).await;
    assert!(error.contains("HttpRequestDenied"), "{status}: {error}");
    // Without a scheme a grant means https: plain http to the same port is refused.
    let (status, error) = fetch(&router, "p2", &sidecar.url()).await;
    assert!(error.contains("HttpRequestDenied"), "{status}: {error}");
    assert!(other.received().is_empty(), "a refused request went out");
    assert!(sidecar.received().is_empty(), "a refused request went out");

    let (status, error) = fetch(&router, "p1", &format!("{}rates", sidecar.url())).await;
    assert_eq!(status, StatusCode::OK, "{error}");
    assert_eq!(sidecar.received().len(), 1);
}

/// A grant naming a host reaches only public addresses: `localhost` (or a name
/// an attacker points at 127.0.0.1, 10.x or 169.254.169.254) is refused after
/// resolution, unless the address itself is granted or the grant says
/// `allow_private`.
#[tokio::test]
async fn a_granted_name_that_resolves_to_loopback_is_refused() {
    let sidecar = Sink::start().await;
    let port = sidecar.addr.port();
    let router = granted(&[
        &format!(r#"{{ host = "http://localhost:{port}" }}"#),
        &format!(r#"{{ host = "http://localhost:{port}", allow_private = true }}"#),
    ])
    .await;
    let url = format!("http://localhost:{port}/");
    let (status, error) = fetch(&router, "p0", &url).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error.contains("DestinationIpProhibited"), "{error}");
    assert!(sidecar.received().is_empty(), "a refused request went out");

    let (status, error) = fetch(&router, "p1", &url).await;
    assert_eq!(status, StatusCode::OK, "{error}");
    let received = sidecar.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].headers["host"],
        format!("localhost:{port}"),
        "connected to the checked address, Host still names the host"
    );
}

/// A `type` (or id, source) holding a newline does not start a forged line in
/// the text log: control characters are escaped wherever an attribute is
/// logged (the event's display, span fields).
#[tokio::test]
async fn an_attribute_with_a_newline_cannot_forge_a_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!("[[route]]\nname = \"out\"\nforward = \"http://127.0.0.1:{closed}/\"\n"),
    )
    .expect("write config");
    // The text log format, with the debug spans that carry attribute values.
    let mut served = crate::process::serve_with_env(
        &[std::ffi::OsStr::new("--config"), config.as_os_str()],
        &[("RUST_LOG", "info,router=debug".to_owned())],
    );
    let addr = served.addr.clone();
    let event = serde_json::json!({
        "specversion": "1.0",
        "id": "id-1",
        "source": "/s",
        "type": "t\nFORGED level=ERROR the type forged this line",
        "averyveryverylongextensionname": "v",
    });
    let (status, body) = post(
        &format!("http://{addr}/events"),
        "application/cloudevents+json",
        event.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let _ = served.child.kill();
    let _ = served.child.wait();
    let lines = served.log_lines();
    let forged: Vec<&String> = lines.iter().filter(|l| l.starts_with("FORGED")).collect();
    assert!(forged.is_empty(), "forged log lines: {forged:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r"event=t\nFORGED level=ERROR the type")),
        "the event is logged with its type escaped: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r"type=t\nFORGED level=ERROR the type")),
        "the span's type field is escaped: {lines:#?}"
    );
}

/// Dead-letter and journal files hold whole events: created 0600.
#[tokio::test]
async fn dead_letter_and_journal_files_are_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (dlq, journal) = (dir.path().join("dlq.jsonl"), dir.path().join("audit.jsonl"));
    let failing = Sink::start().await;
    failing.answer(StatusCode::BAD_REQUEST);
    let router = TestRouter::start(&format!(
        r#"
[delivery.dead_letter]
file = {dlq:?}

[[route]]
name = "audit"
filter = {{ exact = {{ type = "audit" }} }}
append = {{ file = {journal:?} }}

[[route]]
name = "fails"
filter = {{ exact = {{ type = "fails" }} }}
forward = "{}"
"#,
        failing.url(),
        dlq = dlq.display().to_string(),
        journal = journal.display().to_string(),
    ))
    .await;
    for ty in ["audit", "fails"] {
        let (status, body) = post_binary(&router.events_url(), &ce_headers(ty, ty), "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for file in [&dlq, &journal] {
        let mode = std::fs::metadata(file)
            .expect("created")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{} is {mode:o}", file.display());
    }
}
