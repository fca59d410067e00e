//! Test plugin built against the frozen `router:plugin@0.1.0` (`wit/v0.1.0/`)
//! with wit-bindgen directly, as a plugin compiled before 0.2.0 was: the router
//! must keep loading and running it, with `kv-error` a string.
//!
//! Data `count` increments the key `counter` and emits `legacy.counted`, its id
//! ending in the new value; data `not-integer` increments a key holding `abc` and
//! returns the store's message as a retryable error, as the 0.1.0 SDK did.

wit_bindgen::generate!({
    path: "../../wit/v0.1.0",
    world: "handler",
});

use router::plugin::kv;
use router::plugin::log::{Level, log};

struct Legacy;

impl Guest for Legacy {
    fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
        let counted = match event.data.as_deref() {
            Some(b"not-integer") => {
                kv::set("word", b"abc", None).map_err(HandlerError::Retryable)?;
                kv::increment("word", 1)
            }
            _ => kv::increment("counter", 1),
        }
        .map_err(HandlerError::Retryable)?;
        log(Level::Info, &format!("counted {counted}"));
        Ok(vec![Event {
            id: format!("{}-counted-{counted}", event.id),
            type_: "legacy.counted".to_owned(),
            data: Some(counted.to_string().into_bytes()),
            datacontenttype: Some("text/plain".to_owned()),
            ..event
        }])
    }
}

export!(Legacy);
