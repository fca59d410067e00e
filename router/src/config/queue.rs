//! `[queue]`: where accepted events wait to be routed. `memory` (the default)
//! routes them in the request; `redis` appends them to a Redis stream first and
//! answers 202, and workers in every router process consume the stream.

use super::{ConfigError, Duration, Source};
use serde::Deserialize;

/// `[queue]`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// `memory` or `redis`.
    pub kind: QueueKind,
    /// The Redis server: `redis://host:port/db` or `redis+unix:///path.sock`; or
    /// a Redis Cluster by some of its nodes: `redis+cluster://host1:7000,host2:7001`.
    pub url: String,
    /// The stream events are appended to.
    pub stream: String,
    /// The consumer group every router process joins.
    pub group: String,
    /// This process's consumer name; by default the host name and process id.
    pub consumer: Option<String>,
    /// Events routed at once by this process.
    pub concurrency: usize,
    /// Whether this process routes the stream's events. `false` makes an
    /// ingest-only process: it appends and answers 202, and the processes with
    /// `consume = true` route (an ingest tier scaled apart from the workers).
    pub consume: bool,
    /// An entry a consumer has not acknowledged nor renewed for this long is taken
    /// over by another consumer.
    pub visibility_timeout: Duration,
    /// Deliveries after which an entry goes to the dead-letter stream.
    pub max_deliveries: u32,
    /// The longest ingest waits for Redis before answering 503.
    pub timeout: Duration,
    /// Partition streams for events with a `partitionkey`: each is routed by one
    /// consumer at a time, in order. 0 puts every event in the shared stream.
    pub partitions: u32,
    /// Streams the events without a `partitionkey` are spread over, so that a
    /// cluster's masters share them: `<stream>` and `<stream>:s1` ... up to
    /// `shards - 1`. 1 (the default) keeps them all in `<stream>`.
    pub shards: u32,
    /// Replicas that must have an append before ingest answers 202 (`WAIT`);
    /// 0 answers once the master has it.
    pub replicas: u32,
}

/// Where accepted events wait.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueKind {
    /// Routed within the request (the embedded default).
    #[default]
    Memory,
    /// Redis Streams.
    Redis,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let ms = |n| Duration(std::time::Duration::from_millis(n));
        Self {
            kind: QueueKind::Memory,
            url: "redis://127.0.0.1:6379".into(),
            stream: "router:events".into(),
            group: "router".into(),
            consumer: None,
            concurrency: 16,
            consume: true,
            visibility_timeout: ms(30_000),
            max_deliveries: 5,
            timeout: ms(1000),
            partitions: 8,
            shards: 1,
            replicas: 0,
        }
    }
}

impl QueueConfig {
    /// Checks a Redis queue's settings; a memory queue uses none of them.
    pub fn validate(&self, source: &Source, errors: &mut Vec<ConfigError>) {
        if self.kind != QueueKind::Redis {
            return;
        }
        if self.concurrency == 0 {
            errors.push(source.error(None, "queue.concurrency", "must be at least 1"));
        }
        if self.max_deliveries == 0 {
            errors.push(source.error(None, "queue.max_deliveries", "must be at least 1"));
        }
        if self.shards == 0 {
            errors.push(source.error(None, "queue.shards", "must be at least 1"));
        }
        // A hash tag in the names would put every stream in one slot, on one
        // master: the spread a cluster is for would be lost without a word.
        if self.is_cluster() {
            for (key, name) in [("stream", &self.stream), ("group", &self.group)] {
                if name.contains(['{', '}']) {
                    errors.push(source.error(
                        source.span_of(&["queue", key]),
                        format!("queue.{key}"),
                        format!(
                            "{name:?} holds a hash tag ({{...}}): on a cluster every stream would share one slot; drop the braces"
                        ),
                    ));
                }
            }
        }
    }

    /// Whether `url` names a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.url.starts_with("redis+cluster://")
    }
}
