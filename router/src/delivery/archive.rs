//! The archive (`[archive]`): every accepted event (or those its filter takes),
//! kept whole with its arrival time, to browse (`GET /admin/archive`) and to
//! replay through the live routes.
//!
//! Two stores. A directory of segment files: JSON lines, each
//! `{"position":"<ms>-<seq>","arrived":"<RFC 3339>","event":{<structured CloudEvent>}}`,
//! a new segment past `segment_size` or `segment_age`, synced to disk at most
//! `fsync` after the write (or before the answer with `0s`). Or a Redis stream,
//! one entry per event whose id (the Redis server's clock at `XADD`) is its
//! position and arrival time.
//!
//! A position orders the archive: milliseconds since the epoch, then a
//! sequence number within the millisecond, as Redis stream ids do. Replay
//! checkpoints name the last position they handed over.
//!
//! Retention runs on append, at most once a second (and whenever a segment is
//! closed): events older than `max_age` go, then the oldest go until the
//! archive is under `max_size`. The file store removes whole closed segments
//! only, so it keeps up to one `segment_age` past `max_age` and up to one
//! segment past `max_size`; the segment being written is never removed.

use crate::config::ArchiveConfig;
use crate::event::Event;
use crate::event::json::{decode_structured, encode_structured};
use crate::policy::filter::Filter;
use crate::redis::Redis;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// How often retention runs at most, on append.
const RETENTION_EVERY: Duration = Duration::from_secs(1);

/// Why the archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A segment or checkpoint file could not be opened, written or read.
    #[error("archive {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Redis refused or could not be reached.
    #[error("archive redis stream {stream}: {reason}")]
    Redis {
        /// The stream.
        stream: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where an event is in the archive: its arrival in milliseconds since the
/// epoch, then its rank among the events of that millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Arrival, ms since the Unix epoch.
    pub ms: u64,
    /// Rank within the millisecond.
    pub seq: u64,
}

impl Position {
    /// The first position of millisecond `ms`.
    pub fn at(ms: u64) -> Self {
        Self { ms, seq: 0 }
    }

    /// The position right after this one.
    fn next(self) -> Self {
        Self {
            ms: self.ms,
            seq: self.seq.saturating_add(1),
        }
    }

    /// The position of an event arriving at `now` after `last`: never before it,
    /// should the clock step back.
    fn after(last: Option<Self>, now: u64) -> Self {
        match last {
            Some(last) if last.ms >= now => last.next(),
            _ => Self::at(now),
        }
    }

    /// The arrival time as RFC 3339 with milliseconds, in UTC.
    pub fn arrived(&self) -> String {
        rfc3339(self.ms)
    }
}

/// `ms` since the epoch as RFC 3339 with milliseconds, in UTC.
pub fn rfc3339(ms: u64) -> String {
    let ms = i64::try_from(ms).unwrap_or(i64::MAX);
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A position that is not `<ms>-<seq>`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an archive position (<ms since the epoch>-<sequence>, e.g. 1764716400123-0)")]
pub struct BadPosition(pub String);

impl FromStr for Position {
    type Err = BadPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(s.to_owned());
        let (ms, seq) = s.split_once('-').unwrap_or((s, "0"));
        Ok(Self {
            ms: ms.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One archived event.
#[derive(Clone, Debug)]
pub struct Record {
    /// Where it is, which is also when it arrived.
    pub position: Position,
    /// The event as it was accepted.
    pub event: Event,
}

impl Record {
    /// `{"position", "arrived", "event"}`, the event in structured mode.
    pub fn to_json(&self) -> serde_json::Value {
        let event: serde_json::Value =
            serde_json::from_slice(&encode_structured(&self.event)).unwrap_or_default();
        serde_json::json!({
            "position": self.position.to_string(),
            "arrived": self.position.arrived(),
            "event": event,
        })
    }
}

/// What to read: a time range, a position to continue after, a filter, and how
/// many records at most.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Arrived at or after this (ms since the epoch).
    pub from: Option<u64>,
    /// Arrived before this (ms since the epoch).
    pub to: Option<u64>,
    /// Positioned after this one (a previous page's last, a checkpoint).
    pub after: Option<Position>,
    /// Only the events it takes.
    pub filter: Option<Filter>,
    /// At most this many records (at least one).
    pub limit: usize,
}

impl Query {
    /// The first position the query may return.
    fn lower(&self) -> Option<Position> {
        let from = self.from.map(Position::at);
        let after = self.after.map(Position::next);
        from.max(after)
    }

    fn wants(&self, event: &Event) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(event))
    }
}

/// Records in position order, and where the next page starts when there may be
/// more.
#[derive(Debug, Default)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// The last record's position when the page is full: pass it as
    /// [`Query::after`] for the next page.
    pub next: Option<Position>,
}

/// The archive of a configuration: its store and filter.
#[derive(Debug)]
pub struct Archive {
    store: Store,
    filter: Option<Filter>,
}

#[derive(Debug)]
enum Store {
    File(FileStore),
    Stream(StreamStore),
}

impl Archive {
    /// The archive `config` describes, its paths resolved by `resolve` and a
    /// stream's Redis already opened; `filter` is its compiled filter.
    pub fn new(
        config: &ArchiveConfig,
        resolve: impl Fn(&Path) -> PathBuf,
        redis: Option<Redis>,
        filter: Option<Filter>,
    ) -> Option<Self> {
        let max_age = config.max_age.map(|d| d.0);
        let max_size = config.max_size.map(|s| s.0);
        let store = match (&config.dir, &config.stream, redis) {
            (Some(dir), _, _) => {
                let dir = resolve(dir);
                static WRITERS: super::PerPath<tokio::sync::Mutex<Writer>> =
                    LazyLock::new(Default::default);
                let writer = super::per_path(&WRITERS, &dir, Default::default);
                Store::File(FileStore {
                    dir,
                    writer,
                    settings: FileSettings {
                        segment_size: config.segment_size.0,
                        segment_age: config.segment_age.0,
                        fsync: config.fsync.0,
                        max_age,
                        max_size,
                    },
                })
            }
            (None, Some(stream), Some(redis)) => Store::Stream(StreamStore {
                redis,
                stream: stream.clone(),
                max_age,
                max_size,
                trimmed: std::sync::Mutex::new(None),
            }),
            _ => return None,
        };
        Some(Self { store, filter })
    }

    /// Where the archive is, for logs and the admin API.
    pub fn describe(&self) -> String {
        match &self.store {
            Store::File(file) => format!("dir {}", file.dir.display()),
            Store::Stream(stream) => format!("redis stream {}", stream.stream),
        }
    }

    /// Keeps those of `events` the filter takes, all in one write, arrived now.
    /// Returns once the store has them (on disk by `fsync`'s rule, or in Redis).
    pub async fn record(&self, events: &[Event]) -> Result<usize, ArchiveError> {
        let kept: Vec<&Event> = events
            .iter()
            .filter(|e| self.filter.as_ref().is_none_or(|f| f.matches(e)))
            .collect();
        if kept.is_empty() {
            return Ok(0);
        }
        match &self.store {
            Store::File(file) => file.append(&kept).await?,
            Store::Stream(stream) => stream.append(&kept).await?,
        }
        Ok(kept.len())
    }

    /// The records `query` selects, oldest first.
    pub async fn read(&self, query: &Query) -> Result<Page, ArchiveError> {
        match &self.store {
            Store::File(file) => file.read(query).await,
            Store::Stream(stream) => stream.read(query).await,
        }
    }

    /// The record at `position`, if the archive still has it.
    pub async fn get(&self, position: Position) -> Result<Option<Record>, ArchiveError> {
        let query = Query {
            from: Some(position.ms),
            to: Some(position.ms.saturating_add(1)),
            limit: usize::MAX,
            ..Query::default()
        };
        let page = self.read(&query).await?;
        Ok(page.records.into_iter().find(|r| r.position == position))
    }

    /// Saves the checkpoint of replay `id` (its parameters and progress), beside
    /// the archive: `<dir>/replays/<id>.json`, or the key `<stream>:replay:<id>`.
    pub async fn save_checkpoint(
        &self,
        id: &str,
        checkpoint: &serde_json::Value,
    ) -> Result<(), ArchiveError> {
        let text = checkpoint.to_string();
        match &self.store {
            Store::File(file) => file.save_checkpoint(id, &text).await,
            Store::Stream(stream) => {
                stream
                    .command::<()>(redis::cmd("SET").arg(stream.checkpoint_key(id)).arg(text))
                    .await
            }
        }
    }

    /// The checkpoint of replay `id`, if one was saved.
    pub async fn load_checkpoint(
        &self,
        id: &str,
    ) -> Result<Option<serde_json::Value>, ArchiveError> {
        let text = match &self.store {
            Store::File(file) => file.load_checkpoint(id).await?,
            Store::Stream(stream) => {
                stream
                    .command::<Option<String>>(redis::cmd("GET").arg(stream.checkpoint_key(id)))
                    .await?
            }
        };
        Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
    }
}

/// ms since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// The file store's settings, from `[archive]`.
#[derive(Debug, Clone, Copy)]
struct FileSettings {
    segment_size: u64,
    segment_age: Duration,
    fsync: Duration,
    max_age: Option<Duration>,
    max_size: Option<u64>,
}

/// A directory of segment files.
#[derive(Debug)]
struct FileStore {
    dir: PathBuf,
    /// Shared by every runtime that names the directory, so that a reload keeps
    /// one writer and positions stay in order.
    writer: Arc<tokio::sync::Mutex<Writer>>,
    settings: FileSettings,
}

/// The segment being written and what the writer remembers between appends.
#[derive(Debug, Default)]
struct Writer {
    current: Option<Segment>,
    /// The last position written; read from the newest segment on the first
    /// append after a start.
    last: Option<Position>,
    recovered: bool,
    /// A sync of the current segment is scheduled (see [`FileStore::append`]).
    sync_scheduled: bool,
    last_sync: Option<Instant>,
    last_retention: Option<Instant>,
}

#[derive(Debug)]
struct Segment {
    /// Written in place (an append to the page cache is a short system call,
    /// cheaper than a hand-off to the blocking pool and back, which
    /// `tokio::fs` makes for each write); synced on the blocking pool.
    file: Arc<std::fs::File>,
    path: PathBuf,
    opened: Instant,
    size: u64,
    /// Written since the last sync.
    dirty: bool,
}

impl Segment {
    async fn sync(&mut self) -> std::io::Result<()> {
        if self.dirty {
            let file = Arc::clone(&self.file);
            tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(std::io::Error::other)??;
            self.dirty = false;
        }
        Ok(())
    }
}

/// The segment files of `dir`, oldest first, with their first position.
async fn segments(dir: &Path) -> Result<Vec<(Position, PathBuf)>, ArchiveError> {
    let io = |source| ArchiveError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
            continue;
        };
        if let Ok(start) = stem.parse::<Position>() {
            found.push((start, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// One line of a segment, the event left unparsed.
#[derive(serde::Deserialize)]
struct Line<'a> {
    position: &'a str,
    #[serde(borrow)]
    event: &'a serde_json::value::RawValue,
}

/// The position at the start of a line as [`FileStore::append`] writes it.
fn leading_position(line: &str) -> Option<Position> {
    let rest = line.strip_prefix("{\"position\":\"")?;
    let (position, _) = rest.split_once('"')?;
    position.parse().ok()
}

fn parse_line(line: &str) -> Option<Record> {
    let line: Line<'_> = serde_json::from_str(line).ok()?;
    let position = line.position.parse().ok()?;
    let event =
        decode_structured(&bytes::Bytes::copy_from_slice(line.event.get().as_bytes())).ok()?;
    Some(Record { position, event })
}

impl FileStore {
    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.to_owned();
        move |source| ArchiveError::Io { path, source }
    }

    /// Writes `events` as one block at the end of the current segment (a new
    /// one when it is full or old), then syncs it by the `fsync` rule: now when
    /// it is `0s` or the last sync is older than it, else within it (a task
    /// scheduled for the end of the interval syncs what is still unsynced).
    async fn append(&self, events: &[&Event]) -> Result<(), ArchiveError> {
        let settings = self.settings;
        let mut guard = self.writer.lock().await;
        // Through a plain reference, so that fields are borrowed apart.
        let writer = &mut *guard;
        if !writer.recovered {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(self.io(&self.dir))?;
            writer.last = self.last_position().await;
            writer.recovered = true;
        }
        let now = unix_ms();
        let mut block = Vec::new();
        let mut first = None;
        for event in events {
            let position = Position::after(writer.last, now);
            writer.last = Some(position);
            first.get_or_insert(position);
            block.extend_from_slice(
                format!(
                    "{{\"position\":\"{position}\",\"arrived\":\"{}\",\"event\":",
                    position.arrived()
                )
                .as_bytes(),
            );
            block.extend_from_slice(&encode_structured(event));
            block.extend_from_slice(b"}\n");
        }
        let full = writer.current.as_ref().is_some_and(|s| {
            s.size >= settings.segment_size || s.opened.elapsed() >= settings.segment_age
        });
        let mut rotated = false;
        if full && let Some(mut closed) = writer.current.take() {
            // A closed segment is never written again: sync it now, whatever
            // the interval, so rotation does not stretch the `fsync` promise.
            closed.sync().await.map_err(self.io(&closed.path))?;
            rotated = true;
        }
        if writer.current.is_none() {
            let start = first.unwrap_or(Position::at(now));
            let path = self
                .dir
                .join(format!("{:016}-{:06}.jsonl", start.ms, start.seq));
            let file = {
                use std::os::unix::fs::OpenOptionsExt as _;
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .mode(super::deadletter::FILE_MODE)
                    .open(&path)
                    .map_err(self.io(&path))?
            };
            writer.current = Some(Segment {
                file: Arc::new(file),
                path,
                opened: Instant::now(),
                size: 0,
                dirty: false,
            });
        }
        let Some(segment) = writer.current.as_mut() else {
            unreachable!("opened above")
        };
        let written = std::io::Write::write_all(&mut &*segment.file, &block);
        if let Err(e) = written {
            let path = segment.path.clone();
            // Reopened (a new segment) by the next append.
            writer.current = None;
            return Err(self.io(&path)(e));
        }
        segment.size += block.len() as u64;
        segment.dirty = true;
        let due = writer
            .last_sync
            .is_none_or(|at| at.elapsed() >= settings.fsync);
        if settings.fsync.is_zero() || due {
            let path = segment.path.clone();
            segment.sync().await.map_err(self.io(&path))?;
            writer.last_sync = Some(Instant::now());
        } else if !writer.sync_scheduled {
            writer.sync_scheduled = true;
            let shared = Arc::clone(&self.writer);
            tokio::spawn(async move {
                tokio::time::sleep(settings.fsync).await;
                let mut writer = shared.lock().await;
                writer.sync_scheduled = false;
                if let Some(segment) = writer.current.as_mut()
                    && let Err(e) = segment.sync().await
                {
                    tracing::warn!(segment = %segment.path.display(), error = %e, "cannot sync an archive segment");
                }
                writer.last_sync = Some(Instant::now());
            });
        }
        let retention_due = writer
            .last_retention
            .is_none_or(|at| at.elapsed() >= RETENTION_EVERY);
        if (settings.max_age.is_some() || settings.max_size.is_some()) && (rotated || retention_due)
        {
            writer.last_retention = Some(Instant::now());
            let current = writer.current.as_ref().map(|s| s.path.clone());
            // Retention failing is no reason to refuse the event: it is logged,
            // and tried again at the next turn.
            if let Err(e) = self.retain(current.as_deref()).await {
                tracing::warn!(error = %e, "archive retention failed");
            }
        }
        Ok(())
    }

    /// Removes closed segments whose last write is older than `max_age`, then
    /// the oldest closed segments while the archive is over `max_size`.
    async fn retain(&self, current: Option<&Path>) -> Result<(), ArchiveError> {
        let mut closed = Vec::new();
        let mut total = 0u64;
        for (_, path) in segments(&self.dir).await? {
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                continue;
            };
            total += meta.len();
            if Some(path.as_path()) != current {
                closed.push((path, meta));
            }
        }
        for (path, meta) in closed {
            let old = self.settings.max_age.is_some_and(|age| {
                meta.modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|elapsed| elapsed > age)
            });
            let big = self.settings.max_size.is_some_and(|max| total > max);
            if !(old || big) {
                // Segments are in arrival order: the rest are newer.
                break;
            }
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    tracing::info!(segment = %path.display(), reason = if old { "max_age" } else { "max_size" }, "archive segment removed");
                    total = total.saturating_sub(meta.len());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(&path)(e)),
            }
        }
        Ok(())
    }

    /// The position of the newest readable line, to continue after it.
    async fn last_position(&self) -> Option<Position> {
        let segments = segments(&self.dir).await.ok()?;
        for (_, path) in segments.iter().rev() {
            let Ok(text) = tokio::fs::read_to_string(path).await else {
                continue;
            };
            if let Some(position) = text.lines().rev().find_map(|l| {
                serde_json::from_str::<Line<'_>>(l)
                    .ok()
                    .and_then(|line| line.position.parse().ok())
            }) {
                return Some(position);
            }
        }
        None
    }

    async fn read(&self, query: &Query) -> Result<Page, ArchiveError> {
        let segments = segments(&self.dir).await?;
        let lower = query.lower();
        let limit = query.limit.max(1);
        let mut page = Page::default();
        for (i, (start, path)) in segments.iter().enumerate() {
            if let (Some((end, _)), Some(lower)) = (segments.get(i + 1), lower)
                && *end <= lower
            {
                continue;
            }
            if query.to.is_some_and(|to| start.ms >= to) {
                break;
            }
            let text = match tokio::fs::read_to_string(path).await {
                Ok(text) => text,
                // Removed by retention since the listing.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io(path)(e)),
            };
            for (n, line) in text.lines().enumerate() {
                // The position leads every line the router writes: lines before
                // the page are skipped without decoding their events, so paging
                // through a segment costs a scan, not a parse, per page.
                if let (Some(at), Some(lower)) = (leading_position(line), lower)
                    && at < lower
                {
                    continue;
                }
                let Some(record) = parse_line(line) else {
                    // A line cut short by a crash mid-write is the only kind the
                    // router leaves; it is skipped, not fatal.
                    tracing::warn!(segment = %path.display(), line = n + 1, "skipping an unreadable archive line");
                    continue;
                };
                if lower.is_some_and(|l| record.position < l) {
                    continue;
                }
                if query.to.is_some_and(|to| record.position.ms >= to) {
                    return Ok(page);
                }
                if !query.wants(&record.event) {
                    continue;
                }
                let position = record.position;
                page.records.push(record);
                if page.records.len() >= limit {
                    page.next = Some(position);
                    return Ok(page);
                }
            }
        }
        Ok(page)
    }

    fn checkpoint_path(&self, id: &str) -> PathBuf {
        self.dir.join("replays").join(format!("{id}.json"))
    }

    /// Writes the checkpoint to a temporary file and renames it over the old
    /// one: a crash leaves the old checkpoint or the new, never half of one.
    async fn save_checkpoint(&self, id: &str, text: &str) -> Result<(), ArchiveError> {
        let path = self.checkpoint_path(id);
        let dir = self.dir.join("replays");
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(self.io(&dir))?;
        let temp = dir.join(format!(".{id}.json.tmp"));
        tokio::fs::write(&temp, text)
            .await
            .map_err(self.io(&temp))?;
        tokio::fs::rename(&temp, &path)
            .await
            .map_err(self.io(&path))
    }

    async fn load_checkpoint(&self, id: &str) -> Result<Option<String>, ArchiveError> {
        let path = self.checkpoint_path(id);
        match tokio::fs::read_to_string(&path).await {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(&path)(e)),
        }
    }
}

/// A Redis stream archive: fields `event` (the structured JSON), `type` and
/// `source`, as a route's `append` stream has.
#[derive(Debug)]
struct StreamStore {
    redis: Redis,
    stream: String,
    max_age: Option<Duration>,
    max_size: Option<u64>,
    /// When retention last ran.
    trimmed: std::sync::Mutex<Option<Instant>>,
}

/// `XRANGE`: (entry id, field-value pairs) per entry.
type Rows = Vec<(String, Vec<(String, Vec<u8>)>)>;

impl StreamStore {
    async fn command<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, ArchiveError> {
        self.redis
            .run::<T>(command)
            .await
            .map_err(|e| ArchiveError::Redis {
                stream: self.stream.clone(),
                reason: e.to_string(),
            })
    }

    fn checkpoint_key(&self, id: &str) -> String {
        format!("{}:replay:{id}", self.stream)
    }

    /// One `XADD` per event, in one round trip (a transaction, so a batch is
    /// kept whole or not at all).
    async fn append(&self, events: &[&Event]) -> Result<(), ArchiveError> {
        let mut pipeline = redis::pipe();
        pipeline.atomic();
        for event in events {
            pipeline
                .cmd("XADD")
                .arg(&self.stream)
                .arg("*")
                .arg("event")
                .arg(encode_structured(event))
                .arg("type")
                .arg(&event.ty)
                .arg("source")
                .arg(&event.source);
        }
        self.redis
            .run_pipeline::<Vec<String>>(&pipeline)
            .await
            .map_err(|e| ArchiveError::Redis {
                stream: self.stream.clone(),
                reason: e.to_string(),
            })?;
        let due = {
            let mut trimmed = crate::sync::lock(&self.trimmed);
            let due = trimmed.is_none_or(|at| at.elapsed() >= RETENTION_EVERY);
            if due {
                *trimmed = Some(Instant::now());
            }
            due
        };
        if due && let Err(e) = self.retain().await {
            tracing::warn!(error = %e, "archive retention failed");
        }
        Ok(())
    }

    /// `XTRIM MINID` for `max_age`; for `max_size`, `XTRIM MAXLEN` to the share
    /// of entries that fits, by the stream's `MEMORY USAGE`.
    async fn retain(&self) -> Result<(), ArchiveError> {
        if let Some(age) = self.max_age {
            let oldest =
                unix_ms().saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX));
            self.command::<u64>(
                redis::cmd("XTRIM")
                    .arg(&self.stream)
                    .arg("MINID")
                    .arg(oldest),
            )
            .await?;
        }
        if let Some(max) = self.max_size {
            let used: Option<u64> = self
                .command(
                    redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(&self.stream)
                        .arg("SAMPLES")
                        .arg(0),
                )
                .await?;
            if let Some(used) = used.filter(|&u| u > max) {
                let len: u64 = self.command(redis::cmd("XLEN").arg(&self.stream)).await?;
                let keep = u64::try_from(u128::from(len) * u128::from(max) / u128::from(used))
                    .unwrap_or(len);
                self.command::<u64>(
                    redis::cmd("XTRIM")
                        .arg(&self.stream)
                        .arg("MAXLEN")
                        .arg(keep),
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn read(&self, query: &Query) -> Result<Page, ArchiveError> {
        let limit = query.limit.max(1);
        let mut start = query
            .lower()
            .map_or_else(|| "-".to_owned(), |p| p.to_string());
        // `(` makes the end exclusive (Redis 6.2 and later).
        let end = query
            .to
            .map_or_else(|| "+".to_owned(), |to| format!("({to}-0"));
        let batch = limit.clamp(100, 1000);
        let mut page = Page::default();
        loop {
            let rows: Rows = self
                .command(
                    redis::cmd("XRANGE")
                        .arg(&self.stream)
                        .arg(&start)
                        .arg(&end)
                        .arg("COUNT")
                        .arg(batch),
                )
                .await?;
            let exhausted = rows.len() < batch;
            let Some((last, _)) = rows.last() else {
                return Ok(page);
            };
            start = format!("({last}");
            for (id, fields) in rows {
                let Ok(position) = id.parse::<Position>() else {
                    continue;
                };
                let Some((_, json)) = fields.into_iter().find(|(k, _)| k == "event") else {
                    continue;
                };
                let Ok(event) = decode_structured(&bytes::Bytes::from(json)) else {
                    tracing::warn!(stream = %self.stream, entry = %id, "skipping an unreadable archive entry");
                    continue;
                };
                if !query.wants(&event) {
                    continue;
                }
                page.records.push(Record { position, event });
                if page.records.len() >= limit {
                    page.next = Some(position);
                    return Ok(page);
                }
            }
            if exhausted {
                return Ok(page);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, extra: &str) -> ArchiveConfig {
        toml::from_str(&format!("dir = {:?}\n{extra}", dir.display().to_string()))
            .expect("archive config")
    }

    #[test]
    fn positions_order_and_round_trip() {
        let p: Position = "1764716400123-7".parse().expect("position");
        assert_eq!(
            p,
            Position {
                ms: 1_764_716_400_123,
                seq: 7
            }
        );
        assert_eq!(p.to_string(), "1764716400123-7");
        assert_eq!("5".parse::<Position>(), Ok(Position::at(5)));
        assert!("x-1".parse::<Position>().is_err());
        assert!(Position::at(5) < Position { ms: 5, seq: 1 });
        // The clock stepping back does not reorder the archive.
        assert_eq!(Position::after(Some(p), 10), p.next());
        assert_eq!(Position::after(Some(p), p.ms + 1), Position::at(p.ms + 1));
        assert_eq!(rfc3339(1_764_716_400_123), "2025-12-02T23:00:00.123Z");
        assert_eq!(
            leading_position(r#"{"position":"5-1","arrived":"x","event":{}}"#),
            Some(Position { ms: 5, seq: 1 })
        );
        assert_eq!(leading_position(r#"{"event":{}}"#), None);
    }

    #[tokio::test]
    async fn a_file_archive_pages_by_position_time_and_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let archive = Archive::new(
            &config(dir.path(), "fsync = \"0s\""),
            |p: &Path| p.to_path_buf(),
            None,
            None,
        )
        .expect("archive");
        for n in 0..5 {
            let ty = if n % 2 == 0 { "even" } else { "odd" };
            archive
                .record(&[Event::new(format!("e-{n}"), "/s", ty)])
                .await
                .expect("record");
        }
        let all = archive
            .read(&Query {
                limit: 2,
                ..Query::default()
            })
            .await
            .expect("read");
        let ids: Vec<&str> = all.records.iter().map(|r| r.event.id.as_str()).collect();
        assert_eq!(ids, ["e-0", "e-1"]);
        let rest = archive
            .read(&Query {
                after: all.next,
                limit: 10,
                filter: Some(
                    crate::config::FilterSpec::Exact([("type".into(), "even".into())].into())
                        .compile()
                        .expect("filter"),
                ),
                ..Query::default()
            })
            .await
            .expect("read");
        let ids: Vec<&str> = rest.records.iter().map(|r| r.event.id.as_str()).collect();
        assert_eq!(ids, ["e-2", "e-4"]);
        assert!(rest.next.is_none(), "the last page");
        let third = rest.records[0].position;
        let got = archive.get(third).await.expect("get").expect("found");
        assert_eq!(got.event.id, "e-2");
        let before = archive
            .read(&Query {
                to: Some(third.ms),
                limit: 10,
                ..Query::default()
            })
            .await
            .expect("read");
        assert!(
            before.records.iter().all(|r| r.position.ms < third.ms),
            "`to` is exclusive"
        );
    }
}
