//! The CloudEvents JSON event format: structured and batched content modes.
//!
//! Decoding borrows from the request body: members are read as [`RawValue`]s and
//! `data` keeps the body's own bytes (a [`Bytes::slice_ref`]), so a JSON payload is
//! never parsed into a tree nor copied.

use super::{Event, EventError, SpecVersion};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A structured-mode event's members, borrowed from the body (a name is copied
/// only when it has escapes). Each context attribute the format names has a
/// slot, filled as the object is read; of a member given twice, the last value
/// counts. Slots, not a map: an event has a handful of members, and hashing
/// each name (and copying it, which serde's `Cow` does) was a tenth of a
/// batch's CPU; a sorted vector searched per attribute was still 8 %.
#[derive(Default)]
struct Members<'a> {
    specversion: Option<&'a RawValue>,
    id: Option<&'a RawValue>,
    source: Option<&'a RawValue>,
    ty: Option<&'a RawValue>,
    datacontenttype: Option<&'a RawValue>,
    subject: Option<&'a RawValue>,
    time: Option<&'a RawValue>,
    data: Option<&'a RawValue>,
    /// 1.0's attributes, extensions in 0.3.
    dataschema: Option<&'a RawValue>,
    data_base64: Option<&'a RawValue>,
    /// 0.3's attributes, extensions in 1.0.
    schemaurl: Option<&'a RawValue>,
    datacontentencoding: Option<&'a RawValue>,
    /// Every other member (the extensions), sorted by name, the last of a
    /// repeated name kept. Sorted, not searched: a hostile event with
    /// thousands of members costs n log n.
    others: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut m = Members::default();
                while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    let slot = match name.as_ref() {
                        "specversion" => &mut m.specversion,
                        "id" => &mut m.id,
                        "source" => &mut m.source,
                        "type" => &mut m.ty,
                        "datacontenttype" => &mut m.datacontenttype,
                        "subject" => &mut m.subject,
                        "time" => &mut m.time,
                        "data" => &mut m.data,
                        "dataschema" => &mut m.dataschema,
                        "data_base64" => &mut m.data_base64,
                        "schemaurl" => &mut m.schemaurl,
                        "datacontentencoding" => &mut m.datacontentencoding,
                        _ => {
                            m.others.push((name, value));
                            continue;
                        }
                    };
                    *slot = Some(value);
                }
                // Stable: of equal names the later stays after the earlier,
                // and `dedup_by` then keeps the later value in the earlier slot.
                m.others.sort_by(|a, b| a.0.cmp(&b.0));
                m.others.dedup_by(|later, earlier| {
                    let same = later.0 == earlier.0;
                    if same {
                        std::mem::swap(later, earlier);
                    }
                    same
                });
                Ok(m)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A member name, borrowed from the body unless it has escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// Why a batch was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The body is not a JSON array.
    #[error("the body is not a JSON array of events: {0}")]
    Malformed(String),
    /// More events than the configured limit.
    #[error("the batch holds {count} events, more than the limit of {limit}")]
    TooMany {
        /// Events in the batch.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One event is invalid.
    #[error("event {index} of the batch: {error}")]
    Event {
        /// Zero-based position of the event in the batch array.
        index: usize,
        /// What is wrong with it.
        error: EventError,
    },
}

/// Decodes one event in structured mode (`application/cloudevents+json`).
pub fn decode_structured(body: &Bytes) -> Result<Event, EventError> {
    let text = utf8(body).map_err(EventError::Malformed)?;
    let members: Members<'_> = serde_json::from_str(text)
        .map_err(|e| EventError::Malformed(format!("the body is not a JSON object: {e}")))?;
    let (_, event) = decode_members(body, &members)?;
    Ok(event)
}

/// Decodes a batch (`application/cloudevents-batch+json`): a JSON array of
/// structured events, all of one specversion. An empty array is a valid batch.
pub fn decode_batch(body: &Bytes, max_events: usize) -> Result<Vec<Event>, BatchError> {
    use serde::de::DeserializeSeed as _;
    let failing = std::cell::Cell::new(None);
    let text = utf8(body).map_err(BatchError::Malformed)?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let items = BatchSeed {
        max_events,
        failing: &failing,
    }
    .deserialize(&mut deserializer)
    .and_then(|items| deserializer.end().map(|()| items))
    .map_err(|e| match failing.get() {
        Some(index) => BatchError::Event {
            index,
            error: EventError::Malformed(format!("the event is not a JSON object: {e}")),
        },
        None => BatchError::Malformed(e.to_string()),
    })?;
    let items = match items {
        Ok(items) => items,
        Err(count) => {
            return Err(BatchError::TooMany {
                count,
                limit: max_events,
            });
        }
    };
    let mut events = Vec::with_capacity(items.len());
    let mut first_version = None;
    for (index, members) in items.into_iter().enumerate() {
        let at = |error| BatchError::Event { index, error };
        let (version, event) = decode_members(body, &members).map_err(at)?;
        match first_version {
            None => first_version = Some(version),
            Some(v) if v != version => {
                return Err(at(EventError::invalid(
                    "specversion",
                    format!(
                        "a batch may not mix versions: {} after {}",
                        version.as_str(),
                        v.as_str()
                    ),
                )));
            }
            Some(_) => {}
        }
        events.push(event);
    }
    Ok(events)
}

/// The body as text, checked once, whole: read from a `&str`, serde_json
/// checks no string or raw value again, where from bytes it checked each
/// string as it went and each raw value (an event's `data`) a second time.
fn utf8(body: &Bytes) -> Result<&str, String> {
    std::str::from_utf8(body).map_err(|e| format!("the body is not UTF-8 JSON: {e}"))
}

/// Reads a batch's array in one pass, each element straight into its
/// [`Members`] (reading the elements as raw values first scanned the body
/// twice). The result is the members, or, past `max_events`, how many events
/// the array holds. `failing` names the element being read, for the error.
struct BatchSeed<'c> {
    max_events: usize,
    failing: &'c std::cell::Cell<Option<usize>>,
}

impl<'de> serde::de::DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Result<Vec<Members<'de>>, usize>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchSeed<'_> {
    type Value = Result<Vec<Members<'de>>, usize>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        loop {
            if items.len() == self.max_events {
                // Over the limit: only counted, not decoded.
                let mut count = items.len();
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    count += 1;
                }
                return Ok(if count > self.max_events {
                    Err(count)
                } else {
                    Ok(items)
                });
            }
            self.failing.set(Some(items.len()));
            match seq.next_element::<Members<'de>>()? {
                Some(members) => items.push(members),
                None => break,
            }
        }
        self.failing.set(None);
        Ok(Ok(items))
    }
}

fn decode_members(body: &Bytes, m: &Members<'_>) -> Result<(SpecVersion, Event), EventError> {
    let version = match m.specversion {
        Some(raw) => SpecVersion::parse(&string_member("specversion", raw)?)?,
        None => return Err(EventError::Missing("specversion")),
    };
    let required = |name: &'static str, member: Option<&RawValue>| -> Result<String, EventError> {
        match member {
            Some(raw) => optional_string(name, raw)?
                .map(Cow::into_owned)
                .ok_or(EventError::Missing(name)),
            None => Err(EventError::Missing(name)),
        }
    };
    let optional = |name: &str, member: Option<&RawValue>| -> Result<Option<String>, EventError> {
        match member {
            Some(raw) => Ok(optional_string(name, raw)?.map(Cow::into_owned)),
            None => Ok(None),
        }
    };
    let mut event = Event::new(
        required("id", m.id)?,
        required("source", m.source)?,
        required("type", m.ty)?,
    );
    event.datacontenttype = optional("datacontenttype", m.datacontenttype)?;
    event.subject = optional("subject", m.subject)?;
    event.time = optional("time", m.time)?;
    // The members of the other version are extensions of this one.
    let (schema, base64_data, foreign) = match version {
        SpecVersion::V10 => (
            ("dataschema", m.dataschema),
            false,
            [
                ("schemaurl", m.schemaurl),
                ("datacontentencoding", m.datacontentencoding),
            ],
        ),
        SpecVersion::V03 => {
            let encoding = optional("datacontentencoding", m.datacontentencoding)?;
            let base64 = match encoding.as_deref() {
                None => false,
                Some(e) if e.eq_ignore_ascii_case("base64") => true,
                Some(other) => {
                    return Err(EventError::invalid(
                        "datacontentencoding",
                        format!("unsupported encoding {other:?} (only \"base64\")"),
                    ));
                }
            };
            (
                ("schemaurl", m.schemaurl),
                base64,
                [("dataschema", m.dataschema), ("data_base64", m.data_base64)],
            )
        }
    };
    event.dataschema = optional(schema.0, schema.1)?;

    let data = m.data.filter(|raw| raw.get() != "null");
    let data_base64 = match version {
        SpecVersion::V10 => m.data_base64.filter(|raw| raw.get() != "null"),
        SpecVersion::V03 if base64_data => data,
        SpecVersion::V03 => None,
    };
    event.data = match (data, data_base64) {
        (Some(_), Some(_)) if version == SpecVersion::V10 => {
            return Err(EventError::invalid(
                "data_base64",
                "an event may carry `data` or `data_base64`, not both",
            ));
        }
        (_, Some(raw)) => {
            let member = if version == SpecVersion::V10 {
                "data_base64"
            } else {
                "data"
            };
            let text = string_member(member, raw)?;
            let bytes = BASE64
                .decode(text.as_bytes())
                .map_err(|e| EventError::invalid(member, format!("invalid base64: {e}")))?;
            Some(Bytes::from(bytes))
        }
        (Some(raw), None) => Some(data_bytes(body, raw, event.datacontenttype.as_deref())?),
        (None, None) => None,
    };

    let foreign = foreign
        .into_iter()
        .filter_map(|(name, raw)| Some((name, raw?)));
    for (name, raw) in m
        .others
        .iter()
        .map(|(n, r)| (n.as_ref(), *r))
        .chain(foreign)
    {
        if let Some(value) = extension_value(name, raw)? {
            event.extensions.push((name.to_owned(), value));
        }
    }
    // Extensions in name order: forwarded headers and test expectations stay
    // deterministic. `others` is sorted already, so this only places a
    // member of the other version.
    event.extensions.sort_by(|a, b| a.0.cmp(&b.0));
    event.validate()?;
    Ok((version, event))
}

/// The bytes of a `data` member: a JSON string is its text when the content type
/// is not JSON (the format spec's rule); anything else is the JSON text itself.
fn data_bytes(
    body: &Bytes,
    raw: &RawValue,
    content_type: Option<&str>,
) -> Result<Bytes, EventError> {
    let text = raw.get();
    if text.starts_with('"') && !content_type.is_none_or(is_json_media_type) {
        let s = string_member("data", raw)?;
        return Ok(Bytes::from(s.into_owned()));
    }
    Ok(slice_of(body, text.as_bytes()))
}

/// Zero-copy when `part` lies inside `body` (it does whenever serde borrowed it),
/// a copy otherwise.
fn slice_of(body: &Bytes, part: &[u8]) -> Bytes {
    let start = body.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if p >= start && p + part.len() <= start + body.len() {
        body.slice_ref(part)
    } else {
        Bytes::copy_from_slice(part)
    }
}

/// Whether a media type is JSON: `application/json` or any `+json` suffix.
pub fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "text/json" || essence.ends_with("+json")
}

fn string_member<'a>(name: &str, raw: &'a RawValue) -> Result<Cow<'a, str>, EventError> {
    optional_string(name, raw)?
        .ok_or_else(|| EventError::invalid(name, "must be a string, not null"))
}

fn optional_string<'a>(name: &str, raw: &'a RawValue) -> Result<Option<Cow<'a, str>>, EventError> {
    if raw.get() == "null" {
        return Ok(None);
    }
    let s: Cow<'a, str> = Cow::deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
        .map_err(|_| EventError::invalid(name, format!("must be a string, got {}", raw.get())))?;
    Ok(Some(s))
}

/// An extension's canonical string form. The JSON format allows strings, integers
/// (32-bit, per the type system) and booleans; `null` means absent.
fn extension_value(name: &str, raw: &RawValue) -> Result<Option<String>, EventError> {
    let text = raw.get();
    match text.as_bytes().first() {
        Some(b'"') => Ok(optional_string(name, raw)?.map(Cow::into_owned)),
        Some(b't' | b'f') => Ok(Some(text.to_owned())),
        Some(b'n') => Ok(None),
        Some(b'-' | b'0'..=b'9') => match text.parse::<i32>() {
            Ok(i) => Ok(Some(i.to_string())),
            Err(_) => Err(EventError::invalid(
                name,
                format!("{text} is not a 32-bit integer, the only number type of CloudEvents"),
            )),
        },
        _ => Err(EventError::invalid(
            name,
            "extension values must be strings, integers or booleans",
        )),
    }
}

/// Encodes an event in the structured JSON format.
///
/// JSON data is embedded as is, other text as a string, anything else as
/// `data_base64`.
pub fn encode_structured(event: &Event) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v {
            map.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
        }
    };
    put("specversion", Some(super::SPEC_VERSION));
    put("id", Some(&event.id));
    put("source", Some(&event.source));
    put("type", Some(&event.ty));
    put("datacontenttype", event.datacontenttype.as_deref());
    put("dataschema", event.dataschema.as_deref());
    put("subject", event.subject.as_deref());
    put("time", event.time.as_deref());
    for (k, v) in &event.extensions {
        map.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    if let Some(data) = &event.data {
        let json_type = event
            .datacontenttype
            .as_deref()
            .is_none_or(is_json_media_type);
        let as_json = json_type
            .then(|| serde_json::from_slice::<serde_json::Value>(data).ok())
            .flatten();
        match (as_json, std::str::from_utf8(data)) {
            (Some(v), _) => {
                map.insert("data".into(), v);
            }
            (None, Ok(text)) if !json_type => {
                map.insert("data".into(), serde_json::Value::String(text.to_owned()));
            }
            _ => {
                map.insert(
                    "data_base64".into(),
                    serde_json::Value::String(BASE64.encode(data)),
                );
            }
        }
    }
    serde_json::to_vec(&map).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Result<Event, EventError> {
        decode_structured(&Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn structured_keeps_json_data_bytes() {
        let e = decode(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"a": [1, 2]},"ext":"x","num":5,"flag":true}"#,
        )
        .unwrap();
        assert_eq!(e.data.as_deref(), Some(&br#"{"a": [1, 2]}"#[..]));
        assert_eq!(e.extension("ext"), Some("x"));
        assert_eq!(e.extension("num"), Some("5"));
        assert_eq!(e.extension("flag"), Some("true"));
    }

    #[test]
    fn string_data_with_text_type_is_the_text() {
        let e = decode(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","datacontenttype":"text/plain","data":"h\u00e9llo"}"#,
        )
        .unwrap();
        assert_eq!(e.data.as_deref(), Some("héllo".as_bytes()));
    }

    #[test]
    fn base64_data_is_decoded() {
        let e = decode(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"AAEC"}"#,
        )
        .unwrap();
        assert_eq!(e.data.as_deref(), Some(&[0u8, 1, 2][..]));
    }

    #[test]
    fn data_and_data_base64_together_are_refused() {
        let err = decode(
            r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":1,"data_base64":"AA=="}"#,
        )
        .unwrap_err();
        assert_eq!(err.attribute(), Some("data_base64"));
    }

    #[test]
    fn missing_and_wrongly_typed_attributes_are_named() {
        let err = decode(r#"{"specversion":"1.0","source":"/s","type":"t"}"#).unwrap_err();
        assert_eq!(err, EventError::Missing("id"));
        let err = decode(r#"{"specversion":"1.0","id":7,"source":"/s","type":"t"}"#).unwrap_err();
        assert_eq!(err.attribute(), Some("id"));
        let err = decode(r#"{"specversion":"2.0","id":"1","source":"/s","type":"t"}"#).unwrap_err();
        assert_eq!(err.attribute(), Some("specversion"));
        let err =
            decode(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","ext":{"a":1}}"#)
                .unwrap_err();
        assert_eq!(err.attribute(), Some("ext"));
        let err =
            decode(r#"{"specversion":"1.0","id":"1","source":"/s","type":"t","big":3000000000}"#)
                .unwrap_err();
        assert_eq!(err.attribute(), Some("big"));
    }

    #[test]
    fn version_03_is_converted() {
        let e = decode(
            r#"{"specversion":"0.3","id":"1","source":"/s","type":"t","schemaurl":"https://x/s","datacontentencoding":"base64","data":"aGk="}"#,
        )
        .unwrap();
        assert_eq!(e.dataschema.as_deref(), Some("https://x/s"));
        assert_eq!(e.data.as_deref(), Some(&b"hi"[..]));
        assert!(e.extensions.is_empty());
    }

    #[test]
    fn batch_names_the_failing_index_and_refuses_mixed_versions() {
        let ok = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        let bad = r#"{"specversion":"1.0","id":"","source":"/s","type":"t"}"#;
        let v03 = r#"{"specversion":"0.3","id":"2","source":"/s","type":"t"}"#;
        let body = |s: String| Bytes::from(s);
        assert_eq!(decode_batch(&body("[]".into()), 10).unwrap().len(), 0);
        assert_eq!(
            decode_batch(&body(format!("[{ok},{ok}]")), 10)
                .unwrap()
                .len(),
            2
        );
        let index_and_attribute = |err| match err {
            BatchError::Event { index, error } => (index, error.attribute().map(str::to_owned)),
            other => panic!("{other}"),
        };
        let err = decode_batch(&body(format!("[{ok},{bad}]")), 10).unwrap_err();
        assert_eq!(index_and_attribute(err), (1, Some("id".into())));
        let err = decode_batch(&body(format!("[{ok},{v03}]")), 10).unwrap_err();
        assert_eq!(index_and_attribute(err), (1, Some("specversion".into())));
        assert_eq!(
            decode_batch(&body(format!("[{ok},{ok}]")), 1).unwrap_err(),
            BatchError::TooMany { count: 2, limit: 1 }
        );
        assert!(matches!(
            decode_batch(&body("{}".into()), 1),
            Err(BatchError::Malformed(_))
        ));
    }

    #[test]
    fn members_are_found_by_name_whatever_their_order_escapes_or_repeats() {
        // The last of a repeated member counts; an escaped name is unescaped;
        // extensions come out in name order.
        let e = decode(
            r#"{"zz":"last","type":"t","id":"1","\u0061a":"escaped","source":"/s","id":"2","specversion":"1.0","m":1}"#,
        )
        .unwrap();
        assert_eq!(e.id, "2");
        assert_eq!(e.extension("aa"), Some("escaped"));
        let names: Vec<&str> = e.extensions.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["aa", "m", "zz"]);
        assert!(matches!(decode("[1]"), Err(EventError::Malformed(_))));
    }

    #[test]
    fn batch_errors_name_the_element_and_the_whole_count() {
        let ok = r#"{"specversion":"1.0","id":"1","source":"/s","type":"t"}"#;
        let body = |s: String| Bytes::from(s);
        match decode_batch(&body(format!("[{ok},7,{ok}]")), 10).unwrap_err() {
            BatchError::Event { index, error } => {
                assert_eq!(index, 1);
                assert!(matches!(error, EventError::Malformed(_)), "{error}");
            }
            other => panic!("{other}"),
        }
        // Past the limit the rest is counted, not decoded.
        assert_eq!(
            decode_batch(&body(format!("[{ok},{ok},{ok},[1]]")), 2).unwrap_err(),
            BatchError::TooMany { count: 4, limit: 2 }
        );
        assert_eq!(
            decode_batch(&body(format!("[{ok},{ok}]")), 2)
                .unwrap()
                .len(),
            2
        );
        for malformed in [format!("[{ok}] x"), format!("[{ok}"), String::new()] {
            assert!(
                decode_batch(&body(malformed.clone()), 10).is_err(),
                "{malformed:?} was accepted"
            );
        }
        assert!(matches!(
            decode_batch(&body(format!("[{ok}] x")), 10),
            Err(BatchError::Malformed(_))
        ));
        // Bytes that are not UTF-8, anywhere in the body, refuse it whole.
        let mut latin1 = format!("[{ok}]").into_bytes();
        latin1.insert(latin1.len() - 3, 0xe9);
        assert!(matches!(
            decode_batch(&Bytes::from(latin1.clone()), 10),
            Err(BatchError::Malformed(m)) if m.contains("UTF-8")
        ));
        let single = Bytes::from(latin1[1..latin1.len() - 1].to_vec());
        assert!(matches!(
            decode_structured(&single),
            Err(EventError::Malformed(m)) if m.contains("UTF-8")
        ));
    }

    #[test]
    fn structured_round_trip() {
        let mut e = Event::new("1", "/s", "t");
        e.datacontenttype = Some("application/json".into());
        e.data = Some(Bytes::from_static(br#"{"k":"v"}"#));
        e.set_extension("ext", "x");
        let back = decode_structured(&Bytes::from(encode_structured(&e))).unwrap();
        assert_eq!(back, e);
        e.datacontenttype = Some("application/octet-stream".into());
        e.data = Some(Bytes::from_static(&[0xff, 0]));
        let back = decode_structured(&Bytes::from(encode_structured(&e))).unwrap();
        assert_eq!(back, e);
    }
}
