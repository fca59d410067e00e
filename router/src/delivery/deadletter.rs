//! Dead letters: events a route gave up on, kept with why and when, so that they
//! can be inspected and sent back to their route.
//!
//! Three sinks. A JSON-lines file (one [`DeadLetter`] per line, appended with one
//! write and synced) and a Redis stream (one entry per dead letter, shared by every
//! router process) can be listed, shown and redriven. An HTTP URL receives each
//! dead letter as a structured CloudEvent of type [`DEAD_LETTER_TYPE`] whose data is
//! the [`DeadLetter`]; what happens next is the receiver's business.
//!
//! Every dead letter goes through the sink: those of routes that gave up, and
//! the durable queue's poison entries (delivered `max_deliveries` times without
//! success, or holding no valid event). A poison entry belongs to no route: its
//! dead letter names [`ALL_ROUTES`], and a redrive routes it through every route
//! it matches now.

use crate::event::Event;
use crate::event::json::{decode_structured, encode_structured};
use crate::redis::{CommandError, Redis};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use tokio::io::AsyncWriteExt as _;

/// The permissions of the dead-letter and journal files the router creates:
/// they hold whole events, payloads included, so only the router's user may
/// read them. A file that exists keeps its own (an operator may widen them).
pub const FILE_MODE: u32 = 0o600;

/// The CloudEvents type of a dead letter sent to an HTTP sink.
pub const DEAD_LETTER_TYPE: &str = "dev.router.deadletter";

/// The `route` of a dead letter that belongs to no one route (a poison entry of
/// the durable queue): redriven through every route that matches it. No route
/// can be named so.
pub const ALL_ROUTES: &str = "*";

/// One dead letter.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DeadLetter {
    /// Unique id of this dead letter (not the event's).
    pub id: String,
    /// The route that gave up, or [`ALL_ROUTES`].
    pub route: String,
    /// The event as the route received it, before its transforms, in the
    /// CloudEvents JSON format. For a queue entry that holds no valid event, its
    /// body as it was: the JSON it holds, or else a string.
    pub event: serde_json::Value,
    /// How many attempts (deliveries, for a queue entry) were made.
    pub attempts: u32,
    /// Why the route stopped: `not_retryable`, `max_attempts` or `max_age`; for a
    /// queue entry, `max_deliveries` or `undecodable`.
    pub reason: String,
    /// The last attempt's error.
    pub error: String,
    /// When the first attempt started (RFC 3339).
    pub first_attempt: String,
    /// When the last attempt started (RFC 3339).
    pub last_attempt: String,
    /// When the dead letter was written (RFC 3339).
    pub dead_lettered_at: String,
    /// The durable queue's entry it came from (`<stream> <entry id>`), for a
    /// poison entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// What a poison queue entry held.
#[derive(Clone, Copy, Debug)]
pub enum PoisonBody<'a> {
    /// A valid event.
    Event(&'a Event),
    /// Bytes that are no valid event.
    Raw(&'a [u8]),
}

impl DeadLetter {
    /// The event this dead letter carries.
    pub fn event(&self) -> Result<Event, DeadLetterError> {
        let bytes = bytes::Bytes::from(serde_json::to_vec(&self.event).unwrap_or_default());
        decode_structured(&bytes).map_err(|e| DeadLetterError::Corrupt {
            id: self.id.clone(),
            reason: e.to_string(),
        })
    }

    /// A new dead letter for `event` on `route`.
    pub fn new(
        route: &str,
        event: &Event,
        attempts: &super::retry::Attempts,
        error: String,
    ) -> Self {
        let rfc3339 = |t: std::time::SystemTime| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let reason = match attempts.gave_up {
            Some(super::retry::GaveUp::MaxAttempts) => "max_attempts",
            Some(super::retry::GaveUp::MaxAge) => "max_age",
            Some(super::retry::GaveUp::NotRetryable) | None => "not_retryable",
        };
        Self {
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            route: route.to_owned(),
            event: serde_json::from_slice(&encode_structured(event)).unwrap_or_default(),
            attempts: attempts.count,
            reason: reason.to_owned(),
            error,
            first_attempt: rfc3339(super::retry::Attempts::wall(attempts.first)),
            last_attempt: rfc3339(super::retry::Attempts::wall(attempts.last)),
            dead_lettered_at: rfc3339(std::time::SystemTime::now()),
            entry: None,
        }
    }

    /// A dead letter for a durable queue's poison entry `entry` (`<stream> <id>`),
    /// which holds `body`, was delivered `deliveries` times, and is given up on for
    /// `reason` (`max_deliveries` or `undecodable`) with `error`.
    pub fn poison(
        entry: String,
        body: PoisonBody<'_>,
        deliveries: u32,
        reason: &str,
        error: String,
    ) -> Self {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let event = match body {
            PoisonBody::Event(event) => {
                serde_json::from_slice(&encode_structured(event)).unwrap_or_default()
            }
            // Kept as it was, so that nothing is lost: the JSON it holds, or the
            // text.
            PoisonBody::Raw(raw) => serde_json::from_slice(raw).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(raw).into_owned())
            }),
        };
        Self {
            id: format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)),
            route: ALL_ROUTES.to_owned(),
            event,
            attempts: deliveries,
            reason: reason.to_owned(),
            error,
            first_attempt: now.clone(),
            last_attempt: now.clone(),
            dead_lettered_at: now,
            entry: Some(entry),
        }
    }
}

/// Why a dead letter could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The file could not be written or read.
    #[error("dead-letter file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The HTTP sink (or the Redis stream) refused the dead letter or could not be
    /// reached.
    #[error("dead-letter sink {url}: {reason}")]
    Http {
        /// The sink.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The sink cannot be listed (an HTTP sink).
    #[error(
        "the dead-letter sink is {0}, which the router cannot list; use a `file` or `stream` sink"
    )]
    NotListable(String),
    /// No dead-letter sink is configured.
    #[error("no dead-letter sink is configured (set [delivery.dead_letter])")]
    NotConfigured,
    /// A stored dead letter does not hold a valid event.
    #[error("dead letter {id} holds no valid event: {reason}")]
    Corrupt {
        /// The dead letter.
        id: String,
        /// Why.
        reason: String,
    },
}

/// Where dead letters go.
#[derive(Clone, Debug)]
pub enum DeadLetterSink {
    /// An append-only JSON-lines file.
    File(Arc<FileSink>),
    /// A Redis stream.
    Stream(Arc<StreamSink>),
    /// An HTTP endpoint.
    Http {
        /// The endpoint.
        url: String,
        /// The client.
        client: reqwest::Client,
    },
}

impl DeadLetterSink {
    /// The sink for a `file` path (shared by every runtime that names the same
    /// file, so appends and rewrites never interleave across reloads).
    pub fn file(path: &Path) -> Self {
        static FILES: super::PerPath<FileSink> = LazyLock::new(Default::default);
        Self::File(super::per_path(&FILES, path, || FileSink {
            path: path.to_owned(),
            lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// The sink for an HTTP `url`.
    pub fn http(url: &str, timeout: std::time::Duration) -> Self {
        Self::Http {
            url: url.to_owned(),
            client: crate::forward::client(timeout),
        }
    }

    /// The sink for the Redis stream `stream` on `redis`.
    pub fn stream(redis: Redis, stream: &str) -> Self {
        Self::Stream(Arc::new(StreamSink {
            redis,
            stream: stream.to_owned(),
        }))
    }

    /// Stores `letter`.
    pub async fn put(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        match self {
            Self::File(file) => file.append(letter).await,
            Self::Stream(stream) => stream.append(letter).await,
            Self::Http { url, client } => {
                let mut event = Event::new(&letter.id, "/router/dead-letters", DEAD_LETTER_TYPE);
                event.subject = Some(letter.route.clone());
                event.datacontenttype = Some("application/json".into());
                event.data = Some(serde_json::to_vec(letter).unwrap_or_default().into());
                let http_error = |reason: String| DeadLetterError::Http {
                    url: url.clone(),
                    reason,
                };
                let response = client
                    .post(url)
                    .header(http::header::CONTENT_TYPE, "application/cloudevents+json")
                    .body(encode_structured(&event))
                    .send()
                    .await
                    .map_err(|e| http_error(e.to_string()))?;
                if response.status().is_success() {
                    Ok(())
                } else if response.status().is_redirection() {
                    // Not followed: the dead letter (the whole event) goes only
                    // where the configuration says.
                    Err(http_error(format!(
                        "answered {} redirecting to {}; redirects are not followed",
                        response.status(),
                        crate::forward::redirect_location(response.headers())
                    )))
                } else {
                    Err(http_error(format!("answered {}", response.status())))
                }
            }
        }
    }

    /// Every dead letter, oldest first (file and stream sinks).
    pub async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        match self {
            Self::File(file) => file.list().await,
            Self::Stream(stream) => Ok(stream
                .entries()
                .await?
                .into_iter()
                .map(|(_, l)| l)
                .collect()),
            Self::Http { url, .. } => Err(DeadLetterError::NotListable(url.clone())),
        }
    }

    /// Removes the dead letters whose ids are in `ids`; how many went.
    pub async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        match self {
            Self::File(file) => file.remove(ids).await,
            Self::Stream(stream) => stream.remove(ids).await,
            Self::Http { url, .. } => Err(DeadLetterError::NotListable(url.clone())),
        }
    }
}

/// A Redis stream of dead letters: field `letter` holds the [`DeadLetter`] as JSON.
#[derive(Debug)]
pub struct StreamSink {
    redis: Redis,
    stream: String,
}

impl StreamSink {
    fn error(&self, e: CommandError) -> DeadLetterError {
        DeadLetterError::Http {
            url: format!("redis stream {}", self.stream),
            reason: e.to_string(),
        }
    }

    async fn append(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        self.redis
            .run::<String>(
                redis::cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("letter")
                    .arg(serde_json::to_vec(letter).unwrap_or_default())
                    .arg("route")
                    .arg(&letter.route),
            )
            .await
            .map(drop)
            .map_err(|e| self.error(e))
    }

    /// (entry id, dead letter) for every entry.
    async fn entries(&self) -> Result<Vec<(String, DeadLetter)>, DeadLetterError> {
        /// `XRANGE`: (entry id, field-value pairs) per entry.
        type Rows = Vec<(String, Vec<(String, Vec<u8>)>)>;
        let rows: Rows = self
            .redis
            .run(redis::cmd("XRANGE").arg(&self.stream).arg("-").arg("+"))
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, fields)| {
                let (_, json) = fields.into_iter().find(|(k, _)| k == "letter")?;
                match serde_json::from_slice(&json) {
                    Ok(letter) => Some((id, letter)),
                    Err(e) => {
                        tracing::warn!(stream = %self.stream, entry = %id, error = %e, "skipping an unreadable dead letter");
                        None
                    }
                }
            })
            .collect())
    }

    async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        let doomed: Vec<String> = self
            .entries()
            .await?
            .into_iter()
            .filter(|(_, l)| ids.contains(&l.id))
            .map(|(entry, _)| entry)
            .collect();
        if doomed.is_empty() {
            return Ok(0);
        }
        self.redis
            .run::<usize>(redis::cmd("XDEL").arg(&self.stream).arg(&doomed))
            .await
            .map_err(|e| self.error(e))
    }
}

/// A JSON-lines file of dead letters.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    /// Serialises appends and rewrites.
    lock: tokio::sync::Mutex<()>,
}

impl FileSink {
    fn io(&self, source: std::io::Error) -> DeadLetterError {
        DeadLetterError::Io {
            path: self.path.clone(),
            source,
        }
    }

    async fn append(&self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let mut line = serde_json::to_vec(letter).unwrap_or_default();
        line.push(b'\n');
        let _guard = self.lock.lock().await;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(&self.path)
            .await
            .map_err(|e| self.io(e))?;
        file.write_all(&line).await.map_err(|e| self.io(e))?;
        // A dead letter replaces an answer of failure to the sender: it must be on
        // disk before the sender hears that all is well.
        file.sync_data().await.map_err(|e| self.io(e))
    }

    /// Every dead letter in the file, oldest first. Lines that do not parse (a
    /// line cut short by a crash) are skipped with a warning.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let _guard = self.lock.lock().await;
        self.read().await
    }

    async fn read(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .filter_map(|(n, line)| match serde_json::from_str(line) {
                Ok(letter) => Some(letter),
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), line = n + 1, error = %e, "skipping an unreadable dead letter");
                    None
                }
            })
            .collect())
    }

    /// Removes the dead letters whose ids are in `ids`, rewriting the file through a
    /// temporary file and a rename so a crash leaves the old or the new file whole.
    pub async fn remove(&self, ids: &[String]) -> Result<usize, DeadLetterError> {
        let _guard = self.lock.lock().await;
        let letters = self.read().await?;
        let before = letters.len();
        let mut text = Vec::new();
        for letter in letters.iter().filter(|l| !ids.contains(&l.id)) {
            text.extend(serde_json::to_vec(letter).unwrap_or_default());
            text.push(b'\n');
        }
        let kept = text.iter().filter(|&&b| b == b'\n').count();
        self.replace(&text).await?;
        Ok(before - kept)
    }

    /// Replaces the file's content with `text`: written to a new temporary file
    /// beside it, synced, then renamed over it. The temporary file has a name
    /// no one can predict and is created exclusively without following a
    /// symbolic link, so nothing planted in the directory is written through.
    /// The new file keeps the old one's permissions ([`FILE_MODE`] if none).
    async fn replace(&self, text: &[u8]) -> Result<(), DeadLetterError> {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = match tokio::fs::metadata(&self.path).await {
            Ok(meta) => meta.permissions().mode() & 0o7777,
            Err(_) => FILE_MODE,
        };
        let (temp, mut file) = self.create_temp().await?;
        let written = async {
            file.write_all(text).await?;
            file.set_permissions(std::fs::Permissions::from_mode(mode))
                .await?;
            file.sync_all().await
        }
        .await;
        drop(file);
        let renamed = match written {
            Ok(()) => tokio::fs::rename(&temp, &self.path).await,
            Err(e) => Err(e),
        };
        if let Err(e) = renamed {
            // Best effort: a leftover is a hidden file holding dead letters that
            // are also in the real file.
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(self.io(e));
        }
        Ok(())
    }

    /// A new, empty, exclusively created temporary file in the file's directory
    /// (so the rename is atomic): `.<name>.<random>.tmp`, mode [`FILE_MODE`].
    async fn create_temp(&self) -> Result<(PathBuf, tokio::fs::File), DeadLetterError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut last = None;
        // A clash with an existing name is a 1 in 2^64 chance per attempt,
        // unless someone plants names: a few attempts, then the error.
        for _ in 0..8 {
            let temp = dir.join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
            let opened = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(&temp)
                .await;
            match opened {
                Ok(file) => return Ok((temp, file)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(self.io(e)),
            }
        }
        Err(self.io(last.unwrap_or_else(|| std::io::Error::other("no temporary file"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn letter(id: &str) -> DeadLetter {
        DeadLetter {
            id: id.to_owned(),
            route: "r".to_owned(),
            event: serde_json::json!({"specversion": "1.0", "id": id, "source": "/s", "type": "t"}),
            attempts: 1,
            reason: "not_retryable".to_owned(),
            error: "e".to_owned(),
            first_attempt: String::new(),
            last_attempt: String::new(),
            dead_lettered_at: String::new(),
            entry: None,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    /// The rewrite used to go through `<file>.tmp`, following a symbolic link
    /// planted there: whoever could write the directory chose what the router
    /// overwrote (and then the link became the dead-letter file).
    #[tokio::test]
    async fn a_rewrite_writes_through_no_planted_link_and_keeps_the_file_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("dead-letters.jsonl");
        let target = dir.path().join("precious");
        std::fs::write(&target, "precious").expect("write");
        let planted = dir.path().join("dead-letters.jsonl.tmp");
        std::os::unix::fs::symlink(&target, &planted).expect("symlink");

        let sink = DeadLetterSink::file(&path);
        for id in ["a", "b", "c"] {
            sink.put(&letter(id)).await.expect("put");
        }
        assert_eq!(mode(&path), 0o600, "a new dead-letter file is private");
        assert_eq!(sink.remove(&["b".to_owned()]).await.expect("remove"), 1);

        assert_eq!(
            std::fs::read_to_string(&target).expect("target"),
            "precious"
        );
        assert!(
            std::fs::symlink_metadata(&planted)
                .expect("link")
                .is_symlink(),
            "the planted link is left alone"
        );
        let ids: Vec<String> = sink
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|l| l.id)
            .collect();
        assert_eq!(ids, ["a", "c"]);
        assert!(!std::fs::symlink_metadata(&path).expect("file").is_symlink());
        assert_eq!(mode(&path), 0o600, "the rewritten file is private");
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["dead-letters.jsonl", "dead-letters.jsonl.tmp", "precious"],
            "no temporary file is left"
        );

        // Permissions an operator set are kept through a rewrite.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        sink.remove(&["a".to_owned()]).await.expect("remove");
        assert_eq!(mode(&path), 0o640);
    }
}
