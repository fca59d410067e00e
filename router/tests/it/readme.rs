//! Runs the commands of the READMEs, so that a README cannot drift from what the
//! router does and prints.
//!
//! A README marks what is tested with HTML comments, invisible once rendered,
//! each on the line before a fenced block:
//!
//! - `<!-- test -->`: a shell block, run with `bash` from the repository root
//!   (in order, `set -euo pipefail`); its standard output is kept;
//! - `<!-- test: output -->`: what the last shell block printed;
//! - `<!-- test: sink -->`: a shell block that starts `router sink`, run in the
//!   background until `<!-- test: stop sink -->` (a comment of its own) or the
//!   end of the README;
//! - `<!-- test: sink output -->`: what the sink has printed by now (awaited:
//!   forwards may arrive after the answer), each event on its own: forwards of
//!   one request may arrive in any order.
//!
//! An expected block is a sketch, as READMEs shorten: it is cut into fragments
//! at line ends and at `...`, and each fragment (trimmed) must appear in the
//! output after the one before it.
//!
//! The router is the test's own `router serve` (started with the README's
//! configuration on free ports); addresses and the binary are substituted in
//! the commands: `127.0.0.1:8080` and `127.0.0.1:9180` become the router's,
//! `target/debug/router` the binary under test, `router sink` listens where the
//! test's forwards point, and `router send` posts to the test's router. The
//! addresses in the expected output are substituted alike.

use crate::common::PATIENCE;
use crate::process::{Served, serve_with_env};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

const ROUTER: &str = env!("CARGO_BIN_EXE_router");

/// One marked block (or directive) of a README, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Shell commands to run; `line` is where the block starts in the README.
    Run { line: usize, script: String },
    /// What the last commands printed.
    Output { line: usize, expected: String },
    /// Shell commands that start the sink, in the background.
    Sink { line: usize, script: String },
    /// Stop the sink.
    StopSink,
    /// What the sink has printed so far.
    SinkOutput { line: usize, expected: String },
}

/// The marked steps of a README's text.
pub fn steps(text: &str) -> Vec<Step> {
    let lines: Vec<&str> = text.lines().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let directive = lines[i]
            .trim()
            .strip_prefix("<!-- test")
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(|rest| rest.trim_start_matches(':').trim());
        i += 1;
        let Some(directive) = directive else { continue };
        if directive == "stop sink" {
            steps.push(Step::StopSink);
            continue;
        }
        let (line, block) = fenced_block(&lines, &mut i)
            .unwrap_or_else(|| panic!("line {i}: `<!-- test -->` is not followed by a block"));
        steps.push(match directive {
            "" => Step::Run {
                line,
                script: block,
            },
            "output" => Step::Output {
                line,
                expected: block,
            },
            "sink" => Step::Sink {
                line,
                script: block,
            },
            "sink output" => Step::SinkOutput {
                line,
                expected: block,
            },
            other => panic!("line {line}: unknown test directive {other:?}"),
        });
    }
    steps
}

/// The fenced block that starts on the next line (blank lines skipped), without
/// its fences and the fence's indentation (blocks in list items are indented);
/// `i` moves past it. `None` when the next line opens no block.
fn fenced_block(lines: &[&str], i: &mut usize) -> Option<(usize, String)> {
    while lines.get(*i)?.trim().is_empty() {
        *i += 1;
    }
    let fence = lines[*i];
    let indent = fence.len() - fence.trim_start().len();
    if !fence.trim_start().starts_with("```") {
        return None;
    }
    // 1-based, the block's first line.
    let start = *i + 2;
    *i += 1;
    let mut body = Vec::new();
    while let Some(line) = lines.get(*i) {
        *i += 1;
        if line.trim() == "```" {
            return Some((start, body.join("\n")));
        }
        body.push(line.get(indent..).unwrap_or(line.trim_start()));
    }
    panic!("line {start}: the block never closes");
}

/// Whether `actual` holds the fragments of `expected` in order; `Err` names the
/// first fragment missing.
pub fn matches(expected: &str, actual: &str) -> Result<(), String> {
    let mut rest = actual;
    for fragment in expected
        .lines()
        .flat_map(|line| line.split("..."))
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        match rest.find(fragment) {
            Some(at) => rest = &rest[at + fragment.len()..],
            None => return Err(fragment.to_owned()),
        }
    }
    Ok(())
}

/// Whether every record of `expected` (a line that does not start with a
/// space, and the indented lines under it: one event as `router sink` prints
/// it) [`matches`] `actual` somewhere: forwards of one request may arrive in
/// any order. `Err` names the first record missing.
pub fn matches_records(expected: &str, actual: &str) -> Result<(), String> {
    let mut records: Vec<String> = Vec::new();
    for line in expected.lines() {
        match records.last_mut() {
            Some(record) if line.starts_with(' ') => {
                record.push('\n');
                record.push_str(line);
            }
            _ => records.push(line.to_owned()),
        }
    }
    for record in &records {
        let first = record
            .lines()
            .next()
            .and_then(|l| l.split("...").map(str::trim).find(|f| !f.is_empty()))
            .unwrap_or_default();
        // Any occurrence of the record's start may be the one that matches.
        let found = actual
            .match_indices(first)
            .any(|(at, _)| matches(record, &actual[at..]).is_ok());
        if !found {
            return Err(record.clone());
        }
    }
    Ok(())
}

/// A README being run: the router under test, the sink, the substitutions.
pub struct Session {
    readme: PathBuf,
    /// Kept for its lifetime: dropping it stops the router.
    router: Served,
    sink_addr: String,
    sink: Option<(Child, Arc<Mutex<String>>)>,
    env: Vec<(String, String)>,
    substitutions: Vec<(String, String)>,
    last_output: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_sink();
    }
}

/// A free port on loopback for the sink, which starts later (from the README):
/// the router's forwards must know where it will be.
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr").to_string()
}

impl Session {
    /// Starts `router serve --config <config>` (a path from the repository root)
    /// with `env`, in which `{sink}` stands for the sink's address. Each of
    /// `substitutions` replaces text in the README's commands (a temporary path
    /// for a file the README names, say), before the defaults; `{sink}`,
    /// `{router}` (its events address) and `{bin}` (the router binary) stand
    /// for themselves there too.
    pub fn start(
        readme: &str,
        config: &str,
        env: &[(&str, &str)],
        substitutions: &[(&str, &str)],
    ) -> Self {
        let root = repo_root();
        let sink_addr = free_addr();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.replace("{sink}", &sink_addr)))
            .collect();
        let config_path = root.join(config);
        let borrowed: Vec<(&str, String)> =
            env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let router = serve_with_env(
            &[
                "--no-watch".as_ref(),
                "--config".as_ref(),
                config_path.as_os_str(),
            ],
            &borrowed,
        );
        // The test's own first: they may name longer text than the defaults.
        let mut all: Vec<(String, String)> = substitutions
            .iter()
            .map(|(a, b)| {
                let b = b
                    .replace("{sink}", &sink_addr)
                    .replace("{router}", &router.addr)
                    .replace("{bin}", ROUTER);
                ((*a).to_owned(), b)
            })
            .collect();
        all.extend([
            (
                "target/debug/router send ".to_owned(),
                format!("{ROUTER} send --url http://{}/events ", router.addr),
            ),
            (
                "target/debug/router sink".to_owned(),
                format!("{ROUTER} sink --listen {sink_addr}"),
            ),
            ("target/debug/router".to_owned(), ROUTER.to_owned()),
            ("127.0.0.1:8080".to_owned(), router.addr.clone()),
            ("127.0.0.1:9180".to_owned(), router.admin_addr.clone()),
            ("127.0.0.1:9000".to_owned(), sink_addr.clone()),
        ]);
        let mut env = env;
        env.push((
            "ROUTER_ADMIN_URL".to_owned(),
            format!("http://{}", router.admin_addr),
        ));
        Self {
            readme: root.join(readme),
            router,
            sink_addr,
            sink: None,
            env,
            substitutions: all,
            last_output: String::new(),
        }
    }

    /// The router's events address (`host:port`), for processes the test starts
    /// from the README's command lines itself.
    pub fn router_addr(&self) -> &str {
        &self.router.addr
    }

    /// Runs every marked step of the README; panics at the first that fails,
    /// naming its line. Returns how many steps ran.
    pub async fn run(&mut self) -> usize {
        let text = std::fs::read_to_string(&self.readme)
            .unwrap_or_else(|e| panic!("{}: {e}", self.readme.display()));
        let steps = steps(&text);
        assert!(
            steps
                .iter()
                .any(|s| matches!(s, Step::Output { .. } | Step::SinkOutput { .. })),
            "{}: nothing is checked",
            self.readme.display()
        );
        for step in &steps {
            self.step(step).await;
        }
        steps.len()
    }

    /// Starts the sink with `script` (as a `<!-- test: sink -->` block would),
    /// for a README whose sink is started by a script it runs.
    pub async fn start_sink(&mut self, script: &str) {
        self.step(&Step::Sink {
            line: 0,
            script: script.to_owned(),
        })
        .await;
    }

    fn substitute(&self, script: &str) -> String {
        // One pass per pattern, longest first in the list; a placeholder keeps
        // a replacement from being replaced again by a later, shorter pattern.
        let mut text = script.to_owned();
        for (n, (from, _)) in self.substitutions.iter().enumerate() {
            text = text.replace(from, &format!("\u{1}{n}\u{2}"));
        }
        for (n, (_, to)) in self.substitutions.iter().enumerate() {
            text = text.replace(&format!("\u{1}{n}\u{2}"), to);
        }
        text
    }

    fn shell(&self, script: &str) -> Command {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg(format!("set -euo pipefail\n{}", self.substitute(script)))
            .current_dir(repo_root())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1");
        command
    }

    async fn step(&mut self, step: &Step) {
        let readme = self.readme.display().to_string();
        match step {
            Step::Run { line, script } => {
                let out = tokio::time::timeout(
                    PATIENCE,
                    tokio::process::Command::from(self.shell(script))
                        .kill_on_drop(true)
                        .output(),
                )
                .await
                .unwrap_or_else(|_| panic!("{readme}:{line}: the commands did not finish"))
                .expect("run bash");
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "{readme}:{line}: the commands failed ({}):\n{script}\nstdout:\n{stdout}\nstderr:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                );
                self.last_output = stdout;
            }
            Step::Output { line, expected } => {
                if let Err(missing) = matches(&self.substitute(expected), &self.last_output) {
                    panic!(
                        "{readme}:{line}: the output shown is not what the commands printed: \
                         missing {missing:?}\nprinted:\n{}",
                        self.last_output
                    );
                }
            }
            Step::Sink { line, script } => {
                self.stop_sink();
                let mut child = self
                    .shell(&format!("exec {script}"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start the sink");
                let printed = Arc::new(Mutex::new(String::new()));
                let stdout = child.stdout.take().expect("stdout");
                let keep = Arc::clone(&printed);
                std::thread::spawn(move || {
                    for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                        let mut all = keep.lock().expect("sink output");
                        all.push_str(&l);
                        all.push('\n');
                    }
                });
                let stderr = child.stderr.take().expect("stderr");
                let (ready_tx, ready_rx) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                        if l.contains("listening on") {
                            let _ = ready_tx.send(());
                        }
                    }
                });
                ready_rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
                    panic!(
                        "{readme}:{line}: the sink did not start on {}",
                        self.sink_addr
                    )
                });
                self.sink = Some((child, printed));
            }
            Step::StopSink => self.stop_sink(),
            Step::SinkOutput { line, expected } => {
                let expected = self.substitute(expected);
                let printed = &self
                    .sink
                    .as_ref()
                    .unwrap_or_else(|| panic!("{readme}:{line}: no sink is running"))
                    .1;
                let deadline = std::time::Instant::now() + PATIENCE;
                loop {
                    let now = printed.lock().expect("sink output").clone();
                    match matches_records(&expected, &now) {
                        Ok(()) => break,
                        Err(missing) if std::time::Instant::now() > deadline => panic!(
                            "{readme}:{line}: the sink did not print what is shown: \
                             missing {missing:?}\nprinted:\n{now}"
                        ),
                        Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
                    }
                }
            }
        }
    }

    fn stop_sink(&mut self) {
        if let Some((mut child, _)) = self.sink.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The repository root (tests run in `router/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("router/ is in the repository")
        .to_path_buf()
}

#[test]
fn steps_are_found_in_order_with_their_indentation_removed() {
    let text = "intro\n<!-- test -->\n   ```sh\n   echo a\n     b\n   ```\n\
                <!-- test: output -->\n```\na\n```\n<!-- test: stop sink -->\n```sh\nnot marked\n```\n";
    assert_eq!(
        steps(text),
        [
            Step::Run {
                line: 4,
                script: "echo a\n  b".to_owned()
            },
            Step::Output {
                line: 9,
                expected: "a".to_owned()
            },
            Step::StopSink,
        ]
    );
}

#[test]
fn an_expected_sketch_matches_fragments_in_order() {
    let actual = r#"{"events":[{"id":"order-1","routes":[{"route":"a","outcome":"delivered"}]}]}"#;
    assert_eq!(
        matches(
            "{\"events\":[{\"id\":\"order-1\", ...\n  {\"route\":\"a\",\"outcome\":\"delivered\"}",
            actual
        ),
        Ok(())
    );
    assert_eq!(
        matches("\"outcome\":\"delivered\"\n\"id\":\"order-1\"", actual),
        Err("\"id\":\"order-1\"".to_owned())
    );
}

#[test]
fn sink_records_match_in_any_order_but_each_whole() {
    let printed = "/b  t  id=2\n  {\"n\":2}\n/a  t  id=1\n  {\"n\":1}\n";
    assert_eq!(
        matches_records(
            "/a  t  id=1\n  {\"n\":1}\n/b  t  id=...\n  {\"n\":2}",
            printed
        ),
        Ok(())
    );
    assert_eq!(
        matches_records("/a  t  id=1\n  {\"n\":2}", printed),
        Err("/a  t  id=1\n  {\"n\":2}".to_owned())
    );
}

/// The quickstart of the main README, from the first order to `check`, against
/// `config/router.toml` (the configuration of `cargo demo`).
#[tokio::test]
async fn the_quickstart_runs_as_written() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let alias = std::fs::read_to_string(repo_root().join(".cargo/config.toml")).expect("alias");
    assert!(
        readme.contains("   cargo demo\n"),
        "the quickstart starts with `cargo demo`"
    );
    assert!(
        alias.contains("-- serve --config config/router.toml"),
        "`cargo demo` serves config/router.toml"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let journal = dir.path().join("demo-events.jsonl");
    let journal = journal.to_str().expect("UTF-8 path");
    let mut session = Session::start(
        "README.md",
        "config/router.toml",
        &[("SINK_URL", "http://{sink}/"), ("DEMO_JOURNAL", journal)],
        &[("target/demo-events.jsonl", journal)],
    );
    assert_eq!(session.run().await, 16, "the marked steps of the README");
    // The journal holds the reservation, and the rejection of both attempts.
    let lines = std::fs::read_to_string(journal).expect("journal");
    let types: Vec<_> = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["type"].clone())
        .collect();
    assert_eq!(
        types
            .iter()
            .filter(|t| *t == "com.example.order.rejected")
            .count(),
        2,
        "{lines}"
    );
}
