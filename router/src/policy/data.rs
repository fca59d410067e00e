//! Data filters: EventBridge-style operators on the value at a JSON Pointer in the
//! event's JSON data. They combine with the attribute dialects inside `all`, `any`
//! and `not`.
//!
//! The data is parsed at most once per event, however many data filters look at
//! it (see [`Subject`]), and only when a route that has one is considered.

use crate::config::DataFilterSpec;
use crate::event::Event;
use serde_json::Value;
use std::cell::OnceCell;

/// An event being matched, with its JSON data parsed on first use.
pub struct Subject<'a> {
    /// The event.
    pub event: &'a Event,
    data: OnceCell<Option<Value>>,
}

impl<'a> Subject<'a> {
    /// Wraps an event for matching.
    pub fn new(event: &'a Event) -> Self {
        Self {
            event,
            data: OnceCell::new(),
        }
    }

    /// The value at `pointer` in the data, when the data is JSON and has it.
    pub fn data_at(&self, pointer: &str) -> Option<&Value> {
        self.data
            .get_or_init(|| {
                self.event
                    .data
                    .as_ref()
                    .and_then(|d| serde_json::from_slice(d).ok())
            })
            .as_ref()
            .and_then(|v| v.pointer(pointer))
    }
}

/// A compiled data filter.
#[derive(Clone, Debug, PartialEq)]
pub struct DataFilter {
    pointer: String,
    op: Op,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Equals(Value),
    EqualsIgnoreCase(String),
    Prefix(String),
    Suffix(String),
    Wildcard(Vec<String>),
    Exists(bool),
    In(Vec<Value>),
    AnythingBut(Vec<Value>),
    Numeric(Vec<(Cmp, f64)>),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl DataFilterSpec {
    /// Checks the pointer and that exactly one operator is set, and compiles.
    pub fn compile(&self) -> Result<DataFilter, String> {
        if !(self.pointer.is_empty() || self.pointer.starts_with('/')) {
            return Err(format!(
                "pointer {:?} is not a JSON Pointer: it must be empty or start with '/'",
                self.pointer
            ));
        }
        let mut ops = Vec::new();
        if let Some(v) = &self.equals {
            ops.push(Op::Equals(v.clone()));
        }
        if let Some(v) = &self.equals_ignore_case {
            ops.push(Op::EqualsIgnoreCase(v.to_lowercase()));
        }
        if let Some(v) = &self.prefix {
            ops.push(Op::Prefix(v.clone()));
        }
        if let Some(v) = &self.suffix {
            ops.push(Op::Suffix(v.clone()));
        }
        if let Some(v) = &self.wildcard {
            ops.push(Op::Wildcard(split_wildcard(v)));
        }
        if let Some(v) = self.exists {
            ops.push(Op::Exists(v));
        }
        if let Some(v) = &self.in_list {
            if v.is_empty() {
                return Err("`in` needs at least one value".into());
            }
            ops.push(Op::In(v.clone()));
        }
        if let Some(v) = &self.anything_but {
            ops.push(Op::AnythingBut(v.clone()));
        }
        if let Some(v) = &self.numeric {
            ops.push(Op::Numeric(numeric_terms(v)?));
        }
        match ops.len() {
            1 => Ok(DataFilter {
                pointer: self.pointer.clone(),
                op: ops.remove(0),
            }),
            0 => Err("a data filter needs one operator: equals, equals_ignore_case, prefix, suffix, wildcard, exists, in, anything_but or numeric".into()),
            n => Err(format!("a data filter takes one operator, found {n}; combine several with `all`")),
        }
    }
}

fn numeric_terms(raw: &[Value]) -> Result<Vec<(Cmp, f64)>, String> {
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(
            "`numeric` takes operator/number pairs, such as [\">\", 0, \"<=\", 100]".into(),
        );
    }
    raw.chunks(2)
        .map(|pair| {
            let cmp = match pair[0].as_str() {
                Some("<") => Cmp::Lt,
                Some("<=") => Cmp::Le,
                Some("=") => Cmp::Eq,
                Some(">=") => Cmp::Ge,
                Some(">") => Cmp::Gt,
                _ => return Err(format!("{} is not one of <, <=, =, >=, >", pair[0])),
            };
            let n = pair[1]
                .as_f64()
                .ok_or_else(|| format!("{} is not a number", pair[1]))?;
            Ok((cmp, n))
        })
        .collect()
}

/// Splits a wildcard pattern on unescaped `*`.
fn split_wildcard(pattern: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => parts.last_mut().map_or((), |p| p.push(next)),
                None => parts.last_mut().map_or((), |p| p.push('\\')),
            },
            '*' => parts.push(String::new()),
            c => parts.last_mut().map_or((), |p| p.push(c)),
        }
    }
    parts
}

fn wildcard_matches(parts: &[String], text: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|p| p == text);
    };
    let Some(mut rest) = text.strip_prefix(first.as_str()) else {
        return false;
    };
    for part in middle {
        match rest.find(part.as_str()) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

impl DataFilter {
    /// Whether the event's data passes. A value that is an array passes when one
    /// of its elements does (EventBridge's rule), except for `anything_but`, which
    /// needs every element to differ.
    pub fn matches(&self, subject: &Subject<'_>) -> bool {
        let value = subject.data_at(&self.pointer);
        match &self.op {
            Op::Exists(expected) => value.is_some() == *expected,
            Op::AnythingBut(list) => value.is_some_and(|v| match v {
                Value::Array(items) => items.iter().all(|i| !list.iter().any(|l| json_eq(i, l))),
                v => !list.iter().any(|l| json_eq(v, l)),
            }),
            _ => value.is_some_and(|v| match v {
                Value::Array(items) => items.iter().any(|i| self.scalar(i)),
                v => self.scalar(v),
            }),
        }
    }

    fn scalar(&self, v: &Value) -> bool {
        match &self.op {
            Op::Equals(x) => json_eq(v, x),
            Op::EqualsIgnoreCase(x) => v.as_str().is_some_and(|s| s.to_lowercase() == *x),
            Op::Prefix(x) => v.as_str().is_some_and(|s| s.starts_with(x.as_str())),
            Op::Suffix(x) => v.as_str().is_some_and(|s| s.ends_with(x.as_str())),
            Op::Wildcard(parts) => v.as_str().is_some_and(|s| wildcard_matches(parts, s)),
            Op::In(list) => list.iter().any(|l| json_eq(v, l)),
            Op::Numeric(terms) => v.as_f64().is_some_and(|n| {
                terms.iter().all(|(cmp, x)| match cmp {
                    Cmp::Lt => n < *x,
                    Cmp::Le => n <= *x,
                    Cmp::Eq => n == *x,
                    Cmp::Ge => n >= *x,
                    Cmp::Gt => n > *x,
                })
            }),
            Op::Exists(_) | Op::AnythingBut(_) => false,
        }
    }

    /// What the data holds where this filter looks, for explain.
    pub fn explain(&self, subject: &Subject<'_>) -> String {
        let wanted = self.to_json();
        let op = wanted["data"]
            .as_object()
            .and_then(|m| m.iter().find(|(k, _)| *k != "pointer"))
            .map(|(k, v)| format!("{k} {v}"))
            .unwrap_or_default();
        match subject.data_at(&self.pointer) {
            Some(v) => format!("{} is {v}, which fails {op}", self.pointer),
            None => format!(
                "{} is absent (or the data is not JSON), which fails {op}",
                self.pointer
            ),
        }
    }

    /// The filter in TOML-like JSON, for the admin API.
    pub fn to_json(&self) -> Value {
        let (name, value) = match &self.op {
            Op::Equals(v) => ("equals", v.clone()),
            Op::EqualsIgnoreCase(v) => ("equals_ignore_case", Value::from(v.clone())),
            Op::Prefix(v) => ("prefix", Value::from(v.clone())),
            Op::Suffix(v) => ("suffix", Value::from(v.clone())),
            Op::Wildcard(parts) => ("wildcard", Value::from(parts.join("*"))),
            Op::Exists(v) => ("exists", Value::from(*v)),
            Op::In(v) => ("in", Value::from(v.clone())),
            Op::AnythingBut(v) => ("anything_but", Value::from(v.clone())),
            Op::Numeric(terms) => (
                "numeric",
                Value::from(
                    terms
                        .iter()
                        .flat_map(|(c, n)| {
                            let op = match c {
                                Cmp::Lt => "<",
                                Cmp::Le => "<=",
                                Cmp::Eq => "=",
                                Cmp::Ge => ">=",
                                Cmp::Gt => ">",
                            };
                            [Value::from(op), Value::from(*n)]
                        })
                        .collect::<Vec<_>>(),
                ),
            ),
        };
        serde_json::json!({ "data": { "pointer": self.pointer, name: value } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde::Deserialize;
    use serde_json::json;

    fn event(data: Value) -> Event {
        let mut e = Event::new("1", "/s", "t");
        e.data = Some(Bytes::from(data.to_string()));
        e
    }

    fn check(spec: &str, data: Value) -> bool {
        #[derive(Deserialize)]
        struct W {
            data: DataFilterSpec,
        }
        let w: W = toml::from_str(spec).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let filter = w.data.compile().unwrap_or_else(|e| panic!("{spec}: {e}"));
        let e = event(data);
        filter.matches(&Subject::new(&e))
    }

    #[test]
    fn each_operator_matches_and_misses() {
        let order = json!({"status": "PAID", "total": 150, "tags": ["vip", "eu"], "email": "a@example.com", "path": "orders/42/items", "coupon": null});
        let cases = [
            (r#"data = { pointer = "/status", equals = "PAID" }"#, true),
            (r#"data = { pointer = "/total", equals = 150.0 }"#, true),
            (r#"data = { pointer = "/status", equals = "paid" }"#, false),
            (
                r#"data = { pointer = "/status", equals_ignore_case = "paid" }"#,
                true,
            ),
            (
                r#"data = { pointer = "/email", suffix = "@example.com" }"#,
                true,
            ),
            (r#"data = { pointer = "/email", prefix = "b@" }"#, false),
            (
                r#"data = { pointer = "/path", wildcard = "orders/*/items" }"#,
                true,
            ),
            (
                r#"data = { pointer = "/path", wildcard = "orders/*/lines" }"#,
                false,
            ),
            (r#"data = { pointer = "/coupon", exists = true }"#, true),
            (r#"data = { pointer = "/missing", exists = false }"#, true),
            (r#"data = { pointer = "/missing", exists = true }"#, false),
            (r#"data = { pointer = "/tags", in = ["eu", "us"] }"#, true),
            (r#"data = { pointer = "/tags", equals = "vip" }"#, true),
            (
                r#"data = { pointer = "/status", anything_but = ["CANCELLED"] }"#,
                true,
            ),
            (
                r#"data = { pointer = "/tags", anything_but = ["eu"] }"#,
                false,
            ),
            (
                r#"data = { pointer = "/missing", anything_but = ["x"] }"#,
                false,
            ),
            (
                r#"data = { pointer = "/total", numeric = [">", 100, "<=", 150] }"#,
                true,
            ),
            (
                r#"data = { pointer = "/total", numeric = [">", 150] }"#,
                false,
            ),
            (
                r#"data = { pointer = "/status", numeric = [">", 0] }"#,
                false,
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(check(spec, order.clone()), expected, "{spec}");
        }
    }

    #[test]
    fn data_that_is_not_json_matches_only_absence() {
        let mut e = Event::new("1", "/s", "t");
        e.data = Some(Bytes::from_static(b"not json"));
        let absent = DataFilterSpec {
            pointer: "/x".into(),
            exists: Some(false),
            ..Default::default()
        };
        assert!(absent.compile().unwrap().matches(&Subject::new(&e)));
    }

    #[test]
    fn compile_errors() {
        let none = DataFilterSpec {
            pointer: "/x".into(),
            ..Default::default()
        };
        assert!(none.compile().unwrap_err().contains("needs one operator"));
        let two = DataFilterSpec {
            pointer: "/x".into(),
            prefix: Some("a".into()),
            suffix: Some("b".into()),
            ..Default::default()
        };
        assert!(two.compile().unwrap_err().contains("one operator"));
        let bad = DataFilterSpec {
            pointer: "x".into(),
            exists: Some(true),
            ..Default::default()
        };
        assert!(bad.compile().unwrap_err().contains("JSON Pointer"));
        let odd = DataFilterSpec {
            pointer: "/x".into(),
            numeric: Some(vec![json!(">")]),
            ..Default::default()
        };
        assert!(odd.compile().is_err());
    }

    #[test]
    fn wildcards_escape_stars() {
        assert!(wildcard_matches(&split_wildcard("a*c"), "abbbc"));
        assert!(wildcard_matches(&split_wildcard("a\\*c"), "a*c"));
        assert!(!wildcard_matches(&split_wildcard("a\\*c"), "abc"));
        assert!(wildcard_matches(&split_wildcard("*"), "anything"));
        assert!(!wildcard_matches(&split_wildcard("ab*ba"), "aba"));
    }
}
