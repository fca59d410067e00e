//! The `router` binary itself: `check` and `serve` with a signal.

use crate::common::*;
use axum::http::StatusCode;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

/// A `router serve` process, its addresses (from its log), and its log lines
/// once it has exited. Dropping it kills the process, so a failing test leaves no
/// router behind.
pub(crate) struct Served {
    pub(crate) child: std::process::Child,
    /// Where it listens for events.
    pub(crate) addr: String,
    /// Where its admin API listens.
    pub(crate) admin_addr: String,
    log: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Served {
    /// `GET /metrics` as text, from its admin listener.
    pub(crate) async fn metrics(&self) -> String {
        crate::common::client()
            .get(format!("http://{}/metrics", self.admin_addr))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// Its log lines, once it has exited.
    pub(crate) fn log_lines(&mut self) -> Vec<String> {
        self.log
            .take()
            .expect("the log is taken once")
            .join()
            .expect("log thread")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `router serve` with `args`, ingest and admin each on 127.0.0.1:0, and
/// waits until it logs where they listen.
pub(crate) fn serve(args: &[&std::ffi::OsStr]) -> Served {
    serve_with_env(args, &[])
}

/// [`serve`] with extra environment variables (the configuration's `${VAR}`s,
/// or a `RUST_LOG` of its own).
pub(crate) fn serve_with_env(args: &[&std::ffi::OsStr], env: &[(&str, String)]) -> Served {
    let mut child = Command::new(ROUTER)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        // After the defaults, so a test may set its own `RUST_LOG`.
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start router");
    let stderr = child.stderr.take().expect("stderr");
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let field = |name: &str| {
                line.split(&format!(" {name}="))
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_owned)
            };
            if let (Some(addr), Some(admin)) = (field("addr"), field("admin")) {
                let _ = addr_tx.send((addr, admin));
            }
            lines.push(line);
        }
        lines
    });
    let (addr, admin_addr) = addr_rx
        .recv_timeout(PATIENCE)
        .expect("the router logs its addresses");
    Served {
        child,
        addr,
        admin_addr,
        log: Some(log),
    }
}

pub(crate) fn signal(child: &std::process::Child, signal: &str) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill {signal}");
}

/// `router check` on the demo configuration, with `env` set.
fn check_demo(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(ROUTER)
        .args(["check", "--config", "../config/router.toml"])
        .envs(env.iter().copied())
        .output()
        .expect("run router check")
}

/// Asserts that `out`, of [`check_demo`], accepted the demo configuration.
fn assert_demo_accepted(out: &std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok (3 plugins, 5 routes)"), "{stdout}");
}

#[test]
fn check_accepts_the_demo_configuration() {
    assert_demo_accepted(&check_demo(&[]));
}

/// The plugins load with instances allocated on demand (for a process that
/// cannot reserve the pool's address space), and an allocator the router does
/// not know is a configuration error that names the variable.
#[test]
fn the_instance_allocator_is_chosen_by_the_environment() {
    const VARIABLE: &str = "ROUTER_INSTANCE_ALLOCATOR";
    assert_demo_accepted(&check_demo(&[(VARIABLE, "on-demand")]));
    let out = check_demo(&[(VARIABLE, "heap")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{VARIABLE}=\"heap\": say `pooling` (the default) or `on-demand`"
        )),
        "{stderr}"
    );
}

#[test]
fn check_reports_every_error_and_fails() {
    let out = Command::new(ROUTER)
        .args(["check", "--config", "tests/ui/many_errors.toml"])
        .output()
        .expect("run router check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = std::fs::read_to_string("tests/ui/many_errors.stderr").expect("expected output");
    assert!(
        stderr.contains(expected.trim_end()),
        "got:\n{stderr}\nexpected:\n{expected}"
    );
}

/// `serve` answers, and SIGTERM stops it with exit status 0.
#[tokio::test]
async fn serve_stops_cleanly_on_sigterm() {
    let mut served = serve(&["--config".as_ref(), "../config/router.toml".as_ref()]);
    let addr = served.addr.clone();
    let health = client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.status().as_u16(), 200);
    let (status, _) = post_binary(
        &format!("http://{addr}/events"),
        &ce_headers("x", "com.example.other"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    signal(&served.child, "-TERM");
    let status = served.child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    let lines = served.log_lines();
    assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:#?}");
}

/// With `--no-watch`, SIGHUP is what reloads the configuration.
#[tokio::test]
async fn sighup_reloads_the_configuration() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("router.toml");
    let route =
        |name: &str| format!("[[route]]\nname = \"{name}\"\nforward = \"http://127.0.0.1:9/\"\n");
    std::fs::write(&config, route("first")).expect("write");
    let mut served = serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    std::fs::write(&config, route("second")).expect("rewrite");
    signal(&served.child, "-HUP");
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let response = client()
            .get(format!("http://{}/admin/routes", served.admin_addr))
            .send()
            .await
            .expect("routes");
        let routes: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.expect("body")).expect("json");
        if routes["generation"] == 2 {
            assert_eq!(routes["routes"][0]["name"], "second");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload after SIGHUP: {routes}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    signal(&served.child, "-TERM");
    assert!(served.child.wait().expect("wait").success());
}

/// `router send` posts an event built from flags, in each mode.
#[tokio::test]
async fn send_posts_events_in_each_mode() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        "[[route]]\nname = \"out\"\nforward = \"{}\"\n",
        sink.url()
    ))
    .await;
    for (i, mode) in ["binary", "structured", "batch"].iter().enumerate() {
        let id = format!("sent-{i}");
        let out = tokio::process::Command::new(ROUTER)
            .args([
                "send",
                "--url",
                &router.events_url(),
                "--mode",
                mode,
                "--id",
                &id,
            ])
            .args([
                "--type",
                "com.example.sent",
                "--extension",
                "tenant=acme",
                "--data",
                "{\"n\":1}",
            ])
            .output()
            .await
            .expect("router send");
        assert!(
            out.status.success(),
            "{mode}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let got = sink.wait_for(i + 1).await;
        let last = &got[i];
        assert_eq!(last.ce("id").as_deref(), Some(id.as_str()));
        assert_eq!(last.ce("tenant").as_deref(), Some("acme"));
        assert_eq!(last.json(), serde_json::json!({"n": 1}));
    }
}

/// A `router serve` on `toml` (written to a temporary folder that lives as long
/// as the process).
fn serve_toml(toml: &str) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("router.toml");
    std::fs::write(&config, toml).expect("write config");
    let served = serve(&[
        "--no-watch".as_ref(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    (served, dir)
}

/// Posts one event to a served router in the background.
fn post_in_background(
    addr: &str,
    id: &'static str,
) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
    let url = format!("http://{addr}/events");
    tokio::spawn(async move {
        client()
            .post(url)
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/t")
            .header("ce-type", "t")
            .send()
            .await
    })
}

/// Waits until the (closed) sink holds a request.
async fn held_at(sink: &Sink) {
    tokio::time::timeout(PATIENCE, async {
        while sink.waiting() < 1 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the event reaches the sink");
}

/// SIGTERM while a request is in flight (default, in-request mode): the router
/// stops taking new connections, finishes the request, and exits with 0.
#[tokio::test]
async fn sigterm_finishes_the_request_in_flight() {
    let sink = Sink::start().await;
    sink.close();
    let (mut served, _dir) = serve_toml(&format!(
        "[[route]]\nname = \"held\"\nforward = \"{}\"\n",
        sink.url()
    ));
    let request = post_in_background(&served.addr, "in-flight");
    held_at(&sink).await;
    signal(&served.child, "-TERM");
    // Still running: it waits for the request it holds.
    let listener_closed = tokio::time::timeout(PATIENCE, async {
        loop {
            if served.child.try_wait().expect("try_wait").is_some() {
                return false;
            }
            // The listener closes first: new connections are refused.
            if client()
                .get(format!("http://{}/healthz", served.addr))
                .send()
                .await
                .is_err()
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the listener closes");
    assert!(
        listener_closed,
        "the router exited with a request in flight"
    );
    sink.open();
    let response = request
        .await
        .expect("task")
        .expect("the request is answered");
    assert_eq!(response.status().as_u16(), 200);
    let status = served.child.wait().expect("wait");
    assert!(status.success(), "exit status {status}");
    assert_eq!(sink.received().len(), 1);
}

/// `shutdown_timeout` bounds how long SIGTERM waits for a request that does not
/// finish: the sink never answers and the forward timeout is a minute, so only
/// the shutdown timeout can end the process within the test's patience.
#[tokio::test]
async fn sigterm_gives_up_on_requests_after_the_shutdown_timeout() {
    let sink = Sink::start().await;
    sink.close();
    let (mut served, _dir) = serve_toml(&format!(
        "[server]\nshutdown_timeout = \"500ms\"\nforward_timeout = \"60s\"\n\n[[route]]\nname = \"held\"\nforward = \"{}\"\n",
        sink.url()
    ));
    let request = post_in_background(&served.addr, "stuck");
    held_at(&sink).await;
    let signalled = std::time::Instant::now();
    signal(&served.child, "-TERM");
    let status = tokio::task::spawn_blocking(move || {
        let status = served.child.wait().expect("wait");
        (status, served.log_lines())
    });
    let (status, lines) = tokio::time::timeout(PATIENCE, status)
        .await
        .expect("the router exits once the shutdown timeout has passed")
        .expect("task");
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() >= std::time::Duration::from_millis(500),
        "exited before the shutdown timeout"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("requests still in flight after the shutdown timeout")),
        "{lines:#?}"
    );
    // The sender sees its request fail (no answer), never a success.
    let answered = request.await.expect("task");
    assert!(
        answered.as_ref().map_or(true, |r| !r.status().is_success()),
        "{answered:?}"
    );
    sink.open();
}
