//! `[archive]`: keep every accepted event (or those a filter takes), with its
//! arrival time, in segment files or a Redis stream, for browsing and replay.

use super::{ByteSize, ConfigError, Duration, FilterSpec, Source};
use serde::Deserialize;
use std::path::PathBuf;

/// `[archive]`: exactly one of `dir` and `stream`, and how long events stay.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// A directory of segment files (relative to the configuration file): JSON
    /// lines, each an event with its archive position and arrival time.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// A Redis stream: one entry per event, its id the arrival time.
    #[serde(default)]
    pub stream: Option<String>,
    /// The Redis server of a `stream`; `[queue] url` when absent.
    #[serde(default)]
    pub redis: Option<String>,
    /// Only the events this filter takes (any route filter dialect); all when absent.
    #[serde(default)]
    pub filter: Option<FilterSpec>,
    /// A segment file is closed and a new one started past this size.
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
    /// A segment file is closed and a new one started once it is this old.
    #[serde(default = "default_segment_age")]
    pub segment_age: Duration,
    /// Segment data reaches the disk (`fsync`) at most this long after it was
    /// written; `0s` syncs every write before the answer.
    #[serde(default = "default_fsync")]
    pub fsync: Duration,
    /// Events older than this are removed (whole segments, in the file store).
    #[serde(default)]
    pub max_age: Option<Duration>,
    /// The archive is kept under this size, oldest events removed first (whole
    /// segments in the file store; by `MEMORY USAGE` in Redis).
    #[serde(default)]
    pub max_size: Option<ByteSize>,
}

fn default_segment_size() -> ByteSize {
    ByteSize(64 << 20)
}

fn default_segment_age() -> Duration {
    Duration(std::time::Duration::from_secs(3600))
}

fn default_fsync() -> Duration {
    Duration(std::time::Duration::from_secs(1))
}

impl ArchiveConfig {
    /// Checks that exactly one store is named and the sizes make sense; the
    /// filter is compiled, and the Redis URL opened, when the runtime is built.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.dir.is_some() == self.stream.is_some() {
            errors.push(source.error(
                source.span_of(&["archive"]),
                "archive",
                "set exactly one of `dir` (segment files) and `stream` (a Redis stream)",
            ));
        }
        if self.redis.is_some() && self.stream.is_none() {
            errors.push(source.error(
                source.span_of(&["archive", "redis"]),
                "archive.redis",
                "`redis` is the server of a `stream` archive; set `stream` too",
            ));
        }
        if self.segment_size.0 < 1024 {
            errors.push(source.error(
                source.span_of(&["archive", "segment_size"]),
                "archive.segment_size",
                "must be at least 1KiB",
            ));
        }
        if self.segment_age.0.is_zero() {
            errors.push(source.error(
                source.span_of(&["archive", "segment_age"]),
                "archive.segment_age",
                "must be more than 0s",
            ));
        }
        if let Some(size) = self.max_size
            && self.dir.is_some()
            && size.0 < self.segment_size.0
        {
            errors.push(source.error(
                source.span_of(&["archive", "max_size"]),
                "archive.max_size",
                format!(
                    "{} is below segment_size ({}): the archive would keep no closed segment",
                    size.0, self.segment_size.0
                ),
            ));
        }
    }
}
