//! The CloudEvents HTTP protocol binding: content-mode detection, binary mode
//! (`ce-` headers) in both directions, and the header percent-encoding of §3.1.3.2.

use super::{Event, EventError, SPEC_VERSION, SpecVersion};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// The three content modes of the HTTP binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentMode {
    /// Attributes in `ce-` headers, data in the body.
    Binary,
    /// One event in the JSON format (`application/cloudevents+json`).
    Structured,
    /// A JSON array of events (`application/cloudevents-batch+json`).
    Batch,
}

/// Why a request's content mode could not be determined.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// The Content-Type names an event format or media type the router cannot read.
    #[error(
        "unsupported content type {0:?}: expected application/cloudevents+json, application/cloudevents-batch+json, or binary mode with ce- headers"
    )]
    Unsupported(String),
    /// Not a CloudEvent at all: no `ce-` headers and no CloudEvents content type.
    #[error(
        "not a CloudEvent: no ce-specversion header and content type {0:?} is not application/cloudevents+json or application/cloudevents-batch+json"
    )]
    NotAnEvent(String),
}

/// Header characters that must be percent-encoded (§3.1.3.2): space, double quote,
/// percent, controls, and (implicitly, by `utf8_percent_encode`) all non-ASCII.
const HEADER_ENCODE: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'%');

/// Determines the content mode from the headers. Content-Type is matched as a
/// case-insensitive prefix, as the binding requires, before any `ce-` header.
pub fn content_mode(headers: &HeaderMap) -> Result<ContentMode, ModeError> {
    // Compared as bytes, ignoring ASCII case: no copy of the header on the way
    // to an answer; the text is made only for an error.
    let raw = headers
        .get(CONTENT_TYPE)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let shown = || String::from_utf8_lossy(raw).into_owned();
    let essence = raw
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    let starts = |prefix: &[u8]| {
        raw.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    if starts(b"application/cloudevents-batch") {
        return if essence.eq_ignore_ascii_case(b"application/cloudevents-batch+json") {
            Ok(ContentMode::Batch)
        } else {
            Err(ModeError::Unsupported(shown()))
        };
    }
    if starts(b"application/cloudevents") {
        return if essence.eq_ignore_ascii_case(b"application/cloudevents+json") {
            Ok(ContentMode::Structured)
        } else {
            Err(ModeError::Unsupported(shown()))
        };
    }
    if headers.keys().any(|k| k.as_str().starts_with("ce-")) {
        Ok(ContentMode::Binary)
    } else {
        Err(ModeError::NotAnEvent(shown()))
    }
}

/// Decodes a binary-mode event: attributes from `ce-` headers (percent-decoded),
/// `datacontenttype` from Content-Type, data from the body.
pub fn decode_binary(headers: &HeaderMap, body: Bytes) -> Result<Event, EventError> {
    let mut specversion = None;
    let mut event = Event::new(String::new(), String::new(), String::new());
    let (mut id, mut source, mut ty) = (None, None, None);
    // Each name once with its value: when no name repeats (there are as many
    // values as names) the values are read in the same pass, without a lookup
    // per header.
    let repeated = headers.len() != headers.keys_len();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if repeated && headers.get_all(name).iter().nth(1).is_some() {
            return Err(EventError::invalid(
                name.as_str(),
                "the header appears more than once",
            ));
        }
        let value = percent_decode_header(name.as_str(), value.as_bytes())?;
        match attr {
            "specversion" => specversion = Some(SpecVersion::parse(&value)?),
            "id" => id = Some(value),
            "source" => source = Some(value),
            "type" => ty = Some(value),
            "datacontenttype" => {
                return Err(EventError::invalid(
                    "ce-datacontenttype",
                    "binary mode carries datacontenttype in Content-Type; the ce-datacontenttype header is not allowed",
                ));
            }
            "dataschema" | "schemaurl" => event.dataschema = Some(value),
            "subject" => event.subject = Some(value),
            "time" => event.time = Some(value),
            "" => return Err(EventError::invalid("ce-", "empty attribute name")),
            ext => event.extensions.push((ext.to_owned(), value)),
        }
    }
    if specversion.is_none() {
        return Err(EventError::Missing("specversion"));
    }
    event.id = id.ok_or(EventError::Missing("id"))?;
    event.source = source.ok_or(EventError::Missing("source"))?;
    event.ty = ty.ok_or(EventError::Missing("type"))?;
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct
            .to_str()
            .map_err(|_| EventError::invalid("content-type", "not visible ASCII"))?;
        event.datacontenttype = Some(ct.to_owned());
    }
    if !body.is_empty() {
        event.data = Some(body);
    }
    event.validate()?;
    Ok(event)
}

/// Strict percent-decoding of a header value: every `%` must start a two-digit
/// hex escape, and the decoded bytes must be UTF-8 (which also rejects overlong
/// encodings and surrogates).
pub fn percent_decode_header(header: &str, raw: &[u8]) -> Result<String, EventError> {
    if !raw.contains(&b'%') {
        return String::from_utf8(raw.to_vec())
            .map_err(|_| EventError::invalid(header, "non-ASCII bytes must be percent-encoded"));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    EventError::invalid(header, format!("invalid percent-encoding at byte {i}"))
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        EventError::invalid(
            header,
            "percent-encoded bytes are not valid UTF-8 (overlong or truncated sequence)",
        )
    })
}

/// Encodes an event in binary mode: the headers to send and the body.
pub fn encode_binary(event: &Event) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::with_capacity(6 + event.extensions.len());
    let mut put = |name: &str, value: &str| {
        let encoded = utf8_percent_encode(value, HEADER_ENCODE).to_string();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(format!("ce-{name}").as_bytes()),
            HeaderValue::from_str(&encoded),
        ) {
            headers.insert(name, value);
        }
    };
    put("specversion", SPEC_VERSION);
    put("id", &event.id);
    put("source", &event.source);
    put("type", &event.ty);
    for (name, value) in [
        ("dataschema", &event.dataschema),
        ("subject", &event.subject),
        ("time", &event.time),
    ] {
        if let Some(v) = value {
            put(name, v);
        }
    }
    for (name, value) in &event.extensions {
        put(name, value);
    }
    if let Some(ct) = event
        .datacontenttype
        .as_deref()
        .and_then(|ct| HeaderValue::from_str(ct).ok())
    {
        headers.insert(CONTENT_TYPE, ct);
    }
    (headers, event.data.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const REQUIRED: [(&str, &str); 4] = [
        ("ce-specversion", "1.0"),
        ("ce-id", "1"),
        ("ce-source", "/s"),
        ("ce-type", "t"),
    ];

    #[test]
    fn content_mode_is_detected_by_case_insensitive_prefix() {
        let mode = |ct: &str| content_mode(&headers(&[("content-type", ct)]));
        assert_eq!(
            mode("Application/CloudEvents+JSON; charset=utf-8"),
            Ok(ContentMode::Structured)
        );
        assert_eq!(
            mode("application/cloudevents-batch+json"),
            Ok(ContentMode::Batch)
        );
        assert!(matches!(
            mode("application/cloudevents+avro"),
            Err(ModeError::Unsupported(_))
        ));
        assert!(matches!(mode("text/plain"), Err(ModeError::NotAnEvent(_))));
        let mut h = headers(&REQUIRED);
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(content_mode(&h), Ok(ContentMode::Binary));
    }

    #[test]
    fn binary_mode_percent_decodes_and_takes_content_type() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("ce-subject", "caf%C3%A9%20au%20lait"));
        pairs.push(("ce-myext", "a%25b"));
        pairs.push(("content-type", "text/plain"));
        let e = decode_binary(&headers(&pairs), Bytes::from_static(b"hi")).unwrap();
        assert_eq!(e.subject.as_deref(), Some("café au lait"));
        assert_eq!(e.extension("myext"), Some("a%b"));
        assert_eq!(e.datacontenttype.as_deref(), Some("text/plain"));
        assert_eq!(e.data.as_deref(), Some(&b"hi"[..]));
    }

    #[test]
    fn binary_mode_rejects_bad_encodings_and_forbidden_headers() {
        for (header, value) in [
            ("ce-subject", "bad%2"),
            ("ce-subject", "bad%zz"),
            ("ce-subject", "%C0%AF"), // overlong "/"
            ("ce-datacontenttype", "text/plain"),
        ] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((header, value));
            let err = decode_binary(&headers(&pairs), Bytes::new()).unwrap_err();
            assert_eq!(err.attribute(), Some(header), "{header}: {value}");
        }
        let err = decode_binary(&headers(&REQUIRED[1..]), Bytes::new()).unwrap_err();
        assert_eq!(err, EventError::Missing("specversion"));
    }

    #[test]
    fn binary_round_trip_encodes_what_must_be_encoded() {
        let mut e = Event::new("1", "/s", "t");
        e.subject = Some("\"50% off\" ünï".into());
        e.set_extension("traceid", "abc");
        e.datacontenttype = Some("application/json".into());
        e.data = Some(Bytes::from_static(b"{}"));
        let (h, body) = encode_binary(&e);
        assert_eq!(h["ce-subject"], "%2250%25%20off%22%20%C3%BCn%C3%AF");
        assert_eq!(decode_binary(&h, body).unwrap(), e);
    }
}
