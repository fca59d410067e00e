//! Route filters as written in TOML: the CloudEvents Subscriptions API dialects and
//! data filters. They are data here; the policy layer (`policy::filter`) compiles
//! them.

use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A filter as written in the configuration: a table with exactly one dialect key.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum FilterSpec {
    /// The attribute equals the value.
    Exact(BTreeMap<String, String>),
    /// The attribute starts with the value.
    Prefix(BTreeMap<String, String>),
    /// The attribute ends with the value.
    Suffix(BTreeMap<String, String>),
    /// Every nested filter matches.
    All(Vec<FilterSpec>),
    /// At least one nested filter matches.
    Any(Vec<FilterSpec>),
    /// The nested filter does not match.
    Not(Box<FilterSpec>),
    /// A condition on the JSON data (see [`DataFilterSpec`]).
    Data(Box<DataFilterSpec>),
    /// A CloudEvents SQL expression; `cesql` is Knative's name for the dialect.
    #[serde(alias = "cesql")]
    Sql(String),
}

/// A data filter as written in TOML: a pointer and exactly one operator.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataFilterSpec {
    /// RFC 6901 JSON Pointer into the data, such as `/order/total`.
    pub pointer: String,
    /// The value equals this JSON value.
    pub equals: Option<Value>,
    /// The value is a string equal to this one, ignoring case.
    pub equals_ignore_case: Option<String>,
    /// The value is a string starting with this.
    pub prefix: Option<String>,
    /// The value is a string ending with this.
    pub suffix: Option<String>,
    /// The value is a string matching this pattern, `*` standing for any run of
    /// characters (`\*` for a literal star).
    pub wildcard: Option<String>,
    /// The value is present (`true`) or absent (`false`).
    pub exists: Option<bool>,
    /// The value is one of these.
    #[serde(rename = "in")]
    pub in_list: Option<Vec<Value>>,
    /// The value is present and none of these.
    pub anything_but: Option<Vec<Value>>,
    /// The value is a number satisfying every comparison: `[">", 0, "<=", 100]`.
    pub numeric: Option<Vec<Value>>,
}
