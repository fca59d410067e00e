//! The admin API on its own listener (issue 19, finding 3): never on the ingest
//! listener, behind its token when one is set, redrives only what is named, and
//! bounds its request bodies in size and time like ingest.

use crate::common::*;
use axum::http::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const TOKEN: &str = "admin-token-0123456789";

/// A router with a dead-letter file, whose one route forwards to `sink`.
async fn with_dead_letters(dir: &tempfile::TempDir, sink: &Sink, extra: &str) -> TestRouter {
    TestRouter::start(&format!(
        "{extra}\n[delivery.dead_letter]\nfile = {:?}\n\n[[route]]\nname = \"picky\"\nforward = \"{}\"\n",
        dir.path().join("dlq.jsonl").display().to_string(),
        sink.url()
    ))
    .await
}

/// Sends `head` (and `body`) on a new connection and reads the answer's status
/// line and headers (not to the end: a server may linger to drain the body).
async fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream.write_all(body).await.expect("body");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buf = [0u8; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(read.is_ok(), "no answer within {PATIENCE:?}: {answer:?}");
    answer
}

/// Every admin path answers 404 on the ingest listener, whatever the method, and
/// `/metrics` is on the admin listener by default; ingest keeps its own paths,
/// and the admin listener does not take events.
#[tokio::test]
async fn admin_paths_are_not_served_on_the_ingest_listener() {
    let router =
        TestRouter::start("[[route]]\nname = \"r\"\nforward = \"http://127.0.0.1:9/\"\n").await;
    let ingest = format!("http://{}", router.addr);
    let client = client();
    for (method, path) in [
        ("GET", "/admin/plugins"),
        ("GET", "/admin/routes"),
        ("GET", "/admin/dlq"),
        ("GET", "/admin/dlq/some-id"),
        ("POST", "/admin/reload"),
        ("POST", "/admin/explain"),
        ("POST", "/admin/dlq/redrive"),
        ("GET", "/metrics"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let answer = client
            .request(method.clone(), format!("{ingest}{path}"))
            .body(r#"{"all": true}"#)
            .send()
            .await
            .expect("ingest request");
        assert_eq!(
            answer.status(),
            StatusCode::NOT_FOUND,
            "{method} {path} on the ingest listener"
        );
        let admin = client
            .request(method.clone(), format!("{}{path}", router.admin_url()))
            .send()
            .await
            .expect("admin request");
        assert_ne!(
            admin.status(),
            StatusCode::NOT_FOUND,
            "{method} {path} on the admin listener"
        );
    }
    for path in ["/healthz", "/readyz"] {
        let answer = client
            .get(format!("{ingest}{path}"))
            .send()
            .await
            .expect("probe");
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
    }
    assert!(
        router.metrics().await.contains("router_"),
        "metrics on the admin listener"
    );
    let (status, _) = post_binary(
        &format!("{}/events", router.admin_url()),
        &ce_headers("a-1", "t"),
        "",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no ingest on the admin listener"
    );
}

/// `[admin] metrics = "ingest"` moves `/metrics` to the ingest listener.
#[tokio::test]
async fn metrics_can_be_served_with_ingest() {
    let router = TestRouter::start("[admin]\nmetrics = \"ingest\"\n").await;
    let on = |base: String| async move {
        client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .expect("metrics")
            .status()
    };
    assert_eq!(on(format!("http://{}", router.addr)).await, StatusCode::OK);
    assert_eq!(on(router.admin_url()).await, StatusCode::NOT_FOUND);
}

/// With a token, every admin request needs it (on loopback too): none, a wrong
/// one, or another scheme is a 401 that asks for a bearer token; the right one
/// passes. `router dlq` sends it from `--token` or `ROUTER_ADMIN_TOKEN`.
#[tokio::test]
async fn the_admin_token_is_required_and_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let router = with_dead_letters(&dir, &sink, &format!("[admin]\ntoken = \"{TOKEN}\"\n")).await;
    let admin = router.admin_url();
    let client = client();
    for path in ["/admin/plugins", "/admin/dlq", "/metrics", "/admin/nowhere"] {
        for authorization in [
            None,
            Some("Bearer wrong-token-0123456789".to_owned()),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Basic {TOKEN}")),
            Some("Bearer ".to_owned()),
        ] {
            let mut request = client.get(format!("{admin}{path}"));
            if let Some(value) = &authorization {
                request = request.header("authorization", value);
            }
            let answer = request.send().await.expect("admin request");
            assert_eq!(
                answer.status(),
                StatusCode::UNAUTHORIZED,
                "{path} with {authorization:?}"
            );
            let challenge = answer
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(challenge.starts_with("Bearer"), "{path}: {challenge:?}");
        }
    }
    // A redrive without the token redrives nothing, even a well-formed one.
    let refused = client
        .post(format!("{admin}/admin/dlq/redrive"))
        .body(r#"{"all": true}"#)
        .send()
        .await
        .expect("redrive");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    for path in ["/admin/plugins", "/admin/dlq", "/metrics"] {
        let answer = client
            .get(format!("{admin}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("admin request");
        assert_eq!(answer.status(), StatusCode::OK, "{path} with the token");
    }
    let cli = |token: Option<&'static str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"));
        command.args(["dlq", "--url", &admin, "list"]);
        command.env_remove("ROUTER_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("ROUTER_ADMIN_TOKEN", token);
        }
        command.output()
    };
    let without = cli(None).await.expect("router dlq list");
    assert!(!without.status.success());
    let stderr = String::from_utf8_lossy(&without.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    let with = cli(Some(TOKEN)).await.expect("router dlq list");
    let stdout = String::from_utf8_lossy(&with.stdout);
    assert!(
        with.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&with.stderr)
    );
    assert!(stdout.starts_with("0 dead letters\n"), "{stdout}");
}

/// `serve --admin-listen` on an address other than loopback needs a token, as
/// `admin.listen` does (tests/ui/admin.toml pins the configuration's error).
#[tokio::test]
async fn serve_refuses_an_exposed_admin_listener_without_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        "[[route]]\nname = \"r\"\nforward = \"http://127.0.0.1:9/\"\n",
    )
    .expect("write config");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["serve", "--no-watch", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "0.0.0.0:0", "--config"])
        .arg(&config)
        .output();
    let out = tokio::time::timeout(PATIENCE, out)
        .await
        .expect("serve exits at once")
        .expect("router serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("`admin.token` is required when the admin API listens on 0.0.0.0:0"),
        "{stderr}"
    );
}

/// A redrive must name what it redrives: an empty body, an empty selection or
/// one that is not a selection is a 400 that says how to choose, and nothing is
/// sent; `{"all": true}` redrives everything. The CLI requires a choice too.
#[tokio::test]
async fn an_empty_redrive_is_refused_and_redrives_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    sink.answer(StatusCode::BAD_REQUEST);
    let router = with_dead_letters(&dir, &sink, "").await;
    let (status, body) = post_binary(&router.events_url(), &ce_headers("dl-1", "t"), "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][0]["routes"][0]["outcome"], "dead_lettered");
    sink.answer(StatusCode::OK);
    let sent = sink.received().len();
    let redrive = format!("{}/admin/dlq/redrive", router.admin_url());
    for (body, says) in [
        ("", r#"{"all": true}"#),
        ("  \n", r#"{"all": true}"#),
        ("{}", r#"{"all": true}"#),
        (r#"{"ids": []}"#, r#"{"all": true}"#),
        (r#"{"all": false}"#, r#"{"all": true}"#),
        (r#"{"all": true, "route": "picky"}"#, "do not combine"),
        ("all", "not a selection"),
        (r#"{"everything": true}"#, "not a selection"),
    ] {
        let (status, answer) = post(&redrive, "application/json", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body:?}: {error}");
    }
    assert_eq!(router.admin("dlq").await["count"], 1, "nothing redriven");
    assert_eq!(sink.received().len(), sent, "nothing sent");

    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &router.admin_url(), "redrive"])
        .output()
        .await
        .expect("router dlq redrive");
    assert!(!cli.status.success());
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains("--all"), "{stderr}");
    assert_eq!(router.admin("dlq").await["count"], 1, "nothing redriven");

    let cli = tokio::process::Command::new(env!("CARGO_BIN_EXE_router"))
        .args(["dlq", "--url", &router.admin_url(), "redrive", "--all"])
        .output()
        .await
        .expect("router dlq redrive --all");
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        stdout.contains("1 delivered, 0 dead-lettered again, 0 failed"),
        "{stdout}"
    );
    assert_eq!(router.admin("dlq").await["count"], 0);
    assert_eq!(sink.received().len(), sent + 1);
}

/// Admin bodies have ingest's limits: a declared body over `body_limit` is a 413
/// before it is read, and one that does not arrive within `body_timeout` a 408,
/// on every admin path that reads a body.
#[tokio::test]
async fn admin_bodies_are_bounded_in_size_and_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let router = with_dead_letters(
        &dir,
        &sink,
        "[server]\nbody_limit = \"64KiB\"\nbody_timeout = \"300ms\"\n",
    )
    .await;
    for path in ["/admin/explain", "/admin/dlq/redrive"] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        );
        let answer = raw(router.admin_addr, &head, b"").await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");

        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
        );
        let answer = raw(router.admin_addr, &head, br#"{"all":"#).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
    }
    assert_eq!(
        router.admin("dlq").await["count"],
        0,
        "the admin API still answers"
    );
}

/// A reload applies what it can and names, in its answer and in the status, the
/// changed sections that are read only at start: a new admin token is not taken
/// silently as if it were in force.
#[tokio::test]
async fn a_reload_names_the_sections_that_need_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("router.toml");
    std::fs::write(&path, "[server]\nbody_limit = \"1MiB\"\n").expect("write");
    let router = TestRouter::start_file(&path).await;
    let reload = || async {
        let response = client()
            .post(format!("{}/admin/reload", router.admin_url()))
            .send()
            .await
            .expect("reload");
        assert_eq!(response.status(), StatusCode::OK);
        serde_json::from_slice::<serde_json::Value>(&response.bytes().await.expect("body"))
            .expect("JSON")
    };
    let answer = reload().await;
    assert_eq!(answer["restart_needed"], serde_json::json!([]), "{answer}");
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("[server]\nbody_limit = \"2MiB\"\n\n[admin]\ntoken = \"{TOKEN}\"\n"),
    )
    .expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    let answer = reload().await;
    assert_eq!(
        answer["restart_needed"],
        serde_json::json!(["[server]", "[admin]"]),
        "{answer}"
    );
    let status = router.admin("plugins").await;
    assert_eq!(
        status["reload"]["restart_needed"],
        serde_json::json!(["[server]", "[admin]"]),
        "{status}"
    );
}

/// A dead-letter store that cannot be read is the store's problem, not the
/// request's: 503 with `Retry-After`, never a 500.
#[tokio::test]
async fn an_unreadable_dead_letter_store_is_503_not_500() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    let router = with_dead_letters(&dir, &sink, "").await;
    // A directory where the file should be: every read fails.
    std::fs::create_dir(dir.path().join("dlq.jsonl")).expect("mkdir");
    let response = client()
        .get(format!("{}/admin/dlq", router.admin_url()))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let text = response.text().await.expect("body");
    assert!(text.contains("dlq.jsonl"), "{text}");
}
