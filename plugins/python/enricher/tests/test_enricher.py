"""The Rust plugin's unit test (plugins/enricher/src/lib.rs), ported."""

from enricher import handle
from router_guest import Event, testing


def test_emits_an_enriched_copy():
    testing.set_config("region", "eu-west-1")
    event = (
        Event("e-1", "/shop", "com.example.order.created")
        .with_subject("o-1")
        .with_extension("tenant", "acme")
        .with_data('{"orderId":"o-1"}', "application/json")
    )
    original = event.copy()

    out = handle(event)

    assert len(out) == 1
    enriched = out[0]
    assert enriched.id == "e-1-enriched"
    assert enriched.type == "com.example.order.created.enriched"
    assert enriched.extension("enrichedby") == "enricher"
    assert enriched.extension("region") == "eu-west-1"
    assert enriched.extensions() == [("tenant", "acme"), ("enrichedby", "enricher"), ("region", "eu-west-1")]
    assert enriched.subject == original.subject
    assert enriched.source == original.source
    assert enriched.data == original.data
    assert enriched.datacontenttype == original.datacontenttype


def test_an_existing_region_is_replaced_and_the_name_configured():
    testing.set_config("name", "bench")
    out = handle(Event("e-1", "/s", "t").with_extension("region", "internal"))
    assert out[0].extensions() == [("region", "unknown"), ("enrichedby", "bench")]
