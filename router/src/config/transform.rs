//! Route transform steps as written in TOML. They are data here;
//! the policy layer (`policy::transform`) checks and compiles them.

use serde::Deserialize;
use serde_json::Value;

/// One step as written in TOML: exactly one operation.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Set this attribute or extension to `value` (a template).
    pub set: Option<String>,
    /// The value of `set` or `data_set`.
    pub value: Option<Value>,
    /// Remove this optional attribute or extension.
    pub remove: Option<String>,
    /// Rename this extension to `to`.
    pub rename: Option<String>,
    /// The new name of `rename` or `data_rename`.
    pub to: Option<String>,
    /// Set the JSON value at this pointer in the data to `value` (strings are templates).
    pub data_set: Option<String>,
    /// Remove the value at this pointer in the data.
    pub data_remove: Option<String>,
    /// Move the value at this pointer in the data to `to`.
    pub data_rename: Option<String>,
    /// Keep only the values at these pointers in the data.
    pub data_keep: Option<Vec<String>>,
    /// Run this plugin of the `transform` world.
    pub wasm: Option<String>,
}
