//! The JSON body of an ingest answer: one report per event, in request order.
//!
//! Written by hand rather than by `serde_json`, which escapes every string it
//! writes (each key included) a byte at a time: that was most of the cost of a
//! full report, and 3 % of the router's instructions per event. The
//! shape is the one the `Serialize` derives of [`EventReport`] and
//! [`RouteReport`] give, byte for byte; the tests hold the two together.

use crate::dispatch::{EventReport, Outcome, RouteReport};
use serde::Serialize;

/// The answer to an ingest request: one report per event, in request order.
#[derive(Serialize)]
pub(super) struct IngestResponse {
    pub(super) events: Vec<EventReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
}

impl IngestResponse {
    /// The body, in one buffer sized for it up front.
    pub(super) fn to_json(&self) -> Vec<u8> {
        // About what one event's report takes (its id, source, type and one
        // route), and as much again for each event it emitted.
        let emitted: usize = self
            .events
            .iter()
            .flat_map(|e| &e.routes)
            .map(|r| r.emitted.len())
            .sum();
        let mut out = Vec::with_capacity(64 + 192 * (self.events.len() + emitted));
        out.extend_from_slice(b"{\"events\":");
        list(&mut out, &self.events, event);
        if let Some(error) = &self.error {
            out.extend_from_slice(b",\"error\":");
            string(&mut out, error);
        }
        out.push(b'}');
        out
    }
}

fn event(out: &mut Vec<u8>, report: &EventReport) {
    out.extend_from_slice(b"{\"id\":");
    string(out, &report.id);
    out.extend_from_slice(b",\"source\":");
    string(out, &report.source);
    out.extend_from_slice(b",\"type\":");
    string(out, &report.ty);
    out.extend_from_slice(b",\"routes\":");
    list(out, &report.routes, route);
    if report.duplicate {
        out.extend_from_slice(b",\"duplicate\":true");
    }
    out.push(b'}');
}

fn route(out: &mut Vec<u8>, report: &RouteReport) {
    out.extend_from_slice(b"{\"route\":");
    string(out, &report.route);
    out.extend_from_slice(b",\"outcome\":\"");
    out.extend_from_slice(match report.outcome {
        Outcome::Delivered => b"delivered".as_slice(),
        Outcome::Failed => b"failed",
        Outcome::Dropped => b"dropped",
        Outcome::DeadLettered => b"dead_lettered",
        Outcome::Duplicate => b"duplicate",
    });
    out.push(b'"');
    if let Some(attempts) = report.attempts {
        out.extend_from_slice(b",\"attempts\":");
        out.extend_from_slice(attempts.to_string().as_bytes());
    }
    if !report.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        list(out, &report.errors, |out, e| string(out, e));
    }
    if let Some(retryable) = report.retryable {
        out.extend_from_slice(if retryable {
            b",\"retryable\":true".as_slice()
        } else {
            b",\"retryable\":false"
        });
    }
    if !report.emitted.is_empty() {
        out.extend_from_slice(b",\"emitted\":");
        list(out, &report.emitted, event);
    }
    if let Some(dead_letter) = &report.dead_letter {
        out.extend_from_slice(b",\"dead_letter\":");
        string(out, dead_letter);
    }
    out.push(b'}');
}

fn list<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// `s` as a JSON string. Most strings need no escape, and finding that out
/// without stopping at the first byte that does lets the check run many bytes
/// at a time; the others are escaped as `serde_json` escapes them.
fn string(out: &mut Vec<u8>, s: &str) {
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, routes: Vec<RouteReport>) -> EventReport {
        EventReport {
            id: id.into(),
            source: "/shop\\\"quoted\"".into(),
            ty: "com.example.é\u{1}\u{7f}".into(),
            routes,
            duplicate: false,
        }
    }

    fn route(name: &str, outcome: Outcome) -> RouteReport {
        RouteReport::named(name.into(), outcome)
    }

    fn same_as_serde(response: &IngestResponse) {
        let ours = String::from_utf8(response.to_json()).expect("UTF-8");
        let serde = serde_json::to_string(response).expect("serializes");
        assert_eq!(ours, serde);
    }

    #[test]
    fn every_field_and_outcome_is_written_as_serde_writes_it() {
        let mut failed = route("forward\n\"x\"", Outcome::Failed);
        failed.attempts = Some(3);
        failed.errors = vec!["sink said 503".into(), "tab\there, bell \u{7}".into()];
        failed.retryable = Some(true);
        let mut dead = route("dl", Outcome::DeadLettered);
        dead.retryable = Some(false);
        dead.dead_letter = Some("1700000000000-0".into());
        let mut delivered = route("enrich", Outcome::Delivered);
        let mut child = report("e-1-enriched", vec![route("audit", Outcome::Dropped)]);
        child.duplicate = true;
        delivered.emitted = vec![child, report("e-2", Vec::new())];
        let events = vec![
            report(
                "e-1",
                vec![delivered, failed, dead, route("dedup", Outcome::Duplicate)],
            ),
            report("", Vec::new()),
        ];
        same_as_serde(&IngestResponse {
            events: events.clone(),
            error: None,
        });
        same_as_serde(&IngestResponse {
            events,
            error: Some("route(s) failed: forward\n\"x\"; retry the request".into()),
        });
        same_as_serde(&IngestResponse {
            events: Vec::new(),
            error: None,
        });
    }

    #[test]
    fn every_byte_is_escaped_as_serde_escapes_it() {
        let all: String = (0u32..0x800).filter_map(char::from_u32).collect();
        for s in [
            all.as_str(),
            "plain",
            "",
            "\\",
            "\"",
            "\u{0}",
            "\u{1f}",
            " ",
        ] {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).expect("serializes"), "{s:?}");
        }
    }
}
