//! The read side of the broker example (CQRS): a read model of the order flow,
//! built in the plugin's key-value store from the events the services publish,
//! and a query that answers from it without asking any service.
//!
//! Every fact of a configured type (`order.placed`, `invoice.issued`,
//! `shipment.dispatched` by default) moves its order to a stage (`placed`,
//! `invoiced`, `shipped`) and counts one event of its type. A
//! `readmodel.query` event with data `{"orderId": "o-1"}` is answered by a
//! `readmodel.answer` event: the order's status (its furthest stage, whatever the
//! order in which the facts arrived), the id of the event behind every stage it
//! reached, and the counts per type. Without an `orderId` the answer has the
//! counts only. In memory mode the answer is in the query's HTTP response.
//!
//! Idempotent: a fact is recorded under a key of its own (setting it again
//! changes nothing), and it is counted once per (`source`, `id`), claimed with an
//! atomic increment, so a redelivered event counts nothing twice. The answer's id
//! derives from the query's.
//!
//! Config: `stages`, the facts and their stages in order
//! (`TYPE=STAGE,TYPE=STAGE,...`; default
//! `order.placed=placed,invoice.issued=invoiced,shipment.dispatched=shipped`);
//! `query_type` (default `readmodel.query`); `answer_type` (default
//! `readmodel.answer`); `source`, the answers' source (default `/readmodel`).
//!
//! Keys: `order:ORDER:STAGE` (the id of the event that reached the stage),
//! `count:TYPE` (events counted), `seen:SOURCE:ID` (claims, kept for a day).

use router_guest::serde_json::{Map, Value, json};
use router_guest::{Event, HandlerError, config, handler, kv};
use serde::Deserialize;

/// The stages of an order unless the config says otherwise.
const DEFAULT_STAGES: &str =
    "order.placed=placed,invoice.issued=invoiced,shipment.dispatched=shipped";
/// How long a counted (source, id) is remembered: longer than any redelivery.
const SEEN_FOR: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// One configured fact: events of type `ty` move their order to `stage`.
struct Stage {
    ty: String,
    stage: String,
}

/// The part of a fact this plugin reads; other fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fact {
    order_id: String,
}

/// A query: one order, or (without `orderId`) the totals only.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Query {
    #[serde(default)]
    order_id: Option<String>,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    let stages = stages()?;
    if event.ty() == config::get_or("query_type", "readmodel.query") {
        return Ok(vec![answer(&event, &stages)?]);
    }
    match stages.iter().find(|s| s.ty == event.ty()) {
        Some(stage) => record(&event, stage).map(|()| vec![]),
        // Routes decide what reaches the plugin: another type is not a fault.
        None => Ok(vec![]),
    }
}

/// The configured stages, in order; a malformed list is a fatal error naming it.
fn stages() -> Result<Vec<Stage>, HandlerError> {
    let text = config::get_or("stages", DEFAULT_STAGES);
    text.split(',')
        .map(|pair| match pair.trim().split_once('=') {
            Some((ty, stage)) if !ty.trim().is_empty() && !stage.trim().is_empty() => Ok(Stage {
                ty: ty.trim().to_owned(),
                stage: stage.trim().to_owned(),
            }),
            _ => Err(HandlerError::fatal(format!(
                "plugin config: stages {text:?}: {pair:?} is not TYPE=STAGE"
            ))),
        })
        .collect()
}

/// Records a fact: its order reached `stage`, and one more event of its type.
fn record(event: &Event, stage: &Stage) -> Result<(), HandlerError> {
    let fact: Fact = event.data_json()?;
    if fact.order_id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "{} event {} has an empty orderId",
            event.ty(),
            event.id()
        )));
    }
    // Setting the same key to the same value again is harmless: no claim needed.
    kv::set(
        &stage_key(&fact.order_id, &stage.stage),
        event.id().as_bytes(),
        None,
    )?;
    // Counting is not idempotent, so each (source, id) claims its count first.
    // The increment is atomic: of two concurrent deliveries only one sees 1.
    let seen = format!("seen:{}:{}", event.source(), event.id());
    if kv::increment(&seen, 1)? == 1 {
        if let Err(e) = kv::increment(&count_key(&stage.ty), 1) {
            // Give the claim back so that the retry counts the event.
            let _ = kv::delete(&seen);
            return Err(e.into());
        }
        // The claim expires, so that the store does not grow without end.
        kv::set(&seen, b"1", Some(SEEN_FOR))?;
    }
    Ok(())
}

/// The answer to a query, from the read model alone.
fn answer(query_event: &Event, stages: &[Stage]) -> Result<Event, HandlerError> {
    let query: Query = match query_event.data() {
        None => Query::default(),
        Some(_) => query_event.data_json()?,
    };
    let mut counts = Map::new();
    for stage in stages {
        counts.insert(stage.ty.clone(), json!(count(&stage.ty)?));
    }
    let source = config::get_or("source", "/readmodel");
    let answer_type = config::get_or("answer_type", "readmodel.answer");
    let id = format!("{}-answer", query_event.id());
    let Some(order_id) = query.order_id else {
        return Event::new(id, source, answer_type)
            .with_subject("totals")
            .with_json_data(&json!({ "counts": counts }));
    };
    let mut reached = Map::new();
    let mut status = Value::Null;
    // Stages in their configured order: the last one reached is the status,
    // even when its fact arrived before an earlier stage's.
    for stage in stages {
        if let Some(by) = kv::get(&stage_key(&order_id, &stage.stage))? {
            let by = String::from_utf8_lossy(&by).into_owned();
            reached.insert(stage.stage.clone(), json!(by));
            status = json!(stage.stage);
        }
    }
    Event::new(id, source, answer_type)
        .with_subject(order_id.clone())
        .with_json_data(&json!({
            "orderId": order_id,
            "status": status,
            "stages": reached,
            "counts": counts,
        }))
}

fn stage_key(order_id: &str, stage: &str) -> String {
    format!("order:{order_id}:{stage}")
}

fn count_key(ty: &str) -> String {
    format!("count:{ty}")
}

/// Events of type `ty` counted so far.
fn count(ty: &str) -> Result<i64, HandlerError> {
    match kv::get(&count_key(ty))? {
        None => Ok(0),
        Some(bytes) => String::from_utf8_lossy(&bytes)
            .parse()
            .map_err(|_| HandlerError::fatal(format!("kv: the count of {ty} is not an integer"))),
    }
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    fn fact(id: &str, source: &str, ty: &str, order: &str) -> Event {
        Event::new(id, source, ty)
            .with_json_data(&json!({ "orderId": order, "seq": 1 }))
            .expect("JSON")
    }

    fn ask(id: &str, data: Option<Value>) -> (Event, Value) {
        let mut query = Event::new(id, "/test", "readmodel.query");
        if let Some(data) = data {
            query = query.with_json_data(&data).expect("JSON");
        }
        let mut out = handle(query).expect("answered");
        assert_eq!(out.len(), 1, "one answer");
        let answer = out.remove(0);
        let data = answer.data_json().expect("JSON answer");
        (answer, data)
    }

    #[test]
    fn an_order_moves_through_its_stages_and_the_query_answers_from_kv() {
        testing::clear_kv();
        testing::clear_config();
        let facts = [
            fact("orders-1", "/services/orders", "order.placed", "o-1"),
            fact("orders-2", "/services/orders", "order.placed", "o-2"),
            fact("billing-1", "/services/billing", "invoice.issued", "o-1"),
        ];
        for event in facts {
            assert_eq!(handle(event), Ok(vec![]), "facts emit nothing");
        }
        let (answer, data) = ask("q-1", Some(json!({ "orderId": "o-1" })));
        assert_eq!(
            (answer.id(), answer.source(), answer.ty(), answer.subject()),
            ("q-1-answer", "/readmodel", "readmodel.answer", Some("o-1"))
        );
        assert_eq!(
            data,
            json!({
                "orderId": "o-1",
                "status": "invoiced",
                "stages": { "placed": "orders-1", "invoiced": "billing-1" },
                "counts": { "order.placed": 2, "invoice.issued": 1, "shipment.dispatched": 0 },
            })
        );
        let (_, other) = ask("q-2", Some(json!({ "orderId": "o-2" })));
        assert_eq!(other["status"], "placed");
    }

    #[test]
    fn a_redelivered_fact_counts_once() {
        testing::clear_kv();
        testing::clear_config();
        for _ in 0..3 {
            let event = fact("orders-7", "/services/orders", "order.placed", "o-7");
            assert_eq!(handle(event), Ok(vec![]));
        }
        // The same id from another source is another event.
        let event = fact("orders-7", "/services/elsewhere", "order.placed", "o-8");
        assert_eq!(handle(event), Ok(vec![]));
        let (_, data) = ask("q-1", None);
        assert_eq!(data["counts"]["order.placed"], 2);
    }

    #[test]
    fn the_status_is_the_furthest_stage_whatever_the_arrival_order() {
        testing::clear_kv();
        testing::clear_config();
        let shipped = fact(
            "shipping-1",
            "/services/shipping",
            "shipment.dispatched",
            "o-1",
        );
        let placed = fact("orders-1", "/services/orders", "order.placed", "o-1");
        assert_eq!(handle(shipped), Ok(vec![]));
        assert_eq!(handle(placed), Ok(vec![]));
        let (_, data) = ask("q-1", Some(json!({ "orderId": "o-1" })));
        assert_eq!(data["status"], "shipped");
        assert_eq!(
            data["stages"],
            json!({ "placed": "orders-1", "shipped": "shipping-1" })
        );
    }

    #[test]
    fn an_unknown_order_has_no_status_and_a_query_without_order_gets_totals() {
        testing::clear_kv();
        testing::clear_config();
        let (_, data) = ask("q-1", Some(json!({ "orderId": "o-404" })));
        assert_eq!(data["status"], Value::Null);
        assert_eq!(data["stages"], json!({}));
        let (answer, totals) = ask("q-2", None);
        assert_eq!(answer.subject(), Some("totals"));
        assert_eq!(
            totals,
            json!({ "counts": { "order.placed": 0, "invoice.issued": 0, "shipment.dispatched": 0 } })
        );
    }

    #[test]
    fn stages_and_types_come_from_the_config() {
        testing::clear_kv();
        testing::clear_config();
        testing::set_config("stages", "a.created=new, a.closed=closed");
        testing::set_config("query_type", "a.query");
        testing::set_config("answer_type", "a.answer");
        testing::set_config("source", "/a-view");
        assert_eq!(handle(fact("e-1", "/s", "a.closed", "a-1")), Ok(vec![]));
        let query = Event::new("q-1", "/test", "a.query")
            .with_json_data(&json!({ "orderId": "a-1" }))
            .expect("JSON");
        let answer = handle(query).expect("answered").remove(0);
        assert_eq!((answer.ty(), answer.source()), ("a.answer", "/a-view"));
        let data: Value = answer.data_json().expect("JSON");
        assert_eq!(data["status"], "closed");
        assert_eq!(data["counts"], json!({ "a.created": 0, "a.closed": 1 }));
        testing::clear_config();
    }

    #[test]
    fn bad_facts_and_a_bad_config_are_fatal_other_types_are_ignored() {
        testing::clear_kv();
        testing::clear_config();
        for (event, problem) in [
            (Event::new("e-1", "/s", "order.placed"), "no data"),
            (
                Event::new("e-1", "/s", "order.placed").with_data("nope", "text/plain"),
                "not the expected JSON",
            ),
            (fact("e-1", "/s", "order.placed", ""), "empty orderId"),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
        assert_eq!(
            handle(Event::new("e-1", "/s", "order.cancelled")),
            Ok(vec![])
        );
        testing::set_config("stages", "order.placed");
        let error = handle(fact("e-1", "/s", "order.placed", "o-1")).unwrap_err();
        assert!(error.message().contains("is not TYPE=STAGE"), "{error}");
        testing::clear_config();
    }
}
