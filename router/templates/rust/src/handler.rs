//! {{name}}: a router handler. For every `com.example.greeting.requested` event
//! whose data is `{"name": "..."}`, it emits `com.example.greeted` with a greeting
//! and how many times that name has been greeted (kept in the plugin's kv store).
//!
//! Config: `salutation` (default `Hello`).

use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};

const REQUESTED: &str = "com.example.greeting.requested";
const GREETED: &str = "com.example.greeted";

#[derive(Deserialize)]
struct Request {
    name: String,
}

#[derive(Serialize)]
struct Greeted {
    greeting: String,
    count: i64,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != REQUESTED {
        return Ok(vec![]);
    }
    // Data that is not such JSON is a fatal error naming the event and the problem.
    let request: Request = event.data_json()?;
    let salutation = config::get_or("salutation", "Hello");
    // A kv error converts into a HandlerError: retryable when the store is down.
    let count = kv::increment(&format!("greeted:{}", request.name), 1)?;
    log::info(format!("greeting {} (time {count})", request.name));
    let reply = Event::new(format!("{}-greeted", event.id()), "/{{name}}", GREETED)
        .with_subject(request.name.clone())
        .with_json_data(&Greeted {
            greeting: format!("{salutation}, {}!", request.name),
            count,
        })?;
    Ok(vec![reply])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::{Value, json};
    use router_guest::testing;

    fn request(name: &str) -> Event {
        Event::new("e-1", "/test", REQUESTED)
            .with_json_data(&json!({ "name": name }))
            .expect("JSON")
    }

    #[test]
    fn greets_with_the_configured_salutation_and_counts() {
        testing::clear_kv();
        testing::set_config("salutation", "Bonjour");
        let first = handle(request("Ada")).expect("handled");
        let again = handle(request("Ada")).expect("handled");
        assert_eq!(first.len(), 1);
        assert_eq!((first[0].id(), first[0].ty()), ("e-1-greeted", GREETED));
        assert_eq!(first[0].subject(), Some("Ada"));
        let data: Value = again[0].data_json().expect("JSON");
        assert_eq!(data, json!({ "greeting": "Bonjour, Ada!", "count": 2 }));
        testing::clear_config();
    }

    #[test]
    fn data_that_is_not_a_request_is_fatal() {
        let event = Event::new("e-1", "/test", REQUESTED).with_data("nope", "text/plain");
        let error = handle(event).unwrap_err();
        assert!(!error.is_retryable(), "{error}");
    }

    #[test]
    fn ignores_other_types() {
        assert_eq!(
            handle(Event::new("e-1", "/test", "com.example.other")),
            Ok(vec![])
        );
    }
}
