//! Test plugin that fails on request: data `retry` is a retryable error, data
//! `fatal` a fatal one; anything else succeeds.

use router_guest::{Event, HandlerError, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.data() {
        Some(b"retry") => Err(HandlerError::retryable("asked to fail (retryable)")),
        Some(b"fatal") => Err(HandlerError::fatal("asked to fail (fatal)")),
        _ => Ok(Vec::new()),
    }
}

handler!(handle);
