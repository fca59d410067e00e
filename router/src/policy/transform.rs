//! Route transforms: an ordered list of steps applied to an event before the
//! route's targets see it. Declarative steps edit attributes, extensions and JSON
//! data (with values templated from the event); `wasm` steps run a component of
//! the `transform` world, which may also drop the event.
//!
//! Steps are validated and compiled at load, with the TOML path of each problem.

use crate::config::StepSpec;
use crate::event::{Event, EventError, is_context_attribute, is_valid_extension_name};
use crate::plugin::{CallError, Plugin};
use serde_json::Value;
use std::sync::Arc;

/// A compiled step.
#[derive(Clone)]
pub enum Step {
    /// Set an attribute or extension.
    Set {
        /// The attribute or extension.
        name: String,
        /// Its new value.
        value: Template,
    },
    /// Remove an optional attribute or an extension.
    Remove(String),
    /// Rename an extension.
    Rename {
        /// Old name.
        from: String,
        /// New name.
        to: String,
    },
    /// Set a value in the data.
    DataSet {
        /// Where.
        pointer: String,
        /// What: a JSON value, or a template for strings.
        value: DataValue,
    },
    /// Remove a value from the data.
    DataRemove(String),
    /// Move a value in the data.
    DataRename {
        /// From this pointer.
        from: String,
        /// To this pointer.
        to: String,
    },
    /// Keep only these values of the data.
    DataKeep(Vec<String>),
    /// A `transform` component.
    Wasm(Arc<Plugin>),
}

/// A JSON value to put in the data.
#[derive(Clone, Debug)]
pub enum DataValue {
    /// Used as is.
    Json(Value),
    /// A string rendered from the event.
    Template(Template),
}

/// A string with `{{attribute}}` and `{{data:/pointer}}` placeholders.
#[derive(Clone, Debug, PartialEq)]
pub struct Template(Vec<Piece>);

#[derive(Clone, Debug, PartialEq)]
enum Piece {
    Text(String),
    Attribute(String),
    Data(String),
}

impl Template {
    /// Parses a template; placeholders name an attribute (`{{subject}}`), an
    /// extension (`{{region}}`) or a data pointer (`{{data:/order/id}}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_owned()));
            }
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed `{{{{` in template {text:?}"))?;
            let name = after[..end].trim();
            if let Some(pointer) = name.strip_prefix("data:") {
                check_pointer(pointer)?;
                pieces.push(Piece::Data(pointer.to_owned()));
            } else if is_valid_extension_name(name) {
                pieces.push(Piece::Attribute(name.to_owned()));
            } else {
                return Err(format!(
                    "{{{{{name}}}}} names no attribute: use an attribute or extension name, or data:/pointer"
                ));
            }
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    /// Renders the template for `event`; missing values render as nothing.
    pub fn render(&self, event: &Event, data: Option<&Value>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Attribute(a) => out.push_str(event.attribute(a).unwrap_or_default()),
                Piece::Data(p) => match data.and_then(|d| d.pointer(p)) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(v) => out.push_str(&v.to_string()),
                    None => {}
                },
            }
        }
        out
    }

    fn uses_data(&self) -> bool {
        self.0.iter().any(|p| matches!(p, Piece::Data(_)))
    }
}

fn check_pointer(pointer: &str) -> Result<(), String> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{pointer:?} is not a JSON Pointer: it must start with '/'"
        ))
    }
}

/// Settable attributes: every context attribute but `specversion`, and extensions.
fn check_settable(name: &str) -> Result<(), String> {
    if name == "specversion" {
        return Err("`specversion` cannot be changed".into());
    }
    if is_context_attribute(name) || is_valid_extension_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an attribute or a valid extension name (lowercase a-z, 0-9)"
        ))
    }
}

impl StepSpec {
    /// Compiles the step. `plugin` resolves a `wasm` step's plugin name (it must
    /// implement the `transform` world).
    pub fn compile(
        &self,
        plugin: impl Fn(&str) -> Result<Arc<Plugin>, String>,
    ) -> Result<Step, String> {
        let ops = [
            self.set.is_some(),
            self.remove.is_some(),
            self.rename.is_some(),
            self.data_set.is_some(),
            self.data_remove.is_some(),
            self.data_rename.is_some(),
            self.data_keep.is_some(),
            self.wasm.is_some(),
        ];
        let count = ops.iter().filter(|&&o| o).count();
        if count != 1 {
            return Err(format!(
                "a step takes exactly one of set, remove, rename, data_set, data_remove, data_rename, data_keep, wasm (found {count})"
            ));
        }
        let need_value = || {
            self.value
                .clone()
                .ok_or_else(|| "`value` is required".to_owned())
        };
        let need_to = || self.to.clone().ok_or_else(|| "`to` is required".to_owned());
        if let Some(name) = &self.set {
            check_settable(name)?;
            let value = match need_value()? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            return Ok(Step::Set {
                name: name.clone(),
                value: Template::parse(&value)?,
            });
        }
        if let Some(name) = &self.remove {
            if matches!(name.as_str(), "id" | "source" | "type" | "specversion") {
                return Err(format!("`{name}` is required and cannot be removed"));
            }
            check_settable(name)?;
            return Ok(Step::Remove(name.clone()));
        }
        if let Some(from) = &self.rename {
            let to = need_to()?;
            for name in [from, &to] {
                if is_context_attribute(name) || !is_valid_extension_name(name) {
                    return Err(format!("`rename` works on extensions; {name:?} is not one"));
                }
            }
            return Ok(Step::Rename {
                from: from.clone(),
                to,
            });
        }
        if let Some(pointer) = &self.data_set {
            check_pointer(pointer)?;
            let value = match need_value()? {
                Value::String(s) => DataValue::Template(Template::parse(&s)?),
                other => DataValue::Json(other),
            };
            return Ok(Step::DataSet {
                pointer: pointer.clone(),
                value,
            });
        }
        if let Some(pointer) = &self.data_remove {
            check_pointer(pointer)?;
            return Ok(Step::DataRemove(pointer.clone()));
        }
        if let Some(from) = &self.data_rename {
            let to = need_to()?;
            check_pointer(from)?;
            check_pointer(&to)?;
            return Ok(Step::DataRename {
                from: from.clone(),
                to,
            });
        }
        if let Some(pointers) = &self.data_keep {
            for p in pointers {
                check_pointer(p)?;
            }
            return Ok(Step::DataKeep(pointers.clone()));
        }
        let name = self.wasm.as_deref().unwrap_or_default();
        Ok(Step::Wasm(plugin(name)?))
    }
}

/// Why one step could not be applied to an event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// A data step found no JSON data to edit, or a pointer that leads nowhere.
    #[error("{0}")]
    Data(String),
    /// The edited event is not a valid CloudEvent.
    #[error("the result is not a valid event: {0}")]
    InvalidResult(EventError),
    /// A `wasm` step's plugin failed.
    #[error(transparent)]
    Plugin(CallError),
}

impl StepError {
    /// Whether trying again might succeed: only a plugin's failure can pass.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Plugin(e) => e.is_retryable(),
            Self::Data(_) | Self::InvalidResult(_) => false,
        }
    }
}

/// Why a transform could not be applied: its failing step, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("transform step {step}: {error}")]
pub struct TransformError {
    /// Zero-based index of the failing step.
    pub step: usize,
    /// What went wrong.
    #[source]
    pub error: StepError,
}

impl TransformError {
    /// Whether trying again might succeed (a retryable plugin error).
    pub fn retryable(&self) -> bool {
        self.error.retryable()
    }
}

impl Step {
    /// Applies the step. `Ok(None)` means a `wasm` step dropped the event.
    pub async fn apply(&self, mut event: Event) -> Result<Option<Event>, StepError> {
        match self {
            Step::Set { name, value } => {
                let data = value.uses_data().then(|| json_data(&event).ok()).flatten();
                let rendered = value.render(&event, data.as_ref());
                set_attribute(&mut event, name, rendered);
            }
            Step::Remove(name) => match name.as_str() {
                "subject" => event.subject = None,
                "time" => event.time = None,
                "datacontenttype" => event.datacontenttype = None,
                "dataschema" => event.dataschema = None,
                ext => event.extensions.retain(|(k, _)| k != ext),
            },
            Step::Rename { from, to } => {
                if let Some(pos) = event.extensions.iter().position(|(k, _)| k == from) {
                    let (_, v) = event.extensions.remove(pos);
                    event.set_extension(to, v);
                }
            }
            Step::DataSet { pointer, value } => {
                let mut data = json_data(&event).map_err(StepError::Data)?;
                let v = match value {
                    DataValue::Json(v) => v.clone(),
                    DataValue::Template(t) => Value::String(t.render(&event, Some(&data))),
                };
                set_pointer(&mut data, pointer, v).map_err(StepError::Data)?;
                put_data(&mut event, &data);
            }
            Step::DataRemove(pointer) => {
                let mut data = json_data(&event).map_err(StepError::Data)?;
                take_pointer(&mut data, pointer);
                put_data(&mut event, &data);
            }
            Step::DataRename { from, to } => {
                let mut data = json_data(&event).map_err(StepError::Data)?;
                if let Some(v) = take_pointer(&mut data, from) {
                    set_pointer(&mut data, to, v).map_err(StepError::Data)?;
                }
                put_data(&mut event, &data);
            }
            Step::DataKeep(pointers) => {
                let data = json_data(&event).map_err(StepError::Data)?;
                let mut kept = Value::Object(serde_json::Map::new());
                for p in pointers {
                    if let Some(v) = data.pointer(p) {
                        set_pointer(&mut kept, p, v.clone()).map_err(StepError::Data)?;
                    }
                }
                put_data(&mut event, &kept);
            }
            Step::Wasm(plugin) => {
                return plugin.transform(&event).await.map_err(StepError::Plugin);
            }
        }
        event.validate().map_err(StepError::InvalidResult)?;
        Ok(Some(event))
    }

    /// The step in JSON, for explain and the admin API.
    pub fn describe(&self) -> String {
        match self {
            Step::Set { name, .. } => format!("set {name}"),
            Step::Remove(name) => format!("remove {name}"),
            Step::Rename { from, to } => format!("rename {from} -> {to}"),
            Step::DataSet { pointer, .. } => format!("data_set {pointer}"),
            Step::DataRemove(pointer) => format!("data_remove {pointer}"),
            Step::DataRename { from, to } => format!("data_rename {from} -> {to}"),
            Step::DataKeep(p) => format!("data_keep {}", p.join(", ")),
            Step::Wasm(plugin) => format!("wasm {}", plugin.name()),
        }
    }
}

/// Applies `steps` in order.
pub async fn apply_all(steps: &[Step], mut event: Event) -> Result<Option<Event>, TransformError> {
    for (step, s) in steps.iter().enumerate() {
        match s.apply(event).await {
            Ok(Some(next)) => event = next,
            Ok(None) => return Ok(None),
            Err(error) => return Err(TransformError { step, error }),
        }
    }
    Ok(Some(event))
}

fn set_attribute(event: &mut Event, name: &str, value: String) {
    match name {
        "id" => event.id = value,
        "source" => event.source = value,
        "type" => event.ty = value,
        "subject" => event.subject = Some(value),
        "time" => event.time = Some(value),
        "datacontenttype" => event.datacontenttype = Some(value),
        "dataschema" => event.dataschema = Some(value),
        ext => event.set_extension(ext, value),
    }
}

fn json_data(event: &Event) -> Result<Value, String> {
    let data = event.data.as_ref().ok_or("the event has no data to edit")?;
    serde_json::from_slice(data).map_err(|e| format!("the data is not JSON: {e}"))
}

fn put_data(event: &mut Event, data: &Value) {
    event.data = Some(serde_json::to_vec(data).unwrap_or_default().into());
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Sets `value` at `pointer`, creating objects on the way.
fn set_pointer(root: &mut Value, pointer: &str, value: Value) -> Result<(), String> {
    if pointer.is_empty() {
        *root = value;
        return Ok(());
    }
    let tokens: Vec<String> = pointer[1..].split('/').map(unescape).collect();
    let mut here = root;
    for (i, token) in tokens.iter().enumerate() {
        let last = i + 1 == tokens.len();
        here = match here {
            Value::Object(map) => {
                if last {
                    map.insert(token.clone(), value);
                    return Ok(());
                }
                map.entry(token.clone())
                    .or_insert_with(|| Value::Object(serde_json::Map::new()))
            }
            Value::Array(items) => {
                let index: usize = token
                    .parse()
                    .map_err(|_| format!("{pointer}: {token:?} is not an array index"))?;
                let slot = items
                    .get_mut(index)
                    .ok_or_else(|| format!("{pointer}: index {index} is past the end"))?;
                if last {
                    *slot = value;
                    return Ok(());
                }
                slot
            }
            _ => return Err(format!("{pointer}: cannot descend into a scalar")),
        };
    }
    Ok(())
}

/// Removes and returns the value at `pointer`.
fn take_pointer(root: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, last) = pointer.rsplit_once('/')?;
    let last = unescape(last);
    match root.pointer_mut(parent)? {
        Value::Object(map) => map.remove(&last),
        Value::Array(items) => {
            let i: usize = last.parse().ok()?;
            (i < items.len()).then(|| items.remove(i))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde::Deserialize;
    use serde_json::json;

    fn compile(toml_text: &str) -> Result<Vec<Step>, String> {
        #[derive(Deserialize)]
        struct W {
            transform: Vec<StepSpec>,
        }
        let w: W = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        w.transform
            .iter()
            .map(|s| s.compile(|name| Err(format!("no plugin {name}"))))
            .collect()
    }

    fn order() -> Event {
        let mut e = Event::new("1", "/shop", "order.created");
        e.set_extension("tenant", "acme");
        e.datacontenttype = Some("application/json".into());
        e.data = Some(Bytes::from(
            json!({"orderId": "o-1", "customer": {"email": "a@x", "name": "Ann"}, "items": [1, 2]})
                .to_string(),
        ));
        e
    }

    #[tokio::test]
    async fn steps_edit_attributes_and_data_in_order() {
        let steps = compile(
            r#"transform = [
                { set = "subject", value = "order {{data:/orderId}} for {{tenant}}" },
                { rename = "tenant", to = "customer" },
                { set = "region", value = "eu" },
                { data_remove = "/customer/email" },
                { data_set = "/meta/source", value = "{{source}}" },
                { data_rename = "/items", to = "/lines" },
                { data_keep = ["/orderId", "/customer", "/lines", "/meta"] },
            ]"#,
        )
        .unwrap();
        let out = apply_all(&steps, order()).await.unwrap().unwrap();
        assert_eq!(out.subject.as_deref(), Some("order o-1 for acme"));
        assert_eq!(out.extension("customer"), Some("acme"));
        assert_eq!(out.extension("tenant"), None);
        assert_eq!(out.extension("region"), Some("eu"));
        let data: Value = serde_json::from_slice(out.data.as_deref().unwrap()).unwrap();
        assert_eq!(
            data,
            json!({"orderId": "o-1", "customer": {"name": "Ann"}, "lines": [1, 2], "meta": {"source": "/shop"}})
        );
    }

    #[test]
    fn invalid_steps_are_refused_at_load() {
        for (text, needle) in [
            (
                r#"transform = [{ set = "specversion", value = "2" }]"#,
                "specversion",
            ),
            (r#"transform = [{ remove = "id" }]"#, "cannot be removed"),
            (
                r#"transform = [{ set = "Bad-Name", value = "x" }]"#,
                "extension name",
            ),
            (
                r#"transform = [{ data_remove = "no-slash" }]"#,
                "JSON Pointer",
            ),
            (
                r#"transform = [{ set = "subject", value = "{{unclosed" }]"#,
                "unclosed",
            ),
            (
                r#"transform = [{ set = "subject" }]"#,
                "`value` is required",
            ),
            (
                r#"transform = [{ set = "a", value = "b", remove = "c" }]"#,
                "exactly one",
            ),
            (r#"transform = [{ wasm = "ghost" }]"#, "no plugin ghost"),
        ] {
            let err = compile(text)
                .err()
                .unwrap_or_else(|| panic!("{text} compiled"));
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[tokio::test]
    async fn data_steps_on_non_json_data_fail_the_step() {
        let steps =
            compile(r#"transform = [{ set = "region", value = "eu" }, { data_remove = "/x" }]"#)
                .unwrap();
        let mut e = order();
        e.data = Some(Bytes::from_static(b"plain"));
        let err = apply_all(&steps, e).await.unwrap_err();
        assert_eq!(err.step, 1);
        assert!(matches!(&err.error, StepError::Data(m) if m.contains("not JSON")));
        assert!(!err.retryable());
    }
}
