//! Enriches every event: emits a copy typed `<type>.enriched` carrying the
//! extensions `enrichedby` and `region` from the plugin's configuration.

use router_guest::{Event, HandlerError, config, handler};

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let enriched = event
        .derive(
            format!("{}-enriched", event.id()),
            format!("{}.enriched", event.ty()),
        )
        .with_extension("enrichedby", config::get_or("name", "enricher"))
        .with_extension("region", config::get_or("region", "unknown"));
    Ok(vec![enriched])
}

handler!(handle);
