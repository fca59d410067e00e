//! Nedlia's Validator (ADR-003): checks the placements of a video off the API's
//! request path, and publishes the verdict.
//!
//! On `com.nedlia.video.validation_requested` it applies the configured rules to
//! the placements the request lists, and emits
//! `com.nedlia.video.validation_completed` (id `<request id>-completed`, subject
//! the video) with `valid` and every problem found, each naming its rule and
//! placement. An invalid set of placements is a normal outcome (`valid: false`);
//! a request that cannot be read (not JSON, no `videoId`, no `placements`) or a
//! broken rule in the plugin config is a `fatal` error.
//!
//! Request data: `{"videoId", "videoDuration"?, "placements": [{"placementId",
//! "productId"?, "startTime", "endTime"}]}` (times in seconds).
//!
//! Rules, from the plugin config: `max_placements` (default 10),
//! `min_duration` and `max_duration` of one placement in seconds (defaults 1 and
//! 30), `allow_overlap` (default false): whether two placements may show at the
//! same time. Placements must also lie within `videoDuration` when it is given,
//! and placement ids must be unique. `source` sets the source of the emitted
//! events (default `/validator`).
//!
//! Idempotency: the verdict of each request is remembered under its (`source`,
//! `id`) for a day (key `seen:SOURCE|ID`), so a redelivery gets the same verdict
//! even if the rules were changed in between.

#![deny(missing_docs)]

use router_guest::serde_json::{self, Value, json};
use router_guest::{Event, HandlerError, config, handler, kv, log};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The API asks for a video's placements to be validated.
pub const REQUESTED: &str = "com.nedlia.video.validation_requested";
/// The verdict.
pub const COMPLETED: &str = "com.nedlia.video.validation_completed";
/// How long a verdict is remembered for redeliveries.
const MEMORY: Duration = Duration::from_secs(24 * 3600);

/// The data of a validation request.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    video_id: String,
    /// The video's length in seconds, when the API knows it.
    #[serde(default)]
    video_duration: Option<f64>,
    placements: Vec<Slot>,
}

/// One placement of the video, as far as the rules care.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Slot {
    placement_id: String,
    start_time: f64,
    end_time: f64,
}

/// One broken rule.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Problem {
    rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    placement_id: Option<String>,
    message: String,
}

/// The configured rules.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rules {
    max_placements: usize,
    min_duration: f64,
    max_duration: f64,
    allow_overlap: bool,
}

impl Rules {
    /// The rules of the plugin config; a value that does not parse is fatal,
    /// since every request would fail the same way until the config is fixed.
    fn from_config() -> Result<Self, HandlerError> {
        Ok(Self {
            max_placements: setting("max_placements", 10)?,
            min_duration: setting("min_duration", 1.0)?,
            max_duration: setting("max_duration", 30.0)?,
            allow_overlap: setting("allow_overlap", false)?,
        })
    }
}

/// Config value `key` parsed, or `default` when it is not set.
fn setting<T: std::str::FromStr>(key: &str, default: T) -> Result<T, HandlerError> {
    match config::get(key) {
        None => Ok(default),
        Some(text) => text.trim().parse().map_err(|_| {
            HandlerError::fatal(format!(
                "plugin config: {key} = {text:?} is not a valid value"
            ))
        }),
    }
}

fn handle(event: Event) -> Result<Vec<Event>, HandlerError> {
    if event.ty() != REQUESTED {
        return Ok(vec![]);
    }
    let seen = seen_key(&event);
    let verdict: Value = match kv::get(&seen)? {
        Some(record) => serde_json::from_slice(&record)
            .map_err(|e| HandlerError::retryable(format!("remembered verdict unreadable: {e}")))?,
        None => {
            let request: Request = event.data_json()?;
            if request.video_id.is_empty() {
                return Err(HandlerError::fatal(format!(
                    "{} {} has an empty videoId",
                    event.ty(),
                    event.id()
                )));
            }
            let rules = Rules::from_config()?;
            let problems = validate(&request, &rules);
            let verdict = json!({
                "videoId": request.video_id,
                "requestId": event.id(),
                "requestedAt": event.time(),
                "valid": problems.is_empty(),
                "placementCount": request.placements.len(),
                "problems": problems,
                "rules": rules,
            });
            kv::set(&seen, &serde_json::to_vec(&verdict)?, Some(MEMORY))?;
            verdict
        }
    };
    let video = verdict["videoId"].as_str().unwrap_or_default().to_owned();
    log::info(format!(
        "video {video}: valid = {}",
        verdict["valid"].as_bool().unwrap_or(false)
    ));
    let completed = Event::new(
        format!("{}-completed", event.id()),
        config::get_or("source", "/validator"),
        COMPLETED,
    )
    .with_subject(video)
    .with_json_data(&verdict)?;
    Ok(vec![completed])
}

/// Every rule `request` breaks; empty when it is valid.
fn validate(request: &Request, rules: &Rules) -> Vec<Problem> {
    let mut problems = Vec::new();
    let problem = |rule, placement: Option<&str>, message: String| Problem {
        rule,
        placement_id: placement.map(str::to_owned),
        message,
    };
    if request.placements.len() > rules.max_placements {
        problems.push(problem(
            "max_placements",
            None,
            format!(
                "{} placements, at most {} allowed",
                request.placements.len(),
                rules.max_placements
            ),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    // Only well-formed cues take part in the overlap check.
    let mut cues: Vec<&Slot> = Vec::new();
    for slot in &request.placements {
        let id = Some(slot.placement_id.as_str());
        if !ids.insert(slot.placement_id.as_str()) {
            problems.push(problem(
                "unique_ids",
                id,
                format!("placement {} is listed twice", slot.placement_id),
            ));
        }
        let (start, end) = (slot.start_time, slot.end_time);
        if !start.is_finite() || !end.is_finite() || start < 0.0 || end <= start {
            problems.push(problem(
                "interval",
                id,
                format!("startTime {start} and endTime {end} are not an interval"),
            ));
            continue;
        }
        let length = end - start;
        if length < rules.min_duration {
            problems.push(problem(
                "min_duration",
                id,
                format!("shows {length}s, at least {}s required", rules.min_duration),
            ));
        }
        if length > rules.max_duration {
            problems.push(problem(
                "max_duration",
                id,
                format!("shows {length}s, at most {}s allowed", rules.max_duration),
            ));
        }
        if let Some(video) = request.video_duration
            && end > video
        {
            problems.push(problem(
                "within_video",
                id,
                format!("ends at {end}s, after the end of the video at {video}s"),
            ));
        }
        cues.push(slot);
    }
    if !rules.allow_overlap {
        cues.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
        // The cue that ends last so far: any later start before its end overlaps.
        let mut latest: Option<&Slot> = None;
        for slot in cues {
            if let Some(before) = latest
                && slot.start_time < before.end_time
            {
                problems.push(problem(
                    "overlap",
                    Some(&slot.placement_id),
                    format!(
                        "starts at {}s, while placement {} shows until {}s",
                        slot.start_time, before.placement_id, before.end_time
                    ),
                ));
            }
            if latest.is_none_or(|before| slot.end_time > before.end_time) {
                latest = Some(slot);
            }
        }
    }
    problems
}

/// The key of a request's remembered verdict; very long pairs are hashed to stay
/// within the store's key limit.
fn seen_key(event: &Event) -> String {
    let key = format!("seen:{}|{}", event.source(), event.id());
    if key.len() <= 512 {
        return key;
    }
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("seen:#{hash:016x}")
}

handler!(handle);

#[cfg(test)]
mod tests {
    use super::*;
    use router_guest::testing;

    fn request(id: &str, data: Value) -> Event {
        Event::new(id, "/videos", REQUESTED)
            .with_time("2024-01-01T00:00:00Z")
            .with_json_data(&data)
            .expect("JSON")
    }

    fn verdict(events: Vec<Event>) -> Value {
        assert_eq!(events.len(), 1, "{events:?}");
        events[0].data_json().expect("JSON data")
    }

    fn rules_of(data: &Value) -> Vec<String> {
        data["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|p| format!("{}:{}", p["rule"], p["placementId"]))
            .collect()
    }

    #[test]
    fn valid_placements_complete_as_valid() {
        testing::clear_kv();
        let events = handle(request(
            "req-1",
            json!({"videoId": "v-1", "videoDuration": 120, "placements": [
                {"placementId": "a", "productId": "p", "startTime": 0, "endTime": 5},
                {"placementId": "b", "startTime": 5, "endTime": 12.5},
            ]}),
        ))
        .expect("ok");
        let event = &events[0];
        assert_eq!(
            (event.id(), event.source(), event.ty(), event.subject()),
            ("req-1-completed", "/validator", COMPLETED, Some("v-1"))
        );
        let data = verdict(events.clone());
        assert_eq!(data["valid"], true, "{data}");
        assert_eq!(data["problems"], json!([]));
        assert_eq!(data["placementCount"], 2);
        assert_eq!(data["requestId"], "req-1");
        assert_eq!(data["requestedAt"], "2024-01-01T00:00:00Z");
    }

    #[test]
    fn every_broken_rule_is_reported_with_its_placement() {
        testing::clear_kv();
        testing::set_config("max_placements", "4");
        let data = verdict(
            handle(request(
                "req-1",
                json!({"videoId": "v-1", "videoDuration": 60, "placements": [
                    {"placementId": "a", "startTime": 0, "endTime": 10},
                    {"placementId": "b", "startTime": 8, "endTime": 12},
                    {"placementId": "c", "startTime": 20, "endTime": 20.5},
                    {"placementId": "d", "startTime": 30, "endTime": 70},
                    {"placementId": "a", "startTime": 40, "endTime": 30},
                ]}),
            ))
            .expect("ok"),
        );
        testing::clear_config();
        assert_eq!(data["valid"], false);
        assert_eq!(
            rules_of(&data),
            [
                "\"max_placements\":null",
                "\"min_duration\":\"c\"",
                "\"max_duration\":\"d\"",
                "\"within_video\":\"d\"",
                "\"unique_ids\":\"a\"",
                "\"interval\":\"a\"",
                "\"overlap\":\"b\"",
            ]
        );
    }

    #[test]
    fn overlap_may_be_allowed_and_rules_come_from_the_config() {
        testing::clear_kv();
        testing::set_config("allow_overlap", "true");
        testing::set_config("max_duration", "100");
        let data = verdict(
            handle(request(
                "req-1",
                json!({"videoId": "v-1", "placements": [
                    {"placementId": "a", "startTime": 0, "endTime": 90},
                    {"placementId": "b", "startTime": 10, "endTime": 20},
                ]}),
            ))
            .expect("ok"),
        );
        testing::clear_config();
        assert_eq!(data["valid"], true, "{data}");
        assert_eq!(data["rules"]["allowOverlap"], true);
    }

    #[test]
    fn a_cue_inside_a_long_one_overlaps_it() {
        testing::clear_kv();
        let data = verdict(
            handle(request(
                "req-1",
                json!({"videoId": "v-1", "placements": [
                    {"placementId": "long", "startTime": 0, "endTime": 20},
                    {"placementId": "inner", "startTime": 2, "endTime": 4},
                    {"placementId": "after", "startTime": 10, "endTime": 12},
                ]}),
            ))
            .expect("ok"),
        );
        assert_eq!(
            rules_of(&data),
            ["\"overlap\":\"inner\"", "\"overlap\":\"after\""]
        );
    }

    #[test]
    fn a_redelivery_gets_the_remembered_verdict() {
        testing::clear_kv();
        let data = json!({"videoId": "v-1", "placements": [
            {"placementId": "a", "startTime": 0, "endTime": 25},
        ]});
        let first = handle(request("req-1", data.clone())).expect("ok");
        assert_eq!(verdict(first.clone())["valid"], true);
        // Stricter rules now, but the same request keeps its verdict.
        testing::set_config("max_duration", "10");
        assert_eq!(handle(request("req-1", data.clone())).expect("ok"), first);
        assert_eq!(
            verdict(handle(request("req-2", data)).expect("ok"))["valid"],
            false
        );
        testing::clear_config();
    }

    #[test]
    fn unreadable_requests_and_broken_rules_are_fatal() {
        testing::clear_kv();
        for (event, problem) in [
            (
                Event::new("r", "/videos", REQUESTED).with_data("{", "application/json"),
                "JSON",
            ),
            (request("r", json!({"placements": []})), "videoId"),
            (request("r", json!({"videoId": "v"})), "placements"),
            (
                request("r", json!({"videoId": "", "placements": []})),
                "empty videoId",
            ),
            (
                request(
                    "r",
                    json!({"videoId": "v", "placements": [{"placementId": "a", "startTime": "x", "endTime": 1}]}),
                ),
                "JSON",
            ),
        ] {
            let error = handle(event).unwrap_err();
            assert!(!error.is_retryable(), "{error}");
            assert!(error.message().contains(problem), "{error}");
        }
        testing::set_config("max_placements", "many");
        let error = handle(request("r2", json!({"videoId": "v", "placements": []}))).unwrap_err();
        testing::clear_config();
        assert!(!error.is_retryable());
        assert!(error.message().contains("max_placements"), "{error}");
    }

    #[test]
    fn ignores_other_types() {
        let event = Event::new("e", "/videos", COMPLETED);
        assert_eq!(handle(event), Ok(vec![]));
    }
}
