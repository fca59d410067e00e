//! The API's cache of validation results (ADR-003: `video.validation_completed`
//! is consumed by "API (cache)"): the query side of CQRS for validation.
//!
//! - `com.nedlia.video.validation_requested`: the video's status becomes
//!   `pending` (the "processing" state the UI shows while the Validator works).
//! - `com.nedlia.video.validation_completed`: the verdict becomes the video's
//!   status, `valid` or `invalid`, with the problems.
//! - `com.nedlia.video.validation_status_requested` (data `{"videoId"}`, or the
//!   video as `subject`): answered with `com.nedlia.video.validation_status`
//!   (id `<query id>-status`): `{"videoId", "status", "requestId", "result",
//!   "correlationId"}`, status `unknown` when nothing was ever requested.
//!
//! Only the latest request counts: a verdict or a `pending` mark never replaces
//! the entry of a request made later (by the request's `time`, when both have
//! one; otherwise the last to arrive wins), and the `pending` mark of a request
//! never hides its own verdict, whichever of the two arrives first. Handling an
//! event twice stores the same entry twice, so redeliveries are harmless.
//!
//! Config: `source`, the source of the answers (default `/api-cache`).
//!
//! Keys: `video:VIDEO`, the entry of each video.

#![deny(missing_docs)]

use router_guest::serde_json::{self, Value, json};
use router_guest::{Event, HandlerError, config, handler, kv};
use serde::{Deserialize, Serialize};

/// The API asked for a validation.
pub const REQUESTED: &str = "com.nedlia.video.validation_requested";
/// The Validator's verdict.
pub const COMPLETED: &str = "com.nedlia.video.validation_completed";
/// A query: what is the validation status of a video?
pub const STATUS_REQUESTED: &str = "com.nedlia.video.validation_status_requested";
/// The answer to a query.
pub const STATUS: &str = "com.nedlia.video.validation_status";

/// What the cache keeps per video.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Entry {
    /// `pending`, `valid` or `invalid`.
    status: String,
    /// The id of the request the entry is about.
    request_id: String,
    /// The request's `time`, when it had one.
    requested_at: Option<String>,
    /// The Validator's verdict, once there is one.
    result: Option<Value>,
    /// The correlation id of the chain that produced the entry.
    correlation_id: Option<String>,
}

/// The part of a verdict the cache reads; the whole verdict is kept as it is.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    video_id: String,
    request_id: String,
    #[serde(default)]
    requested_at: Option<String>,
    valid: bool,
}

/// The data of a validation request or a status query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VideoRef {
    #[serde(default)]
    video_id: Option<String>,
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    match event.ty() {
        REQUESTED => {
            let video = video_of(&event)?;
            let entry = Entry {
                status: "pending".to_owned(),
                request_id: event.id().to_owned(),
                requested_at: event.time().map(str::to_owned),
                result: None,
                correlation_id: event.extension("correlationid").map(str::to_owned),
            };
            store(&video, entry)?;
            Ok(vec![])
        }
        COMPLETED => {
            let result: Value = event.data_json()?;
            let verdict: Verdict = serde_json::from_value(result.clone())?;
            if verdict.video_id.is_empty() || verdict.request_id.is_empty() {
                return Err(HandlerError::fatal(format!(
                    "verdict {} names no video or request",
                    event.id()
                )));
            }
            let entry = Entry {
                status: if verdict.valid { "valid" } else { "invalid" }.to_owned(),
                request_id: verdict.request_id,
                requested_at: verdict.requested_at,
                result: Some(result),
                correlation_id: event.extension("correlationid").map(str::to_owned),
            };
            store(&verdict.video_id, entry)?;
            Ok(vec![])
        }
        STATUS_REQUESTED => {
            let video = video_of(&event)?;
            let entry = load(&video)?;
            let data = match entry {
                Some(entry) => json!({
                    "videoId": video,
                    "status": entry.status,
                    "requestId": entry.request_id,
                    "requestedAt": entry.requested_at,
                    "result": entry.result,
                    "correlationId": entry.correlation_id,
                }),
                None => json!({"videoId": video, "status": "unknown", "result": null}),
            };
            let answer = Event::new(
                format!("{}-status", event.id()),
                config::get_or("source", "/api-cache"),
                STATUS,
            )
            .with_subject(video)
            .with_json_data(&data)?;
            Ok(vec![answer])
        }
        _ => Ok(vec![]),
    }
}

/// The video an event is about: `videoId` in its data, else its subject.
fn video_of(event: &Event) -> Result<String, HandlerError> {
    let from_data = match event.data() {
        Some(_) => event.data_json::<VideoRef>()?.video_id,
        None => None,
    };
    from_data
        .or_else(|| event.subject().map(str::to_owned))
        .filter(|video| !video.is_empty())
        .ok_or_else(|| {
            HandlerError::fatal(format!(
                "{} {} names no video (data videoId or subject)",
                event.ty(),
                event.id()
            ))
        })
}

fn load(video: &str) -> Result<Option<Entry>, HandlerError> {
    kv::get(&format!("video:{video}"))?
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                HandlerError::retryable(format!("cache entry of {video} unreadable: {e}"))
            })
        })
        .transpose()
}

/// Stores `entry` unless the current one must win.
fn store(video: &str, entry: Entry) -> Result<(), HandlerError> {
    if let Some(current) = load(video)?
        && !replaces(&entry, &current)
    {
        return Ok(());
    }
    kv::set(
        &format!("video:{video}"),
        &serde_json::to_vec(&entry)?,
        None,
    )?;
    Ok(())
}

/// Whether `new` may replace `current`.
fn replaces(new: &Entry, current: &Entry) -> bool {
    if new.request_id == current.request_id {
        // The same request: its verdict replaces its pending mark, never the reverse.
        return new.result.is_some() || current.result.is_none();
    }
    match (
        new.requested_at.as_deref().and_then(instant),
        current.requested_at.as_deref().and_then(instant),
    ) {
        (Some(new), Some(current)) => new >= current,
        _ => true,
    }
}

/// An RFC 3339 time as (seconds since 1970, nanoseconds), for ordering times
/// written with different offsets or precisions; `None` when it does not parse.
fn instant(text: &str) -> Option<(i64, u32)> {
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[13] != b':' {
        return None;
    }
    let (year, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
    let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<9}", &fraction[..digits.min(9)]);
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            if rest.len() != 6 || rest.as_bytes()[3] != b':' {
                return None;
            }
            sign * (number(text.len() - 5, 2)? * 3600 + number(text.len() - 2, 2)? * 60)
        }
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((
        days * 86_400 + hour * 3600 + minute * 60 + second - offset,
        nanos,
    ))
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    fn requested(id: &str, time: &str) -> Event {
        Event::new(id, "/videos", REQUESTED)
            .with_time(time)
            .with_extension("correlationid", format!("corr-{id}"))
            .with_json_data(&json!({"videoId": "v-1", "placements": []}))
            .expect("JSON")
    }

    fn completed(request: &str, time: &str, valid: bool) -> Event {
        Event::new(format!("{request}-completed"), "/validator", COMPLETED)
            .with_extension("correlationid", format!("corr-{request}"))
            .with_json_data(&json!({
                "videoId": "v-1", "requestId": request, "requestedAt": time,
                "valid": valid, "problems": [],
            }))
            .expect("JSON")
    }

    fn status() -> Value {
        let query = Event::new("q-1", "/api", STATUS_REQUESTED)
            .with_json_data(&json!({"videoId": "v-1"}))
            .expect("JSON");
        let answer = handle(query).expect("ok");
        assert_eq!(answer.len(), 1);
        assert_eq!(
            (answer[0].id(), answer[0].ty(), answer[0].subject()),
            ("q-1-status", STATUS, Some("v-1"))
        );
        answer[0].data_json().expect("JSON")
    }

    #[test]
    fn unknown_then_pending_then_the_verdict() {
        testing::clear_kv();
        assert_eq!(
            status(),
            json!({"videoId": "v-1", "status": "unknown", "result": null})
        );
        assert_eq!(handle(requested("r-1", "2024-01-01T00:00:00Z")), Ok(vec![]));
        assert_eq!(status()["status"], "pending");
        assert_eq!(
            handle(completed("r-1", "2024-01-01T00:00:00Z", false)),
            Ok(vec![])
        );
        let answer = status();
        assert_eq!(answer["status"], "invalid");
        assert_eq!(answer["requestId"], "r-1");
        assert_eq!(answer["correlationId"], "corr-r-1");
        assert_eq!(answer["result"]["valid"], false);
    }

    #[test]
    fn a_late_pending_mark_never_hides_its_own_verdict() {
        testing::clear_kv();
        let _ = handle(completed("r-1", "2024-01-01T00:00:00Z", true)).expect("ok");
        let _ = handle(requested("r-1", "2024-01-01T00:00:00Z")).expect("ok");
        assert_eq!(status()["status"], "valid");
    }

    #[test]
    fn an_older_request_never_replaces_a_newer_one() {
        testing::clear_kv();
        let _ = handle(requested("r-2", "2024-01-01T10:00:00.5Z")).expect("ok");
        // Earlier, though written later and with another offset and precision.
        let _ = handle(completed("r-1", "2024-01-01T11:00:00+01:00", true)).expect("ok");
        let answer = status();
        assert_eq!(
            (answer["status"].clone(), answer["requestId"].clone()),
            (json!("pending"), json!("r-2"))
        );
        let _ = handle(completed("r-2", "2024-01-01T10:00:00.5Z", false)).expect("ok");
        assert_eq!(status()["status"], "invalid");
        let _ = handle(completed("r-3", "2024-01-01T10:00:01Z", true)).expect("ok");
        assert_eq!(status()["requestId"], "r-3");
    }

    #[test]
    fn times_order_across_offsets_and_fractions() {
        assert!(instant("2024-01-01T00:00:00.5Z") > instant("2024-01-01T00:00:00Z"));
        assert_eq!(
            instant("2024-03-01T01:00:00+01:00"),
            instant("2024-03-01T00:00:00Z")
        );
        assert_eq!(instant("1970-01-01T00:00:00Z"), Some((0, 0)));
        assert_eq!(instant("2000-03-01T00:00:00Z"), Some((951_868_800, 0)));
        assert_eq!(instant("yesterday"), None);
        assert_eq!(instant("2024-01-01T00:00:00"), None, "no offset");
    }

    #[test]
    fn the_subject_names_the_video_too_and_nothing_is_fatal() {
        testing::clear_kv();
        let query = Event::new("q-2", "/api", STATUS_REQUESTED).with_subject("v-9");
        let answer = handle(query).expect("ok");
        assert_eq!(
            answer[0].data_json::<Value>().expect("JSON")["videoId"],
            "v-9"
        );
        let error = handle(Event::new("q-3", "/api", STATUS_REQUESTED)).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.message().contains("names no video"), "{error}");
        let bad = Event::new("c-1", "/validator", COMPLETED)
            .with_json_data(&json!({"videoId": "v-1"}))
            .expect("JSON");
        assert!(!handle(bad).unwrap_err().is_retryable());
    }
}
