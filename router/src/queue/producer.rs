//! Appending events: the partition an event goes to, and one pipelined `XADD`.

use super::{QueueError, RedisQueue};
use crate::event::Event;
use crate::event::json::encode_structured;

impl RedisQueue {
    /// Appends `events`, in one pipeline, and returns their entry ids once Redis has
    /// acknowledged every one: only then may ingest answer 2xx.
    pub async fn enqueue(&self, events: &[Event]) -> Result<Vec<String>, QueueError> {
        let mut pipe = redis::pipe();
        for event in events {
            pipe.cmd("XADD")
                .arg(&*self.stream_of(event))
                .arg("*")
                .arg("event")
                .arg(encode_structured(event));
        }
        self.redis.run_pipeline(&pipe).await
    }

    /// The stream an event goes to: its partition's when it has a `partitionkey`
    /// (so that one consumer at a time routes that key's events, in order), the
    /// shared stream otherwise.
    fn stream_of(&self, event: &Event) -> std::borrow::Cow<'_, str> {
        match event.extension(PARTITION_KEY) {
            Some(key) if self.partitions > 0 => self
                .partition_stream(partition_of(key, self.partitions))
                .into(),
            _ => self.stream.as_str().into(),
        }
    }
}

/// The extension that orders events: those with the same value are routed one at
/// a time, in the order they were accepted.
pub const PARTITION_KEY: &str = "partitionkey";

/// The partition of a key: FNV-1a, stable across processes and versions.
fn partition_of(key: &str, partitions: u32) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % partitions.max(1)
}
