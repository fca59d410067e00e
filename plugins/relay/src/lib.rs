//! Test plugin that passes every event on as a new one: type from config
//! `emit_type`, source `/relay`, id `<id>-r`, and the same data. Routing that type
//! back to the relay makes an endless chain, which the router's hop limit must end.
//!
//! Config: `emit_type` (required; without it every event fails fatally).

use router_guest::{Event, HandlerError, config, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let ty = config::require("emit_type")?;
    let next = Event::new(format!("{}-r", event.id()), "/relay", ty).with_data_from(&event);
    Ok(vec![next])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    #[test]
    fn relays_the_data_under_the_configured_type() {
        testing::set_config("emit_type", "test.loop");
        let event = Event::new("e-1", "/test", "test.loop").with_data("x", "text/plain");
        let out = handle(event).expect("relayed");
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].id(), out[0].source(), out[0].ty()),
            ("e-1-r", "/relay", "test.loop")
        );
        assert_eq!(out[0].data(), Some(&b"x"[..]));
        assert_eq!(out[0].datacontenttype(), Some("text/plain"));
    }

    #[test]
    fn missing_emit_type_is_fatal() {
        let error = handle(Event::new("e-1", "/test", "t")).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.message().contains("emit_type"), "{error}");
    }
}
