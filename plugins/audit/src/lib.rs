//! Writes one log line per event: an audit trail in the router's log.

use router_guest::{Event, HandlerError, handler, log};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    log::info(&format!(
        "audit: type={} source={} id={} bytes={}",
        event.ty(),
        event.source(),
        event.id(),
        event.data().map_or(0, <[u8]>::len)
    ));
    Ok(Vec::new())
}

handler!(handle);
