//! The command line for a new user (issue 21): options where people type them,
//! dead letters without a running router, redrive reports that say what
//! happened, errors that name the cause and the next step, help with examples,
//! and `router check` messages that say how to fix a plugin.

use crate::common::*;
use axum::http::StatusCode;
use std::path::Path;
use std::process::Output;

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

/// Runs the router binary with `args` (and `stdin`), to its end.
async fn router(args: &[&str], stdin: Option<&str>) -> Output {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new(ROUTER)
        .args(args)
        .env_remove("ROUTER_ADMIN_URL")
        .env_remove("ROUTER_ADMIN_TOKEN")
        .env_remove("ROUTER_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start router");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.expect("write stdin");
    }
    drop(input);
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("the router command ends")
        .expect("router output")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An address nothing listens on: a port just bound and released.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

/// A configuration file in `dir` whose one route forwards to `sink` without
/// retries, with a dead-letter file beside it (a path relative to the file).
fn config_with_dead_letters(dir: &Path, sink: &Sink) -> std::path::PathBuf {
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[delivery.dead_letter]\nfile = \"dead-letters.jsonl\"\n\n\
             [[route]]\nname = \"notify\"\nforward = \"{}\"\nretry = {{ max_attempts = 1 }}\n",
            sink.url()
        ),
    )
    .expect("write config");
    config
}

/// Posts events `ids` and checks that each was dead-lettered.
async fn dead_letter(router: &TestRouter, ids: &[&str]) {
    for id in ids {
        let (status, body) =
            post_binary(&router.events_url(), &ce_headers(id, "test.cli"), "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            body["events"][0]["routes"][0]["outcome"], "dead_lettered",
            "{body}"
        );
    }
}

#[tokio::test]
async fn dlq_options_are_accepted_after_the_action_and_shown_in_its_help() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    sink.answer(StatusCode::BAD_REQUEST);
    let router_ = TestRouter::start_file(&config_with_dead_letters(dir.path(), &sink)).await;
    dead_letter(&router_, &["a-1"]).await;
    let url = router_.admin_url();

    let out = router(&["dlq", "list", "--url", &url], None).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("1 dead letter\n"), "{stdout}");
    assert!(stdout.contains("event=a-1"), "{stdout}");
    assert!(
        stderr.contains(&format!("asking the router at {url}")),
        "{stderr}"
    );

    let out = router(&["dlq", "list", "--help"], None).await;
    let (help, _) = text(&out);
    assert!(out.status.success());
    for option in ["--url", "--token", "--config", "--file"] {
        assert!(help.contains(option), "{option} in:\n{help}");
    }
}

#[tokio::test]
async fn dlq_reads_the_dead_letter_file_of_a_configuration_without_a_router() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    sink.answer(StatusCode::BAD_REQUEST);
    let config = config_with_dead_letters(dir.path(), &sink);
    let running = TestRouter::start_file(&config).await;
    dead_letter(&running, &["f-1", "f-2"]).await;
    running.shutdown().await.expect("router stops");
    let config = config.to_str().expect("utf-8 path");
    let file = dir.path().join("dead-letters.jsonl");
    let file = file.to_str().expect("utf-8 path");
    // No router runs: an admin URL that refuses shows nobody is asked.
    let nobody = closed_url();

    let out = router(&["dlq", "list", "--config", config, "--url", &nobody], None).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("2 dead letters\n"), "{stdout}");
    assert!(
        stdout.contains("event=f-1") && stdout.contains("event=f-2"),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("reading dead letters from file {file}")),
        "{stderr}"
    );

    let out = router(&["dlq", "list", "--json", "--file", file], None).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&stdout).expect("JSON list");
    assert_eq!(listed["count"], 2, "{listed}");
    let id = listed["dead_letters"][0]["id"].as_str().expect("id");

    // A unique prefix is enough to show one.
    let out = router(&["dlq", "show", &id[..12], "--file", file], None).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let shown: serde_json::Value = serde_json::from_str(&stdout).expect("JSON letter");
    assert_eq!(shown["id"], id, "{shown}");
    assert_eq!(shown["event"]["id"], "f-1", "{shown}");

    // A prefix that two ids share names both. (The ids are random: two lines of
    // the file are given ids with one prefix.)
    let lines: Vec<String> = std::fs::read_to_string(file)
        .expect("dead letters")
        .lines()
        .zip(["abcd0001", "abcd0002"])
        .map(|(line, new)| {
            let mut letter: serde_json::Value = serde_json::from_str(line).expect("line");
            letter["id"] = new.into();
            letter.to_string()
        })
        .collect();
    let twins = dir.path().join("twins.jsonl");
    std::fs::write(&twins, lines.join("\n") + "\n").expect("write");
    let twins = twins.to_str().expect("utf-8 path");
    let out = router(&["dlq", "show", "abcd", "--file", twins], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("\"abcd\" is the start of 2 dead letters: abcd0001, abcd0002"),
        "{stderr}"
    );
    let out = router(&["dlq", "show", "zzz", "--file", twins], None).await;
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("no dead letter has an id starting with \"zzz\""),
        "{}",
        text(&out).1
    );

    // Redriving needs the router: the error says how to get one.
    let out = router(&["dlq", "redrive", "--all", "--config", config], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("`router serve --config {config}`")),
        "{stderr}"
    );
    let lines = std::fs::read_to_string(file).expect("dead letters");
    assert_eq!(lines.lines().count(), 2, "nothing was removed");
}

#[tokio::test]
async fn dlq_redrive_reports_dead_letters_written_again_with_their_new_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::start().await;
    sink.answer(StatusCode::BAD_REQUEST);
    let running = TestRouter::start_file(&config_with_dead_letters(dir.path(), &sink)).await;
    dead_letter(&running, &["d-1", "d-2"]).await;
    let url = running.admin_url();
    let before = running.admin("dlq").await;
    let old: Vec<&str> = before["dead_letters"]
        .as_array()
        .expect("list")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();

    // Still failing: both are dead-lettered again, under new ids.
    let out = router(&["dlq", "redrive", "--all", "--url", &url], None).await;
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let after = running.admin("dlq").await;
    let new: Vec<&str> = after["dead_letters"]
        .as_array()
        .expect("list")
        .iter()
        .map(|l| l["id"].as_str().expect("id"))
        .collect();
    assert_eq!(new.len(), 2, "{after}");
    for (old, new) in old.iter().zip(&new) {
        assert!(
            stdout.contains(&format!(
                "{old}  dead-lettered again as {new} (route notify)"
            )),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("0 delivered, 2 dead-lettered again, 0 failed"),
        "{stdout}"
    );
    assert!(!stdout.contains("redriven"), "{stdout}");
    assert!(
        stderr.contains("2 dead letters did not get through")
            && stderr.contains(&format!("router dlq redrive {} {}", new[0], new[1])),
        "{stderr}"
    );

    // Repaired: delivered, by id prefixes, and the command succeeds.
    sink.answer(StatusCode::OK);
    let out = router(
        &[
            "dlq",
            "redrive",
            &new[0][..10],
            &new[1][..10],
            "--url",
            &url,
        ],
        None,
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{}  delivered (route notify)", new[0])),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 delivered, 0 dead-lettered again, 0 failed"),
        "{stdout}"
    );
    assert_eq!(running.admin("dlq").await["count"], 0);
}

#[tokio::test]
async fn explain_reads_the_event_from_standard_input() {
    let event = std::fs::read_to_string("tests/explain/big-order.json").expect("an explain case");
    let expected = std::fs::read_to_string("tests/explain/big-order.txt").expect("its output");
    let out = router(
        &["explain", "--config", "tests/explain/router.toml", "-"],
        Some(&event),
    )
    .await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, expected);

    let out = router(
        &["explain", "--config", "tests/explain/router.toml", "-"],
        Some("not json"),
    )
    .await;
    assert!(!out.status.success());
    assert!(
        text(&out)
            .1
            .contains("standard input is not a valid CloudEvent"),
        "{}",
        text(&out).1
    );
}

#[tokio::test]
async fn every_subcommand_help_has_an_example_and_no_repeated_log_format_text() {
    for command in [
        &["serve"][..],
        &["send"],
        &["sink"],
        &["explain"],
        &["check"],
        &["new"],
        &["dlq"],
        &["dlq", "list"],
        &["dlq", "show"],
        &["dlq", "redrive"],
        &["archive"],
        &["archive", "list"],
        &["archive", "show"],
        &["replay"],
        &["whatif"],
    ] {
        let args: Vec<&str> = command.iter().copied().chain(["--help"]).collect();
        let out = router(&args, None).await;
        let (help, _) = text(&out);
        assert!(out.status.success(), "{command:?}");
        assert!(
            help.contains("Example:\n  router "),
            "{command:?} has no example:\n{help}"
        );
        // Its line, and the lines of text under it up to the next option.
        let log_lines = help
            .lines()
            .skip_while(|l| !l.contains("--log-format"))
            .enumerate()
            .take_while(|(i, l)| *i == 0 || !(l.trim().is_empty() || l.trim().starts_with('-')))
            .count();
        assert!(
            log_lines <= 2,
            "{command:?}: --log-format takes {log_lines} lines:\n{help}"
        );
    }
    let out = router(&["--help"], None).await;
    let (help, _) = text(&out);
    assert!(help.contains("ROUTER_LOG_FORMAT=json"), "{help}");

    // `--type` is required (unless --file): said in the help and by clap.
    let out = router(&["send", "--help"], None).await;
    let (help, _) = text(&out);
    assert!(
        help.contains("Usage: router send [OPTIONS] <--type <TYPE>|--file <FILE>>"),
        "{help}"
    );
    let out = router(&["send", "--url", &closed_url()], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the following required arguments were not provided")
            && stderr.contains("--type <TYPE>"),
        "{stderr}"
    );
}

/// The CLI does not follow redirects either: an answer pointing elsewhere is an
/// error that names it, and nothing reaches where it pointed.
#[tokio::test]
async fn client_commands_do_not_follow_redirects() {
    let elsewhere = Sink::start().await;
    let (url, hits) = redirector(elsewhere.url()).await;
    let events = format!("{url}events");
    let out = router(&["send", "--type", "t", "--url", &events], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("{events} answered 307"))
            && stderr.contains(&elsewhere.url())
            && stderr.contains("redirects are not followed"),
        "{stderr}"
    );
    let admin = url.trim_end_matches('/');
    let out = router(&["dlq", "list", "--url", admin], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("answered 307")
            && stderr.contains(&elsewhere.url())
            && stderr.contains("the CLI does not follow redirects"),
        "{stderr}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(
        elsewhere.received().is_empty(),
        "a redirect was followed: {} request(s) reached its target",
        elsewhere.received().len()
    );
}

#[tokio::test]
async fn client_errors_name_the_cause_and_the_next_step() {
    let nobody = closed_url();
    let out = router(&["dlq", "list", "--url", &nobody], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "error: cannot reach the router's admin API at {nobody}: connection refused"
        )) && stderr.contains("is `router serve` running?")
            && stderr.contains("--url (or ROUTER_ADMIN_URL)"),
        "{stderr}"
    );

    let events = format!("{nobody}/events");
    let out = router(&["send", "--type", "t", "--url", &events], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "error: cannot reach the router at {events}: connection refused"
        )) && stderr.contains("is `router serve` running? Use --url"),
        "{stderr}"
    );

    // The ingest address given for the admin one: said so.
    let running =
        TestRouter::start("[[route]]\nname = \"r\"\nforward = \"http://127.0.0.1:9/\"\n").await;
    let ingest = format!("http://{}", running.addr);
    let out = router(&["dlq", "list", "--url", &ingest], None).await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("is it the router's admin API (`admin.listen`, default http://127.0.0.1:9180) rather than its ingest address?"),
        "{stderr}"
    );
}

#[tokio::test]
async fn check_says_how_to_fix_a_plugin_and_names_routes() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("text.wasm"), "hello, not wasm\n").expect("write");
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"unbuilt\"\npath = \"missing.wasm\"\n\n\
             [[plugin]]\nname = \"text\"\npath = \"text.wasm\"\n\n\
             [[plugin]]\nname = \"core\"\npath = {:?}\n\n\
             [[route]]\nname = \"orders\"\nhandler = \"payments\"\n",
            std::fs::canonicalize("tests/ui/core-module.wasm")
                .expect("core module")
                .display()
                .to_string()
        ),
    )
    .expect("write config");
    let out = router(
        &["check", "--config", config.to_str().expect("utf-8")],
        None,
    )
    .await;
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(
        stderr.contains("missing.wasm does not exist: build the plugin first (Rust: `cargo build --release --target wasm32-wasip2` in its crate;"),
        "{stderr}"
    );
    let not_wasm = stderr
        .lines()
        .find(|l| l.contains("text.wasm"))
        .unwrap_or_default();
    assert!(
        not_wasm.contains("text.wasm is not a WebAssembly file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("core-module.wasm is a core WebAssembly module, not a component"),
        "{stderr}"
    );
    assert!(!stderr.contains("0x"), "no bytes dumped: {stderr}");
    assert!(
        stderr.contains("route \"orders\".handler: unknown plugin \"payments\""),
        "{stderr}"
    );
    assert!(!stderr.contains("route[0]"), "{stderr}");

    let one = dir.path().join("one.toml");
    std::fs::write(
        &one,
        format!(
            "[[plugin]]\nname = \"audit\"\npath = {:?}\n\n\
             [[route]]\nname = \"all\"\nhandler = \"audit\"\n",
            plugin_artifacts::AUDIT
        ),
    )
    .expect("write config");
    let out = router(&["check", "--config", one.to_str().expect("utf-8")], None).await;
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.trim_end().ends_with("ok (1 plugin, 1 route)"),
        "{stdout}"
    );
}
