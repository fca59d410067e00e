//! Test plugin that emits one event of the configured `emit_type` per event,
//! with the same data: routed back to itself, it makes a chain.

use router_guest::{Event, HandlerError, config, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let ty = config::get("emit_type")
        .ok_or_else(|| HandlerError::fatal("the relay plugin needs config `emit_type`"))?;
    let mut next = Event::new(format!("{}-r", event.id()), "/relay", ty);
    if let Some(data) = event.data() {
        let content_type = event
            .datacontenttype()
            .unwrap_or("application/octet-stream");
        next = next.with_data(data, content_type);
    }
    Ok(vec![next])
}

handler!(handle);
