//! The command line: its arguments, and one module per subcommand.

mod archive;
mod check;
mod dlq;
mod explain;
mod new;
mod send;
mod serve;
mod sink;
mod whatif;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A WebAssembly-extensible CloudEvents router.
#[derive(Debug, Parser)]
#[command(
    name = "router",
    version,
    about,
    after_help = "Start with `router check --config router.toml`, then `router serve --config router.toml`.",
    after_long_help = LONG_HELP
)]
pub struct Cli {
    /// Logs as `text` (the default) or `json`, one object per line; also
    /// ROUTER_LOG_FORMAT.
    // One line, and no list of values, env or default: a global option is
    // repeated in every subcommand's help; the details are in the top-level
    // long help.
    #[arg(
        long,
        global = true,
        value_enum,
        value_name = "text|json",
        default_value = "text",
        env = "ROUTER_LOG_FORMAT",
        hide_possible_values = true,
        hide_default_value = true,
        hide_env = true
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level `--help` epilogue: where to start, and the logging details that
/// the one-line `--log-format` leaves out.
const LONG_HELP: &str = "\
Start with `router check --config router.toml`, then `router serve --config router.toml`.

Logs go to standard error. `--log-format text` (the default) is for people;
`--log-format json` (or ROUTER_LOG_FORMAT=json) writes one JSON object per line
for log pipelines. RUST_LOG chooses what is logged (default `info`, e.g.
RUST_LOG=router=debug). The option is accepted before or after the subcommand.";

/// The admin API's address when neither `--url` nor ROUTER_ADMIN_URL says
/// otherwise (`admin.listen`'s default).
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9180";

/// The router's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve CloudEvents over HTTP with the routes and plugins of a configuration.
    #[command(after_help = "\
Example:
  router serve --config router.toml
  router serve --config router.toml --listen 0.0.0.0:8080 --log-format json")]
    Serve {
        /// The TOML configuration file.
        #[arg(short, long, env = "ROUTER_CONFIG")]
        config: PathBuf,
        /// Listen on this address instead of the configuration's `server.listen`.
        #[arg(short, long)]
        listen: Option<SocketAddr>,
        /// Serve the admin API on this address instead of the configuration's
        /// `admin.listen` (an address other than loopback needs `admin.token`).
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Do not reload when the configuration or plugin files change (SIGHUP and
        /// `POST /admin/reload` still reload).
        #[arg(long)]
        no_watch: bool,
    },
    /// Post an event to a router, from flags or a file.
    #[command(after_help = "\
Example:
  router send --type order.created --data '{\"id\": 1}'
  router send --file event.json --mode structured --url http://127.0.0.1:8080/events")]
    Send(Box<send::SendArgs>),
    /// Print every CloudEvent POSTed to an address: a stand-in for the webhooks
    /// a configuration forwards to, to watch what comes out of the routes.
    #[command(after_help = "\
Example:
  router sink --listen 127.0.0.1:9000
  router sink --status 503    # have the router retry, then dead-letter")]
    Sink(sink::SinkArgs),
    /// Show what the router would do with an event (a structured-mode JSON file):
    /// for every route, whether it matches or which clause fails, the event after
    /// each transform step, and the targets it would reach.
    #[command(after_help = "\
Example:
  router explain --config router.toml event.json
  echo '{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}' | router explain --config router.toml -")]
    Explain {
        /// The TOML configuration file.
        #[arg(short, long, env = "ROUTER_CONFIG")]
        config: PathBuf,
        /// The event, as a CloudEvents JSON document (`-`: standard input).
        event: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and redrive dead letters: through a running router's admin API, or
    /// straight from a `file` sink (`--config` or `--file`) without one.
    #[command(after_help = "\
Example:
  router dlq list                               # ask the router at ROUTER_ADMIN_URL or 127.0.0.1:9180
  router dlq list --config router.toml          # read the configuration's dead-letter file
  router dlq show 3f2a                          # a unique id prefix is enough
  router dlq redrive --route notify --url http://10.0.0.5:9180 --token $TOKEN")]
    Dlq(DlqArgs),
    /// Browse the archive of accepted events (`[archive]`) through a running
    /// router's admin API, by time range and filter.
    #[command(after_help = "\
Example:
  router archive list --from 2026-12-02T23:00:00Z --to 2026-12-02T23:05:00Z
  router archive show 1764716400123-0")]
    Archive(archive::ArchiveArgs),
    /// Send archived events of a time window again through the live routes (or
    /// one), marked with `replayid`, at a bounded rate, with progress; resumable.
    #[command(after_help = "\
Example:
  router replay --from 2026-12-02T23:00:00Z --to 2026-12-02T23:05:00Z --route audit --rate 50/s
  router replay --from 2026-12-02T23:00:00Z --to now --all --filter \"type = 'order.created'\" --id fix-42
  router replay --resume fix-42")]
    Replay(Box<archive::ReplayArgs>),
    /// Compare a plugin's live version with a candidate file on archived events,
    /// offline: no event is routed or forwarded, no HTTP is allowed, each version
    /// has a scratch store of its own. Prints counts per outcome and the first
    /// differences.
    #[command(after_help = "\
Example:
  router whatif --config router.toml --plugin inventory --candidate inventory-v2.wasm \\
      --from 2026-12-02T00:00:00Z --to now --ignore time
  router whatif --config router.toml --plugin inventory --candidate inventory-v2.wasm \\
      --from 2026-12-02T00:00:00Z --to now --json --fail-on-difference")]
    Whatif(Box<whatif::WhatIfArgs>),
    /// Load a configuration and every plugin it names, report every problem, and exit.
    #[command(after_help = "\
Example:
  router check --config router.toml")]
    Check {
        /// The TOML configuration file.
        #[arg(short, long, env = "ROUTER_CONFIG")]
        config: PathBuf,
    },
    /// Create a plugin project (Rust, Python or JavaScript) that builds and
    /// passes its own tests as it is, with a router.toml that runs it.
    #[command(after_help = "\
Example:
  router new handler --lang rust greeter
  router new transform --lang python stamper --dir ~/src
  router new handler --lang js greeter --sdk ~/router/guest-sdk")]
    New(new::NewArgs),
}

/// Where `router dlq` finds the dead letters. Global: accepted before or after
/// the action (`router dlq list --url ...`).
#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    /// The base URL of the router's admin API (`admin.listen`).
    #[arg(
        long,
        global = true,
        env = "ROUTER_ADMIN_URL",
        default_value = DEFAULT_ADMIN_URL
    )]
    pub url: String,
    /// The admin token (`admin.token`), sent as `Authorization: Bearer`.
    #[arg(
        long,
        global = true,
        env = "ROUTER_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Read the dead-letter file of this configuration's `file` sink, without
    /// asking a router (list and show only).
    #[arg(long, global = true, conflicts_with = "file")]
    pub config: Option<PathBuf>,
    /// Read this dead-letter file (JSON lines, a `file` sink), without asking a
    /// router (list and show only).
    #[arg(long, global = true)]
    pub file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub action: DlqAction,
}

/// `router dlq` actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List the dead letters, oldest first: id, route, attempts, reason, error.
    #[command(after_help = "\
Example:
  router dlq list --route notify
  router dlq list --config router.toml --json")]
    List {
        /// Only those of this route.
        #[arg(long)]
        route: Option<String>,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter, with its event, as JSON.
    #[command(after_help = "\
Example:
  router dlq show 3f2a9c
  router dlq show 3f2a9c --file dead-letters.jsonl")]
    Show {
        /// The dead letter's id, or a prefix that only it starts with.
        id: String,
    },
    /// Send dead letters back to their own route (only), or for a durable queue's
    /// poison entries (route `*`), through every route that matches them now, and
    /// remove those that no longer fail. Name them: ids, `--route`, or `--all`.
    /// Needs the running router, which does the delivering.
    #[command(
        group(
            clap::ArgGroup::new("selection")
                .required(true)
                .multiple(true)
                .args(["ids", "route", "all"])
        ),
        after_help = "\
Example:
  router dlq redrive 3f2a9c 81be07
  router dlq redrive --route notify
  router dlq redrive --all"
    )]
    Redrive {
        /// These dead letters (ids, or unique id prefixes).
        ids: Vec<String>,
        /// Those of this route (with ids: those ids of this route).
        #[arg(long)]
        route: Option<String>,
        /// Every dead letter.
        #[arg(long, conflicts_with_all = ["ids", "route"])]
        all: bool,
    },
}

/// How logs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Runs one subcommand; its exit code tells the shell how it went.
pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    match command {
        Command::Send(args) => send::run_send(&args).await,
        Command::Sink(args) => sink::run(&args)
            .await
            .map(|()| ExitCode::SUCCESS)
            .context("router sink"),
        Command::Check { config } => check::run(&config).await,
        Command::New(args) => new::run(&args).context("router new"),
        Command::Dlq(args) => dlq::run(args).await,
        Command::Archive(args) => archive::run_archive(args).await,
        Command::Replay(args) => archive::run_replay(*args).await,
        Command::Whatif(args) => whatif::run(&args).await,
        Command::Explain {
            config,
            event,
            json,
        } => explain::run(&config, &event, json).await,
        Command::Serve {
            config,
            listen,
            admin_listen,
            no_watch,
        } => {
            let listen = serve::ListenOverrides {
                ingest: listen,
                admin: admin_listen,
            };
            serve::run(&config, listen, no_watch).await
        }
    }
}

/// The HTTP client of the commands that talk to a router: redirects are never
/// followed, so an answer pointing elsewhere is reported, not obeyed with the
/// user's events or token.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Fails only when the TLS backend cannot start, where
        // `reqwest::Client::new()` would panic as well; a default client would
        // follow redirects.
        .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}"))
}

/// Sends `request` (to the admin API at `base`, with `token` if any) and
/// returns its JSON answer; every failure is an error that says what went
/// wrong and what to do. `hint` follows the advice when nothing answers.
/// `not_found_is_address`: every path the caller asks for exists, so a 404
/// means `base` is not the admin API.
pub(crate) async fn admin_call(
    mut request: reqwest::RequestBuilder,
    base: &str,
    token: Option<&str>,
    hint: &str,
    not_found_is_address: bool,
) -> anyhow::Result<serde_json::Value> {
    use anyhow::{Context as _, bail};
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => bail!(
            "cannot reach the router's admin API at {base}: {}\n  \
             is `router serve` running? Use --url (or ROUTER_ADMIN_URL) for another address{hint}",
            unreachable(&e)
        ),
    };
    let status = response.status();
    if status.is_redirection() {
        bail!(
            "{base} answered {status} redirecting to {}; the CLI does not follow redirects\n  \
             give the router's admin address itself with --url (or ROUTER_ADMIN_URL)",
            router::redirect_location(response.headers())
        );
    }
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("the router at {base} did not finish its answer"))?;
    let not_admin = || {
        format!(
            "is it the router's admin API (`admin.listen`, default {DEFAULT_ADMIN_URL}) rather than its ingest address?"
        )
    };
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        bail!("{base} answered {status} without JSON: {}", not_admin());
    };
    let message =
        router::event::Escaped(body["error"].as_str().unwrap_or("(no message)")).to_string();
    match status {
        s if s.is_success() => Ok(body),
        reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN => bail!(
            "the router answered {status}: {message}\n  \
             pass its admin token (`admin.token`) with --token or ROUTER_ADMIN_TOKEN"
        ),
        reqwest::StatusCode::NOT_FOUND if not_found_is_address => {
            bail!("{base} answered {status} ({message}): {}", not_admin())
        }
        _ => bail!("the router answered {status}: {message}"),
    }
}

/// The root cause of a request that got no answer, in a few words
/// (`connection refused`, `timed out`, the resolver's complaint), rather than
/// reqwest's chain of wrappers.
pub fn unreachable(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    if let Some(io) = root.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".to_owned(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".to_owned(),
            std::io::ErrorKind::TimedOut => return "timed out".to_owned(),
            _ => {}
        }
    }
    if e.is_builder() {
        return format!("not a usable URL ({root})");
    }
    root.to_string()
}

/// `n` and `word`, with `word` pluralised by an `s` when `n` is not 1.
pub fn count(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}
