//! `router dlq`: a client of the admin API's `/admin/dlq`.

use super::DlqAction;
use anyhow::Context as _;
use std::process::ExitCode;

/// `router dlq`: a client of `/admin/dlq` at `url` (the admin listener), with
/// the admin `token` when the router requires one.
pub async fn run(url: &str, token: Option<&str>, action: DlqAction) -> anyhow::Result<ExitCode> {
    let base = url.trim_end_matches('/');
    let client = reqwest::Client::new();
    let request = match &action {
        DlqAction::List { route, .. } => {
            let mut request = client.get(format!("{base}/admin/dlq"));
            if let Some(route) = route {
                request = request.query(&[("route", route)]);
            }
            request
        }
        DlqAction::Show { id } => client.get(format!("{base}/admin/dlq/{id}")),
        DlqAction::Redrive { ids, route, all } => {
            let selection = if *all {
                serde_json::json!({ "all": true })
            } else {
                serde_json::json!({ "ids": ids, "route": route })
            };
            client
                .post(format!("{base}/admin/dlq/redrive"))
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(selection.to_string())
        }
    };
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the router at {base}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("cannot read the router's answer")?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).context("the router's answer is not JSON")?;
    if !status.is_success() {
        eprintln!(
            "error: {status}: {}",
            body["error"].as_str().unwrap_or("(no message)")
        );
        return Ok(ExitCode::FAILURE);
    }
    match action {
        DlqAction::List { json: false, .. } => {
            let letters = body["dead_letters"].as_array().cloned().unwrap_or_default();
            println!("{} dead letter(s)", letters.len());
            for l in letters {
                println!(
                    "{}  route={}  event={}  attempts={}  reason={}  at={}  error={}",
                    l["id"].as_str().unwrap_or_default(),
                    l["route"].as_str().unwrap_or_default(),
                    l["event"]["id"].as_str().unwrap_or_default(),
                    l["attempts"],
                    l["reason"].as_str().unwrap_or_default(),
                    l["dead_lettered_at"].as_str().unwrap_or_default(),
                    l["error"].as_str().unwrap_or_default(),
                );
            }
        }
        DlqAction::Redrive { .. } => {
            println!("{} redriven", body["redriven"]);
            // Any outcome but a delivery (or a transform's drop) means the event
            // still does not get through: dead-lettered again, failed, or not sent.
            let mut still_failing = 0;
            for r in body["results"].as_array().into_iter().flatten() {
                // A route's report has an outcome; a poison entry's (routed through
                // every route) has one per route.
                let per_route: Vec<String> = r["report"]["routes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|route| {
                        format!(
                            "{}={}",
                            route["route"].as_str().unwrap_or_default(),
                            route["outcome"].as_str().unwrap_or_default()
                        )
                    })
                    .collect();
                let failed = match (r["report"]["outcome"].as_str(), r["error"].as_str()) {
                    (Some(outcome), _) => !got_through(outcome),
                    (None, Some(_)) => true,
                    (None, None) => r["report"]["routes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|route| !got_through(route["outcome"].as_str().unwrap_or_default())),
                };
                still_failing += usize::from(failed);
                let outcome = match r["report"]["outcome"].as_str().or(r["error"].as_str()) {
                    Some(outcome) => outcome.to_owned(),
                    None if per_route.is_empty() => "no route matches".to_owned(),
                    None => per_route.join(" "),
                };
                println!("{}  {outcome}", r["id"].as_str().unwrap_or_default());
            }
            if still_failing > 0 {
                eprintln!(
                    "error: the redrive failed for {still_failing} dead letter(s): they are still listed"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(&body)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a redriven route's outcome means the event got through: delivered, or
/// dropped by the route's own transform (nothing was to be delivered).
fn got_through(outcome: &str) -> bool {
    matches!(outcome, "delivered" | "dropped" | "duplicate")
}
