//! A route's `append` target: an append-only journal of the events the route
//! matched, for audit trails and replay. Each event is kept whole, as a
//! structured-mode CloudEvent: one JSON line in a file, or one entry of a Redis
//! stream.
//!
//! An append is awaited before the event's answer, like a forward, so a source
//! that publishes one event after another finds them in the journal in that
//! order.

use crate::event::Event;
use crate::event::json::encode_structured;
use crate::redis::Redis;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use tokio::io::AsyncWriteExt as _;

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened or written.
    #[error("cannot append to {}: {source}", path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// Redis refused or could not be reached.
    #[error("cannot append to redis stream {stream}: {reason}")]
    Redis {
        /// The stream.
        stream: String,
        /// What went wrong.
        reason: String,
    },
}

impl crate::delivery::retry::Retryable for JournalError {
    /// A full disk or a Redis outage may pass: both are worth another attempt.
    fn is_retryable(&self) -> bool {
        true
    }
}

/// Where a route appends its events.
#[derive(Clone, Debug)]
pub enum Journal {
    /// A JSON-lines file.
    File(Arc<JournalFile>),
    /// A Redis stream.
    Stream(Arc<JournalStream>),
}

impl Journal {
    /// The journal at `path`, shared by every route and runtime that names the
    /// same file, so lines from concurrent appends never interleave.
    pub fn file(path: &Path) -> Self {
        static FILES: super::PerPath<JournalFile> = LazyLock::new(Default::default);
        Self::File(super::per_path(&FILES, path, || JournalFile {
            path: path.to_owned(),
            file: tokio::sync::Mutex::new(None),
        }))
    }

    /// The Redis stream `stream` on `redis`.
    pub fn stream(redis: Redis, stream: &str) -> Self {
        Self::Stream(Arc::new(JournalStream {
            redis,
            stream: stream.to_owned(),
        }))
    }

    /// Appends `event`.
    pub async fn append(&self, event: &Event) -> Result<(), JournalError> {
        match self {
            Self::File(file) => file.append(event).await,
            Self::Stream(stream) => stream.append(event).await,
        }
    }

    /// Where the journal is, for logs and the admin API.
    pub fn describe(&self) -> String {
        match self {
            Self::File(file) => format!("file {}", file.path.display()),
            Self::Stream(stream) => format!("redis stream {}", stream.stream),
        }
    }
}

/// A JSON-lines journal file, kept open between appends.
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    /// The open file; `None` until the first append, and again after a failed
    /// write, so the next attempt reopens it (the file may have been rotated).
    file: tokio::sync::Mutex<Option<tokio::fs::File>>,
}

impl JournalFile {
    async fn append(&self, event: &Event) -> Result<(), JournalError> {
        let mut line = encode_structured(event);
        line.push(b'\n');
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut open = self.file.lock().await;
        if open.is_none() {
            let file = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(super::deadletter::FILE_MODE)
                .open(&self.path)
                .await
                .map_err(io)?;
            *open = Some(file);
        }
        let Some(file) = open.as_mut() else {
            unreachable!("opened above")
        };
        // Written in one call and flushed before the answer: readers of the
        // journal never see half a line from a finished event. Not synced to disk
        // per event (an audit trail, not the queue); the OS flushes it.
        let written = async {
            file.write_all(&line).await?;
            file.flush().await
        }
        .await;
        if let Err(e) = written {
            *open = None;
            return Err(io(e));
        }
        Ok(())
    }
}

/// A Redis stream journal: fields `event` (the structured JSON), `type` and
/// `source`, so consumers can filter without parsing.
#[derive(Debug)]
pub struct JournalStream {
    redis: Redis,
    stream: String,
}

impl JournalStream {
    async fn append(&self, event: &Event) -> Result<(), JournalError> {
        self.redis
            .run::<String>(
                redis::cmd("XADD")
                    .arg(&self.stream)
                    .arg("*")
                    .arg("event")
                    .arg(encode_structured(event))
                    .arg("type")
                    .arg(&event.ty)
                    .arg("source")
                    .arg(&event.source),
            )
            .await
            .map(drop)
            .map_err(|e| JournalError::Redis {
                stream: self.stream.clone(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_one_structured_event_per_line_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        let journal = Journal::file(&path);
        for n in 0..3 {
            let event = Event::new(format!("e-{n}"), "/svc", "test.appended");
            journal.append(&event).await.expect("append");
        }
        let text = std::fs::read_to_string(&path).expect("journal");
        let ids: Vec<String> = text
            .lines()
            .map(|line| {
                let json: serde_json::Value = serde_json::from_str(line).expect("JSON line");
                json["id"].as_str().expect("id").to_owned()
            })
            .collect();
        assert_eq!(ids, ["e-0", "e-1", "e-2"]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).expect("metadata").permissions(),
        );
        assert_eq!(
            mode & 0o777,
            0o600,
            "the journal holds whole events: private"
        );
    }

    #[tokio::test]
    async fn an_unwritable_path_is_an_error_naming_the_file() {
        let journal = Journal::file(Path::new("/nonexistent-dir/audit.jsonl"));
        let error = journal
            .append(&Event::new("e", "/s", "t"))
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent-dir/audit.jsonl"),
            "{error}"
        );
    }
}
