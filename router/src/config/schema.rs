//! `[[schema]]`: JSON Schemas that the data of events must satisfy at ingest.

use super::{ConfigError, Positioned, Source};
use serde::Deserialize;
use toml::Spanned;

/// `[[schema]]`: the JSON Schema that the data of events of a type must satisfy.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// The exact event type this schema applies to.
    #[serde(rename = "type")]
    pub ty: Option<Spanned<String>>,
    /// Or: a prefix of the event types it applies to.
    pub type_prefix: Option<Spanned<String>>,
    /// The schema file (JSON), relative to the configuration file.
    pub path: Spanned<String>,
    /// Position in its `[[...]]` array as written, for error paths: entries that
    /// fail to parse are dropped, so the position in the parsed list can differ.
    #[serde(skip)]
    pub index: usize,
}

impl Positioned for SchemaConfig {
    fn set_index(&mut self, index: usize) {
        self.index = index;
    }
}

impl SchemaConfig {
    /// Checks that the schema says which event types it applies to.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.ty.is_some() == self.type_prefix.is_some() {
            errors.push(source.error(
                Some(self.path.span()),
                format!("schema[{}]", self.index),
                "set exactly one of `type` and `type_prefix`",
            ));
        }
    }
}
