//! The CloudEvents SQL conformance suite (the spec's own TCK, copied under
//! `tests/cesql-tck` with its licence), run case by case against the engine, and the
//! `sql` filter dialect over HTTP.

use crate::common::*;
use axum::http::StatusCode;
use bytes::Bytes;
use router::event::json::decode_structured;
use router::policy::cesql::{Expression, Value};
use serde::Deserialize;
use std::path::Path;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    expression: String,
    result: Option<serde_yaml::Value>,
    error: Option<String>,
    event: Option<serde_json::Map<String, serde_json::Value>>,
    event_overrides: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Case {
    /// The event the case runs against: its own, or a valid default one with the
    /// overrides applied. It goes through the router's structured-mode decoder, so
    /// the engine sees events exactly as ingest produces them.
    fn event(&self) -> router::event::Event {
        let mut json = self.event.clone().unwrap_or_else(|| {
            serde_json::json!({
                "specversion": "1.0",
                "id": "tck-id",
                "source": "tck://source",
                "type": "tck.type",
            })
            .as_object()
            .cloned()
            .unwrap_or_default()
        });
        for (name, value) in self.event_overrides.iter().flatten() {
            json.insert(name.clone(), value.clone());
        }
        let body = Bytes::from(serde_json::to_vec(&json).expect("serialise"));
        decode_structured(&body).unwrap_or_else(|e| panic!("{}: bad TCK event: {e}", self.name))
    }

    /// Checks the case; `Err` says how it failed.
    fn check(&self) -> Result<(), String> {
        let expression = match Expression::parse(&self.expression) {
            Ok(expression) => expression,
            Err(e) => {
                return match self.error.as_deref() {
                    Some(kind) if kind == e.kind.tck_name() => Ok(()),
                    expected => Err(format!(
                        "parse failed with {} ({e}), expected {expected:?}",
                        e.kind.tck_name()
                    )),
                };
            }
        };
        let event = self.event();
        let outcome = expression.evaluate(&event);
        let error = outcome.error.as_ref().map(|e| e.kind.tck_name());
        if error != self.error.as_deref() {
            return Err(format!(
                "error {error:?} ({:?}), expected {:?}",
                outcome.error, self.error
            ));
        }
        if let Some(expected) = &self.result
            && !same_value(&outcome.value, expected, &self.expression)
        {
            return Err(format!("value {:?}, expected {expected:?}", outcome.value));
        }
        Ok(())
    }
}

/// Whether the engine's value is the TCK's expected result. Section 3.2 gives every
/// attribute the String type, and ingest keeps extension values as strings, so a
/// bare attribute reference (`myint`) yields the string form of a typed JSON
/// extension: there, and only there, the string form is compared.
fn same_value(actual: &Value<'_>, expected: &serde_yaml::Value, expression: &str) -> bool {
    use serde_yaml::Value as Y;
    let bare_attribute = expression
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match (actual, expected) {
        (Value::Boolean(a), Y::Bool(e)) => a == e,
        (Value::Integer(a), Y::Number(e)) => e.as_i64() == Some(i64::from(*a)),
        (Value::String(a), Y::String(e)) => a == e,
        (Value::String(a), Y::Bool(e)) if bare_attribute => **a == e.to_string(),
        (Value::String(a), Y::Number(e)) if bare_attribute => **a == e.to_string(),
        _ => false,
    }
}

#[test]
fn every_case_of_the_cesql_tck_passes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cesql-tck");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/cesql-tck")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 18, "the TCK has 18 files");
    let (mut cases, mut failures) = (0, Vec::new());
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read TCK file");
        let suite: Suite =
            serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in &suite.tests {
            cases += 1;
            if let Err(why) = case.check() {
                failures.push(format!(
                    "{} / {}: `{}`: {why}",
                    suite.name, case.name, case.expression
                ));
            }
        }
    }
    assert!(cases >= 270, "only {cases} TCK cases were found");
    assert!(
        failures.is_empty(),
        "{} of {cases} TCK cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn sql_filters_select_events_over_http() {
    let sink = Sink::start().await;
    let router = TestRouter::start(&format!(
        r#"
[[route]]
name = "urgent-orders"
filter = {{ sql = "type = 'order.created' AND (priority IN ('high', 'urgent') OR INT(amount) > 1000) AND source LIKE 'shop/%'" }}
forward = "{url}"

[[route]]
name = "knative-spelling"
filter = {{ cesql = "EXISTS region AND UPPER(region) = 'EU'" }}
forward = "{url}"
"#,
        url = sink.url()
    ))
    .await;
    /// Event id, extensions (as headers), the routes it must match.
    type HttpCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [HttpCase; 5] = [
        (
            "high",
            &[("ce-priority", "high"), ("ce-amount", "5")],
            &["urgent-orders"],
        ),
        (
            "big",
            &[("ce-priority", "low"), ("ce-amount", "5000")],
            &["urgent-orders"],
        ),
        ("low", &[("ce-priority", "low"), ("ce-amount", "5")], &[]),
        // `INT('lots')` raises a cast error: an erroring expression never matches.
        (
            "bad-amount",
            &[("ce-priority", "low"), ("ce-amount", "lots")],
            &[],
        ),
        ("eu", &[("ce-region", "eu")], &["knative-spelling"]),
    ];
    for (id, extensions, routes) in cases {
        let mut headers: Vec<(&str, &str)> = ce_headers(id, "order.created")
            .into_iter()
            .filter(|(name, _)| *name != "ce-source")
            .collect();
        headers.push(("ce-source", "shop/eu-1"));
        headers.extend_from_slice(extensions);
        let (status, body) = post_binary(&router.events_url(), &headers, "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let matched: Vec<&str> = body["events"][0]["routes"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v["route"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(matched, routes, "{id}: {body}");
    }
}
