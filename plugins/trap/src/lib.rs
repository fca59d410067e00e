//! Test plugin that misbehaves on request, so the router's tests can check that a
//! broken plugin costs one event, not the router:
//!
//! - data `panic`: panics, so the instance traps;
//! - data `loop`: never returns, so only the router's time limit ends the call;
//! - anything else: emits nothing.

use router_guest::{Event, HandlerError, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.data() {
        Some(b"panic") => panic!("asked to panic by event {}", event.id()),
        Some(b"loop") => spin(),
        _ => Ok(vec![]),
    }
}

/// Never returns: only the router's per-call time limit can stop it.
#[allow(
    clippy::empty_loop,
    reason = "burning CPU until interrupted is the point"
)]
fn spin() -> ! {
    loop {}
}

handler!(handle);
