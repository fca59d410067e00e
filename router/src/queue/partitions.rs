//! Partition leases: one consumer at a time routes each partition stream, in order.
//!
//! Rebalancing: every process that routes partitions keeps a membership record
//! in the sorted set `<stream>:members` (scored by its expiry, in Redis's clock,
//! renewed with its leases). Each process computes the same assignment of
//! partitions to the live members ([`assignment`]: rendezvous hashing with a
//! bound on each member's share) and takes only its own partitions. A partition
//! assigned elsewhere is released once its worker has stopped (after the entry in
//! hand), and the new owner takes the free lease. The lease, not the
//! assignment, is what keeps two processes off one partition: members may
//! briefly disagree on who is live, and then a partition waits a tick, never is
//! routed twice.

use super::reply::read_entries;
use super::{RedisQueue, pause};
use crate::dispatch::Dispatcher;
use redis::{Value, cmd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::Duration;
use tokio::sync::watch;

/// Renews `KEYS[1]` to owner `ARGV[1]` for `ARGV[2]` ms, only if that owner still
/// holds it.
const RENEW_LEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes the lease `KEYS[1]` only if owner `ARGV[1]` still holds it: a lease
/// that expired and was taken by another process is no longer ours to free.
const RELEASE_LEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

/// Renews member `ARGV[1]` in the set `KEYS[1]` until `ARGV[2]` ms from now (0
/// removes it), drops the members whose time ran out, and returns the live
/// ones. Expiries are in Redis's clock (`TIME`), so that the processes' clocks
/// need not agree. The set itself expires when no process renews it any more.
const MEMBERSHIP: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

/// A partition this process holds (or is letting go of): its worker and the
/// flag that keeps the worker going.
struct Held {
    /// Cleared to stop the worker: when the lease was lost, or when the
    /// partition belongs to another member now.
    run: Arc<AtomicBool>,
    /// The worker; it releases the lease (if still ours) when it ends.
    worker: tokio::task::JoinHandle<()>,
}

impl RedisQueue {
    /// The sorted set of the processes that route partitions.
    pub(super) fn members_key(&self) -> String {
        format!("{}:members", self.stream)
    }

    /// The lease key of partition `n`.
    pub(super) fn lease_key(&self, n: u32) -> String {
        format!("{}:owner", self.partition_stream(n))
    }

    /// Holds partition leases: each partition stream is routed by one consumer at a
    /// time (the holder of `<partition>:owner`), one entry after the other, so that
    /// events with the same `partitionkey` are routed in order. This process takes
    /// the partitions [`assignment`] gives it among the live members, and lets go
    /// of the others once their worker has finished the entry in hand. A lease not
    /// renewed within the visibility timeout (its process died) is taken by the
    /// partition's new owner, which routes the dead owner's pending entries first.
    pub(super) async fn partition_owner(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
    ) {
        let ttl = u64::try_from(self.visibility.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut held: Vec<Option<Held>> = (0..self.partitions).map(|_| None).collect();
        let mut members_seen = 0;
        while !*stop.borrow() {
            // Renewed with the leases, so a process that stalls past the timeout
            // loses both, and one that runs is never counted out while it works.
            let mine = match self.membership(ttl).await {
                Ok(members) => {
                    if members.len() != members_seen {
                        tracing::info!(members = members.len(), "partition members changed");
                        members_seen = members.len();
                    }
                    let owners = assignment(&members, self.partitions);
                    Some(
                        owners
                            .into_iter()
                            .map(|m| members.get(m).is_some_and(|m| *m == self.consumer))
                            .collect::<Vec<bool>>(),
                    )
                }
                Err(e) => {
                    // Without the member list, keep what is held and take nothing.
                    tracing::warn!(error = %e, "cannot renew the partition membership");
                    None
                }
            };
            for n in 0..self.partitions {
                let key = self.lease_key(n);
                let slot = &mut held[n as usize];
                if let Some(h) = slot.as_ref() {
                    if h.worker.is_finished() {
                        // The worker released the lease (or lost it) as it ended.
                        *slot = None;
                    } else {
                        if mine.as_ref().is_some_and(|mine| !mine[n as usize])
                            && h.run.swap(false, SeqCst)
                        {
                            tracing::info!(partition = n, "handing the partition over");
                        }
                        // Renewed until the worker has stopped, even when handing
                        // over: the entry in hand must not be routed by the next
                        // owner meanwhile.
                        if !self.renew_lease(&key, ttl).await && h.run.swap(false, SeqCst) {
                            tracing::warn!(partition = n, "lost the partition lease");
                        }
                    }
                    continue;
                }
                if !mine.as_ref().is_some_and(|mine| mine[n as usize]) {
                    continue;
                }
                if self.take_lease(&key, ttl).await {
                    tracing::info!(partition = n, "took the partition lease");
                    let run = Arc::new(AtomicBool::new(true));
                    let (queue, dispatcher, stop, flag) = (
                        Arc::clone(&self),
                        Arc::clone(&dispatcher),
                        stop.clone(),
                        Arc::clone(&run),
                    );
                    let worker = tokio::spawn(async move {
                        queue.partition_worker(n, dispatcher, stop, flag).await
                    });
                    *slot = Some(Held { run, worker });
                }
            }
            pause(
                &mut stop,
                (self.visibility / 3).max(Duration::from_millis(10)),
            )
            .await;
        }
        // Out of the member list first, so that the others count this process
        // out now; its workers free their leases as they end, so the partitions
        // are handed over at once rather than when the leases expire.
        if let Err(e) = self.membership(0).await {
            tracing::warn!(error = %e, "cannot leave the partition membership");
        }
        // Leases are still renewed while the entries in hand finish: a long one
        // must not be taken over (and routed again, out of order) meanwhile.
        let mut finishing: Vec<(u32, Held)> = (0..self.partitions)
            .zip(held)
            .filter_map(|(n, h)| Some((n, h?)))
            .collect();
        let every = (self.visibility / 3).max(Duration::from_millis(10));
        let mut renewed = tokio::time::Instant::now();
        loop {
            finishing.retain(|(_, h)| !h.worker.is_finished());
            if finishing.is_empty() {
                break;
            }
            if renewed.elapsed() >= every {
                renewed = tokio::time::Instant::now();
                for (n, _) in &finishing {
                    self.renew_lease(&self.lease_key(*n), ttl).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Renews this process's membership for `ttl_ms` (0 leaves) and returns the
    /// live members, sorted by name.
    async fn membership(&self, ttl_ms: u64) -> Result<Vec<String>, super::QueueError> {
        let mut members: Vec<String> = self
            .run(
                cmd("EVAL")
                    .arg(MEMBERSHIP)
                    .arg(1)
                    .arg(self.members_key())
                    .arg(&self.consumer)
                    .arg(ttl_ms),
            )
            .await?;
        members.sort();
        Ok(members)
    }

    /// Takes the free lease at `key` for `ttl_ms`; whether it is now this
    /// process's. With `replicas`, only once that many replicas have it: a
    /// failover must not forget a lease its holder is routing under.
    async fn take_lease(&self, key: &str, ttl_ms: u64) -> bool {
        let mut set = cmd("SET");
        set.arg(key)
            .arg(&self.consumer)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        if self.replicas == 0 {
            return matches!(self.run::<Value>(&set).await, Ok(v) if v != Value::Nil);
        }
        let mut pipe = redis::pipe();
        pipe.add_command(set)
            .cmd("WAIT")
            .arg(self.replicas)
            .arg(self.wait_ms());
        match self.redis.run_pipeline::<(Value, u32)>(&pipe).await {
            Ok((Value::Nil, _)) | Err(_) => false,
            Ok((_, reached)) if reached >= self.replicas => true,
            Ok(_) => {
                // Not replicated: let it go, and try again at the next tick.
                let _ = self
                    .run::<i64>(
                        cmd("EVAL")
                            .arg(RELEASE_LEASE)
                            .arg(1)
                            .arg(key)
                            .arg(&self.consumer),
                    )
                    .await;
                false
            }
        }
    }

    /// Extends this process's lease at `key` to `ttl_ms` from now; whether the
    /// lease was still this process's to extend.
    async fn renew_lease(&self, key: &str, ttl_ms: u64) -> bool {
        let renewed: Result<i64, _> = self
            .run(
                cmd("EVAL")
                    .arg(RENEW_LEASE)
                    .arg(1)
                    .arg(key)
                    .arg(&self.consumer)
                    .arg(ttl_ms),
            )
            .await;
        matches!(renewed, Ok(1))
    }

    /// Routes partition `n` while `run` holds (this process holds the lease and
    /// the partition is still its own): pending entries first (oldest first), then
    /// new ones, one at a time. Ends by freeing the lease if it is still ours,
    /// only after the entry in hand is done, so the next owner starts after it.
    async fn partition_worker(
        self: Arc<Self>,
        n: u32,
        dispatcher: Arc<Dispatcher>,
        stop: watch::Receiver<bool>,
        run: Arc<AtomicBool>,
    ) {
        self.route_partition(n, dispatcher, stop, run).await;
        let released: Result<i64, _> = self
            .run(
                cmd("EVAL")
                    .arg(RELEASE_LEASE)
                    .arg(1)
                    .arg(self.lease_key(n))
                    .arg(&self.consumer),
            )
            .await;
        match released {
            Ok(1) => tracing::info!(partition = n, "released the partition lease"),
            Ok(_) => {}
            // It expires after the visibility timeout instead.
            Err(e) => {
                tracing::warn!(partition = n, error = %e, "cannot release the partition lease")
            }
        }
    }

    async fn route_partition(
        &self,
        n: u32,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        run: Arc<AtomicBool>,
    ) {
        let stream = self.partition_stream(n);
        if let Err(e) = self.ensure_group_of(&stream).await {
            tracing::warn!(partition = n, error = %e, "cannot create the partition's group");
        }
        let block = Duration::from_millis(200);
        let reader = match self.redis.dedicated(block + self.redis.timeout()) {
            Ok(reader) => reader,
            Err(e) => return tracing::error!(error = %e, "partition worker cannot start"),
        };
        while !*stop.borrow() && run.load(SeqCst) {
            // The lease makes this consumer the only one on the partition, so any
            // pending entry (a dead owner's, or one that failed here) is taken at
            // once, oldest first.
            let entry = match self.claim_one(&stream, 0).await {
                Some(entry) => match self.unless_exhausted(&dispatcher, entry).await {
                    Some((entry, _)) => Some(entry),
                    None => continue,
                },
                None => {
                    let read = self.read_new(&stream, 1, block);
                    match reader.run::<Value>(&read).await {
                        Ok(value) => read_entries(&value).into_iter().next(),
                        Err(e) => {
                            if e.code() == Some("NOGROUP") {
                                let _ = self.ensure_group_of(&stream).await;
                            }
                            pause(&mut stop, Duration::from_millis(200)).await;
                            None
                        }
                    }
                }
            };
            if let Some(entry) = entry
                && !self.route(&dispatcher, entry).await
            {
                // Order first: the failed entry is retried before any later one.
                pause(&mut stop, (self.visibility / 3).min(Duration::from_secs(1))).await;
            }
        }
    }
}

/// Which member (an index into `members`) should own each of `partitions`
/// partitions. Every process computes it from the same sorted member list, so
/// they agree without talking to each other.
///
/// Rendezvous hashing: each (partition, member) pair has a pseudo-random weight,
/// and pairs are granted heaviest first. A member is granted at most its share
/// (`partitions / members`, rounded up for only as many members as the
/// remainder needs), so the shares differ by at most one; and when a member
/// comes or goes, most partitions keep their owner, since a pair's weight does
/// not depend on the other members.
pub(super) fn assignment(members: &[String], partitions: u32) -> Vec<usize> {
    let (m, p) = (members.len(), partitions as usize);
    if m == 0 {
        return vec![usize::MAX; p];
    }
    let (floor, mut larger) = (p / m, p % m);
    let mut pairs: Vec<(u64, usize, usize)> = (0..p)
        .flat_map(|n| (0..m).map(move |i| (n, i)))
        .map(|(n, i)| (weight(&members[i], n as u32), n, i))
        .collect();
    // Heaviest first; ties (all but impossible) by partition then member, so the
    // order is the same everywhere.
    pairs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut owner = vec![usize::MAX; p];
    let mut count = vec![0usize; m];
    for (_, n, i) in pairs {
        if owner[n] != usize::MAX {
            continue;
        }
        let fits = if count[i] < floor {
            true
        } else if count[i] == floor && larger > 0 {
            larger -= 1;
            true
        } else {
            false
        };
        if fits {
            owner[n] = i;
            count[i] += 1;
        }
    }
    owner
}

/// The weight of `member` for partition `n`: FNV-1a over both, then a 64-bit
/// finalizer (splitmix64's) so that similar names spread. Fixed here rather
/// than `std`'s hasher, whose output may change between Rust releases: processes
/// of different builds must agree.
fn weight(member: &str, n: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain([0]).chain(n.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::assignment;

    fn names(n: usize) -> Vec<String> {
        let mut names: Vec<String> = (0..n).map(|i| format!("host-{}", 1000 + i)).collect();
        names.sort();
        names
    }

    #[test]
    fn shares_differ_by_at_most_one() {
        for m in 1..=7 {
            for p in 0..=40u32 {
                let owners = assignment(&names(m), p);
                let mut counts = vec![0; m];
                for o in &owners {
                    counts[*o] += 1;
                }
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(hi - lo <= 1, "{m} members, {p} partitions: {counts:?}");
            }
        }
    }

    #[test]
    fn a_member_joining_moves_few_partitions() {
        let (before, after) = (names(3), names(4));
        let (a, b) = (assignment(&before, 64), assignment(&after, 64));
        let moved = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| before[**x] != after[**y])
            .count();
        // A fourth member takes its quarter (16); bounding the shares moves a few
        // more, but far from a reshuffle.
        assert!((16..=28).contains(&moved), "{moved} of 64 moved");
    }

    #[test]
    fn no_members_own_nothing() {
        assert_eq!(assignment(&[], 2), vec![usize::MAX; 2]);
    }
}
