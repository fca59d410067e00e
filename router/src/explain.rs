//! Explain: what the router would do with an event, without doing it. For every
//! route, whether it matches and, if not, the clause that failed; for a match, the
//! event after each transform step and the targets it would reach. Handlers and
//! forwards are not called; `wasm` transform steps are (transforms are expected to
//! be free of side effects).

use crate::event::json::encode_structured;
use crate::event::{Escaped, Event};
use crate::policy::data::Subject;
use crate::runtime::Runtime;
use serde::Serialize;

/// The explanation of one event.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The event's id.
    pub id: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub ty: String,
    /// The schema check at ingest: `None` when it passes (or no schema applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_error: Option<String>,
    /// Every route, in declaration order.
    pub routes: Vec<RouteExplanation>,
}

/// What one route would do.
#[derive(Debug, Serialize)]
pub struct RouteExplanation {
    /// The route.
    pub route: String,
    /// Whether the filter matches.
    pub matched: bool,
    /// For a miss: the first clause that failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_clause: Option<String>,
    /// For a match: each transform step and the event after it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepExplanation>,
    /// For a match: the targets the event would reach (none when a step dropped or failed it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
}

/// One transform step's effect.
#[derive(Debug, Serialize)]
pub struct StepExplanation {
    /// The step.
    pub step: String,
    /// The event after it (structured JSON), or why it stopped.
    pub result: serde_json::Value,
}

/// Explains `event` against `runtime`.
pub async fn explain(runtime: &Runtime, event: &Event) -> Explanation {
    let subject = Subject::new(event);
    let mut routes = Vec::new();
    for route in runtime.routes() {
        let failed_clause = route.filter.as_ref().and_then(|f| f.explain(&subject));
        let mut explanation = RouteExplanation {
            route: route.name.clone(),
            matched: failed_clause.is_none(),
            failed_clause,
            steps: Vec::new(),
            targets: Vec::new(),
        };
        if explanation.matched {
            let mut current = Some(event.clone());
            for step in &route.transforms {
                let Some(e) = current.take() else { break };
                let result = match step.apply(e).await {
                    Ok(Some(next)) => {
                        let json =
                            serde_json::from_slice(&encode_structured(&next)).unwrap_or_default();
                        current = Some(next);
                        json
                    }
                    Ok(None) => serde_json::json!({ "dropped": true }),
                    Err(e) => serde_json::json!({ "error": e.to_string() }),
                };
                explanation.steps.push(StepExplanation {
                    step: step.describe(),
                    result,
                });
            }
            if current.is_some() {
                if let Some(p) = &route.handler {
                    explanation.targets.push(format!("handler {}", p.name()));
                }
                if let Some(url) = &route.forward {
                    explanation.targets.push(format!("forward {url}"));
                }
                if let Some(journal) = &route.append {
                    explanation
                        .targets
                        .push(format!("append {}", journal.describe()));
                }
            }
        }
        routes.push(explanation);
    }
    Explanation {
        id: event.id.clone(),
        ty: event.ty.clone(),
        schema_error: runtime
            .schemas()
            .validate(event)
            .err()
            .map(|e| e.to_string()),
        routes,
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The event's own text (id, type, values quoted in clauses and results)
        // is escaped: it comes from whoever wrote the event.
        writeln!(f, "event {} ({})", Escaped(&self.id), Escaped(&self.ty))?;
        if let Some(e) = &self.schema_error {
            writeln!(f, "  refused at ingest: {}", Escaped(e))?;
        }
        for r in &self.routes {
            if !r.matched {
                writeln!(
                    f,
                    "  route {}: no match: {}",
                    r.route,
                    Escaped(r.failed_clause.as_deref().unwrap_or(""))
                )?;
                continue;
            }
            writeln!(f, "  route {}: matches", r.route)?;
            for s in &r.steps {
                writeln!(f, "    {} -> {}", s.step, s.result)?;
            }
            if r.targets.is_empty() {
                writeln!(f, "    reaches no target")?;
            }
            for t in &r.targets {
                writeln!(f, "    -> {t}")?;
            }
        }
        Ok(())
    }
}
