//! Test plugin that fails on request, so the router's tests can check both
//! failure paths: data `retry` returns a retryable error, data `fatal` a fatal
//! one, anything else succeeds and emits nothing.

use router_guest::{Event, HandlerError, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
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
    }
}
