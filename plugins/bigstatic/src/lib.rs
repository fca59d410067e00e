//! Test plugin whose component starts with about 96 MiB of linear memory, for the
//! router's check that a component over its `memory_limit` is refused at load.

use router_guest::{Event, HandlerError, handler};
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering};

/// Zero-initialised and mutable, so it lives in `.bss`: no bytes in the file,
/// but the module's initial memory must hold it.
static BUFFER: [AtomicU8; 96 * 1024 * 1024] = [const { AtomicU8::new(0) }; 96 * 1024 * 1024];

fn handle(_event: Event) -> Result<Vec<Event>, HandlerError> {
    BUFFER[black_box(12345)].fetch_add(1, Ordering::Relaxed);
    Ok(vec![])
}

handler!(handle);
