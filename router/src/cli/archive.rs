//! `router archive list|show` and `router replay`: the archive and its replays,
//! through a running router's admin API (`/admin/archive`, `/admin/replay`),
//! which reads the archive and delivers the replayed events.

use super::count;
use anyhow::Context as _;
use router::event::Escaped;
use serde_json::{Value, json};
use std::process::ExitCode;
use std::time::Duration;

/// Where the router's admin API is. Global: accepted before or after the action.
#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// The base URL of the router's admin API (`admin.listen`).
    #[arg(
        long,
        global = true,
        env = "ROUTER_ADMIN_URL",
        default_value = super::DEFAULT_ADMIN_URL
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
}

/// `router archive`.
#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// The router to ask.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// What to do.
    #[command(subcommand)]
    pub action: ArchiveAction,
}

/// `router archive` actions.
#[derive(Debug, clap::Subcommand)]
pub enum ArchiveAction {
    /// List archived events, oldest first: position, arrival, id, type, source.
    #[command(after_help = "\
Example:
  router archive list --from 2026-12-02T23:00:00Z --to 2026-12-02T23:05:00Z
  router archive list --filter \"type LIKE 'com.example.order.%'\" --json
  router archive list --filter '{\"prefix\": {\"type\": \"com.example.\"}}' --limit 10")]
    List {
        /// Arrived at or after this time (RFC 3339, or ms since the epoch).
        #[arg(long)]
        from: Option<String>,
        /// Arrived before this time.
        #[arg(long)]
        to: Option<String>,
        /// Only events this takes: a CloudEvents SQL expression, or a route
        /// filter as JSON (any dialect).
        #[arg(long)]
        filter: Option<String>,
        /// After this position (the `next` of a previous page).
        #[arg(long)]
        after: Option<String>,
        /// At most this many events (at most 1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one archived event, with its position and arrival time, as JSON.
    #[command(after_help = "\
Example:
  router archive show 1764716400123-0")]
    Show {
        /// Its position, as `list` shows it.
        position: String,
    },
}

/// `router replay`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .args(["route", "all", "resume"])
        .required(true)
))]
pub struct ReplayArgs {
    /// The router to ask.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Events that arrived at or after this time (RFC 3339, or ms since the epoch).
    #[arg(long, required_unless_present = "resume")]
    pub from: Option<String>,
    /// Events that arrived before this time.
    #[arg(long, required_unless_present = "resume")]
    pub to: Option<String>,
    /// Only events this takes: a CloudEvents SQL expression, or a route filter
    /// as JSON (any dialect).
    #[arg(long)]
    pub filter: Option<String>,
    /// Through this route only (those of its events its filter takes).
    #[arg(long, conflicts_with_all = ["all", "resume"])]
    pub route: Option<String>,
    /// Through every live route.
    #[arg(long, conflicts_with = "resume")]
    pub all: bool,
    /// At most this many events per second: `20`, `20/s`, `600/m`.
    #[arg(long)]
    pub rate: Option<String>,
    /// The replay's id (its events' `replayid`); the router makes one when absent.
    #[arg(long, conflicts_with = "resume")]
    pub id: Option<String>,
    /// Resume the stopped replay of this id after its checkpoint.
    #[arg(long, value_name = "ID")]
    pub resume: Option<String>,
    /// Start it and exit, without following its progress.
    #[arg(long)]
    pub detach: bool,
}

/// The admin API of a running router.
struct Admin {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Admin {
    fn new(args: &AdminArgs) -> Self {
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            client: super::http_client(),
        }
    }

    /// One request to `path`; the JSON answer, or an error with the router's
    /// message and what to do.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let base = &self.base;
        let mut request = self.client.request(method, format!("{base}{path}"));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        super::admin_call(request, base, self.token.as_deref(), "", false).await
    }
}

/// `router archive list|show`.
pub async fn run_archive(args: ArchiveArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args.admin);
    match args.action {
        ArchiveAction::List {
            from,
            to,
            filter,
            after,
            limit,
            json,
        } => {
            let mut query = Vec::new();
            for (name, value) in [
                ("from", from),
                ("to", to),
                ("filter", filter),
                ("after", after),
            ] {
                if let Some(value) = value {
                    query.push(format!(
                        "{name}={}",
                        percent_encoding::utf8_percent_encode(
                            &value,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ));
                }
            }
            query.push(format!("limit={limit}"));
            let answer = admin
                .call(
                    reqwest::Method::GET,
                    &format!("/admin/archive?{}", query.join("&")),
                    None,
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Ok(ExitCode::SUCCESS);
            }
            let events = answer["events"].as_array().cloned().unwrap_or_default();
            println!("{}", count(events.len(), "archived event"));
            let text = |v: &Value| Escaped(v.as_str().unwrap_or_default()).to_string();
            for record in &events {
                println!(
                    "{}  {}  id={}  type={}  source={}",
                    text(&record["position"]),
                    text(&record["arrived"]),
                    text(&record["event"]["id"]),
                    text(&record["event"]["type"]),
                    text(&record["event"]["source"]),
                );
            }
            if let Some(next) = answer["next"].as_str() {
                println!("more after {next}: --after {next}");
            }
        }
        ArchiveAction::Show { position } => {
            let path = format!(
                "/admin/archive/{}",
                percent_encoding::utf8_percent_encode(
                    &position,
                    percent_encoding::NON_ALPHANUMERIC
                )
            );
            let answer = admin.call(reqwest::Method::GET, &path, None).await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `router replay`: starts (or resumes) a replay, then follows its progress
/// on standard error until it stops; exits 0 when it is done without a
/// failed delivery. Interrupting the command leaves the replay running in the
/// router.
pub async fn run_replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let admin = Admin::new(&args.admin);
    let started = match &args.resume {
        Some(id) => {
            admin
                .call(
                    reqwest::Method::POST,
                    &format!("/admin/replay/{id}/resume"),
                    None,
                )
                .await?
        }
        None => {
            let mut body = json!({ "from": args.from, "to": args.to });
            if let Some(route) = &args.route {
                body["route"] = json!(route);
            }
            if args.all {
                body["all"] = json!(true);
            }
            for (name, value) in [
                ("filter", &args.filter),
                ("rate", &args.rate),
                ("id", &args.id),
            ] {
                if let Some(value) = value {
                    body[name] = json!(value);
                }
            }
            admin
                .call(reqwest::Method::POST, "/admin/replay", Some(&body))
                .await?
        }
    };
    let id = started["id"]
        .as_str()
        .context("the router's answer names no replay id")?
        .to_owned();
    eprintln!(
        "replay {id}: {} to {}, {}",
        started["from"].as_str().unwrap_or_default(),
        started["to"].as_str().unwrap_or_default(),
        started["route"]
            .as_str()
            .map_or_else(|| "every route".to_owned(), |r| format!("route {r}"))
    );
    if args.detach {
        println!("{}", serde_json::to_string_pretty(&started)?);
        return Ok(ExitCode::SUCCESS);
    }
    let mut shown = None;
    loop {
        let progress = admin
            .call(reqwest::Method::GET, &format!("/admin/replay/{id}"), None)
            .await?;
        let line = format!(
            "replay {id}: {} of {} events, {} failed{}",
            progress["replayed"],
            progress["total"]
                .as_u64()
                .map_or_else(|| "?".to_owned(), |t| t.to_string()),
            progress["failed"],
            progress["position"]
                .as_str()
                .map(|p| format!(", at {p}"))
                .unwrap_or_default()
        );
        if shown.as_ref() != Some(&line) {
            eprintln!("{line}");
            shown = Some(line);
        }
        if progress["state"] != "running" {
            println!("{}", serde_json::to_string_pretty(&progress)?);
            let clean = progress["state"] == "done" && progress["failed"].as_u64() == Some(0);
            if progress["state"] != "done" {
                eprintln!(
                    "replay {id} {}: resume it with `router replay --resume {id}`",
                    progress["state"].as_str().unwrap_or("stopped")
                );
            }
            return Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
