//! Partition leases: one consumer at a time routes each partition stream, in order.

use super::reply::read_entries;
use super::{RedisQueue, pause};
use crate::dispatch::Dispatcher;
use redis::{Value, cmd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Renews `KEYS[1]` to owner `ARGV[1]` for `ARGV[2]` ms, only if that owner still
/// holds it.
const RENEW_LEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

impl RedisQueue {
    /// Holds partition leases: each partition stream is routed by one consumer at a
    /// time (the holder of `<partition>:owner`), one entry after the other, so that
    /// events with the same `partitionkey` are routed in order. A lease not renewed
    /// within the visibility timeout (its process died) is taken by another process,
    /// which routes the dead owner's pending entries first.
    pub(super) async fn partition_owner(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
    ) {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let ttl = u64::try_from(self.visibility.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let owned: Vec<Arc<AtomicBool>> = (0..self.partitions).map(|_| Arc::default()).collect();
        let mut workers = tokio::task::JoinSet::new();
        while !*stop.borrow() {
            for n in 0..self.partitions {
                let key = format!("{}:owner", self.partition_stream(n));
                let flag = &owned[n as usize];
                if flag.load(SeqCst) {
                    if !self.renew_lease(&key, ttl).await {
                        tracing::warn!(partition = n, "lost the partition lease");
                        flag.store(false, SeqCst);
                    }
                    continue;
                }
                let taken: Result<Value, _> = self
                    .run(
                        cmd("SET")
                            .arg(&key)
                            .arg(&self.consumer)
                            .arg("NX")
                            .arg("PX")
                            .arg(ttl),
                    )
                    .await;
                if matches!(taken, Ok(ref v) if *v != Value::Nil) {
                    tracing::info!(partition = n, "took the partition lease");
                    flag.store(true, SeqCst);
                    let (queue, dispatcher, stop, flag) = (
                        Arc::clone(&self),
                        Arc::clone(&dispatcher),
                        stop.clone(),
                        Arc::clone(flag),
                    );
                    workers.spawn(async move {
                        queue.partition_worker(n, dispatcher, stop, flag).await
                    });
                }
            }
            pause(
                &mut stop,
                (self.visibility / 3).max(Duration::from_millis(10)),
            )
            .await;
        }
        while workers.join_next().await.is_some() {}
        // Hand the partitions over at once rather than when the leases expire.
        for n in 0..self.partitions {
            if owned[n as usize].load(SeqCst) {
                let key = format!("{}:owner", self.partition_stream(n));
                self.renew_lease(&key, 1).await;
            }
        }
    }

    /// Extends this process's lease at `key` to `ttl_ms` from now (1 ms hands it
    /// over); whether the lease was still this process's to extend.
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

    /// Routes partition `n` while this process holds its lease: pending entries
    /// first (oldest first), then new ones, one at a time.
    async fn partition_worker(
        self: Arc<Self>,
        n: u32,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        owned: Arc<std::sync::atomic::AtomicBool>,
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
        while !*stop.borrow() && owned.load(std::sync::atomic::Ordering::SeqCst) {
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
                    let mut conn = reader.clone();
                    match read.query_async::<Value>(&mut conn).await {
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
