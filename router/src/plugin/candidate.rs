//! Candidate versions of a plugin (`shadow` and `canary`), run beside its
//! live version.
//!
//! A shadow is given every event the live version is given, after the live
//! call and without the request waiting for it: the call is spawned, at most
//! `max_pending` at once, and past that the shadow work is dropped and
//! counted, never queued. Its emitted events are compared with the live
//! version's and never routed; its store is a scratch namespace (see
//! [`crate::kv::ScratchKv`]) and its outbound HTTP has only its own grants.
//!
//! A canary is given a share of the events for real. A candidate call that
//! fails is counted and the event handed to the live version, so the
//! candidate costs no failed requests; when its error rate over a window
//! exceeds the live version's by `max_error_ratio`, it is rolled back: it
//! gets no more events until a reload gives a different candidate.

use super::{CallError, Plugin};
use crate::event::Event;
use crate::sync::lock;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// The outcomes of a shadow comparison, in the order they are shown.
pub const SHADOW_OUTCOMES: [&str; 5] = [
    "equal",
    "different",
    "candidate_failed",
    "live_failed",
    "both_failed",
];

/// A plugin's candidate versions.
pub struct Candidates {
    /// The plugin's name.
    name: Arc<str>,
    /// The shadow version, if any.
    pub(crate) shadow: Option<Shadow>,
    /// The canary version, if any.
    pub(crate) canary: Option<Canary>,
}

/// A shadow version and what its comparisons found.
pub struct Shadow {
    pub(crate) plugin: Arc<Plugin>,
    ignore: Arc<[String]>,
    slots: Arc<Semaphore>,
    pub(crate) stats: Arc<ShadowStats>,
}

/// A shadow's counts and latest differences. Carried over by a reload that
/// keeps both versions.
pub struct ShadowStats {
    counts: [AtomicU64; 5],
    dropped: AtomicU64,
    keep: usize,
    differences: Mutex<VecDeque<Difference>>,
    metrics: [prometheus_client::metrics::counter::Counter; 5],
    dropped_metric: prometheus_client::metrics::counter::Counter,
}

/// One event on which the versions did not agree.
#[derive(Clone, Debug, Serialize)]
pub struct Difference {
    /// When it was compared, milliseconds since the epoch.
    pub at_unix_ms: u64,
    /// The event given to both versions: `id`, `source`, `type`.
    pub event: Value,
    /// `different`, `candidate_failed`, `live_failed` or `both_failed`.
    pub outcome: &'static str,
    /// What differs: `count` (of emitted events), or `#N.attribute`.
    pub differing: Vec<String>,
    /// The live version's output: its emitted events (structured JSON), or its error.
    pub live: Value,
    /// The candidate's output, likewise.
    pub candidate: Value,
}

/// A canary version and its window.
pub struct Canary {
    pub(crate) plugin: Arc<Plugin>,
    share: f64,
    max_error_ratio: f64,
    window: Duration,
    min_calls: u64,
    pub(crate) state: Arc<CanaryState>,
}

/// Calls and errors of both versions in the current window, and whether the
/// candidate was rolled back. Carried over by a reload that keeps both versions.
pub struct CanaryState {
    rolled_back: AtomicBool,
    inner: Mutex<CanaryInner>,
}

#[derive(Default)]
struct CanaryInner {
    started: Option<Instant>,
    window: Counts,
    total: Counts,
    rollback: Option<Rollback>,
}

#[derive(Clone, Copy, Default, Serialize)]
struct Counts {
    live_calls: u64,
    live_errors: u64,
    candidate_calls: u64,
    candidate_errors: u64,
}

/// Why and when a canary was rolled back.
#[derive(Clone, Debug, Serialize)]
struct Rollback {
    at_unix_ms: u64,
    reason: String,
}

/// The settings of a canary, from its configuration.
pub struct CanarySettings {
    /// The share of events it handles.
    pub share: f64,
    /// How many times the live error rate it may reach.
    pub max_error_ratio: f64,
    /// The window rates are counted over.
    pub window: Duration,
    /// Calls it must have had in the window before it is judged.
    pub min_calls: u64,
}

impl Candidates {
    /// The candidates of plugin `name`.
    pub fn new(name: &str, shadow: Option<Shadow>, canary: Option<Canary>) -> Self {
        Self {
            name: name.into(),
            shadow,
            canary,
        }
    }

    /// Takes over the counts and the rollback of `previous` for each
    /// candidate whose file and whose live version are unchanged.
    pub fn succeed(&mut self, live: &Plugin, previous: &Candidates, previous_live: &Plugin) {
        if live.digest() != previous_live.digest() {
            return;
        }
        if let (Some(new), Some(old)) = (&mut self.shadow, &previous.shadow)
            && new.plugin.digest() == old.plugin.digest()
        {
            new.stats = Arc::clone(&old.stats);
        }
        if let (Some(new), Some(old)) = (&mut self.canary, &previous.canary)
            && new.plugin.digest() == old.plugin.digest()
        {
            new.state = Arc::clone(&old.state);
        }
    }

    /// Hands `event` to the canary (for its share, while not rolled back) or
    /// to `live`, then offers it to the shadow.
    pub async fn handle(&self, live: &Arc<Plugin>, event: &Event) -> Result<Vec<Event>, CallError> {
        if let Some(canary) = &self.canary
            && canary.takes()
        {
            let result = canary.plugin.handle(event).await;
            canary.record(&self.name, Side::Candidate, result.is_err());
            match result {
                Ok(events) => return Ok(events),
                Err(e) => {
                    tracing::warn!(plugin = &*self.name, event = %event, error = %e, "the canary version failed; the live version handles the event");
                }
            }
        }
        let result = live.handle(event).await;
        if let Some(canary) = &self.canary {
            canary.record(&self.name, Side::Live, result.is_err());
        }
        if let Some(shadow) = &self.shadow {
            shadow.offer(event, &result);
        }
        result
    }

    /// What `GET /admin/plugins` shows of the candidates.
    pub fn describe(&self) -> Value {
        let mut out = serde_json::Map::new();
        if let Some(s) = &self.shadow {
            out.insert(
                "shadow".into(),
                json!({ "file": s.plugin.path().display().to_string(), "sha256": s.plugin.digest() }),
            );
        }
        if let Some(c) = &self.canary {
            let mut canary = c.status();
            if let Value::Object(m) = &mut canary {
                m.insert("file".into(), c.plugin.path().display().to_string().into());
                m.insert("sha256".into(), c.plugin.digest().into());
            }
            out.insert("canary".into(), canary);
        }
        Value::Object(out)
    }
}

impl Shadow {
    /// `plugin` as the shadow of plugin `name`, comparing outputs without the
    /// attributes in `ignore`, at most `max_pending` calls at once, keeping the
    /// latest `keep` differences.
    pub fn new(
        name: &str,
        plugin: Arc<Plugin>,
        ignore: Vec<String>,
        max_pending: usize,
        keep: usize,
    ) -> Self {
        let m = crate::metrics::metrics();
        let metrics = SHADOW_OUTCOMES.map(|outcome| {
            m.shadow_comparisons
                .get_or_create(&crate::metrics::ShadowLabels {
                    plugin: name.to_owned(),
                    outcome,
                })
                .clone()
        });
        let dropped_metric = m
            .shadow_dropped
            .get_or_create(&crate::metrics::PluginLabels {
                plugin: name.to_owned(),
            })
            .clone();
        Self {
            plugin,
            ignore: ignore.into(),
            slots: Arc::new(Semaphore::new(max_pending)),
            stats: Arc::new(ShadowStats {
                counts: Default::default(),
                dropped: AtomicU64::new(0),
                keep,
                differences: Mutex::new(VecDeque::with_capacity(keep)),
                metrics,
                dropped_metric,
            }),
        }
    }

    /// Spawns the shadow call of `event`, to be compared with the live
    /// version's `live` result; drops it when `max_pending` calls are already
    /// waiting or running.
    fn offer(&self, event: &Event, live: &Result<Vec<Event>, CallError>) {
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            self.stats.dropped_metric.inc();
            return;
        };
        let (plugin, stats, ignore) = (
            Arc::clone(&self.plugin),
            Arc::clone(&self.stats),
            Arc::clone(&self.ignore),
        );
        let (event, live) = (event.clone(), live.clone());
        tokio::spawn(async move {
            let candidate = plugin.handle(&event).await;
            drop(permit);
            stats.record(&event, &live, &candidate, &ignore);
        });
    }
}

impl ShadowStats {
    fn record(
        &self,
        event: &Event,
        live: &Result<Vec<Event>, CallError>,
        candidate: &Result<Vec<Event>, CallError>,
        ignore: &[String],
    ) {
        let (outcome, difference) =
            judge(event, unix_ms(SystemTime::now()), live, candidate, ignore);
        let i = outcome_index(outcome);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.metrics[i].inc();
        let Some(difference) = difference else {
            return;
        };
        let mut differences = lock(&self.differences);
        if differences.len() >= self.keep {
            differences.pop_front();
        }
        differences.push_back(difference);
    }

    /// What `GET /admin/plugins/{name}/shadow` shows: the counts by outcome,
    /// the drops, and the latest differences, oldest first.
    pub fn report(&self) -> Value {
        let counts: serde_json::Map<String, Value> = SHADOW_OUTCOMES
            .iter()
            .zip(&self.counts)
            .map(|(o, c)| ((*o).to_owned(), c.load(Ordering::Relaxed).into()))
            .collect();
        let differences: Vec<Difference> = lock(&self.differences).iter().cloned().collect();
        json!({
            "counts": counts,
            "dropped": self.dropped.load(Ordering::Relaxed),
            "differences": differences,
        })
    }
}

/// The index of `outcome` in [`SHADOW_OUTCOMES`].
pub(crate) fn outcome_index(outcome: &str) -> usize {
    SHADOW_OUTCOMES
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or(0)
}

/// Compares what the live version and the candidate made of `event` (a
/// transform's result as zero or one event): the outcome, and unless it is
/// `equal`, the difference to show, dated `at_unix_ms`. The one comparison of
/// shadows and of `router whatif`.
pub(crate) fn judge(
    event: &Event,
    at_unix_ms: u64,
    live: &Result<Vec<Event>, CallError>,
    candidate: &Result<Vec<Event>, CallError>,
    ignore: &[String],
) -> (&'static str, Option<Difference>) {
    let (outcome, differing) = compare(live, candidate, ignore);
    let difference = (outcome != "equal").then(|| Difference {
        at_unix_ms,
        event: json!({ "id": event.id, "source": event.source, "type": event.ty }),
        outcome,
        differing,
        live: output(live),
        candidate: output(candidate),
    });
    (outcome, difference)
}

/// The outcome of comparing the two results, and what differs.
fn compare(
    live: &Result<Vec<Event>, CallError>,
    candidate: &Result<Vec<Event>, CallError>,
    ignore: &[String],
) -> (&'static str, Vec<String>) {
    let (live, candidate) = match (live, candidate) {
        (Err(_), Err(_)) => return ("both_failed", Vec::new()),
        (Ok(_), Err(_)) => return ("candidate_failed", Vec::new()),
        (Err(_), Ok(_)) => return ("live_failed", Vec::new()),
        (Ok(l), Ok(c)) => (l, c),
    };
    if live.len() != candidate.len() {
        return ("different", vec!["count".to_owned()]);
    }
    let differing: Vec<String> = live
        .iter()
        .zip(candidate)
        .enumerate()
        .flat_map(|(i, (l, c))| {
            differing_attributes(l, c, ignore)
                .into_iter()
                .map(move |a| format!("#{i}.{a}"))
        })
        .collect();
    if differing.is_empty() {
        ("equal", differing)
    } else {
        ("different", differing)
    }
}

/// The attributes of `a` and `b` that differ, but those in `ignore`; data is
/// compared as JSON when both parse as JSON, byte for byte otherwise.
fn differing_attributes(a: &Event, b: &Event, ignore: &[String]) -> Vec<String> {
    let mut differing = Vec::new();
    let mut check = |name: &str, same: bool| {
        if !same && !ignore.iter().any(|i| i == name) {
            differing.push(name.to_owned());
        }
    };
    check("id", a.id == b.id);
    check("source", a.source == b.source);
    check("type", a.ty == b.ty);
    check("subject", a.subject == b.subject);
    check("time", a.time == b.time);
    check("datacontenttype", a.datacontenttype == b.datacontenttype);
    check("dataschema", a.dataschema == b.dataschema);
    check("data", same_data(a.data.as_deref(), b.data.as_deref()));
    let mut names: Vec<&str> = a
        .extensions
        .iter()
        .chain(&b.extensions)
        .map(|(k, _)| k.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        check(name, a.extension(name) == b.extension(name));
    }
    differing
}

fn same_data(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a != b => {
            match (
                serde_json::from_slice::<Value>(a),
                serde_json::from_slice::<Value>(b),
            ) {
                (Ok(a), Ok(b)) => a == b,
                _ => false,
            }
        }
        (a, b) => a == b,
    }
}

/// A result as shown in a difference.
fn output(result: &Result<Vec<Event>, CallError>) -> Value {
    match result {
        Ok(events) => Value::Array(
            events
                .iter()
                .map(|e| {
                    serde_json::from_slice(&crate::event::json::encode_structured(e))
                        .unwrap_or(Value::Null)
                })
                .collect(),
        ),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

#[derive(Clone, Copy)]
enum Side {
    Live,
    Candidate,
}

impl Canary {
    /// `plugin` as the canary of a plugin, with `settings`.
    pub fn new(plugin: Arc<Plugin>, settings: &CanarySettings) -> Self {
        Self {
            plugin,
            share: settings.share,
            max_error_ratio: settings.max_error_ratio,
            window: settings.window,
            min_calls: settings.min_calls,
            state: Arc::new(CanaryState {
                rolled_back: AtomicBool::new(false),
                inner: Mutex::default(),
            }),
        }
    }

    /// Whether this event goes to the candidate.
    fn takes(&self) -> bool {
        !self.state.rolled_back.load(Ordering::Relaxed)
            && self.share > 0.0
            && fastrand::f64() < self.share
    }

    /// Counts a call of `side`, and rolls the candidate back when its error
    /// rate in the window, over at least `min_calls` calls, is more than
    /// `max_error_ratio` times the live version's.
    fn record(&self, name: &str, side: Side, failed: bool) {
        let (version, result) = (
            match side {
                Side::Live => "live",
                Side::Candidate => "candidate",
            },
            if failed { "error" } else { "ok" },
        );
        crate::metrics::metrics()
            .canary_calls
            .get_or_create(&crate::metrics::CanaryLabels {
                plugin: name.to_owned(),
                version,
                result,
            })
            .inc();
        let mut inner = lock(&self.state.inner);
        let now = Instant::now();
        if inner
            .started
            .is_none_or(|s| now.duration_since(s) >= self.window)
        {
            inner.started = Some(now);
            inner.window = Counts::default();
        }
        let CanaryInner { window, total, .. } = &mut *inner;
        for counts in [window, total] {
            match side {
                Side::Live => {
                    counts.live_calls += 1;
                    counts.live_errors += u64::from(failed);
                }
                Side::Candidate => {
                    counts.candidate_calls += 1;
                    counts.candidate_errors += u64::from(failed);
                }
            }
        }
        let w = inner.window;
        if !matches!(side, Side::Candidate)
            || w.candidate_calls < self.min_calls
            || inner.rollback.is_some()
        {
            return;
        }
        let rate = |errors: u64, calls: u64| errors as f64 / calls.max(1) as f64;
        let candidate = rate(w.candidate_errors, w.candidate_calls);
        let live = rate(w.live_errors, w.live_calls);
        if candidate > 0.0 && candidate > live * self.max_error_ratio {
            let reason = format!(
                "the candidate failed {} of {} calls ({:.1} %) within {:?}, the live version {} of {} ({:.1} %): more than {} times the live rate",
                w.candidate_errors,
                w.candidate_calls,
                candidate * 100.0,
                self.window,
                w.live_errors,
                w.live_calls,
                live * 100.0,
                self.max_error_ratio
            );
            tracing::error!(plugin = name, candidate = %self.plugin.path().display(), %reason, "canary rolled back: the live version handles every event");
            crate::metrics::metrics()
                .canary_rollbacks
                .get_or_create(&crate::metrics::PluginLabels {
                    plugin: name.to_owned(),
                })
                .inc();
            inner.rollback = Some(Rollback {
                at_unix_ms: unix_ms(SystemTime::now()),
                reason,
            });
            self.state.rolled_back.store(true, Ordering::Relaxed);
        }
    }

    /// The canary's state as shown by the admin API.
    pub fn status(&self) -> Value {
        let inner = lock(&self.state.inner);
        json!({
            "share": self.share,
            "max_error_ratio": self.max_error_ratio,
            "window_ms": u64::try_from(self.window.as_millis()).unwrap_or(u64::MAX),
            "min_calls": self.min_calls,
            "state": if inner.rollback.is_some() { "rolled_back" } else { "active" },
            "rollback": inner.rollback,
            "window": inner.window,
            "total": inner.total,
        })
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, data: &str) -> Event {
        let mut e = Event::new(id, "/s", "t");
        e.datacontenttype = Some("application/json".into());
        e.data = Some(bytes::Bytes::from(data.to_owned()));
        e
    }

    #[test]
    fn outputs_compare_attribute_by_attribute_and_data_as_json() {
        let same = compare(
            &Ok(vec![event("1", r#"{"a": 1, "b": 2}"#)]),
            &Ok(vec![event("1", r#"{"b":2,"a":1}"#)]),
            &[],
        );
        assert_eq!(same, ("equal", vec![]));
        let ids = compare(
            &Ok(vec![event("1", "{}")]),
            &Ok(vec![event("2", "{}")]),
            &[],
        );
        assert_eq!(ids, ("different", vec!["#0.id".to_owned()]));
        let ignored = compare(
            &Ok(vec![event("1", "{}")]),
            &Ok(vec![event("2", "{}")]),
            &["id".to_owned()],
        );
        assert_eq!(ignored.0, "equal");
        let count = compare(&Ok(vec![event("1", "{}")]), &Ok(vec![]), &[]);
        assert_eq!(count, ("different", vec!["count".to_owned()]));
        let error = CallError::Fatal {
            plugin: "p".into(),
            message: "no".into(),
        };
        assert_eq!(
            compare(&Ok(vec![]), &Err(error.clone()), &[]).0,
            "candidate_failed"
        );
        assert_eq!(
            compare(&Err(error.clone()), &Ok(vec![]), &[]).0,
            "live_failed"
        );
        assert_eq!(
            compare(&Err(error.clone()), &Err(error), &[]).0,
            "both_failed"
        );
    }
}
