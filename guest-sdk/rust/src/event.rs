//! The typed event plugins receive and emit.

use crate::HandlerError;
use crate::bindings::router::plugin::types as wit;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The media type [`Event::with_json_data`] sets.
const JSON: &str = "application/json";

/// A CloudEvent 1.0, as a plugin receives it and as it builds new ones.
///
/// Read attributes with the accessors; build new events with [`Event::new`] and
/// the `with_*` methods, which take and return the event so they chain:
///
/// ```
/// use router_guest::Event;
///
/// let event = Event::new("order-1-reserved", "/inventory", "com.example.inventory.reserved")
///     .with_subject("order-1")
///     .with_extension("tenant", "acme")
///     .with_data("{}", "application/json");
/// assert_eq!(event.subject(), Some("order-1"));
/// ```
///
/// To emit a modified copy of the event being handled, start from
/// [`Event::derive`] (or chain the same methods on the event itself).
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "an event does nothing until it is returned from the handler"]
pub struct Event {
    inner: wit::Event,
}

impl Event {
    /// A new event with its required attributes and specversion "1.0".
    ///
    /// `id` must be unique per `source`: derive it from the event being handled
    /// (for example `format!("{}-reserved", event.id())`) so that a redelivered
    /// event yields the same id and consumers can deduplicate.
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

    /// The `id` attribute.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The `source` attribute.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The `specversion` attribute: "1.0" for every event the router delivers.
    pub fn specversion(&self) -> &str {
        &self.inner.specversion
    }

    /// The `type` attribute (`type` is a Rust keyword).
    pub fn ty(&self) -> &str {
        &self.inner.type_
    }

    /// The `subject` attribute, if set.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// The `time` attribute (RFC 3339), if set.
    pub fn time(&self) -> Option<&str> {
        self.inner.time.as_deref()
    }

    /// The `datacontenttype` attribute, if set.
    pub fn datacontenttype(&self) -> Option<&str> {
        self.inner.datacontenttype.as_deref()
    }

    /// The `dataschema` attribute, if set.
    pub fn dataschema(&self) -> Option<&str> {
        self.inner.dataschema.as_deref()
    }

    /// The value of extension attribute `name`, if set.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.inner
            .extensions
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every extension attribute, as (name, value) pairs.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &str)> {
        self.inner
            .extensions
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// The payload, if any.
    pub fn data(&self) -> Option<&[u8]> {
        self.inner.data.as_deref()
    }

    /// Takes the payload out of the event, without copying it.
    pub fn into_data(self) -> Option<Vec<u8>> {
        self.inner.data
    }

    /// Parses the payload as JSON into `T`.
    ///
    /// The payload is parsed whatever `datacontenttype` says, because senders often
    /// leave it out (the Python SDK does in binary mode). A missing payload or one
    /// that does not parse into `T` is a [`HandlerError::Fatal`] naming the event
    /// and the problem: delivering the same bytes again cannot fix it.
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let data = self.data().ok_or_else(|| {
            HandlerError::fatal(format!(
                "event {} ({}) has no data, expected JSON",
                self.id(),
                self.ty()
            ))
        })?;
        serde_json::from_slice(data).map_err(|e| {
            HandlerError::fatal(format!(
                "data of event {} ({}) is not the expected JSON: {e}",
                self.id(),
                self.ty()
            ))
        })
    }

    /// A copy of this event under a new `id` and `type`, keeping everything else
    /// (source, subject, time, extensions, data): the usual start of an enriched
    /// or translated event.
    pub fn derive(&self, id: impl Into<String>, ty: impl Into<String>) -> Self {
        self.clone().with_id(id).with_type(ty)
    }

    /// Replaces the `id`.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.inner.id = id.into();
        self
    }

    /// Replaces the `source`.
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.inner.source = source.into();
        self
    }

    /// Replaces the `type`.
    pub fn with_type(mut self, ty: impl Into<String>) -> Self {
        self.inner.type_ = ty.into();
        self
    }

    /// Sets the `subject`.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.inner.subject = Some(subject.into());
        self
    }

    /// Sets the `time` (RFC 3339, for example `2026-01-31T12:00:00Z`).
    pub fn with_time(mut self, time: impl Into<String>) -> Self {
        self.inner.time = Some(time.into());
        self
    }

    /// Sets the `dataschema`.
    pub fn with_dataschema(mut self, schema: impl Into<String>) -> Self {
        self.inner.dataschema = Some(schema.into());
        self
    }

    /// Sets the `datacontenttype` alone, keeping the payload.
    pub fn with_datacontenttype(mut self, content_type: impl Into<String>) -> Self {
        self.inner.datacontenttype = Some(content_type.into());
        self
    }

    /// Sets extension attribute `name`, replacing an earlier value.
    ///
    /// CloudEvents allows only lowercase letters a-z and digits 0-9 in the name;
    /// the router rejects an emitted event whose names break that rule.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        match self
            .inner
            .extensions
            .iter_mut()
            .find(|(key, _)| *key == name)
        {
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

    /// Sets the payload to `value` encoded as JSON, and `datacontenttype` to
    /// `application/json`.
    ///
    /// Fails (fatally) only for values JSON cannot represent, such as a map whose
    /// keys are not strings.
    pub fn with_json_data<T: Serialize + ?Sized>(self, value: &T) -> Result<Self, HandlerError> {
        let data = serde_json::to_vec(value).map_err(|e| {
            HandlerError::fatal(format!(
                "cannot encode the data of event {} as JSON: {e}",
                self.id()
            ))
        })?;
        Ok(self.with_data(data, JSON))
    }

    /// Copies the payload of `other` as it is: its data, `datacontenttype` and
    /// `dataschema`, each present or absent as in `other`.
    ///
    /// For plugins that pass a payload on under new attributes.
    pub fn with_data_from(mut self, other: &Event) -> Self {
        self.inner.data.clone_from(&other.inner.data);
        self.inner
            .datacontenttype
            .clone_from(&other.inner.datacontenttype);
        self.inner.dataschema.clone_from(&other.inner.dataschema);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Order {
        #[serde(rename = "orderId")]
        order_id: String,
    }

    fn order_event(data: Option<&[u8]>) -> Event {
        let event = Event::new("e-1", "/shop", "com.example.order.created");
        match data {
            Some(data) => event.with_data(data, "text/plain"),
            None => event,
        }
    }

    #[test]
    fn new_sets_the_required_attributes_and_specversion() {
        let event = Event::new("e-1", "/shop", "t");
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.specversion()),
            ("e-1", "/shop", "t", "1.0")
        );
        assert_eq!(event.subject(), None);
        assert_eq!(event.data(), None);
        assert_eq!(event.extensions().count(), 0);
    }

    #[test]
    fn builders_set_attributes_and_extensions_replace() {
        let event = Event::new("e-1", "/shop", "t")
            .with_id("e-2")
            .with_source("/other")
            .with_type("u")
            .with_subject("s")
            .with_time("2026-01-31T12:00:00Z")
            .with_dataschema("https://example.com/schema")
            .with_extension("region", "eu")
            .with_extension("tenant", "acme")
            .with_extension("region", "us");
        assert_eq!(
            (event.id(), event.source(), event.ty()),
            ("e-2", "/other", "u")
        );
        assert_eq!(event.subject(), Some("s"));
        assert_eq!(event.time(), Some("2026-01-31T12:00:00Z"));
        assert_eq!(event.dataschema(), Some("https://example.com/schema"));
        assert_eq!(event.extension("region"), Some("us"));
        assert_eq!(event.extension("missing"), None);
        let extensions: Vec<_> = event.extensions().collect();
        assert_eq!(extensions, [("region", "us"), ("tenant", "acme")]);
    }

    #[test]
    fn data_json_parses_whatever_the_content_type() {
        let event = order_event(Some(br#"{"orderId":"o-1","other":true}"#));
        let order: Order = event.data_json().expect("valid order");
        assert_eq!(order.order_id, "o-1");
    }

    #[test]
    fn data_json_names_missing_or_invalid_data() {
        let missing = order_event(None).data_json::<Order>().unwrap_err();
        assert!(!missing.is_retryable());
        assert!(missing.message().contains("e-1"), "{missing}");
        assert!(missing.message().contains("no data"), "{missing}");

        let invalid = order_event(Some(b"not json"))
            .data_json::<Order>()
            .unwrap_err();
        assert!(!invalid.is_retryable());
        assert!(
            invalid.message().contains("not the expected JSON"),
            "{invalid}"
        );

        let wrong_shape = order_event(Some(b"{}")).data_json::<Order>().unwrap_err();
        assert!(wrong_shape.message().contains("orderId"), "{wrong_shape}");
    }

    #[test]
    fn with_json_data_sets_the_payload_and_content_type() {
        let event = Event::new("e-1", "/shop", "t")
            .with_json_data(&serde_json::json!({ "orderId": "o-1" }))
            .expect("encodable");
        assert_eq!(event.datacontenttype(), Some("application/json"));
        assert_eq!(event.data(), Some(&br#"{"orderId":"o-1"}"#[..]));
        assert_eq!(
            event.data_json::<Order>().expect("round trip"),
            Order {
                order_id: "o-1".into()
            }
        );
    }

    #[test]
    fn with_json_data_fails_for_values_json_cannot_hold() {
        let map = std::collections::BTreeMap::from([((1, 2), "pair keys")]);
        let error = Event::new("e-1", "/shop", "t")
            .with_json_data(&map)
            .unwrap_err();
        assert!(!error.is_retryable());
    }

    #[test]
    fn with_data_from_copies_presence_and_absence() {
        let with = Event::new("a", "/a", "t")
            .with_data("x", "text/plain")
            .with_dataschema("s");
        let without = Event::new("b", "/b", "t");

        let copied = without.clone().with_data_from(&with);
        assert_eq!(copied.data(), Some(&b"x"[..]));
        assert_eq!(copied.datacontenttype(), Some("text/plain"));
        assert_eq!(copied.dataschema(), Some("s"));

        let cleared = with.with_data_from(&without);
        assert_eq!(cleared.data(), None);
        assert_eq!(cleared.datacontenttype(), None);
        assert_eq!(cleared.dataschema(), None);
    }

    #[test]
    fn derive_keeps_everything_but_id_and_type() {
        let original = Event::new("e-1", "/shop", "t")
            .with_subject("s")
            .with_extension("region", "eu")
            .with_data("x", "text/plain");
        let copy = original.derive("e-1-enriched", "t.enriched");
        assert_eq!((copy.id(), copy.ty()), ("e-1-enriched", "t.enriched"));
        assert_eq!(copy.with_id("e-1").with_type("t"), original);
    }

    #[test]
    fn into_data_moves_the_payload_out() {
        let event = Event::new("e-1", "/shop", "t").with_data(vec![1, 2, 3], "x/y");
        assert_eq!(event.into_data(), Some(vec![1, 2, 3]));
    }
}
