//! Test plugin that fails on request, so the router's tests can check the failure
//! paths: data `retry` returns a retryable error, data `fatal` a fatal one, data
//! `flaky:N` a retryable error on the first N calls for an event id (counted per
//! instance: give the plugin one instance) and success after; anything else
//! succeeds and emits nothing.

use router_guest::{Event, HandlerError, handler};
use std::collections::HashMap;
use std::sync::Mutex;

/// Calls so far per event id, for `flaky:N`.
static CALLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if let Some(n) = event
        .data()
        .and_then(|d| d.strip_prefix(b"flaky:"))
        .and_then(|n| std::str::from_utf8(n).ok()?.parse::<u32>().ok())
    {
        let mut calls = CALLS.lock().unwrap_or_else(|e| e.into_inner());
        let count = calls
            .get_or_insert_with(HashMap::new)
            .entry(event.id().to_owned())
            .or_insert(0);
        *count += 1;
        return if *count <= n {
            Err(HandlerError::retryable(format!(
                "call {count} of event {} fails (flaky:{n})",
                event.id()
            )))
        } else {
            Ok(vec![])
        };
    }
    match event.data() {
        Some(b"retry") => Err(HandlerError::retryable(format!(
            "asked to fail (retryable) by event {}",
            event.id()
        ))),
        Some(b"fatal") => Err(HandlerError::fatal(format!(
            "asked to fail (fatal) by event {}",
            event.id()
        ))),
        _ => Ok(vec![]),
    }
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fails_as_asked() {
        let event =
            |data: &str| Event::new("e-1", "/test", "test.fail").with_data(data, "text/plain");
        assert!(handle(event("retry")).is_err_and(|e| e.is_retryable()));
        assert!(handle(event("fatal")).is_err_and(|e| !e.is_retryable()));
        assert_eq!(handle(event("fine")), Ok(vec![]));
        let flaky = Event::new("e-2", "/test", "test.fail").with_data("flaky:2", "text/plain");
        assert!(handle(flaky.clone()).is_err_and(|e| e.is_retryable()));
        assert!(handle(flaky.clone()).is_err());
        assert_eq!(handle(flaky), Ok(vec![]));
    }
}
