//! `router dlq`: dead letters, from a running router's admin API (`/admin/dlq`)
//! or, without a router, straight from a `file` sink.

use super::{DlqAction, DlqArgs, count};
use anyhow::{Context as _, bail};
use router::event::Escaped;
use router::{DeadLetter, DeadLetterSink};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the dead letters are read.
enum Source {
    /// A `file` sink's JSON lines, read here.
    File(PathBuf),
    /// The admin API of a running router.
    Router {
        base: String,
        token: Option<String>,
        client: reqwest::Client,
    },
}

/// `router dlq`: lists, shows or redrives dead letters, and says where it got
/// them (on standard error, so that `--json` output stays clean).
pub async fn run(args: DlqArgs) -> anyhow::Result<ExitCode> {
    let source = source(&args)?;
    match &source {
        Source::File(path) => eprintln!("reading dead letters from file {}", path.display()),
        Source::Router { base, .. } => eprintln!("asking the router at {base}"),
    }
    match args.action {
        DlqAction::List { route, json } => {
            let mut letters = source.list(route.as_deref()).await?;
            if let Some(route) = &route {
                letters.retain(|l| l["route"].as_str() == Some(route));
            }
            if json {
                let answer = serde_json::json!({ "count": letters.len(), "dead_letters": letters });
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_list(&letters);
            }
        }
        DlqAction::Show { id } => {
            let letters = source.list(None).await?;
            let id = resolve(&letters, &id)?;
            let letter = letters
                .iter()
                .find(|l| l["id"].as_str() == Some(id.as_str()))
                .context("the dead letter went away")?;
            println!("{}", serde_json::to_string_pretty(letter)?);
        }
        DlqAction::Redrive { ids, route, all } => {
            let Source::Router { .. } = &source else {
                let config = match &args.config {
                    Some(config) => config.display().to_string(),
                    None => "router.toml".to_owned(),
                };
                bail!(
                    "a redrive needs the running router, which delivers the events; \
                     start it (`router serve --config {config}`), then run \
                     `router dlq redrive` without --config or --file (with --url if its \
                     admin API is not at {})",
                    super::DEFAULT_ADMIN_URL
                );
            };
            let ids = if ids.is_empty() {
                ids
            } else {
                let letters = source.list(None).await?;
                ids.iter()
                    .map(|id| resolve(&letters, id))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let selection = if all {
                serde_json::json!({ "all": true })
            } else {
                serde_json::json!({ "ids": ids, "route": route })
            };
            let answer = source.redrive(&selection).await?;
            return Ok(report_redrive(&answer));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The source the arguments name: `--file`, the `file` sink of `--config`, or
/// the router at `--url`.
fn source(args: &DlqArgs) -> anyhow::Result<Source> {
    if let Some(file) = &args.file {
        return Ok(Source::File(file.clone()));
    }
    let Some(path) = &args.config else {
        return Ok(Source::Router {
            base: args.url.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            client: super::http_client(),
        });
    };
    let config = router::config::Config::load(path)
        .map_err(|errors| anyhow::anyhow!("{}", errors.to_string().trim_end()))?;
    let ask_router = "ask the running router instead: `router dlq` without --config \
                      (--url if its admin API is not at the default address)";
    match &config.delivery.dead_letter {
        Some(spec) => match (&spec.file, &spec.url, &spec.stream) {
            (Some(file), _, _) => Ok(Source::File(config.resolve(file))),
            (None, Some(url), _) => bail!(
                "{} sends dead letters to the HTTP endpoint {url}, which keeps them; \
                 the router cannot list them",
                path.display()
            ),
            (None, None, Some(stream)) => bail!(
                "{} keeps dead letters in the Redis stream {stream:?}, not in a file; {ask_router}",
                path.display()
            ),
            (None, None, None) => bail!(
                "{}: [delivery.dead_letter] names no sink (`file`, `url` or `stream`)",
                path.display()
            ),
        },
        None if config.queue.kind == router::config::QueueKind::Redis => bail!(
            "{} keeps dead letters in the Redis stream \"{}:dead\" of its queue, not in a file; {ask_router}",
            path.display(),
            config.queue.stream
        ),
        None => bail!(
            "{} configures no dead-letter sink: routes that give up answer with a failure \
             and keep nothing (set [delivery.dead_letter] file = \"dead-letters.jsonl\")",
            path.display()
        ),
    }
}

impl Source {
    /// The dead letters as JSON, oldest first; the router filters by `route`
    /// itself (a file is filtered by the caller, as is the router's answer).
    async fn list(&self, route: Option<&str>) -> anyhow::Result<Vec<Value>> {
        match self {
            Self::File(path) => {
                if !path.exists() {
                    eprintln!(
                        "{} does not exist: no dead letter has been written yet",
                        path.display()
                    );
                }
                let letters: Vec<DeadLetter> = DeadLetterSink::file(path).list().await?;
                Ok(letters
                    .into_iter()
                    .map(|l| serde_json::to_value(l).unwrap_or_default())
                    .collect())
            }
            Self::Router { .. } => {
                let query: Vec<(&str, &str)> = route.map(|r| ("route", r)).into_iter().collect();
                let answer = self
                    .call(|client, base| client.get(format!("{base}/admin/dlq")).query(&query))
                    .await?;
                Ok(answer["dead_letters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default())
            }
        }
    }

    /// Asks the router to redrive `selection`; its answer.
    async fn redrive(&self, selection: &Value) -> anyhow::Result<Value> {
        self.call(|client, base| {
            client
                .post(format!("{base}/admin/dlq/redrive"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(selection.to_string())
        })
        .await
    }

    /// One admin request; an error that says what went wrong and what to do.
    async fn call(
        &self,
        request: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<Value> {
        let Self::Router {
            base,
            token,
            client,
        } = self
        else {
            bail!("no router to ask");
        };
        super::admin_call(
            request(client, base),
            base,
            token.as_deref(),
            ", or --config/--file to read a `file` sink without a router",
            true,
        )
        .await
    }
}

/// The one dead letter whose id is `id` or starts with it.
fn resolve(letters: &[Value], id: &str) -> anyhow::Result<String> {
    let ids = letters.iter().filter_map(|l| l["id"].as_str());
    if let Some(exact) = ids.clone().find(|l| *l == id) {
        return Ok(exact.to_owned());
    }
    let candidates: Vec<&str> = ids
        .filter(|l| !id.is_empty() && l.starts_with(id))
        .collect();
    match candidates.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => bail!(
            "no dead letter has an id starting with {:?} ({} listed: `router dlq list`)",
            Escaped(id).to_string(),
            letters.len()
        ),
        many => bail!(
            "{:?} is the start of {}: {}; give more of the id",
            Escaped(id).to_string(),
            count(many.len(), "dead letter"),
            many.iter()
                .map(|c| Escaped(c).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn print_list(letters: &[Value]) {
    println!("{}", count(letters.len(), "dead letter"));
    // Escaped: the event's id and the error text come from senders and sinks,
    // and a terminal obeys the escape sequences they hold.
    let text = |v: &Value| Escaped(v.as_str().unwrap_or_default()).to_string();
    for l in letters {
        println!(
            "{}  route={}  event={}  attempts={}  reason={}  at={}  error={}",
            text(&l["id"]),
            text(&l["route"]),
            text(&l["event"]["id"]),
            l["attempts"],
            text(&l["reason"]),
            text(&l["dead_lettered_at"]),
            text(&l["error"]),
        );
    }
}

/// What became of one redriven dead letter, worst first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fate {
    /// Not delivered and still listed under its id.
    Failed,
    /// Dead-lettered again, under a new id.
    DeadLettered,
    /// Delivered (or dropped by a transform, or a duplicate): gone from the list.
    Delivered,
}

/// The fate of one route's report (`{route, outcome, dead_letter, errors}`), and
/// its line.
fn route_fate(report: &Value) -> (Fate, String) {
    let route = Escaped(report["route"].as_str().unwrap_or_default()).to_string();
    let errors: Vec<String> = report["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(|e| Escaped(e).to_string()))
        .collect();
    let errors = if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    };
    match report["outcome"].as_str().unwrap_or_default() {
        "delivered" => (Fate::Delivered, format!("delivered (route {route})")),
        "dropped" => (
            Fate::Delivered,
            format!("dropped by route {route}'s transform (nothing to deliver)"),
        ),
        "duplicate" => (
            Fate::Delivered,
            format!("skipped by route {route} as a duplicate"),
        ),
        "dead_lettered" => {
            let new_id = report["dead_letter"].as_str().map_or_else(
                || "a new id (see `router dlq list`)".to_owned(),
                |id| Escaped(id).to_string(),
            );
            (
                Fate::DeadLettered,
                format!("dead-lettered again as {new_id} (route {route}){errors}"),
            )
        }
        other => (
            Fate::Failed,
            format!("{} (route {route}){errors}", Escaped(other)),
        ),
    }
}

/// Prints what became of each dead letter and a summary; fails unless every one
/// got through.
fn report_redrive(answer: &Value) -> ExitCode {
    if answer["results"].as_array().is_none_or(Vec::is_empty) {
        println!("no dead letter matches: nothing redriven");
        return ExitCode::SUCCESS;
    }
    let mut delivered = 0;
    let mut again = 0;
    // The ids to redrive next: the new ones, and those still listed.
    let mut new_ids: Vec<String> = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for r in answer["results"].as_array().into_iter().flatten() {
        let id = Escaped(r["id"].as_str().unwrap_or_default()).to_string();
        let report = &r["report"];
        let (fate, text) = if let Some(error) = r["error"].as_str() {
            (Fate::Failed, format!("not redriven: {}", Escaped(error)))
        } else if report.get("outcome").is_some() {
            route_fate(report)
        } else {
            // A poison entry, routed through every route that matches it now.
            let routes: Vec<(Fate, String)> = report["routes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(route_fate)
                .collect();
            match routes.iter().map(|(f, _)| *f).min() {
                None => (
                    Fate::Delivered,
                    "no route matches it now: removed".to_owned(),
                ),
                Some(worst) => (
                    worst,
                    routes
                        .into_iter()
                        .map(|(_, t)| t)
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
            }
        };
        println!("{id}  {text}");
        match fate {
            Fate::Delivered => delivered += 1,
            Fate::DeadLettered => {
                again += 1;
                new_ids.extend(
                    std::iter::once(report)
                        .chain(report["routes"].as_array().into_iter().flatten())
                        .filter(|route| route["outcome"] == "dead_lettered")
                        .filter_map(|route| route["dead_letter"].as_str())
                        .map(|new| Escaped(new).to_string()),
                );
            }
            Fate::Failed => failed.push(id),
        }
    }
    let not_through = again + failed.len();
    println!(
        "{delivered} delivered, {again} dead-lettered again, {} failed",
        failed.len()
    );
    if not_through == 0 {
        return ExitCode::SUCCESS;
    }
    let mut next = Vec::new();
    if !new_ids.is_empty() {
        next.push(format!("new ids {}", new_ids.join(" ")));
    }
    if !failed.is_empty() {
        next.push(format!("still listed as {}", failed.join(" ")));
    }
    eprintln!(
        "error: {} did not get through ({}); fix the target, then `router dlq redrive {}`",
        count(not_through, "dead letter"),
        next.join(", "),
        new_ids
            .iter()
            .chain(&failed)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    );
    ExitCode::FAILURE
}
