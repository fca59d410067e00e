//! Appending events: the partition an event goes to, and one script that appends
//! them all unless it runs too late.
//!
//! Ingest answers 503 ("nothing was accepted") when Redis does not answer within
//! the queue's timeout. A Redis that hangs rather than dies still holds the
//! command in its socket, and runs it when it resumes: a plain `XADD` would then
//! keep an event whose sender was told to send it again. So the append is a
//! script that first reads Redis's clock and refuses to append past the moment
//! the router stopped waiting. That moment is sent in Redis's clock, never later
//! than the real one: every answer carries Redis's time, read after the command
//! was sent and before the answer arrived, so Redis's time minus the arrival
//! time is a lower bound of the offset between the clocks. An append may thus be
//! refused a round trip before the timeout (ingest answers 503 then too), never
//! kept after it. Until the first answer, the router's own clock is taken for
//! Redis's.

use super::{QueueError, RedisQueue};
use crate::event::Event;
use crate::event::json::encode_structured;
use std::sync::atomic::Ordering::Relaxed;

/// Appends `ARGV[i + 1]` to stream `KEYS[i]` for every key, all or none: none
/// once Redis's clock (ms since the epoch) has reached `ARGV[1]`. Answers Redis's
/// time and the entry ids; or an error `LATE <Redis's time>`.
const APPEND_UNLESS_LATE: &str = "local t = redis.call('TIME') \
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
    if now >= tonumber(ARGV[1]) then return redis.error_reply('LATE ' .. now) end \
    local ids = {} \
    for i, key in ipairs(KEYS) do ids[i] = redis.call('XADD', key, '*', 'event', ARGV[i + 1]) end \
    return {now, ids}";

/// This process's clock, in ms since the epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl RedisQueue {
    /// Appends `events`, all or none, and returns their entry ids once Redis has
    /// them: only then may ingest answer 2xx. Redis appends nothing once the
    /// timeout has passed, even when it gets to the command later (see the
    /// module's documentation).
    pub async fn enqueue(&self, events: &[Event]) -> Result<Vec<String>, QueueError> {
        let sent = unix_ms();
        let timeout = i64::try_from(self.redis.timeout().as_millis()).unwrap_or(i64::MAX);
        // The offset and both clocks' readings are whole milliseconds rounded
        // down: one more keeps the deadline on the early side.
        let deadline = sent
            .saturating_add(self.clock_offset.load(Relaxed))
            .saturating_add(timeout)
            .saturating_sub(1);
        let mut script = redis::cmd("EVAL");
        script.arg(APPEND_UNLESS_LATE).arg(events.len());
        for event in events {
            script.arg(&*self.stream_of(event));
        }
        script.arg(deadline);
        for event in events {
            script.arg(encode_structured(event));
        }
        let answer = self.redis.run::<(i64, Vec<String>)>(&script).await;
        let redis_now = match &answer {
            Ok((now, _)) => Some(*now),
            Err(QueueError::Redis(e)) if e.code() == Some("LATE") => {
                e.detail().and_then(|d| d.trim().parse().ok())
            }
            Err(_) => None,
        };
        if let Some(redis_now) = redis_now {
            // Redis read its clock before answering: at most this far ahead.
            self.clock_offset.store(redis_now - unix_ms(), Relaxed);
        }
        answer.map(|(_, ids)| ids)
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
