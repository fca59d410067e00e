//! Example transform plugin: removes personal fields from an event's JSON data
//! before a route forwards it, and drops events marked `private`.
//!
//! Config: `fields`, a comma-separated list of JSON Pointers to remove
//! (default `/customer/email,/customer/phone`).

use router_guest::{Event, HandlerError, config, transform};

fn redact(event: Event) -> Result<Option<Event>, HandlerError> {
    if event.extension("private") == Some("true") {
        return Ok(None);
    }
    let Some(data) = event.data() else {
        return Ok(Some(event));
    };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(data) else {
        // Not JSON: nothing this plugin knows how to redact.
        return Ok(Some(event));
    };
    let fields = config::get_or("fields", "/customer/email,/customer/phone");
    let mut removed = 0;
    for pointer in fields.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((parent, key)) = pointer.rsplit_once('/') else {
            continue;
        };
        if let Some(serde_json::Value::Object(map)) = json.pointer_mut(parent)
            && map.remove(key).is_some()
        {
            removed += 1;
        }
    }
    let content_type = event
        .datacontenttype()
        .unwrap_or("application/json")
        .to_owned();
    let bytes = serde_json::to_vec(&json).map_err(|e| HandlerError::fatal(e.to_string()))?;
    Ok(Some(
        event
            .with_data(bytes, content_type)
            .with_extension("redacted", removed.to_string()),
    ))
}

transform!(redact);
