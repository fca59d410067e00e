//! The CloudEvent model the router works with, and its validation.
//!
//! Events are decoded once at ingest (see [`http`] and [`json`]) into [`Event`]: context
//! attributes as strings, extensions as an ordered list, and `data` as the original
//! bytes, so nothing on the per-event path re-parses or re-serialises the payload.

pub mod http;
pub mod json;

use bytes::Bytes;
use std::fmt;

/// The CloudEvents version the router speaks internally; 0.3 events are converted.
pub const SPEC_VERSION: &str = "1.0";

/// Extension attribute set on an emitted event to the id of the event that caused it.
pub const CAUSATION_ID: &str = "causationid";
/// Extension attribute that ties every event of a chain to the root event's id.
pub const CORRELATION_ID: &str = "correlationid";
/// Extension attribute that marks an event re-dispatched from the archive, and
/// the events its handlers emit, with the replay's id.
pub const REPLAY_ID: &str = "replayid";

/// Extension names longer than this are accepted with a warning: the spec says
/// names SHOULD NOT exceed 20 characters, and some transports cannot carry longer ones.
const EXTENSION_NAME_SOFT_LIMIT: usize = 20;

/// A validated CloudEvent 1.0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `id`: unique per source.
    pub id: String,
    /// `source`: a URI-reference naming the context.
    pub source: String,
    /// `type`.
    pub ty: String,
    /// `datacontenttype`, if any.
    pub datacontenttype: Option<String>,
    /// `dataschema`, if any.
    pub dataschema: Option<String>,
    /// `subject`, if any.
    pub subject: Option<String>,
    /// `time` (RFC 3339), if any.
    pub time: Option<String>,
    /// Extension attributes in the order they were received, values in their
    /// canonical string form.
    pub extensions: Vec<(String, String)>,
    /// The payload bytes, untouched.
    pub data: Option<Bytes>,
}

/// Which CloudEvents versions ingest accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecVersion {
    /// CloudEvents 0.3 (converted to 1.0 at ingest).
    V03,
    /// CloudEvents 1.0.
    V10,
}

impl SpecVersion {
    /// Parses the `specversion` attribute.
    pub fn parse(value: &str) -> Result<Self, EventError> {
        match value {
            "1.0" => Ok(Self::V10),
            "0.3" => Ok(Self::V03),
            "" => Err(EventError::empty("specversion")),
            other => Err(EventError::invalid(
                "specversion",
                format!("unsupported version {other:?} (expected \"1.0\" or \"0.3\")"),
            )),
        }
    }

    /// The attribute's wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V03 => "0.3",
            Self::V10 => "1.0",
        }
    }
}

/// Why an event was refused. Every variant names the attribute concerned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A required attribute is absent.
    #[error("missing required attribute `{0}`")]
    Missing(&'static str),
    /// An attribute that must be non-empty is empty.
    #[error("attribute `{0}` must not be empty")]
    Empty(String),
    /// The request body or an event in it is not well-formed at all.
    #[error("{0}")]
    Malformed(String),
    /// An attribute's value is not valid for its type.
    #[error("attribute `{attribute}` is invalid: {reason}")]
    Invalid {
        /// The attribute (or header, or JSON member) at fault.
        attribute: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EventError {
    /// An empty-value error for `attribute`.
    pub fn empty(attribute: impl Into<String>) -> Self {
        Self::Empty(attribute.into())
    }

    /// An invalid-value error for `attribute`.
    pub fn invalid(attribute: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            attribute: attribute.into(),
            reason: reason.into(),
        }
    }

    /// The attribute this error is about, if it is about one.
    pub fn attribute(&self) -> Option<&str> {
        match self {
            Self::Missing(a) => Some(a),
            Self::Empty(a) => Some(a),
            Self::Invalid { attribute, .. } => Some(attribute),
            Self::Malformed(_) => None,
        }
    }
}

/// Whether `name` is a legal extension attribute name (lowercase a-z and 0-9).
pub fn is_valid_extension_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Names that are context attributes, so they can never be extensions.
pub fn is_context_attribute(name: &str) -> bool {
    matches!(
        name,
        "id" | "source"
            | "specversion"
            | "type"
            | "datacontenttype"
            | "dataschema"
            | "subject"
            | "time"
    )
}

impl Event {
    /// A new event with the required attributes and nothing else.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
            ty: ty.into(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            time: None,
            extensions: Vec::new(),
            data: None,
        }
    }

    /// The value of extension `name`, if set.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets extension `name`, replacing any earlier value.
    pub fn set_extension(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.extensions.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.extensions.push((name.to_owned(), value)),
        }
    }

    /// The value of any context attribute or extension by its CloudEvents name, as
    /// filters see it.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        match name {
            "id" => Some(&self.id),
            "source" => Some(&self.source),
            "specversion" => Some(SPEC_VERSION),
            "type" => Some(&self.ty),
            "datacontenttype" => self.datacontenttype.as_deref(),
            "dataschema" => self.dataschema.as_deref(),
            "subject" => self.subject.as_deref(),
            "time" => self.time.as_deref(),
            other => self.extension(other),
        }
    }

    /// Checks every rule of the CloudEvents 1.0 core specification that the router
    /// enforces, returning the first violation.
    ///
    /// Long extension names are not errors; see [`Event::long_extension_names`].
    pub fn validate(&self) -> Result<(), EventError> {
        require_non_empty("id", &self.id)?;
        require_non_empty("source", &self.source)?;
        require_non_empty("type", &self.ty)?;
        if let Some(v) = &self.datacontenttype {
            require_non_empty("datacontenttype", v)?;
        }
        if let Some(v) = &self.subject {
            require_non_empty("subject", v)?;
        }
        if let Some(v) = &self.dataschema {
            require_non_empty("dataschema", v)?;
            if !has_uri_scheme(v) {
                return Err(EventError::invalid(
                    "dataschema",
                    format!("{v:?} is not an absolute URI"),
                ));
            }
        }
        if let Some(v) = &self.time {
            chrono::DateTime::parse_from_rfc3339(v).map_err(|e| {
                EventError::invalid("time", format!("{v:?} is not an RFC 3339 timestamp ({e})"))
            })?;
        }
        for (name, _) in &self.extensions {
            if !is_valid_extension_name(name) {
                return Err(EventError::invalid(
                    name.clone(),
                    "extension names may only contain lowercase letters a-z and digits 0-9",
                ));
            }
            if is_context_attribute(name) {
                return Err(EventError::invalid(
                    name.clone(),
                    "a context attribute cannot be set as an extension",
                ));
            }
        }
        Ok(())
    }

    /// Refuses an `id` longer than `id_limit` bytes or a `source` longer than
    /// `source_limit` bytes (`server.id_limit`, `server.source_limit`): the pair
    /// is kept for duplicate detection and copied into every report and log line,
    /// so its size must not be the sender's choice.
    pub fn check_lengths(&self, id_limit: usize, source_limit: usize) -> Result<(), EventError> {
        for (name, value, limit) in [
            ("id", &self.id, id_limit),
            ("source", &self.source, source_limit),
        ] {
            if value.len() > limit {
                return Err(EventError::invalid(
                    name,
                    format!(
                        "{} bytes long, over the limit of {limit} bytes",
                        value.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Extension names over the spec's recommended 20 characters, for a warning.
    pub fn long_extension_names(&self) -> impl Iterator<Item = &str> {
        self.extensions
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.len() > EXTENSION_NAME_SOFT_LIMIT)
    }
}

impl fmt::Display for Event {
    /// `type (id "...", source "...")`, with every control character escaped:
    /// attributes come from the network, and this text goes to log lines.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (id {:?}, source {:?})",
            Escaped(&self.ty),
            self.id,
            self.source
        )
    }
}

/// Text from the network made safe for a line of a text log: control
/// characters (newlines, carriage returns, escape sequences ...), Unicode line
/// and paragraph separators and bidirectional overrides are written as Rust
/// escapes (`\n`, `\u{1b}`). Everything else is written as it is.
#[derive(Clone, Copy, Debug)]
pub struct Escaped<'a>(pub &'a str);

impl Escaped<'_> {
    fn needs_escape(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(Self::needs_escape) {
            f.write_str(&rest[..at])?;
            let c = rest[at..].chars().next().unwrap_or_default();
            write!(f, "{}", c.escape_default())?;
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

fn require_non_empty(name: &'static str, value: &str) -> Result<(), EventError> {
    if value.is_empty() {
        Err(EventError::empty(name))
    } else {
        Ok(())
    }
}

/// RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":".
fn has_uri_scheme(v: &str) -> bool {
    let Some((scheme, _)) = v.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Event {
        Event::new("1", "/s", "t")
    }

    #[test]
    fn required_attributes_must_be_non_empty() {
        for (attr, mut e) in [
            ("id", Event::new("", "/s", "t")),
            ("source", Event::new("1", "", "t")),
            ("type", Event::new("1", "/s", "")),
        ] {
            assert_eq!(e.validate(), Err(EventError::empty(attr)));
            e.id = "x".into();
        }
    }

    #[test]
    fn time_must_be_rfc3339() {
        let mut e = valid();
        e.time = Some("2024-01-01T00:00:00Z".into());
        assert!(e.validate().is_ok());
        e.time = Some("2024-01-01 00:00".into());
        assert_eq!(e.validate().unwrap_err().attribute(), Some("time"));
    }

    #[test]
    fn extension_names_are_lowercase_alphanumeric() {
        let mut e = valid();
        e.set_extension("traceparent2", "v");
        assert!(e.validate().is_ok());
        e.set_extension("Bad-Name", "v");
        assert_eq!(e.validate().unwrap_err().attribute(), Some("Bad-Name"));
    }

    #[test]
    fn long_extension_names_are_flagged_not_refused() {
        let mut e = valid();
        e.set_extension("averyveryverylongextensionname", "v");
        assert!(e.validate().is_ok());
        assert_eq!(e.long_extension_names().count(), 1);
    }

    #[test]
    fn dataschema_must_be_absolute() {
        let mut e = valid();
        e.dataschema = Some("https://example.com/s.json".into());
        assert!(e.validate().is_ok());
        e.dataschema = Some("/relative".into());
        assert_eq!(e.validate().unwrap_err().attribute(), Some("dataschema"));
    }

    #[test]
    fn display_escapes_control_characters() {
        let e = Event::new("i\r\n2", "/s\u{1b}[31m", "t\nFORGED level=ERROR\u{2028}");
        let text = e.to_string();
        assert_eq!(
            text,
            r#"t\nFORGED level=ERROR\u{2028} (id "i\r\n2", source "/s\u{1b}[31m")"#
        );
        assert!(!text.chars().any(char::is_control), "{text}");
        assert_eq!(
            Escaped("plain text, ünïcode").to_string(),
            "plain text, ünïcode"
        );
    }

    #[test]
    fn long_ids_and_sources_are_refused_naming_the_attribute() {
        let e = Event::new("x".repeat(11), "/s", "t");
        assert!(e.check_lengths(11, 10).is_ok());
        let error = e.check_lengths(10, 10).unwrap_err();
        assert_eq!(error.attribute(), Some("id"));
        assert!(error.to_string().contains("11 bytes"), "{error}");
        let e = Event::new("1", "/".repeat(5), "t");
        assert_eq!(
            e.check_lengths(10, 4).unwrap_err().attribute(),
            Some("source")
        );
    }

    #[test]
    fn set_extension_replaces() {
        let mut e = valid();
        e.set_extension("a", "1");
        e.set_extension("a", "2");
        assert_eq!(e.extensions, vec![("a".to_owned(), "2".to_owned())]);
        assert_eq!(e.attribute("a"), Some("2"));
        assert_eq!(e.attribute("specversion"), Some("1.0"));
    }
}
