//! Route filters: the CloudEvents Subscriptions API dialects `exact`, `prefix`,
//! `suffix`, `all`, `any`, `not` and `sql` (CESQL), over context attributes and
//! extensions, and `data` filters over the JSON data.
//!
//! A filter is written in TOML as a [`FilterSpec`] (a configuration type) and
//! compiled once, at load, into a [`Filter`].

use super::cesql::Expression;
use super::data::{DataFilter, Subject};
/// Re-exported for callers that compile a filter on its own (benches, tests).
pub use crate::config::FilterSpec;
use crate::event::{Event, is_valid_extension_name};
use std::collections::BTreeMap;

/// A compiled filter, evaluated per event without allocating.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    /// `exact`: the attribute is present and equal to `value`.
    Exact {
        /// Attribute or extension name.
        attribute: String,
        /// The value it must equal.
        value: String,
    },
    /// `prefix`: the attribute is present and starts with `value`.
    Prefix {
        /// Attribute or extension name.
        attribute: String,
        /// The prefix.
        value: String,
    },
    /// `suffix`: the attribute is present and ends with `value`.
    Suffix {
        /// Attribute or extension name.
        attribute: String,
        /// The suffix.
        value: String,
    },
    /// `all`: every nested filter matches.
    All(Vec<Filter>),
    /// `any`: some nested filter matches.
    Any(Vec<Filter>),
    /// `not`: the nested filter does not match.
    Not(Box<Filter>),
    /// `data`: a condition on the JSON data.
    Data(DataFilter),
    /// `sql`: a CESQL expression that must evaluate to `TRUE` without error.
    Sql(Box<Expression>),
}

/// A filter that cannot be compiled, with the path inside the filter (`all[1].exact`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FilterError {
    /// Where in the filter, relative to the route's `filter` key.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl FilterSpec {
    /// Compiles the spec, checking the Subscriptions API's rules: `exact`, `prefix`
    /// and `suffix` name exactly one attribute (a valid attribute name), `prefix`
    /// and `suffix` values are non-empty, and `all`/`any` are non-empty.
    pub fn compile(&self) -> Result<Filter, FilterError> {
        self.compile_at("filter")
    }

    fn compile_at(&self, path: &str) -> Result<Filter, FilterError> {
        let err = |path: String, message: String| FilterError { path, message };
        let single = |dialect: &str, map: &BTreeMap<String, String>, allow_empty: bool| {
            let here = format!("{path}.{dialect}");
            let mut entries = map.iter();
            let (Some((attribute, value)), None) = (entries.next(), entries.next()) else {
                return Err(err(
                    here,
                    format!(
                        "`{dialect}` must name exactly one attribute (found {}); combine several with `all`",
                        map.len()
                    ),
                ));
            };
            if !is_valid_extension_name(attribute) {
                return Err(err(
                    format!("{here}.{attribute}"),
                    "attribute names are lowercase letters a-z and digits 0-9".into(),
                ));
            }
            if value.is_empty() && !allow_empty {
                return Err(err(
                    format!("{here}.{attribute}"),
                    format!("an empty `{dialect}` matches every event; remove the filter instead"),
                ));
            }
            Ok((attribute.clone(), value.clone()))
        };
        let nested = |dialect: &str, specs: &[FilterSpec]| -> Result<Vec<Filter>, FilterError> {
            if specs.is_empty() {
                return Err(err(
                    format!("{path}.{dialect}"),
                    format!("`{dialect}` needs at least one filter"),
                ));
            }
            specs
                .iter()
                .enumerate()
                .map(|(i, s)| s.compile_at(&format!("{path}.{dialect}[{i}]")))
                .collect()
        };
        Ok(match self {
            Self::Exact(m) => {
                let (attribute, value) = single("exact", m, true)?;
                Filter::Exact { attribute, value }
            }
            Self::Prefix(m) => {
                let (attribute, value) = single("prefix", m, false)?;
                Filter::Prefix { attribute, value }
            }
            Self::Suffix(m) => {
                let (attribute, value) = single("suffix", m, false)?;
                Filter::Suffix { attribute, value }
            }
            Self::All(specs) => Filter::All(nested("all", specs)?),
            Self::Any(specs) => Filter::Any(nested("any", specs)?),
            Self::Not(spec) => Filter::Not(Box::new(spec.compile_at(&format!("{path}.not"))?)),
            Self::Data(spec) => Filter::Data(spec.compile().map_err(|message| FilterError {
                path: format!("{path}.data"),
                message,
            })?),
            Self::Sql(text) => Filter::Sql(Box::new(compile_sql(text).map_err(|message| {
                FilterError {
                    path: format!("{path}.sql"),
                    message,
                }
            })?)),
        })
    }
}

/// Compiles a CESQL filter, refusing an expression whose value can only be an
/// Integer or a String: it could never select an event.
fn compile_sql(text: &str) -> Result<Expression, String> {
    let expression = Expression::parse(text).map_err(|e| {
        format!(
            "CESQL {} at column {} of {text:?}: {}",
            if e.kind == super::cesql::ErrorKind::MissingFunction {
                "unknown function"
            } else {
                "syntax error"
            },
            e.column,
            e.message
        )
    })?;
    match expression.static_type() {
        Some(ty @ ("Integer" | "String")) => Err(format!(
            "the CESQL expression {text:?} yields {} {ty}, but a filter needs a Boolean",
            if ty == "Integer" { "an" } else { "a" }
        )),
        _ => Ok(expression),
    }
}

impl Filter {
    /// Whether `event` passes the filter. A missing attribute never matches
    /// `exact`, `prefix` or `suffix` (so `not` of one of them does match).
    pub fn matches(&self, event: &Event) -> bool {
        self.matches_subject(&Subject::new(event))
    }

    /// Like [`Filter::matches`], sharing the parsed data across filters.
    pub fn matches_subject(&self, subject: &Subject<'_>) -> bool {
        let event = subject.event;
        match self {
            Self::Exact { attribute, value } => event.attribute(attribute) == Some(value),
            Self::Prefix { attribute, value } => event
                .attribute(attribute)
                .is_some_and(|v| v.starts_with(value.as_str())),
            Self::Suffix { attribute, value } => event
                .attribute(attribute)
                .is_some_and(|v| v.ends_with(value.as_str())),
            Self::All(filters) => filters.iter().all(|f| f.matches_subject(subject)),
            Self::Any(filters) => filters.iter().any(|f| f.matches_subject(subject)),
            Self::Not(filter) => !filter.matches_subject(subject),
            Self::Data(filter) => filter.matches(subject),
            Self::Sql(expression) => expression.matches(event),
        }
    }

    /// Why `subject` does not pass, naming the first failing clause by its path in
    /// the filter (`filter.all[1].exact`); `None` when it passes.
    pub fn explain(&self, subject: &Subject<'_>) -> Option<String> {
        self.explain_at(subject, "filter")
    }

    fn explain_at(&self, subject: &Subject<'_>, path: &str) -> Option<String> {
        if self.matches_subject(subject) {
            return None;
        }
        let actual = |attribute: &str| match subject.event.attribute(attribute) {
            Some(v) => format!("{v:?}"),
            None => "absent".to_owned(),
        };
        Some(match self {
            Self::Exact { attribute, value } => {
                format!(
                    "{path}.exact.{attribute}: wanted {value:?}, got {}",
                    actual(attribute)
                )
            }
            Self::Prefix { attribute, value } => format!(
                "{path}.prefix.{attribute}: wanted a value starting with {value:?}, got {}",
                actual(attribute)
            ),
            Self::Suffix { attribute, value } => format!(
                "{path}.suffix.{attribute}: wanted a value ending with {value:?}, got {}",
                actual(attribute)
            ),
            Self::All(filters) => {
                return filters
                    .iter()
                    .enumerate()
                    .find_map(|(i, f)| f.explain_at(subject, &format!("{path}.all[{i}]")));
            }
            Self::Any(filters) => {
                let reasons: Vec<String> = filters
                    .iter()
                    .enumerate()
                    .filter_map(|(i, f)| f.explain_at(subject, &format!("{path}.any[{i}]")))
                    .collect();
                format!(
                    "{path}.any: no alternative matched ({})",
                    reasons.join("; ")
                )
            }
            Self::Not(_) => format!("{path}.not: the negated filter matched"),
            Self::Data(f) => format!("{path}.data: {}", f.explain(subject)),
            Self::Sql(e) => format!(
                "{path}.sql: {}",
                e.explain(subject.event)
                    .unwrap_or_else(|| "evaluated to TRUE".into())
            ),
        })
    }

    /// The filter in the Subscriptions API's JSON form, for the admin API.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        let all = |fs: &[Filter]| fs.iter().map(Filter::to_json).collect::<Vec<_>>();
        match self {
            Self::Exact { attribute, value } => json!({ "exact": { attribute: value } }),
            Self::Prefix { attribute, value } => json!({ "prefix": { attribute: value } }),
            Self::Suffix { attribute, value } => json!({ "suffix": { attribute: value } }),
            Self::All(fs) => json!({ "all": all(fs) }),
            Self::Any(fs) => json!({ "any": all(fs) }),
            Self::Not(f) => json!({ "not": f.to_json() }),
            Self::Data(f) => f.to_json(),
            Self::Sql(e) => json!({ "sql": e.text() }),
        }
    }

    /// The prefix every matching event type starts with, if the filter requires
    /// one: the key of the prefix index.
    pub fn type_prefix(&self) -> Option<&str> {
        match self {
            Self::Prefix { attribute, value } if attribute == "type" => Some(value),
            Self::All(filters) => filters.iter().find_map(Filter::type_prefix),
            Self::Sql(expression) => expression.required_type_prefix(),
            _ => None,
        }
    }

    /// The event type this filter requires, if it can only match one exact type:
    /// the key of the route index.
    pub fn exact_type(&self) -> Option<&str> {
        match self {
            Self::Exact { attribute, value } if attribute == "type" => Some(value),
            Self::All(filters) => filters.iter().find_map(Filter::exact_type),
            Self::Sql(expression) => expression.required_type(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn compile(toml_text: &str) -> Result<Filter, FilterError> {
        #[derive(Deserialize)]
        struct W {
            filter: FilterSpec,
        }
        toml::from_str::<W>(toml_text).unwrap().filter.compile()
    }

    fn event() -> Event {
        let mut e = Event::new("1", "/orders/eu", "com.example.order.created");
        e.subject = Some("order-42".into());
        e.set_extension("region", "eu-west");
        e
    }

    #[test]
    fn each_dialect_matches_and_misses() {
        let cases = [
            (
                r#"filter = { exact = { type = "com.example.order.created" } }"#,
                true,
            ),
            (
                r#"filter = { exact = { type = "com.example.order" } }"#,
                false,
            ),
            (r#"filter = { prefix = { type = "com.example." } }"#, true),
            (r#"filter = { prefix = { source = "/payments" } }"#, false),
            (r#"filter = { suffix = { type = ".created" } }"#, true),
            (r#"filter = { suffix = { subject = "-43" } }"#, false),
            (r#"filter = { exact = { region = "eu-west" } }"#, true),
            (r#"filter = { exact = { missing = "" } }"#, false),
            (r#"filter = { not = { exact = { missing = "x" } } }"#, true),
            (
                r#"filter = { all = [ { prefix = { type = "com." } }, { exact = { region = "us" } } ] }"#,
                false,
            ),
            (
                r#"filter = { any = [ { prefix = { type = "org." } }, { exact = { region = "eu-west" } } ] }"#,
                true,
            ),
            (
                r#"filter = { not = { prefix = { type = "com." } } }"#,
                false,
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(compile(text).unwrap().matches(&event()), expected, "{text}");
        }
    }

    #[test]
    fn compile_errors_name_the_path() {
        let err = compile(r#"filter = { all = [ { exact = { type = "a", source = "b" } } ] }"#)
            .unwrap_err();
        assert_eq!(err.path, "filter.all[0].exact");
        let err = compile(r#"filter = { not = { prefix = { Type = "a" } } }"#).unwrap_err();
        assert_eq!(err.path, "filter.not.prefix.Type");
        let err = compile(r#"filter = { any = [] }"#).unwrap_err();
        assert_eq!(err.path, "filter.any");
        let err = compile(r#"filter = { suffix = { type = "" } }"#).unwrap_err();
        assert_eq!(err.path, "filter.suffix.type");
    }

    #[test]
    fn exact_type_is_found_for_the_index() {
        let f = compile(
            r#"filter = { all = [ { prefix = { source = "/" } }, { exact = { type = "t" } } ] }"#,
        )
        .unwrap();
        assert_eq!(f.exact_type(), Some("t"));
        let f = compile(r#"filter = { any = [ { exact = { type = "t" } } ] }"#).unwrap();
        assert_eq!(f.exact_type(), None);
    }
}
