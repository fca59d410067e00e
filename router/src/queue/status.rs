//! What `GET /admin/queue` shows: the partition members, who holds each
//! partition, and how far behind each stream's group is.

use super::reply::{map, text};
use super::{QueueError, RedisQueue};
use redis::{Value, cmd};
use serde::Serialize;

/// The durable queue as Redis sees it now, from any process of the group.
#[derive(Debug, Serialize)]
pub struct QueueStatus {
    /// The stream events are appended to.
    pub stream: String,
    /// The consumer group that routes it.
    pub group: String,
    /// This process's consumer name.
    pub consumer: String,
    /// Whether the queue is on a Redis Cluster.
    pub cluster: bool,
    /// Replicas every append waits for (`[queue] replicas`).
    pub replicas: u32,
    /// Entries of the shared stream's shards not yet delivered to the group
    /// (`XINFO GROUPS` `lag`), summed; `None` when Redis cannot tell for one of
    /// them (entries were deleted out of order).
    pub lag: Option<u64>,
    /// Entries of the shards delivered and not acknowledged yet, summed.
    pub pending: u64,
    /// Each shard of the shared stream (`[queue] shards`), in order.
    pub shards: Vec<ShardStatus>,
    /// The live processes that route partitions, by name.
    pub members: Vec<MemberStatus>,
    /// Every partition, in order.
    pub partitions: Vec<PartitionStatus>,
}

/// One shard of the shared stream.
#[derive(Debug, Serialize)]
pub struct ShardStatus {
    /// Its stream: `<stream>` for shard 0, `<stream>:s<n>` for the others.
    pub stream: String,
    /// Entries not yet delivered to the group (`None`: Redis cannot tell).
    pub lag: Option<u64>,
    /// Entries delivered and not acknowledged yet.
    pub pending: u64,
}

/// A process that routes partitions.
#[derive(Debug, Serialize)]
pub struct MemberStatus {
    /// Its consumer name.
    pub name: String,
    /// When its membership runs out unless renewed, in ms from now.
    pub expires_in_ms: i64,
    /// The partitions whose lease it holds.
    pub partitions: Vec<u32>,
}

/// One partition stream.
#[derive(Debug, Serialize)]
pub struct PartitionStatus {
    /// Its number.
    pub partition: u32,
    /// Its stream, `<stream>:p<n>`.
    pub stream: String,
    /// The consumer holding its lease, if any.
    pub owner: Option<String>,
    /// Entries not yet delivered to the group (`None`: Redis cannot tell).
    pub lag: Option<u64>,
    /// Entries delivered and not acknowledged yet.
    pub pending: u64,
}

impl RedisQueue {
    /// The members, the partitions' owners and each stream's lag and pending
    /// count, read from Redis (so it is the same from every process).
    pub async fn status(&self) -> Result<QueueStatus, QueueError> {
        let mut shards = Vec::new();
        for n in 0..self.shards {
            let stream = self.shard_stream(n);
            let (lag, pending) = self.group_info(&stream).await?;
            shards.push(ShardStatus {
                stream,
                lag,
                pending,
            });
        }
        let lag = shards.iter().map(|s| s.lag).sum();
        let pending = shards.iter().map(|s| s.pending).sum();
        let now = self.redis_now_ms().await?;
        let scored: Value = self
            .run(
                cmd("ZRANGE")
                    .arg(self.members_key())
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES"),
            )
            .await?;
        let mut members: Vec<MemberStatus> = flat_pairs(&scored)
            .into_iter()
            .filter_map(|(name, score)| {
                // Scores are whole ms, written by the membership script.
                let expires = score.parse::<f64>().ok()? as i64 - now;
                (expires > 0).then_some(MemberStatus {
                    name,
                    expires_in_ms: expires,
                    partitions: Vec::new(),
                })
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        let mut partitions = Vec::new();
        for n in 0..self.partitions {
            // One key per command: the partitions' keys may live on different
            // cluster nodes.
            let owner: Option<String> = self.run(cmd("GET").arg(self.lease_key(n))).await?;
            let stream = self.partition_stream(n);
            let (lag, pending) = self.group_info(&stream).await?;
            if let Some(member) = owner
                .as_ref()
                .and_then(|o| members.iter_mut().find(|m| &m.name == o))
            {
                member.partitions.push(n);
            }
            partitions.push(PartitionStatus {
                partition: n,
                stream,
                owner,
                lag,
                pending,
            });
        }
        Ok(QueueStatus {
            stream: self.stream.clone(),
            group: self.group.clone(),
            consumer: self.consumer.clone(),
            cluster: self.redis.is_cluster(),
            replicas: self.replicas,
            lag,
            pending,
            shards,
            members,
            partitions,
        })
    }

    /// The group's `lag` and `pending` on `stream`; a stream no event went to yet
    /// (or without the group yet) has neither.
    async fn group_info(&self, stream: &str) -> Result<(Option<u64>, u64), QueueError> {
        let groups: Value = match self.run(cmd("XINFO").arg("GROUPS").arg(stream)).await {
            Ok(groups) => groups,
            Err(QueueError::Redis(e)) if e.to_string().contains("no such key") => {
                return Ok((Some(0), 0));
            }
            Err(e) => return Err(e),
        };
        let Value::Array(groups) = groups else {
            return Ok((Some(0), 0));
        };
        let Some(fields) = groups
            .iter()
            .map(map)
            .find(|g| g.get("name") == Some(&self.group))
        else {
            return Ok((Some(0), 0));
        };
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        Ok((number("lag"), number("pending").unwrap_or(0)))
    }

    /// Redis's clock, in ms: membership expiries are written in it, by the
    /// master holding the member set, whose clock is read (on a cluster, the
    /// others' may differ).
    async fn redis_now_ms(&self) -> Result<i64, QueueError> {
        let time: Vec<String> = self
            .run(
                cmd("EVAL")
                    .arg("return redis.call('TIME')")
                    .arg(1)
                    .arg(self.members_key()),
            )
            .await?;
        let part = |i: usize| time.get(i).and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
        Ok(part(0) * 1000 + part(1) / 1000)
    }
}

/// A `[name, score, ...]` reply (or a RESP3 list of pairs) as pairs.
fn flat_pairs(value: &Value) -> Vec<(String, String)> {
    let Value::Array(items) = value else {
        return Vec::new();
    };
    if items.iter().all(|i| matches!(i, Value::Array(_))) {
        return items
            .iter()
            .filter_map(|pair| match pair {
                Value::Array(p) => Some((text(p.first()?)?, score_text(p.get(1)?)?)),
                _ => None,
            })
            .collect();
    }
    items
        .chunks(2)
        .filter_map(|kv| Some((text(kv.first()?)?, score_text(kv.get(1)?)?)))
        .collect()
}

fn score_text(value: &Value) -> Option<String> {
    match value {
        Value::Double(d) => Some(d.to_string()),
        other => text(other),
    }
}
