//! Reading Redis's stream replies: entries, flat maps, and stream ids.

use crate::event::Event;
use crate::event::json::decode_structured;
use redis::Value;

/// One entry read from a stream.
pub(super) struct Entry {
    pub(super) stream: String,
    pub(super) id: String,
    pub(super) event: Result<Event, Undecodable>,
}

/// An entry's body that is no valid event: why, and the bytes as they were.
#[derive(Debug)]
pub(super) struct Undecodable {
    pub(super) reason: String,
    pub(super) raw: Vec<u8>,
}

/// The entries of an `XREADGROUP` answer: `[[stream, [entry ...]] ...]` (a map in
/// RESP3), or nil when the read timed out.
pub(super) fn read_entries(value: &Value) -> Vec<Entry> {
    let lists: Vec<(String, &Value)> = match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => Some((text(pair.first()?)?, pair.get(1)?)),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams
            .iter()
            .filter_map(|(name, list)| Some((text(name)?, list)))
            .collect(),
        _ => Vec::new(),
    };
    lists
        .into_iter()
        .flat_map(|(stream, list)| entry_list(list, &stream))
        .collect()
}

/// A list of entries, `[[id, [field, value ...]] ...]` (as in `XAUTOCLAIM`).
pub(super) fn entry_list(value: &Value, stream: &str) -> Vec<Entry> {
    let Value::Array(list) = value else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let fields: &[Value] = match pair.get(1) {
                Some(Value::Array(fields)) => fields,
                // An entry deleted while pending comes back without fields.
                _ => &[],
            };
            // Without an `event` field, the fields it has are what is kept.
            let mut event = Err(Undecodable {
                reason: "the entry has no `event` field".to_owned(),
                raw: serde_json::to_vec(&fields_of(fields)).unwrap_or_default(),
            });
            for kv in fields.chunks(2) {
                if let [k, v] = kv
                    && text(k).as_deref() == Some("event")
                {
                    let bytes = match v {
                        Value::BulkString(b) => bytes::Bytes::from(b.clone()),
                        other => bytes::Bytes::from(text(other).unwrap_or_default()),
                    };
                    event = decode_structured(&bytes).map_err(|e| Undecodable {
                        reason: format!("{e}: {}", String::from_utf8_lossy(&bytes)),
                        raw: bytes.to_vec(),
                    });
                }
            }
            Some(Entry {
                stream: stream.to_owned(),
                id,
                event,
            })
        })
        .collect()
}

/// An entry's fields as a JSON object of strings.
fn fields_of(fields: &[Value]) -> serde_json::Map<String, serde_json::Value> {
    fields
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((text(k)?, text(v).unwrap_or_default().into())),
            _ => None,
        })
        .collect()
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A flat `[key, value, ...]` reply (or a map) as string pairs.
pub(super) fn map(value: &Value) -> std::collections::HashMap<String, String> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?).unwrap_or_default())))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v).unwrap_or_default())))
            .collect(),
        _ => Default::default(),
    }
}

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct StreamId(u64, u64);

impl StreamId {
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The smallest id after this one.
    pub(super) fn next(self) -> Self {
        match self.1.checked_add(1) {
            Some(seq) => Self(self.0, seq),
            None => Self(self.0.saturating_add(1), 0),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::json::encode_structured;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_read_from_both_answer_shapes() {
        let event = String::from_utf8(encode_structured(&Event::new("e-1", "/s", "t"))).unwrap();
        let entry = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("event"), bulk(&event)]),
        ]);
        let read = Value::Array(vec![Value::Array(vec![
            bulk("router:events"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let got = read_entries(&read);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "5-1");
        assert_eq!(got[0].event.as_ref().unwrap().id, "e-1");
        let claimed = Value::Array(vec![entry]);
        assert_eq!(entry_list(&claimed, "s")[0].id, "5-1");
        let deleted = Value::Array(vec![Value::Array(vec![bulk("6-0"), Value::Nil])]);
        assert!(entry_list(&deleted, "s")[0].event.is_err());
        assert!(read_entries(&Value::Nil).is_empty());
    }

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("5-9").unwrap();
        assert!(a < StreamId::parse("6-0").unwrap());
        assert_eq!(a.next().to_string(), "5-10");
        assert_eq!(StreamId(5, u64::MAX).next(), StreamId(6, 0));
        assert_eq!(StreamId::parse("nope"), None);
    }
}
