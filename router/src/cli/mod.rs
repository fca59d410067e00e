//! The command line: its arguments, and one module per subcommand.

mod check;
mod dlq;
mod explain;
mod send;
mod serve;
mod sink;

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// A WebAssembly-extensible CloudEvents router.
#[derive(Debug, Parser)]
#[command(name = "router", version, about)]
pub struct Cli {
    /// Log format: human-readable text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "ROUTER_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The router's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve CloudEvents over HTTP with the routes and plugins of a configuration.
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
    Send(Box<send::SendArgs>),
    /// Print every CloudEvent POSTed to an address: a stand-in for the webhooks
    /// a configuration forwards to, to watch what comes out of the routes.
    Sink(sink::SinkArgs),
    /// Show what the router would do with an event (a structured-mode JSON file):
    /// for every route, whether it matches or which clause fails, the event after
    /// each transform step, and the targets it would reach.
    Explain {
        /// The TOML configuration file.
        #[arg(short, long, env = "ROUTER_CONFIG")]
        config: PathBuf,
        /// The event, as a CloudEvents JSON document.
        event: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and redrive the dead letters of a running router (through its admin
    /// API).
    Dlq {
        /// The base URL of the router's admin API (`admin.listen`).
        #[arg(
            long,
            env = "ROUTER_ADMIN_URL",
            default_value = "http://127.0.0.1:9180"
        )]
        url: String,
        /// The admin token (`admin.token`), sent as `Authorization: Bearer`.
        #[arg(long, env = "ROUTER_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// What to do.
        #[command(subcommand)]
        action: DlqAction,
    },
    /// Load a configuration and every plugin it names, report every problem, and exit.
    Check {
        /// The TOML configuration file.
        #[arg(short, long, env = "ROUTER_CONFIG")]
        config: PathBuf,
    },
}

/// `router dlq` actions.
#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List the dead letters, oldest first: id, route, attempts, reason, error.
    List {
        /// Only those of this route.
        #[arg(long)]
        route: Option<String>,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one dead letter, with its event, as JSON.
    Show {
        /// The dead letter's id.
        id: String,
    },
    /// Send dead letters back to their own route (only), or for a durable queue's
    /// poison entries (route `*`), through every route that matches them now, and
    /// remove those that no longer fail. Name them: ids, `--route`, or `--all`.
    #[command(group(
        clap::ArgGroup::new("selection")
            .required(true)
            .multiple(true)
            .args(["ids", "route", "all"])
    ))]
    Redrive {
        /// These dead letters.
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
        Command::Dlq { url, token, action } => dlq::run(&url, token.as_deref(), action).await,
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
