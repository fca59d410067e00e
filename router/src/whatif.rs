//! What-if: archived events of a time window given to a plugin's live version
//! and to a candidate file, offline, and their outputs compared as a shadow's
//! are (`router whatif`), so that a change can be reviewed before it is
//! deployed, in CI for instance.
//!
//! Nothing leaves the process: emitted events are compared, never routed or
//! forwarded; neither version has an HTTP grant; each version has a store of
//! its own, empty at the start, in memory, that sees only its own writes (in
//! archive order, so a version that counts sees its own counts); directories
//! stay read-only as they always are. The events given to the plugin are those
//! of the window (and `--filter`) that a route naming the plugin (as its
//! handler or a transform step) matches, as they were archived: steps of the
//! route before the plugin are not applied.

use crate::config::{Config, ConfigValue, PluginConfig};
use crate::delivery::archive::{Archive, Query, rfc3339};
use crate::event::Event;
use crate::kv::{Kv, KvStore, MemoryKv};
use crate::plugin::{
    CallError, Difference, Plugin, PluginHost, SHADOW_OUTCOMES, judge, outcome_index,
};
use crate::policy::filter::Filter;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Records read from the archive at a time.
const PAGE: usize = 256;

/// What to compare.
#[derive(Debug)]
pub struct WhatIf {
    /// The plugin, by its name in the configuration.
    pub plugin: String,
    /// The candidate's `.wasm` file.
    pub candidate: PathBuf,
    /// `config` values of the candidate that replace the live version's.
    pub candidate_config: Vec<(String, String)>,
    /// Events that arrived at or after this (ms since the epoch).
    pub from: u64,
    /// Events that arrived before this.
    pub to: u64,
    /// Only the events it takes.
    pub filter: Option<Filter>,
    /// Attributes left out of the comparison and of the outputs shown, besides
    /// the plugin's `shadow.ignore`.
    pub ignore: Vec<String>,
    /// How many differences the report keeps, the first ones.
    pub show: usize,
}

/// Why the comparison could not run.
#[derive(Debug, thiserror::Error)]
pub enum WhatIfError {
    /// No `[[plugin]]` of that name.
    #[error("no plugin {name:?} in the configuration: its plugins are {known}")]
    UnknownPlugin {
        /// The name given.
        name: String,
        /// The configuration's plugins.
        known: String,
    },
    /// No `[archive]` to read.
    #[error(
        "no archive: whatif reads archived events, and the configuration has no [archive] table"
    )]
    NoArchive,
    /// `from` is not before `to`.
    #[error("bad time range: `from` ({from}) is not before `to` ({to})")]
    BadRange {
        /// The start, RFC 3339.
        from: String,
        /// The end, RFC 3339.
        to: String,
    },
    /// A version could not be loaded.
    #[error("the {version} version ({path}): {reason}")]
    Load {
        /// `live` or `candidate`.
        version: &'static str,
        /// Its file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A time or filter given that does not parse.
    #[error("{0}")]
    BadArgument(String),
    /// The archive's Redis could not be opened.
    #[error("archive redis: {0}")]
    Redis(String),
    /// The archive could not be read.
    #[error("{0}")]
    Archive(String),
}

/// One version of the plugin, as the report names it.
#[derive(Clone, Debug, Serialize)]
pub struct Version {
    /// Its file.
    pub path: String,
    /// The SHA-256 of the file.
    pub sha256: String,
}

/// A difference and where the event is in the archive.
#[derive(Clone, Debug, Serialize)]
pub struct Found {
    /// The event's archive position.
    pub position: String,
    /// When it arrived, RFC 3339.
    pub arrived: String,
    /// What differed.
    #[serde(flatten)]
    pub difference: Difference,
}

/// The comparison: counts per outcome and the first differences.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The plugin.
    pub plugin: String,
    /// The world both versions implement (`router:plugin/handler@...` or `transform`).
    pub world: &'static str,
    /// The live version.
    pub live: Version,
    /// The candidate.
    pub candidate: Version,
    /// The window's start, RFC 3339.
    pub from: String,
    /// The window's end, RFC 3339.
    pub to: String,
    /// Attributes left out of the comparison.
    pub ignore: Vec<String>,
    /// Archived events of the window (and filter).
    pub archived: u64,
    /// Those a route of the plugin takes: the events compared.
    pub compared: u64,
    /// Events per outcome, in [`SHADOW_OUTCOMES`] order.
    pub counts: Counts,
    /// The first differences, in archive order.
    pub differences: Vec<Found>,
}

impl Report {
    /// Events on which the versions did not agree: every outcome but `equal`
    /// and `both_failed`.
    pub fn disagreements(&self) -> u64 {
        self.counts
            .0
            .iter()
            .filter(|(o, _)| !matches!(*o, "equal" | "both_failed"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Events per outcome, in [`SHADOW_OUTCOMES`] order; a JSON object in that
/// order.
#[derive(Debug)]
pub struct Counts(pub Vec<(&'static str, u64)>);

impl Serialize for Counts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (outcome, n) in &self.0 {
            map.serialize_entry(outcome, n)?;
        }
        map.end()
    }
}

/// A time as `--from` and `--to` take it (RFC 3339, ms since the epoch, or
/// `now`), in ms since the epoch.
pub fn parse_time(which: &'static str, text: &str) -> Result<u64, WhatIfError> {
    crate::replay::parse_time(which, &serde_json::Value::String(text.to_owned()))
        .map_err(|e| WhatIfError::BadArgument(e.to_string()))
}

/// A filter as `--filter` takes it: CloudEvents SQL, or a route filter as JSON.
pub fn parse_filter(text: &str) -> Result<Filter, WhatIfError> {
    crate::replay::parse_filter(text).map_err(|e| WhatIfError::BadArgument(e.to_string()))
}

/// Runs the comparison `what` describes under `config`.
pub async fn run(config: &Config, what: &WhatIf) -> Result<Report, WhatIfError> {
    if what.from >= what.to {
        return Err(WhatIfError::BadRange {
            from: rfc3339(what.from),
            to: rfc3339(what.to),
        });
    }
    let entry = config
        .plugins
        .iter()
        .find(|p| p.name.get_ref().as_str() == what.plugin)
        .ok_or_else(|| WhatIfError::UnknownPlugin {
            name: what.plugin.clone(),
            known: config
                .plugins
                .iter()
                .map(|p| format!("`{}`", p.name.get_ref().as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let archive = open_archive(config)?;
    let (live, candidate) = load_versions(config, entry, what).await?;
    let routes = routes_of(config, &what.plugin);
    let mut ignore: Vec<String> = entry
        .shadow
        .as_ref()
        .map(|s| s.get_ref().0.ignore.clone())
        .unwrap_or_default();
    ignore.extend(what.ignore.iter().cloned());
    ignore.sort();
    ignore.dedup();

    let mut counts = [0u64; SHADOW_OUTCOMES.len()];
    let (mut archived, mut compared) = (0, 0);
    let mut differences = Vec::new();
    let mut query = Query {
        from: Some(what.from),
        to: Some(what.to),
        filter: what.filter.clone(),
        limit: PAGE,
        ..Query::default()
    };
    loop {
        let page = archive
            .read(&query)
            .await
            .map_err(|e| WhatIfError::Archive(e.to_string()))?;
        for record in &page.records {
            archived += 1;
            if !routes
                .iter()
                .any(|f| f.as_ref().is_none_or(|f| f.matches(&record.event)))
            {
                continue;
            }
            compared += 1;
            let live_result = call(&live, &record.event).await;
            let candidate_result = call(&candidate, &record.event).await;
            let (outcome, difference) = judge(
                &record.event,
                crate::delivery::archive::unix_ms(),
                &live_result,
                &candidate_result,
                &ignore,
            );
            counts[outcome_index(outcome)] += 1;
            if let Some(mut difference) = difference
                && differences.len() < what.show
            {
                strip(&mut difference.live, &ignore);
                strip(&mut difference.candidate, &ignore);
                differences.push(Found {
                    position: record.position.to_string(),
                    arrived: record.position.arrived(),
                    difference,
                });
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => break,
        }
    }
    Ok(Report {
        plugin: what.plugin.clone(),
        world: live.world(),
        live: version(&live),
        candidate: version(&candidate),
        from: rfc3339(what.from),
        to: rfc3339(what.to),
        ignore,
        archived,
        compared,
        counts: Counts(SHADOW_OUTCOMES.iter().copied().zip(counts).collect()),
        differences,
    })
}

/// The configuration's archive, read-only; a Redis stream's connection is
/// opened on first use.
fn open_archive(config: &Config) -> Result<Archive, WhatIfError> {
    let spec = config.archive.as_ref().ok_or(WhatIfError::NoArchive)?;
    let redis = match &spec.stream {
        Some(_) => Some(
            crate::redis::Redis::open(
                spec.redis.as_deref().unwrap_or(&config.queue.url),
                crate::redis::DEFAULT_TIMEOUT,
            )
            .map_err(|e| WhatIfError::Redis(e.to_string()))?,
        ),
        None => None,
    };
    Archive::new(spec, |p| config.resolve(p), redis, None).ok_or(WhatIfError::NoArchive)
}

/// Both versions, as the configuration declares the plugin, without HTTP
/// grants, each with a store of its own; the candidate with its `config`
/// values replaced by `what.candidate_config`.
async fn load_versions(
    config: &Config,
    entry: &PluginConfig,
    what: &WhatIf,
) -> Result<(Arc<Plugin>, Arc<Plugin>), WhatIfError> {
    let host = PluginHost::shared().map_err(|e| WhatIfError::Load {
        version: "live",
        path: entry.path.get_ref().clone(),
        reason: format!("cannot start the WebAssembly engine: {e}"),
    })?;
    let limits = entry.limits(&config.plugin_defaults);
    let dirs = config.granted_dirs(entry);
    let mut offline = entry.clone();
    offline.http.clear();
    let mut changed = offline.clone();
    for (key, value) in &what.candidate_config {
        changed
            .config
            .insert(key.clone(), ConfigValue(value.clone()));
    }
    let versions = [
        ("live", &offline, config.resolve(entry.path.get_ref())),
        ("candidate", &changed, what.candidate.clone()),
    ];
    let mut loaded = Vec::with_capacity(2);
    for (version, entry, path) in versions {
        let plugin = host
            .load(entry, limits.clone(), &path, dirs.clone(), None)
            .await
            .map_err(|e| WhatIfError::Load {
                version,
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
        let store = Kv::Memory(MemoryKv::new(
            Arc::new(KvStore::default()),
            config.kv.memory_limit.0,
        ));
        loaded.push(Arc::new(plugin.with_kv(store)));
    }
    let (candidate, live) = (loaded.pop(), loaded.pop());
    let (Some(live), Some(candidate)) = (live, candidate) else {
        unreachable!("two versions were loaded");
    };
    if live.world() != candidate.world() {
        return Err(WhatIfError::Load {
            version: "candidate",
            path: what.candidate.display().to_string(),
            reason: format!(
                "it implements {}, the live version {}",
                candidate.world(),
                live.world()
            ),
        });
    }
    Ok((live, candidate))
}

/// The filters of the routes that give events to `plugin` (`None`: a route
/// without a filter, which takes every event).
fn routes_of(config: &Config, plugin: &str) -> Vec<Option<Filter>> {
    config
        .routes
        .iter()
        .filter(|r| {
            r.handler.as_ref().is_some_and(|h| h.get_ref() == plugin)
                || r.transform
                    .iter()
                    .any(|s| s.wasm.as_deref() == Some(plugin))
        })
        // A validated configuration's filters compile.
        .map(|r| r.filter.as_ref().and_then(|f| f.get_ref().compile().ok()))
        .collect()
}

/// What `plugin` makes of `event`: a handler's emitted events, or a
/// transform's result as zero or one event.
async fn call(plugin: &Arc<Plugin>, event: &Event) -> Result<Vec<Event>, CallError> {
    if plugin.is_handler() {
        plugin.handle(event).await
    } else {
        plugin
            .transform(event)
            .await
            .map(|e| e.into_iter().collect())
    }
}

fn version(plugin: &Plugin) -> Version {
    Version {
        path: plugin.path().display().to_string(),
        sha256: plugin.digest().to_owned(),
    }
}

/// Removes the ignored attributes from the emitted events of an output, so
/// that what is shown is what was compared.
fn strip(output: &mut serde_json::Value, ignore: &[String]) {
    if let serde_json::Value::Array(events) = output {
        for event in events
            .iter_mut()
            .filter_map(serde_json::Value::as_object_mut)
        {
            for name in ignore {
                event.remove(name.as_str());
                if name == "data" {
                    event.remove("data_base64");
                }
            }
        }
    }
}

impl fmt::Display for Report {
    /// The text report: the versions, the window, the counts, and each
    /// difference with both outputs, one line each. Text from events is escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::event::Escaped;
        writeln!(f, "plugin `{}` ({})", self.plugin, self.world)?;
        writeln!(f, "  live:      {}", self.live.path)?;
        writeln!(f, "  candidate: {}", self.candidate.path)?;
        writeln!(f, "window {} .. {}", self.from, self.to)?;
        if !self.ignore.is_empty() {
            writeln!(f, "ignoring {}", self.ignore.join(", "))?;
        }
        writeln!(
            f,
            "{} archived events, {} given to the plugin by its routes",
            self.archived, self.compared
        )?;
        for (outcome, n) in &self.counts.0 {
            writeln!(f, "  {outcome:<17} {n}")?;
        }
        let different = self.compared - self.counts.0.first().map_or(0, |(_, n)| *n);
        if self.differences.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "differences (the first {} of {different}):",
            self.differences.len()
        )?;
        for found in &self.differences {
            let d = &found.difference;
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            write!(
                f,
                "  {} ({}, from {}): {}",
                Escaped(&text(&d.event["id"])),
                Escaped(&text(&d.event["type"])),
                Escaped(&text(&d.event["source"])),
                d.outcome
            )?;
            if !d.differing.is_empty() {
                write!(f, " in {}", Escaped(&d.differing.join(", ")))?;
            }
            writeln!(f)?;
            writeln!(f, "    live:      {}", Escaped(&d.live.to_string()))?;
            writeln!(f, "    candidate: {}", Escaped(&d.candidate.to_string()))?;
        }
        Ok(())
    }
}
