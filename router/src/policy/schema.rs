//! JSON Schema validation of event data at ingest (`[[schema]]`).

use crate::config::{Config, ConfigError};
use crate::event::Event;

/// Why an event's data does not satisfy its schema.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "data of a {ty} event does not match the schema {schema}: {message} (at {instance_path:?})"
)]
pub struct SchemaError {
    /// The event type.
    pub ty: String,
    /// The schema file.
    pub schema: String,
    /// The first violation.
    pub message: String,
    /// JSON Pointer of the offending value in the data (empty: the whole data).
    pub instance_path: String,
}

/// A compiled schema and the types it applies to.
pub struct Schema {
    exact: Option<String>,
    prefix: Option<String>,
    file: String,
    validator: jsonschema::Validator,
}

/// Every schema of a configuration, compiled once.
#[derive(Default)]
pub struct Schemas(Vec<Schema>);

impl Schemas {
    /// Reads and compiles the schemas of `config`; one error per unusable file.
    pub fn load(config: &Config) -> (Self, Vec<ConfigError>) {
        let mut schemas = Vec::new();
        let mut errors = Vec::new();
        for (i, s) in config.schemas.iter().enumerate() {
            let path = config.resolve(s.path.get_ref());
            let error = |m: String| {
                config
                    .source
                    .error(Some(s.path.span()), format!("schema[{i}].path"), m)
            };
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    errors.push(error(format!("cannot read {}: {e}", path.display())));
                    continue;
                }
            };
            let json: serde_json::Value = match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(error(format!("{} is not JSON: {e}", path.display())));
                    continue;
                }
            };
            match jsonschema::validator_for(&json) {
                Ok(validator) => schemas.push(Schema {
                    exact: s.ty.as_ref().map(|t| t.get_ref().clone()),
                    prefix: s.type_prefix.as_ref().map(|t| t.get_ref().clone()),
                    file: s.path.get_ref().clone(),
                    validator,
                }),
                Err(e) => errors.push(error(format!(
                    "{} is not a valid JSON Schema: {e}",
                    path.display()
                ))),
            }
        }
        (Self(schemas), errors)
    }

    /// The schema for an event type: an exact match first, else the longest prefix.
    fn for_type(&self, ty: &str) -> Option<&Schema> {
        self.0
            .iter()
            .find(|s| s.exact.as_deref() == Some(ty))
            .or_else(|| {
                self.0
                    .iter()
                    .filter(|s| s.prefix.as_deref().is_some_and(|p| ty.starts_with(p)))
                    .max_by_key(|s| s.prefix.as_ref().map_or(0, String::len))
            })
    }

    /// Checks the event's data against the schema of its type, if there is one.
    pub fn validate(&self, event: &Event) -> Result<(), SchemaError> {
        let Some(schema) = self.for_type(&event.ty) else {
            return Ok(());
        };
        let fail = |message: String, instance_path: String| SchemaError {
            ty: event.ty.clone(),
            schema: schema.file.clone(),
            message,
            instance_path,
        };
        let data = event
            .data
            .as_ref()
            .ok_or_else(|| fail("the event has no data".into(), String::new()))?;
        let json: serde_json::Value = serde_json::from_slice(data)
            .map_err(|e| fail(format!("the data is not JSON: {e}"), String::new()))?;
        match schema.validator.iter_errors(&json).next() {
            None => Ok(()),
            Some(e) => Err(fail(e.to_string(), e.instance_path().to_string())),
        }
    }

    /// Whether any schema is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
