//! The marketplace's search service: keeps the search index of users and
//! projects in its key-value store (Redis in the example, so every router process
//! shares it).
//!
//! - `user.created`, `user.updated`: the user's document under `user:USERID`.
//! - `project.published`: emits the command `index.project` (the seed's queue
//!   pattern: indexing is work for exactly one worker).
//! - `index.project` (a command): the project's document under `project:PROJECTID`.
//!
//! Writing a document is idempotent (the same event writes the same document), so
//! a redelivered event does no harm. A document carries the id of the event that
//! wrote it, so an operator can tell which event the index reflects.
//!
//! Config: `source`, the source of the commands (default `/search-service`).

use router_guest::serde_json::{Value, json};
use router_guest::{Event, HandlerError, config, handler, kv};

/// The command this plugin emits and handles.
const INDEX_PROJECT: &str = "index.project";

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.ty() {
        "user.created" | "user.updated" => {
            let data: Value = event.data_json()?;
            let user = id_field(&event, &data, "userId")?;
            index(&format!("user:{user}"), &event, data)?;
            Ok(vec![])
        }
        "project.published" => {
            let data: Value = event.data_json()?;
            let project = id_field(&event, &data, "projectId")?;
            let command = Event::new(
                format!("{}-index", event.id()),
                config::get_or("source", "/search-service"),
                INDEX_PROJECT,
            )
            .with_subject(project)
            .with_extension("kind", "command")
            .with_json_data(&data)?;
            Ok(vec![command])
        }
        INDEX_PROJECT => {
            let data: Value = event.data_json()?;
            let project = id_field(&event, &data, "projectId")?;
            index(&format!("project:{project}"), &event, data)?;
            Ok(vec![])
        }
        _ => Ok(vec![]),
    }
}

/// The non-empty string `name` of `data`, or a fatal error naming it.
fn id_field<'a>(event: &Event, data: &'a Value, name: &str) -> Result<&'a str, HandlerError> {
    data.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            HandlerError::fatal(format!(
                "{} event {} has no `{name}`",
                event.ty(),
                event.id()
            ))
        })
}

/// Writes the document for `key`: the event's data plus where it came from.
fn index(key: &str, event: &Event, data: Value) -> Result<(), HandlerError> {
    let document = json!({
        "document": data,
        "indexedFrom": event.id(),
        "type": event.ty(),
    });
    kv::set(key, document.to_string().as_bytes(), None)?;
    Ok(())
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, ty: &str, data: Value) -> Event {
        Event::new(id, "/user-service", ty)
            .with_json_data(&data)
            .expect("JSON")
    }

    fn document(key: &str) -> Option<Value> {
        kv::get(key)
            .expect("kv")
            .map(|bytes| router_guest::serde_json::from_slice(&bytes).expect("JSON"))
    }

    #[test]
    fn users_are_indexed_and_updates_replace_them() {
        router_guest::testing::clear_kv();
        let created = json!({"userId": "usr_1", "email": "a@example.com", "role": "CLIENT"});
        assert_eq!(handle(event("e-1", "user.created", created)), Ok(vec![]));
        let updated = json!({"userId": "usr_1", "role": "FREELANCER"});
        assert_eq!(handle(event("e-2", "user.updated", updated)), Ok(vec![]));
        let doc = document("user:usr_1").expect("indexed");
        assert_eq!(doc["document"]["role"], "FREELANCER");
        assert_eq!(doc["indexedFrom"], "e-2");
    }

    #[test]
    fn a_published_project_becomes_an_index_command_then_a_document() {
        router_guest::testing::clear_kv();
        let data = json!({"projectId": "prj_1", "title": "Rust router"});
        let out = handle(event("e-1", "project.published", data)).expect("handled");
        assert_eq!(out.len(), 1);
        let command = out.into_iter().next().expect("one");
        assert_eq!(
            (command.id(), command.ty(), command.extension("kind")),
            ("e-1-index", INDEX_PROJECT, Some("command"))
        );
        assert!(
            document("project:prj_1").is_none(),
            "not before the command"
        );
        assert_eq!(handle(command), Ok(vec![]));
        let doc = document("project:prj_1").expect("indexed");
        assert_eq!(doc["document"]["title"], "Rust router");
    }

    #[test]
    fn a_document_without_its_id_is_fatal() {
        let error = handle(event("e-1", "user.created", json!({"email": "x"}))).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.message().contains("`userId`"), "{error}");
    }
}
