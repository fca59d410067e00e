//! Nedlia's File Generator (ADR-003): turns placement events into the placement
//! file that video-editor plugins download, one version per content change.
//!
//! On `com.nedlia.placement.created` and `com.nedlia.placement.updated` it
//! renders the placement file (a JSON document: video, product, cue in and out
//! in seconds) and, when its content differs from the current version, emits
//! `com.nedlia.placement.file_generated` with the next version, the content hash
//! and the file itself. An update that changes nothing in the file emits
//! nothing. On `com.nedlia.placement.deleted` it drops the file's state and
//! emits `com.nedlia.placement.file_deleted`; later `created`/`updated` events
//! for that placement (late or out of order) are ignored for a day.
//!
//! Idempotency: every handled event's outcome is remembered under its
//! (`source`, `id`) for a day, and a redelivery gets the very same answer (same
//! emitted id, same version) without bumping anything, even after newer events
//! changed the file. Emitted ids derive from the incoming id (`<id>-file`,
//! `<id>-file-deleted`), so consumers can deduplicate too.
//!
//! Invalid placement data (not JSON, a missing or empty id, a cue that is not a
//! positive interval) is a `fatal` error: redelivering it cannot help.
//!
//! Config: `source`, the source of emitted events (default `/placement-files`);
//! `path_prefix`, the folder of the file names (default `placements`).
//!
//! Keys: `file:PLACEMENT` (current version, content hash, video),
//! `version:PLACEMENT` (the version counter), `deleted:PLACEMENT` (tombstone,
//! the last version), `seen:SOURCE|ID` (the remembered outcome of an event).

#![deny(missing_docs)]

use router_guest::serde_json::{self, Value};
use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A placement was created.
pub const CREATED: &str = "com.nedlia.placement.created";
/// A placement was changed.
pub const UPDATED: &str = "com.nedlia.placement.updated";
/// A placement was deleted.
pub const DELETED: &str = "com.nedlia.placement.deleted";
/// A new version of a placement file is ready.
pub const FILE_GENERATED: &str = "com.nedlia.placement.file_generated";
/// The file of a deleted placement is gone.
pub const FILE_DELETED: &str = "com.nedlia.placement.file_deleted";
/// The format tag written into every placement file.
pub const FORMAT: &str = "nedlia.placement/v1";
/// How long outcomes and tombstones are remembered: longer than any redelivery.
const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// The data of `placement.created` and `placement.updated`: the seed's
/// `placementId`, `videoId`, `productId`, plus the cue of the placement in the
/// video. Other fields are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Placement {
    placement_id: String,
    video_id: String,
    product_id: String,
    #[serde(default)]
    campaign_id: Option<String>,
    /// Seconds from the start of the video.
    start_time: f64,
    /// Seconds from the start of the video, after `start_time`.
    end_time: f64,
}

/// The data of `placement.deleted`: the placement is enough.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PlacementRef {
    placement_id: String,
}

/// The placement file: what a video-editor plugin downloads and renders. The
/// version is not part of it, so that equal content has an equal hash.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlacementFile<'a> {
    format: &'static str,
    placement_id: &'a str,
    video_id: &'a str,
    product_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    campaign_id: Option<&'a str>,
    cue: Cue,
}

/// When the product shows, in seconds from the start of the video.
#[derive(Serialize)]
struct Cue {
    start: f64,
    end: f64,
    duration: f64,
}

/// What is kept per placement: the current version of its file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileState {
    version: i64,
    content_hash: String,
    video_id: String,
}

/// The remembered answer to one event: the type and data of the event emitted,
/// or nothing.
#[derive(Serialize, Deserialize)]
struct Outcome {
    #[serde(rename = "type")]
    ty: Option<String>,
    subject: Option<String>,
    data: Option<Value>,
}

impl Outcome {
    fn nothing() -> Self {
        Self {
            ty: None,
            subject: None,
            data: None,
        }
    }
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if ![CREATED, UPDATED, DELETED].contains(&event.ty()) {
        return Ok(vec![]);
    }
    let seen = seen_key(&event);
    if let Some(record) = kv::get(&seen)? {
        // A redelivery: the same answer as the first time, and no second version.
        let outcome: Outcome = serde_json::from_slice(&record)
            .map_err(|e| HandlerError::retryable(format!("remembered outcome unreadable: {e}")))?;
        log::info(format!(
            "event {} seen before: answered as then",
            event.id()
        ));
        return answer(&event, outcome);
    }
    let outcome = if event.ty() == DELETED {
        delete(&event)?
    } else {
        upsert(&event)?
    };
    kv::set(&seen, &serde_json::to_vec(&outcome)?, Some(MEMORY))?;
    answer(&event, outcome)
}

/// A created or updated placement: a new version when the file changes.
fn upsert(event: &Event) -> Result<Outcome, HandlerError> {
    let placement: Placement = event.data_json()?;
    check(&placement, event)?;
    let id = placement.placement_id.as_str();
    if kv::get(&format!("deleted:{id}"))?.is_some() {
        log::warn(format!(
            "placement {id} was deleted: {} {} ignored",
            event.ty(),
            event.id()
        ));
        return Ok(Outcome::nothing());
    }
    let file = PlacementFile {
        format: FORMAT,
        placement_id: id,
        video_id: &placement.video_id,
        product_id: &placement.product_id,
        campaign_id: placement.campaign_id.as_deref(),
        cue: Cue {
            start: placement.start_time,
            end: placement.end_time,
            duration: placement.end_time - placement.start_time,
        },
    };
    let body = serde_json::to_vec(&file)?;
    let content_hash = format!("fnv1a64:{:016x}", fnv1a64(&body));
    let state_key = format!("file:{id}");
    if let Some(current) = kv::get(&state_key)? {
        let current: FileState = serde_json::from_slice(&current)
            .map_err(|e| HandlerError::retryable(format!("state of {id} unreadable: {e}")))?;
        if current.content_hash == content_hash {
            log::info(format!(
                "placement {id}: file unchanged at version {}",
                current.version
            ));
            return Ok(Outcome::nothing());
        }
    }
    // Atomic, so that two concurrent changes never share a version number.
    let version = kv::increment(&format!("version:{id}"), 1)?;
    let state = FileState {
        version,
        content_hash: content_hash.clone(),
        video_id: placement.video_id.clone(),
    };
    kv::set(&state_key, &serde_json::to_vec(&state)?, None)?;
    let prefix = config::get_or("path_prefix", "placements");
    let data = serde_json::json!({
        "placementId": id,
        "videoId": placement.video_id,
        "version": version,
        "contentHash": content_hash,
        "fileName": format!("{prefix}/{}/{id}.v{version}.json", placement.video_id),
        "file": serde_json::to_value(&file)?,
    });
    log::info(format!("placement {id}: file version {version}"));
    Ok(Outcome {
        ty: Some(FILE_GENERATED.to_owned()),
        subject: Some(id.to_owned()),
        data: Some(data),
    })
}

/// A deleted placement: its file state goes, a tombstone stays.
fn delete(event: &Event) -> Result<Outcome, HandlerError> {
    let placement: PlacementRef = event.data_json()?;
    let id = placement.placement_id.as_str();
    if id.is_empty() {
        return Err(HandlerError::fatal(format!(
            "{} {} has an empty placementId",
            event.ty(),
            event.id()
        )));
    }
    let state_key = format!("file:{id}");
    let Some(current) = kv::get(&state_key)? else {
        log::info(format!("placement {id} has no file: nothing to delete"));
        return Ok(Outcome::nothing());
    };
    let current: FileState = serde_json::from_slice(&current)
        .map_err(|e| HandlerError::retryable(format!("state of {id} unreadable: {e}")))?;
    // The tombstone first: should the call stop half-way, a redelivery still
    // finds the placement deleted, and late updates cannot bring the file back.
    kv::set(
        &format!("deleted:{id}"),
        current.version.to_string().as_bytes(),
        Some(MEMORY),
    )?;
    kv::delete(&state_key)?;
    kv::delete(&format!("version:{id}"))?;
    let data = serde_json::json!({
        "placementId": id,
        "videoId": current.video_id,
        "lastVersion": current.version,
    });
    Ok(Outcome {
        ty: Some(FILE_DELETED.to_owned()),
        subject: Some(id.to_owned()),
        data: Some(data),
    })
}

/// The placement data must describe a real placement; otherwise the API sent
/// something no retry will repair.
fn check(placement: &Placement, event: &Event) -> Result<(), HandlerError> {
    let bad = |why: String| {
        Err(HandlerError::fatal(format!(
            "{} {}: {why}",
            event.ty(),
            event.id()
        )))
    };
    for (name, value) in [
        ("placementId", &placement.placement_id),
        ("videoId", &placement.video_id),
        ("productId", &placement.product_id),
    ] {
        if value.is_empty() {
            return bad(format!("empty {name}"));
        }
    }
    let (start, end) = (placement.start_time, placement.end_time);
    if !start.is_finite() || !end.is_finite() || start < 0.0 {
        return bad(format!("startTime {start} and endTime {end} are not a cue"));
    }
    if end <= start {
        return bad(format!("endTime {end} is not after startTime {start}"));
    }
    Ok(())
}

/// The event answering `event`, if any; its id derives from the incoming one.
fn answer(event: &Event, outcome: Outcome) -> Result<Vec<Event>, HandlerError> {
    let (Some(ty), Some(data)) = (outcome.ty, outcome.data) else {
        return Ok(vec![]);
    };
    let suffix = if ty == FILE_DELETED {
        "file-deleted"
    } else {
        "file"
    };
    let mut reply = Event::new(
        format!("{}-{suffix}", event.id()),
        config::get_or("source", "/placement-files"),
        ty,
    )
    .with_json_data(&data)?;
    if let Some(subject) = outcome.subject {
        reply = reply.with_subject(subject);
    }
    Ok(vec![reply])
}

/// The key of an event's remembered outcome: CloudEvents ids are unique per
/// source. Very long pairs are hashed to stay within the store's key limit.
fn seen_key(event: &Event) -> String {
    let key = format!("seen:{}|{}", event.source(), event.id());
    if key.len() <= 512 {
        key
    } else {
        format!("seen:#{:016x}", fnv1a64(key.as_bytes()))
    }
}

/// 64-bit FNV-1a: a small, stable content hash (not a cryptographic one).
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::serde_json::json;
    use router_guest::testing;

    fn placement(id: &str, ty: &str, start: f64, end: f64) -> Event {
        Event::new(id, "/placements", ty)
            .with_json_data(&json!({
                "placementId": "pl-1",
                "videoId": "v-1",
                "productId": "p-1",
                "startTime": start,
                "endTime": end,
            }))
            .expect("JSON")
    }

    fn deleted(id: &str) -> Event {
        Event::new(id, "/placements", DELETED)
            .with_json_data(&json!({"placementId": "pl-1", "videoId": "v-1"}))
            .expect("JSON")
    }

    fn only(events: Vec<Event>) -> (Event, Value) {
        assert_eq!(events.len(), 1, "{events:?}");
        let event = events.into_iter().next().expect("one event");
        let data = event.data_json().expect("JSON data");
        (event, data)
    }

    #[test]
    fn a_new_placement_gets_version_one_of_its_file() {
        testing::clear_kv();
        let (event, data) = only(handle(placement("e-1", CREATED, 12.5, 18.0)).expect("ok"));
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.subject()),
            ("e-1-file", "/placement-files", FILE_GENERATED, Some("pl-1"))
        );
        assert_eq!(data["version"], 1);
        assert_eq!(data["fileName"], "placements/v-1/pl-1.v1.json");
        assert_eq!(
            data["file"],
            json!({"format": FORMAT, "placementId": "pl-1", "videoId": "v-1", "productId": "p-1",
                   "cue": {"start": 12.5, "end": 18.0, "duration": 5.5}})
        );
        assert!(
            data["contentHash"]
                .as_str()
                .is_some_and(|h| h.starts_with("fnv1a64:"))
        );
    }

    #[test]
    fn an_update_bumps_the_version_only_when_the_file_changes() {
        testing::clear_kv();
        let (_, first) = only(handle(placement("e-1", CREATED, 1.0, 4.0)).expect("ok"));
        let (_, second) = only(handle(placement("e-2", UPDATED, 2.0, 4.0)).expect("ok"));
        assert_eq!(second["version"], 2);
        assert_ne!(first["contentHash"], second["contentHash"]);
        assert_eq!(
            handle(placement("e-3", UPDATED, 2.0, 4.0)).expect("ok"),
            vec![],
            "same content: no new version"
        );
        let (_, third) = only(handle(placement("e-4", UPDATED, 3.0, 4.0)).expect("ok"));
        assert_eq!(third["version"], 3);
    }

    #[test]
    fn a_redelivery_gets_the_same_answer_and_no_new_version() {
        testing::clear_kv();
        let first = handle(placement("e-1", CREATED, 1.0, 4.0)).expect("ok");
        let (_, update) = only(handle(placement("e-2", UPDATED, 2.0, 4.0)).expect("ok"));
        assert_eq!(update["version"], 2);
        // e-1 again, after e-2 changed the file: answered as the first time, and
        // its old content does not become version 3.
        let again = handle(placement("e-1", CREATED, 1.0, 4.0)).expect("ok");
        assert_eq!(again, first);
        let (_, next) = only(handle(placement("e-3", UPDATED, 5.0, 6.0)).expect("ok"));
        assert_eq!(next["version"], 3);
    }

    #[test]
    fn a_delete_drops_the_file_and_late_updates_are_ignored() {
        testing::clear_kv();
        let _ = handle(placement("e-1", CREATED, 1.0, 4.0)).expect("ok");
        let _ = handle(placement("e-2", UPDATED, 1.0, 5.0)).expect("ok");
        let (event, data) = only(handle(deleted("e-3")).expect("ok"));
        assert_eq!((event.id(), event.ty()), ("e-3-file-deleted", FILE_DELETED));
        assert_eq!(
            data,
            json!({"placementId": "pl-1", "videoId": "v-1", "lastVersion": 2})
        );
        assert_eq!(kv::get("file:pl-1").expect("kv"), None);
        assert_eq!(
            handle(placement("e-4", UPDATED, 1.0, 9.0)).expect("ok"),
            vec![],
            "a late update of a deleted placement"
        );
        assert_eq!(
            handle(deleted("e-3")).expect("ok").len(),
            1,
            "the redelivered delete is answered as before"
        );
        assert_eq!(
            handle(deleted("e-5")).expect("ok"),
            vec![],
            "another delete: nothing left to delete"
        );
    }

    #[test]
    fn data_that_is_not_a_placement_is_fatal() {
        testing::clear_kv();
        let with = |data: Value| {
            Event::new("e-1", "/placements", CREATED)
                .with_json_data(&data)
                .expect("JSON")
        };
        for (event, problem) in [
            (
                Event::new("e-1", "/placements", CREATED).with_data("nope", "text/plain"),
                "JSON",
            ),
            (with(json!({"placementId": "pl-1"})), "videoId"),
            (
                with(
                    json!({"placementId": "", "videoId": "v", "productId": "p", "startTime": 0, "endTime": 1}),
                ),
                "empty placementId",
            ),
            (placement("e-2", CREATED, 5.0, 5.0), "not after"),
            (placement("e-3", UPDATED, -1.0, 5.0), "not a cue"),
            (
                Event::new("e-4", "/placements", DELETED)
                    .with_json_data(&json!({"placementId": ""}))
                    .expect("JSON"),
                "empty placementId",
            ),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
    }

    #[test]
    fn configured_source_and_prefix_are_used_and_other_types_ignored() {
        testing::clear_kv();
        testing::set_config("source", "/files");
        testing::set_config("path_prefix", "cdn/p");
        let (event, data) = only(handle(placement("e-1", CREATED, 1.0, 2.0)).expect("ok"));
        testing::clear_config();
        assert_eq!(event.source(), "/files");
        assert_eq!(data["fileName"], "cdn/p/v-1/pl-1.v1.json");
        let other = Event::new("e-9", "/placements", "com.nedlia.campaign.created");
        assert_eq!(handle(other), Ok(vec![]));
    }
}
