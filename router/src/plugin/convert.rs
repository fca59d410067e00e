//! The event as it crosses the WIT boundary: lowered from the router's
//! [`Event`] for a call, lifted back from what the guest emitted.

use super::bindings::router::plugin::types as wit;
use crate::event::{Event, EventError, SPEC_VERSION};

/// The extensions as the borrowed pairs the WIT record lowers from (no
/// allocation for an event without extensions).
pub fn wit_extensions(e: &Event) -> Vec<(&str, &str)> {
    e.extensions
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// The event as the guest receives it, borrowed from `e`: lowering copies each
/// field straight into the guest's memory.
pub fn to_wit<'a>(e: &'a Event, extensions: &'a [(&'a str, &'a str)]) -> wit::EventParam<'a> {
    wit::EventParam {
        id: &e.id,
        source: &e.source,
        specversion: SPEC_VERSION,
        type_: &e.ty,
        datacontenttype: e.datacontenttype.as_deref(),
        dataschema: e.dataschema.as_deref(),
        subject: e.subject.as_deref(),
        time: e.time.as_deref(),
        extensions,
        data: e.data.as_deref(),
    }
}

pub(super) fn from_wit(e: wit::EventResult) -> Result<Event, EventError> {
    if !e.specversion.is_empty() && e.specversion != SPEC_VERSION {
        return Err(EventError::invalid(
            "specversion",
            format!("plugins emit CloudEvents 1.0, not {:?}", e.specversion),
        ));
    }
    let event = Event {
        id: e.id,
        source: e.source,
        ty: e.type_,
        datacontenttype: e.datacontenttype,
        dataschema: e.dataschema,
        subject: e.subject,
        time: e.time,
        extensions: e.extensions,
        data: e.data.map(Into::into),
    };
    event.validate()?;
    Ok(event)
}
