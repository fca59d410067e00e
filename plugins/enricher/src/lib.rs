//! Enriches every event: emits a copy typed `<type>.enriched`, with id
//! `<id>-enriched`, that carries two more extension attributes. Everything else
//! (source, subject, time, other extensions, data and its content type) is kept.
//!
//! Config: `name`, the value of extension `enrichedby` (default `enricher`), and
//! `region`, the value of extension `region` (default `unknown`).

use router_guest::{Event, HandlerError, config, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let id = format!("{}-enriched", event.id());
    let ty = format!("{}.enriched", event.ty());
    // The event is ours: renamed in place, its data and attributes are moved
    // into the copy rather than cloned (`derive` would clone them).
    let enriched = event
        .with_id(id)
        .with_type(ty)
        .with_extension("enrichedby", config::get_or("name", "enricher"))
        .with_extension("region", config::get_or("region", "unknown"));
    Ok(vec![enriched])
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    #[test]
    fn emits_an_enriched_copy() {
        testing::set_config("region", "eu-west-1");
        let event = Event::new("e-1", "/shop", "com.example.order.created")
            .with_subject("o-1")
            .with_data(r#"{"orderId":"o-1"}"#, "application/json");

        let out = handle(event.clone()).expect("handled");

        assert_eq!(out.len(), 1);
        let enriched = &out[0];
        assert_eq!(enriched.id(), "e-1-enriched");
        assert_eq!(enriched.ty(), "com.example.order.created.enriched");
        assert_eq!(enriched.extension("enrichedby"), Some("enricher"));
        assert_eq!(enriched.extension("region"), Some("eu-west-1"));
        assert_eq!(enriched.subject(), event.subject());
        assert_eq!(enriched.data(), event.data());
        assert_eq!(enriched.datacontenttype(), event.datacontenttype());
    }
}
