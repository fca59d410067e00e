//! {{name}}: a router transform (a `wasm` step of a route's `transform`). It drops
//! events marked private (extension `private` = `true`) and stamps every other
//! event with the extension `stampedby`.
//!
//! Config: `stamp`, the value of `stampedby` (default `{{name}}`).

use router_guest::{Event, HandlerError, config, transform};

fn stamp(event: Event) -> Result<Option<Event>, HandlerError> {
    if event.extension("private") == Some("true") {
        return Ok(None);
    }
    let stamp = config::get_or("stamp", "{{name}}");
    Ok(Some(event.with_extension("stampedby", stamp)))
}

transform!(stamp);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    #[test]
    fn stamps_an_event_with_the_configured_value() {
        testing::set_config("stamp", "edge-1");
        let event = stamp(Event::new("e-1", "/test", "com.example.thing"))
            .expect("transformed")
            .expect("kept");
        assert_eq!(event.extension("stampedby"), Some("edge-1"));
        assert_eq!(event.id(), "e-1");
        testing::clear_config();
    }

    #[test]
    fn drops_a_private_event() {
        let event =
            Event::new("e-1", "/test", "com.example.thing").with_extension("private", "true");
        assert_eq!(stamp(event), Ok(None));
    }
}
