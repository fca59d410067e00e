//! Test plugin that misbehaves on request: data `panic` panics (the instance
//! traps), data `loop` never returns; anything else is handled quietly.

use router_guest::{Event, HandlerError, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.data() {
        Some(b"panic") => panic!("asked to panic by event {}", event.id()),
        Some(b"loop") => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => Ok(Vec::new()),
    }
}

handler!(handle);
