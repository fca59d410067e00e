//! The typed event plugins receive and emit.

use crate::bindings::router::plugin::types as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

/// A CloudEvent, as a plugin receives it and as it builds new ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    inner: wit::Event,
}

/// Why a plugin could not handle an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerError {
    /// A transient failure: the event may be delivered again later.
    Retryable(String),
    /// A permanent failure: retrying the same event cannot help.
    Fatal(String),
}

impl HandlerError {
    /// A retryable error with `message`.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::Retryable(message.into())
    }

    /// A fatal error with `message`.
    pub fn fatal(message: impl Into<String>) -> Self {
        Self::Fatal(message.into())
    }

    pub(crate) fn into_wit(self) -> wit::HandlerError {
        match self {
            Self::Retryable(m) => wit::HandlerError::Retryable(m),
            Self::Fatal(m) => wit::HandlerError::Fatal(m),
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Retryable(m) => write!(f, "retryable: {m}"),
            Self::Fatal(m) => write!(f, "fatal: {m}"),
        }
    }
}

impl std::error::Error for HandlerError {}

impl Event {
    /// A new CloudEvents 1.0 event with its required attributes.
    pub fn new(id: impl Into<String>, source: impl Into<String>, ty: impl Into<String>) -> Self {
        Self {
            inner: wit::Event {
                id: id.into(),
                source: source.into(),
                specversion: "1.0".into(),
                type_: ty.into(),
                datacontenttype: None,
                dataschema: None,
                subject: None,
                time: None,
                extensions: Vec::new(),
                data: None,
            },
        }
    }

    pub(crate) fn from_wit(inner: wit::Event) -> Self {
        Self { inner }
    }

    pub(crate) fn into_wit(self) -> wit::Event {
        self.inner
    }

    /// `id`.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// `source`.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// `type`.
    pub fn ty(&self) -> &str {
        &self.inner.type_
    }

    /// `subject`, if set.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// `time` (RFC 3339), if set.
    pub fn time(&self) -> Option<&str> {
        self.inner.time.as_deref()
    }

    /// `datacontenttype`, if set.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.inner.datacontenttype.as_deref()
    }

    /// `dataschema`, if set.
    pub fn dataschema(&self) -> Option<&str> {
        self.inner.dataschema.as_deref()
    }

    /// The value of extension `name`, if set.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.inner
            .extensions
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every extension, as (name, value) pairs.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .extensions
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The payload bytes, if any.
    pub fn data(&self) -> Option<&[u8]> {
        self.inner.data.as_deref()
    }

    /// Parses the payload as JSON, whatever `datacontenttype` says (senders often
    /// leave it out). Missing or malformed data is a fatal error: redelivering the
    /// same bytes cannot fix it.
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let data = self
            .data()
            .ok_or_else(|| HandlerError::fatal(format!("event {} has no data", self.id())))?;
        serde_json::from_slice(data).map_err(|e| {
            HandlerError::fatal(format!("event {} has unexpected data: {e}", self.id()))
        })
    }

    /// Sets the `subject`.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.inner.subject = Some(subject.into());
        self
    }

    /// Sets the `time` (RFC 3339).
    pub fn with_time(mut self, time: impl Into<String>) -> Self {
        self.inner.time = Some(time.into());
        self
    }

    /// Sets the `dataschema`.
    pub fn with_dataschema(mut self, schema: impl Into<String>) -> Self {
        self.inner.dataschema = Some(schema.into());
        self
    }

    /// Sets extension `name` (lowercase a-z, 0-9), replacing an earlier value.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self.inner.extensions.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.inner.extensions.push((name, value)),
        }
        self
    }

    /// Sets the payload and its media type.
    pub fn with_data(mut self, data: impl Into<Vec<u8>>, content_type: impl Into<String>) -> Self {
        self.inner.data = Some(data.into());
        self.inner.datacontenttype = Some(content_type.into());
        self
    }

    /// Sets the payload to `value` as JSON, with `datacontenttype` application/json.
    pub fn with_json_data<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HandlerError> {
        let bytes = serde_json::to_vec(value)
            .map_err(|e| HandlerError::fatal(format!("cannot encode data as JSON: {e}")))?;
        Ok(self.with_data(bytes, "application/json"))
    }

    /// A copy of this event under a new id and type, keeping data, subject and
    /// extensions: the usual start of an enriched or derived event.
    pub fn derive(&self, id: impl Into<String>, ty: impl Into<String>) -> Self {
        let mut inner = self.inner.clone();
        inner.id = id.into();
        inner.type_ = ty.into();
        inner.specversion = "1.0".into();
        Self { inner }
    }

    /// Sets the `source`.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.inner.source = source.into();
        self
    }
}
