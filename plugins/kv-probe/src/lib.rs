//! Test plugin for the `kv-error` variant of `router:plugin@0.2.0`: the data names
//! a store call that fails in a known way, and the handler tells the cases apart.
//!
//! - data `bad-key`: `get` with a key over 1024 bytes (`InvalidKey`);
//! - data `not-integer`: `increment` of a value that is not an integer
//!   (`InvalidValue`);
//! - anything else: `get` of a short key (`Unavailable` when the store is down).
//!
//! For type `test.kv` the plugin emits one event whose type names the outcome
//! (`kv.ok`, `kv.invalid-key`, `kv.invalid-value`, `kv.quota-exceeded`,
//! `kv.unavailable`) with an extension `retryable`; for any other type it returns
//! the error with `?`, so the router sees what the SDK makes of it.

use router_guest::kv::{self, KvError};
use router_guest::{Event, HandlerError, handler};

fn call(data: &[u8]) -> Result<(), KvError> {
    match data {
        b"bad-key" => kv::get(&"k".repeat(2000)).map(drop),
        b"not-integer" => {
            kv::set("word", b"abc", None)?;
            kv::increment("word", 1).map(drop)
        }
        _ => kv::get("key").map(drop),
    }
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let outcome = call(event.data().unwrap_or_default());
    if event.ty() != "test.kv" {
        outcome?;
        return Ok(vec![]);
    }
    let (case, retryable) = match &outcome {
        Ok(()) => ("ok", false),
        Err(e @ KvError::InvalidKey(_)) => ("invalid-key", e.is_retryable()),
        Err(e @ KvError::InvalidValue(_)) => ("invalid-value", e.is_retryable()),
        Err(e @ KvError::QuotaExceeded(_)) => ("quota-exceeded", e.is_retryable()),
        Err(e @ KvError::Unavailable(_)) => ("unavailable", e.is_retryable()),
    };
    let id = format!("{}-{case}", event.id());
    Ok(vec![
        event
            .with_id(id)
            .with_type(format!("kv.{case}"))
            .with_extension("retryable", retryable.to_string()),
    ])
}

handler!(handle);
