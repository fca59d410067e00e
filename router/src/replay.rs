//! Replay: archived events of a time window sent again through the live routes
//! (or one route), each marked with the extension `replayid`, at a bounded
//! rate, with a checkpoint as it goes and when it stops, so that an
//! interrupted replay resumes where it stopped.
//!
//! The rules, which `docs/operations.md` states for operators:
//!
//! - a replayed event carries `replayid = <the replay's id>`, and so does every
//!   event its handlers emit; its dedup key includes the replay id (see
//!   `dispatch`), so no dedup window drops it for having been delivered before;
//! - in durable mode, a replay to every route goes through the queue like
//!   ingest (the same `enqueue`); a replay to one route is delivered by the
//!   replaying process itself, since a queue entry cannot name a route;
//! - the checkpoint (`<dir>/replays/<id>.json`, or `<stream>:replay:<id>` in
//!   Redis) names the last position handed over, written at most every
//!   [`CHECKPOINT_EVERY`] while the replay runs and whenever it stops: a cancel
//!   or a shutdown finishes the event in hand and resumes after it; a crash
//!   may deliver again, on resume, the events handed over since the last
//!   checkpoint (those of the last 100 ms at most).

use crate::delivery::archive::{Archive, ArchiveError, Position, Query, rfc3339, unix_ms};
use crate::dispatch::Dispatcher;
use crate::event::REPLAY_ID;
use crate::policy::filter::Filter;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// Records read from the archive at a time.
const PAGE: usize = 256;

/// How often a running replay saves its checkpoint at most. A write per event
/// (a file replaced, or a Redis round trip) bounded a replay to about 1,700
/// events a second; a crash replays at most this much again.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Why a replay cannot start, resume or be found.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No `[archive]` to replay from.
    #[error("no archive: replay needs an [archive] table in the configuration")]
    NoArchive,
    /// A time that is neither RFC 3339 nor milliseconds since the epoch.
    #[error(
        "bad time range: `{which}` = {value:?} is not an RFC 3339 time (2026-12-02T23:00:00Z) or milliseconds since the epoch"
    )]
    BadTime {
        /// `from` or `to`.
        which: &'static str,
        /// What was given.
        value: String,
    },
    /// `from` and `to` are missing, or `from` is not before `to`.
    #[error("bad time range: {0}")]
    BadRange(String),
    /// Neither or both of `route` and `all`.
    #[error("name one route (`route`, `--route R`) or every route (`all: true`, `--all`)")]
    Selection,
    /// The route is not among the live ones.
    #[error("unknown route {name:?}: the live routes are {known}")]
    UnknownRoute {
        /// The name given.
        name: String,
        /// The live routes' names.
        known: String,
    },
    /// The filter does not parse or compile.
    #[error("bad filter: {0}")]
    BadFilter(String),
    /// A rate that is not a positive number of events per second.
    #[error(
        "bad rate {0:?}: give events per second, a positive number such as 20 or \"20/s\" (also \"/m\", \"/h\")"
    )]
    BadRate(String),
    /// An id with characters other than letters, digits, `.`, `_` and `-`.
    #[error("bad replay id {0:?}: use 1 to 64 letters, digits, `.`, `_` or `-`")]
    BadId(String),
    /// A replay of that id exists (running, or with a checkpoint).
    #[error(
        "replay {0:?} exists; resume it (`POST /admin/replay/{0}/resume`, `router replay --resume {0}`) or choose another id"
    )]
    Exists(String),
    /// The replay is running in this process.
    #[error("replay {0:?} is running")]
    Running(String),
    /// The replay finished: there is nothing to resume.
    #[error("replay {0:?} is done: nothing to resume")]
    Done(String),
    /// No replay of that id, running or checkpointed.
    #[error("no replay {0:?}")]
    NotFound(String),
    /// A checkpoint that does not read as one (edited by hand, or of another
    /// version).
    #[error("the checkpoint of replay {id:?} is unreadable: {reason}")]
    BadCheckpoint {
        /// The replay.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The archive cannot be read or the checkpoint written.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl ReplayError {
    /// The HTTP status of the admin API's answer.
    pub fn status(&self) -> u16 {
        match self {
            Self::NoArchive | Self::Exists(_) | Self::Running(_) | Self::Done(_) => 409,
            Self::NotFound(_) => 404,
            Self::Archive(_) => 503,
            Self::BadCheckpoint { .. } => 500,
            Self::BadTime { .. }
            | Self::BadRange(_)
            | Self::Selection
            | Self::UnknownRoute { .. }
            | Self::BadFilter(_)
            | Self::BadRate(_)
            | Self::BadId(_) => 400,
        }
    }
}

/// A time as given: RFC 3339, or milliseconds since the epoch (a number or
/// its digits); `now` is now.
pub fn parse_time(which: &'static str, value: &serde_json::Value) -> Result<u64, ReplayError> {
    let bad = || ReplayError::BadTime {
        which,
        value: match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        },
    };
    match value {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(bad),
        serde_json::Value::String(s) => parse_time_text(s).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn parse_time_text(text: &str) -> Option<u64> {
    let text = text.trim();
    if text == "now" {
        return Some(unix_ms());
    }
    if let Ok(ms) = text.parse::<u64>() {
        return Some(ms);
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    u64::try_from(time.timestamp_millis()).ok()
}

/// A filter as given on the command line or in a query: a JSON object is a
/// route filter in any dialect (`{"prefix": {"type": "com.example."}}`), any
/// other text a CloudEvents SQL expression.
pub fn parse_filter(text: &str) -> Result<Filter, ReplayError> {
    let spec = if text.trim_start().starts_with('{') {
        serde_json::from_str::<crate::config::FilterSpec>(text)
            .map_err(|e| ReplayError::BadFilter(format!("{e} (a JSON filter names one dialect: exact, prefix, suffix, all, any, not, data or sql)")))?
    } else {
        crate::config::FilterSpec::Sql(text.to_owned())
    };
    spec.compile()
        .map_err(|e| ReplayError::BadFilter(e.to_string()))
}

/// A rate in events per second: a number, or `N/s`, `N/m`, `N/h`.
pub fn parse_rate(value: &serde_json::Value) -> Result<f64, ReplayError> {
    let shown = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let bad = || ReplayError::BadRate(shown.clone());
    let rate = match value {
        serde_json::Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        serde_json::Value::String(s) => {
            let (n, per) = s.trim().split_once('/').unwrap_or((s.trim(), "s"));
            let n: f64 = n.trim().parse().map_err(|_| bad())?;
            match per.trim() {
                "s" | "sec" | "second" => n,
                "m" | "min" | "minute" => n / 60.0,
                "h" | "hour" => n / 3600.0,
                _ => return Err(bad()),
            }
        }
        _ => return Err(bad()),
    };
    if rate.is_finite() && rate > 0.0 {
        Ok(rate)
    } else {
        Err(bad())
    }
}

/// `POST /admin/replay`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// The replay's id (the `replayid` of its events); one is made when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Arrived at or after this: RFC 3339 or ms since the epoch.
    #[serde(default)]
    pub from: Option<serde_json::Value>,
    /// Arrived before this.
    #[serde(default)]
    pub to: Option<serde_json::Value>,
    /// Only the events this takes (see [`parse_filter`]); a JSON object is
    /// taken as a filter too.
    #[serde(default)]
    pub filter: Option<serde_json::Value>,
    /// Through this route only.
    #[serde(default)]
    pub route: Option<String>,
    /// Through every route.
    #[serde(default)]
    pub all: bool,
    /// At most this many events per second (see [`parse_rate`]); unbounded
    /// when absent.
    #[serde(default)]
    pub rate: Option<serde_json::Value>,
}

/// Where a replay is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Handing events over.
    Running,
    /// Every event of the window was handed over.
    Done,
    /// Stopped by `DELETE /admin/replay/{id}`; resumable.
    Cancelled,
    /// Stopped by the router's shutdown; resumable.
    Interrupted,
    /// Stopped by an archive or queue error; resumable.
    Failed,
}

/// A replay's parameters and progress: the admin API's answer and the
/// checkpoint both.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    /// The replay id, as its events' `replayid`.
    pub id: String,
    /// Where it is.
    pub state: State,
    /// The window's start, ms since the epoch.
    pub from_ms: u64,
    /// The window's end (exclusive).
    pub to_ms: u64,
    /// The window's start, RFC 3339.
    pub from: String,
    /// The window's end, RFC 3339.
    pub to: String,
    /// The filter as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The one route, or none for all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Events per second at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Whether the events go through the durable queue.
    #[serde(default)]
    pub queued: bool,
    /// Events of the window the filter takes, counted at the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// Events handed over so far (over every run of the replay).
    pub replayed: u64,
    /// Of those, events whose delivery failed on some route (dead-lettered
    /// ones are not failures).
    pub failed: u64,
    /// The last archive position handed over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// The last delivery or store error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the current run started, ms since the epoch.
    pub started_ms: u64,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
}

/// One replay of this process.
struct Replay {
    progress: Mutex<Progress>,
    /// Set to the state to stop in (cancelled, interrupted).
    stop: watch::Sender<Option<State>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The replays of this process, and what they deliver with.
pub struct Replays {
    dispatcher: Arc<Dispatcher>,
    queue: Option<Arc<crate::queue::RedisQueue>>,
    replays: Mutex<HashMap<String, Arc<Replay>>>,
}

impl Replays {
    /// Replays delivered by `dispatcher`, or in durable mode enqueued on `queue`.
    pub fn new(dispatcher: Arc<Dispatcher>, queue: Option<Arc<crate::queue::RedisQueue>>) -> Self {
        Self {
            dispatcher,
            queue,
            replays: Mutex::default(),
        }
    }

    fn archive(&self) -> Result<Arc<Archive>, ReplayError> {
        self.dispatcher
            .runtime()
            .settings
            .archive
            .clone()
            .ok_or(ReplayError::NoArchive)
    }

    /// Checks `request` and starts the replay; its first progress.
    pub async fn start(self: &Arc<Self>, request: ReplayRequest) -> Result<Progress, ReplayError> {
        let archive = self.archive()?;
        let id = match request.id {
            Some(id) => check_id(id)?,
            None => format!("replay-{}-{:04x}", unix_ms(), fastrand::u16(..)),
        };
        let missing = |which| ReplayError::BadRange(format!("`{which}` is required"));
        let from = parse_time(
            "from",
            request.from.as_ref().ok_or_else(|| missing("from"))?,
        )?;
        let to = parse_time("to", request.to.as_ref().ok_or_else(|| missing("to"))?)?;
        if from >= to {
            return Err(ReplayError::BadRange(format!(
                "`from` ({}) must be before `to` ({})",
                rfc3339(from),
                rfc3339(to)
            )));
        }
        let route = match (request.route, request.all) {
            (Some(route), false) => {
                let runtime = self.dispatcher.runtime();
                let names: Vec<&str> = runtime.routes().iter().map(|r| r.name.as_str()).collect();
                if !names.contains(&route.as_str()) {
                    return Err(ReplayError::UnknownRoute {
                        name: route,
                        known: names.join(", "),
                    });
                }
                Some(route)
            }
            (None, true) => None,
            _ => return Err(ReplayError::Selection),
        };
        let filter = match request.filter {
            None => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(object) => Some(object.to_string()),
        };
        if let Some(text) = &filter {
            parse_filter(text)?;
        }
        let rate = request.rate.as_ref().map(parse_rate).transpose()?;
        let running = crate::sync::lock(&self.replays).contains_key(&id);
        if running || archive.load_checkpoint(&id).await?.is_some() {
            return Err(ReplayError::Exists(id));
        }
        let progress = Progress {
            id: id.clone(),
            state: State::Running,
            from_ms: from,
            to_ms: to,
            from: rfc3339(from),
            to: rfc3339(to),
            filter,
            queued: self.queue.is_some() && route.is_none(),
            route,
            rate,
            total: None,
            replayed: 0,
            failed: 0,
            position: None,
            last_error: None,
            started_ms: unix_ms(),
            finished_ms: None,
        };
        archive
            .save_checkpoint(&id, &serde_json::to_value(&progress).unwrap_or_default())
            .await?;
        self.launch(archive, progress)
    }

    /// Resumes replay `id` from its checkpoint, after its last position.
    pub async fn resume(self: &Arc<Self>, id: &str) -> Result<Progress, ReplayError> {
        let archive = self.archive()?;
        let id = check_id(id.to_owned())?;
        let here = crate::sync::lock(&self.replays)
            .get(&id)
            .map(|r| crate::sync::lock(&r.progress).state);
        match here {
            Some(State::Running) => return Err(ReplayError::Running(id)),
            Some(State::Done) => return Err(ReplayError::Done(id)),
            _ => {}
        }
        let checkpoint = archive
            .load_checkpoint(&id)
            .await?
            .ok_or_else(|| ReplayError::NotFound(id.clone()))?;
        let mut progress: Progress =
            serde_json::from_value(checkpoint).map_err(|e| ReplayError::BadCheckpoint {
                id: id.clone(),
                reason: e.to_string(),
            })?;
        if progress.state == State::Done {
            return Err(ReplayError::Done(id));
        }
        progress.state = State::Running;
        progress.started_ms = unix_ms();
        progress.finished_ms = None;
        progress.last_error = None;
        self.launch(archive, progress)
    }

    /// Runs `progress`'s replay in a task of its own; refused when a replay of
    /// that id runs already (two requests for one id at once).
    fn launch(
        self: &Arc<Self>,
        archive: Arc<Archive>,
        progress: Progress,
    ) -> Result<Progress, ReplayError> {
        let (stop, stopped) = watch::channel(None);
        let replay = Arc::new(Replay {
            progress: Mutex::new(progress.clone()),
            stop,
            task: Mutex::new(None),
        });
        {
            let mut replays = crate::sync::lock(&self.replays);
            if let Some(running) = replays.get(&progress.id)
                && crate::sync::lock(&running.progress).state == State::Running
            {
                return Err(ReplayError::Running(progress.id));
            }
            replays.insert(progress.id.clone(), Arc::clone(&replay));
        }
        let task = tokio::spawn(Arc::clone(self).run(archive, Arc::clone(&replay), stopped));
        *crate::sync::lock(&replay.task) = Some(task);
        tracing::info!(replay = %progress.id, from = %progress.from, to = %progress.to, route = progress.route.as_deref().unwrap_or("*"), "replay started");
        Ok(progress)
    }

    /// The progress of replay `id`: this process's, else its checkpoint's.
    pub async fn progress(&self, id: &str) -> Result<Progress, ReplayError> {
        if let Some(replay) = crate::sync::lock(&self.replays).get(id) {
            return Ok(crate::sync::lock(&replay.progress).clone());
        }
        let archive = self.archive()?;
        let id = check_id(id.to_owned())?;
        let checkpoint = archive
            .load_checkpoint(&id)
            .await?
            .ok_or_else(|| ReplayError::NotFound(id.clone()))?;
        serde_json::from_value(checkpoint).map_err(|e| ReplayError::BadCheckpoint {
            id,
            reason: e.to_string(),
        })
    }

    /// Every replay this process ran or runs, by id.
    pub fn list(&self) -> Vec<Progress> {
        let mut all: Vec<Progress> = crate::sync::lock(&self.replays)
            .values()
            .map(|r| crate::sync::lock(&r.progress).clone())
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Stops replay `id` after the event in hand; its checkpoint stays, to resume.
    pub async fn cancel(&self, id: &str) -> Result<Progress, ReplayError> {
        let replay = crate::sync::lock(&self.replays)
            .get(id)
            .cloned()
            .ok_or_else(|| ReplayError::NotFound(id.to_owned()))?;
        replay.stop.send_replace(Some(State::Cancelled));
        let task = crate::sync::lock(&replay.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        Ok(crate::sync::lock(&replay.progress).clone())
    }

    /// Stops every replay (the router is shutting down), each after the event
    /// in hand; waits for them.
    pub async fn shutdown(&self) {
        let replays: Vec<Arc<Replay>> =
            crate::sync::lock(&self.replays).values().cloned().collect();
        for replay in &replays {
            replay.stop.send_replace(Some(State::Interrupted));
        }
        for replay in replays {
            let task = crate::sync::lock(&replay.task).take();
            if let Some(task) = task {
                let _ = task.await;
            }
        }
    }

    /// The replay's task: counts the window's events, then hands them over one
    /// by one at the rate, checkpointing as it goes, until the window ends or
    /// it is told to stop.
    async fn run(
        self: Arc<Self>,
        archive: Arc<Archive>,
        replay: Arc<Replay>,
        mut stop: watch::Receiver<Option<State>>,
    ) {
        let snapshot = crate::sync::lock(&replay.progress).clone();
        let id = snapshot.id.clone();
        let filter = match snapshot.filter.as_deref().map(parse_filter).transpose() {
            Ok(filter) => filter,
            Err(e) => {
                self.finish(&archive, &replay, State::Failed, Some(e.to_string()))
                    .await;
                return;
            }
        };
        let mut query = Query {
            from: Some(snapshot.from_ms),
            to: Some(snapshot.to_ms),
            after: None,
            filter,
            limit: PAGE,
        };
        if snapshot.total.is_none() {
            match count(&archive, &query).await {
                Ok(total) => crate::sync::lock(&replay.progress).total = Some(total),
                Err(e) => {
                    self.finish(&archive, &replay, State::Failed, Some(e.to_string()))
                        .await;
                    return;
                }
            }
        }
        query.after = snapshot.position.as_deref().and_then(|p| p.parse().ok());
        let interval = snapshot.rate.map(|r| Duration::from_secs_f64(1.0 / r));
        let started = tokio::time::Instant::now();
        let mut sent: u32 = 0;
        let mut saved = started;
        loop {
            let page = match archive.read(&query).await {
                Ok(page) => page,
                Err(e) => {
                    self.finish(&archive, &replay, State::Failed, Some(e.to_string()))
                        .await;
                    return;
                }
            };
            for record in page.records {
                if let Some(interval) = interval {
                    let due = started + interval * sent;
                    tokio::select! {
                        () = tokio::time::sleep_until(due) => {}
                        _ = stop.wait_for(Option::is_some) => {}
                    }
                }
                let stopping = *stop.borrow();
                if let Some(state) = stopping {
                    self.finish(&archive, &replay, state, None).await;
                    return;
                }
                let mut event = record.event;
                event.set_extension(REPLAY_ID, id.clone());
                let (failed, error) = match self.hand_over(event, snapshot.route.as_deref()).await {
                    Ok(None) => (false, None),
                    Ok(Some(error)) => (true, Some(error)),
                    Err(error) => {
                        // Not handed over (the queue refused it): the
                        // checkpoint stays before it, so a resume sends it.
                        self.finish(&archive, &replay, State::Failed, Some(error))
                            .await;
                        return;
                    }
                };
                sent = sent.saturating_add(1);
                crate::metrics::metrics().replayed.inc();
                let checkpoint = {
                    let mut progress = crate::sync::lock(&replay.progress);
                    progress.replayed += 1;
                    progress.failed += u64::from(failed);
                    if error.is_some() {
                        progress.last_error = error;
                    }
                    progress.position = Some(record.position.to_string());
                    (saved.elapsed() >= CHECKPOINT_EVERY)
                        .then(|| serde_json::to_value(&*progress).unwrap_or_default())
                };
                if let Some(checkpoint) = checkpoint {
                    saved = tokio::time::Instant::now();
                    if let Err(e) = archive.save_checkpoint(&id, &checkpoint).await {
                        tracing::warn!(replay = %id, error = %e, "cannot save the replay's checkpoint");
                    }
                }
            }
            match page.next {
                Some(next) => query.after = Some(next),
                None => break,
            }
        }
        self.finish(&archive, &replay, State::Done, None).await;
    }

    /// Hands `event` over: enqueued in durable mode (to every route), else
    /// dispatched here. `Ok(Some(error))`: delivered with a failure on a route;
    /// `Err`: not handed over.
    async fn hand_over(
        &self,
        event: crate::event::Event,
        route: Option<&str>,
    ) -> Result<Option<String>, String> {
        if let (Some(queue), None) = (&self.queue, route) {
            return match queue.enqueue(std::slice::from_ref(&event)).await {
                Ok(_) => {
                    crate::metrics::metrics().queue_enqueued.inc();
                    Ok(None)
                }
                Err(e) => Err(format!("cannot enqueue {}: {e}", event.id)),
            };
        }
        let report = self.dispatcher.dispatch_to(event, route).await;
        Ok(report.failure().map(|_| {
            format!(
                "event {}: route(s) failed: {}",
                report.id,
                report.failed_routes().join(", ")
            )
        }))
    }

    /// Ends the run in `state`: the checkpoint is saved first, then the state
    /// shown, so that whoever sees the replay stopped finds its checkpoint
    /// saved (a resume reads it).
    async fn finish(
        &self,
        archive: &Archive,
        replay: &Replay,
        state: State,
        error: Option<String>,
    ) {
        let mut progress = crate::sync::lock(&replay.progress).clone();
        progress.state = state;
        progress.finished_ms = Some(unix_ms());
        if error.is_some() {
            progress.last_error = error;
        }
        tracing::info!(replay = %progress.id, state = ?state, replayed = progress.replayed, failed = progress.failed, error = progress.last_error.as_deref().unwrap_or(""), "replay stopped");
        let checkpoint = serde_json::to_value(&progress).unwrap_or_default();
        if let Err(e) = archive.save_checkpoint(&progress.id, &checkpoint).await {
            tracing::warn!(replay = %progress.id, error = %e, "cannot save the replay's checkpoint");
        }
        *crate::sync::lock(&replay.progress) = progress;
    }
}

/// The events `query` selects, page by page.
async fn count(archive: &Archive, query: &Query) -> Result<u64, ArchiveError> {
    let mut query = query.clone();
    query.limit = 4096;
    let mut total = 0u64;
    loop {
        let page = archive.read(&query).await?;
        total += page.records.len() as u64;
        match page.next {
            Some(next) => query.after = Some(next),
            None => return Ok(total),
        }
    }
}

/// `id` when it is 1 to 64 letters, digits, `.`, `_` or `-` (it names a file).
fn check_id(id: String) -> Result<String, ReplayError> {
    let fine = !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fine {
        Ok(id)
    } else {
        Err(ReplayError::BadId(id))
    }
}

/// The position of a record as the admin API shows it, parsed.
pub fn parse_position(text: &str) -> Result<Position, String> {
    text.parse()
        .map_err(|e: crate::delivery::archive::BadPosition| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_rates_filters_and_ids_are_checked() {
        assert_eq!(parse_time("from", &json!(5)).ok(), Some(5));
        assert_eq!(
            parse_time("from", &json!("2025-12-02T23:00:00.123Z")).ok(),
            Some(1_764_716_400_123)
        );
        let e = parse_time("to", &json!("yesterday")).unwrap_err();
        assert!(e.to_string().contains("`to` = \"yesterday\""), "{e}");
        assert_eq!(parse_rate(&json!(20)).ok(), Some(20.0));
        assert_eq!(parse_rate(&json!("120/m")).ok(), Some(2.0));
        assert!(parse_rate(&json!(0)).is_err());
        assert!(parse_rate(&json!("fast")).is_err());
        assert!(parse_filter("type = 'a'").is_ok());
        assert!(parse_filter(r#"{"prefix": {"type": "com."}}"#).is_ok());
        assert!(parse_filter(r#"{"colour": 1}"#).is_err());
        assert!(parse_filter("type = ").is_err());
        assert!(check_id("r-1.2_x".into()).is_ok());
        assert!(check_id("../x".into()).is_err());
        assert!(check_id(String::new()).is_err());
    }
}
