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

use super::{EnqueueError, QueueError, RedisQueue};
use crate::event::Event;
use crate::event::json::encode_structured;
use crate::redis::Script;
use std::sync::LazyLock;
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

/// [`APPEND_UNLESS_LATE`], called by its SHA-1: an event's append then sends
/// 40 bytes of script name instead of its text, which Redis would hash again.
static APPEND: LazyLock<Script> = LazyLock::new(|| Script::new(APPEND_UNLESS_LATE));

/// This process's clock, in ms since the epoch.
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

impl RedisQueue {
    /// Appends `events` and returns their entry ids once Redis has them (and,
    /// with `replicas`, once that many replicas have them too): only then may
    /// ingest answer 2xx. Redis appends nothing once the timeout has passed, even
    /// when it gets to the command later (see the module's documentation).
    ///
    /// On one server the append is all or none. On a cluster, the events are
    /// appended per master at once, all or none on each; if one master fails,
    /// the others' appends stay, and the error says so.
    pub async fn enqueue(&self, events: &[Event]) -> Result<Vec<String>, EnqueueError> {
        let sent = unix_ms();
        let timeout = i64::try_from(self.redis.timeout().as_millis()).unwrap_or(i64::MAX);
        // The offset and both clocks' readings are whole milliseconds rounded
        // down: one more keeps the deadline on the early side.
        let deadline = sent
            .saturating_add(self.clock_offset.load(Relaxed))
            .saturating_add(timeout)
            .saturating_sub(1);
        let shard = self.next_shard.fetch_add(1, Relaxed) % self.shards;
        let streams: Vec<String> = events.iter().map(|e| self.stream_of(e, shard)).collect();
        let encoded: Vec<Vec<u8>> = events.iter().map(encode_structured).collect();
        // Which events go in which script: all in one on a single server; one
        // script per stream on a cluster, whose scripts keep to one slot.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        if self.redis.is_cluster() {
            let mut by_stream: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
            for (i, stream) in streams.iter().enumerate() {
                by_stream.entry(stream).or_default().push(i);
            }
            groups.extend(by_stream.into_values());
        } else {
            groups.push((0..events.len()).collect());
        }
        let (streams, encoded) = (&streams, &encoded);
        let appends = groups.iter().map(|group| {
            self.append(move |whole| {
                let mut script = APPEND.command(whole);
                script.arg(group.len());
                for &i in group {
                    script.arg(&streams[i]);
                }
                script.arg(deadline);
                for &i in group {
                    script.arg(&encoded[i]);
                }
                script
            })
        });
        let answers = futures_util::future::join_all(appends).await;
        let mut ids = vec![String::new(); events.len()];
        let (mut appended, mut unreplicated) = (0, 0);
        let (mut failed, mut unconfirmed) = (None, None);
        for (group, answer) in groups.iter().zip(answers) {
            match answer {
                Ok(group_ids) => {
                    appended += group.len();
                    for (&i, id) in group.iter().zip(group_ids) {
                        ids[i] = id;
                    }
                }
                Err(Append::NotReplicated { reached }) => {
                    unreplicated += group.len();
                    unconfirmed = Some(format!(
                        "the append reached {reached} of the {} replicas asked for within {} ms",
                        self.replicas,
                        self.wait_ms()
                    ));
                }
                Err(Append::Failed(e)) => failed = Some(e),
            }
        }
        match (failed, unconfirmed) {
            (None, None) => Ok(ids),
            (Some(e), None) if appended == 0 => Err(EnqueueError::Unavailable(e)),
            (failed, unconfirmed) => {
                let why = failed.map(|e| e.to_string()).or(unconfirmed);
                Err(EnqueueError::Unconfirmed(format!(
                    "{appended} of {} events were appended and confirmed, {unreplicated} appended without their replicas: {}",
                    events.len(),
                    why.unwrap_or_default()
                )))
            }
        }
    }

    /// How long `WAIT` waits for the replicas: half of the queue's timeout, so
    /// that the answer still comes within it.
    pub(super) fn wait_ms(&self) -> u64 {
        u64::try_from(self.redis.timeout().as_millis() / 2)
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Runs one append script, made by `script` (by its SHA-1, and whole only
    /// when the master does not hold it yet: it ran nothing then, and the
    /// deadline in the call still holds for the second try).
    async fn append(&self, script: impl Fn(bool) -> redis::Cmd) -> Result<Vec<String>, Append> {
        match self.append_once(script(false)).await {
            Err(Append::Failed(e)) if Script::is_unknown(&e) => {
                self.append_once(script(true)).await
            }
            answer => answer,
        }
    }

    /// Runs `script` (followed, with `replicas`, by `WAIT` on the same
    /// connection, which the cluster client sends to the script's master), and
    /// keeps Redis's clock offset up to date.
    async fn append_once(&self, script: redis::Cmd) -> Result<Vec<String>, Append> {
        let answer: Result<(i64, Vec<String>), QueueError> = if self.replicas == 0 {
            self.redis.run(&script).await
        } else {
            // A replica that does not answer must not hold ingest past its
            // timeout.
            let mut pipe = redis::pipe();
            pipe.add_command(script)
                .cmd("WAIT")
                .arg(self.replicas)
                .arg(self.wait_ms());
            match self
                .redis
                .run_pipeline::<((i64, Vec<String>), u32)>(&pipe)
                .await
            {
                Ok((appended, reached)) if reached >= self.replicas => Ok(appended),
                Ok((appended, reached)) => {
                    self.observe_clock(appended.0);
                    return Err(Append::NotReplicated { reached });
                }
                Err(e) => Err(e),
            }
        };
        let redis_now = match &answer {
            Ok((now, _)) => Some(*now),
            Err(QueueError::Redis(e)) if e.code() == Some("LATE") => {
                e.detail().and_then(|d| d.trim().parse().ok())
            }
            Err(_) => None,
        };
        if let Some(redis_now) = redis_now {
            self.observe_clock(redis_now);
        }
        answer.map(|(_, ids)| ids).map_err(Append::Failed)
    }

    /// Redis read its clock (`redis_now`) before answering: at most this far ahead.
    fn observe_clock(&self, redis_now: i64) {
        self.clock_offset.store(redis_now - unix_ms(), Relaxed);
    }

    /// The stream an event goes to: its partition's when it has a `partitionkey`
    /// (so that one consumer at a time routes that key's events, in order), the
    /// request's shard of the shared stream otherwise.
    fn stream_of(&self, event: &Event, shard: u32) -> String {
        match event.extension(PARTITION_KEY) {
            Some(key) if self.partitions > 0 => {
                self.partition_stream(partition_of(key, self.partitions))
            }
            _ => self.shard_stream(shard),
        }
    }
}

/// Why one append script did not confirm its events.
enum Append {
    /// The script failed: nothing of it was appended.
    Failed(QueueError),
    /// Appended, but fewer replicas than asked acknowledged it.
    NotReplicated { reached: u32 },
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

#[cfg(test)]
mod tests {
    use super::partition_of;

    /// Routers of different builds share partitions: the function is FNV-1a
    /// (the published test vectors), whatever the version.
    #[test]
    fn the_partition_of_a_key_is_fnv_1a() {
        assert_eq!(partition_of("", u32::MAX), 0x811c_9dc5);
        assert_eq!(partition_of("a", u32::MAX), 0xe40c_292c);
        assert_eq!(partition_of("foobar", u32::MAX), 0xbf9c_f968);
        assert_eq!(partition_of("foobar", 12), 0xbf9c_f968 % 12);
    }
}
