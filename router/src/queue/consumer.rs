//! The group consumer: reading new entries for free worker slots, taking over
//! abandoned ones, routing each with its lease renewed, and batched acknowledgements.

use super::reply::{Entry, entry_list, read_entries};
use super::{AckRequest, QueueError, RedisQueue, pause};
use crate::delivery::deadletter::{DeadLetter, PoisonBody};
use crate::dispatch::{Dispatcher, Failure};
use crate::redis::Redis;
use redis::{Value, cmd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// The most ids one `XACK` carries.
const ACK_BATCH: usize = 256;

impl RedisQueue {
    /// Reads new entries of shard `shard` for the worker slots free right now
    /// (up to its share of them), and routes each in a task holding one slot; on
    /// stop, waits for those tasks (and their acknowledgements).
    pub(super) async fn reader(
        self: Arc<Self>,
        shard: u32,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        permits: Arc<Semaphore>,
    ) {
        // A blocking read holds its connection: the reader has its own, with a
        // response timeout above the block time.
        let block = Duration::from_millis(500);
        let reader = match self.redis.dedicated(block + self.redis.timeout()) {
            Ok(reader) => reader,
            Err(e) => return tracing::error!(error = %e, "queue reader cannot start"),
        };
        let stream = self.shard_stream(shard);
        // Each shard's reader may hold its share of the slots, so that one
        // busy shard leaves room for the others'.
        let share = self.concurrency.div_ceil(self.shards as usize).max(1);
        let mut routing = tokio::task::JoinSet::new();
        let mut group_ready = false;
        while !*stop.borrow() {
            while routing.try_join_next().is_some() {}
            if !group_ready {
                match self.ensure_group_of(&stream).await {
                    Ok(()) => group_ready = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot reach the Redis stream; retrying");
                        pause(&mut stop, Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            let first = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                _ = stop.changed() => break,
            };
            let Ok(first) = first else { break };
            let mut slots = vec![first];
            while slots.len() < share
                && let Ok(permit) = Arc::clone(&permits).try_acquire_owned()
            {
                slots.push(permit);
            }
            let read = self.read_new(&stream, slots.len(), block);
            let value: Result<Value, _> = tokio::select! {
                v = reader.run(&read) => v,
                _ = stop.changed() => break,
            };
            match value {
                Ok(value) => {
                    for entry in read_entries(&value) {
                        // Redis returns at most COUNT entries: one slot each.
                        let slot = slots.pop();
                        let (queue, dispatcher) = (Arc::clone(&self), Arc::clone(&dispatcher));
                        routing.spawn(async move {
                            queue.route(&dispatcher, entry).await;
                            drop(slot);
                        });
                    }
                }
                Err(e) => {
                    if e.code() == Some("NOGROUP") {
                        group_ready = false;
                    }
                    tracing::warn!(error = %e, "reading the Redis stream failed; retrying");
                    pause(&mut stop, Duration::from_millis(200)).await;
                }
            }
        }
        while routing.join_next().await.is_some() {}
    }

    /// Takes over entries whose consumer stopped renewing them, one at a time and
    /// only when a worker slot is free.
    pub(super) async fn claimer(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        permits: Arc<Semaphore>,
    ) {
        let idle_ms = self.visibility.as_millis() as u64;
        let every = (self.visibility / 4).max(Duration::from_millis(50));
        let shards: Vec<String> = (0..self.shards).map(|n| self.shard_stream(n)).collect();
        // Shards in turn, so that a shard full of abandoned entries does not keep
        // the others' waiting.
        let mut turn = 0;
        while !*stop.borrow() {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let mut entry = None;
            for _ in 0..shards.len() {
                turn = (turn + 1) % shards.len();
                entry = self.claim_one(&shards[turn], idle_ms).await;
                if entry.is_some() {
                    break;
                }
            }
            match entry {
                Some(entry) => {
                    if let Some((entry, deliveries)) =
                        self.unless_exhausted(&dispatcher, entry).await
                    {
                        tracing::info!(entry = %entry.id, deliveries, "took over an abandoned entry");
                        let (queue, dispatcher) = (Arc::clone(&self), Arc::clone(&dispatcher));
                        tokio::spawn(async move {
                            queue.route(&dispatcher, entry).await;
                            drop(permit);
                        });
                    }
                }
                None => {
                    drop(permit);
                    pause(&mut stop, every).await;
                }
            }
        }
    }

    /// `XREADGROUP` of up to `count` new entries of `stream`, blocking up to
    /// `block`.
    pub(super) fn read_new(&self, stream: &str, count: usize, block: Duration) -> redis::Cmd {
        cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
            .arg("STREAMS")
            .arg(stream)
            .arg(">")
            .to_owned()
    }

    /// An entry taken over, with how many times it was delivered, unless that is
    /// more than `max_deliveries`: then it becomes a dead letter, and `None`.
    pub(super) async fn unless_exhausted(
        &self,
        dispatcher: &Dispatcher,
        entry: Entry,
    ) -> Option<(Entry, u64)> {
        let deliveries = self.deliveries(&entry.stream, &entry.id).await.unwrap_or(0);
        if deliveries <= u64::from(self.max_deliveries) {
            return Some((entry, deliveries));
        }
        let error = format!(
            "delivered {deliveries} times without success (max_deliveries = {})",
            self.max_deliveries
        );
        self.bury(dispatcher, &entry, "max_deliveries", error, deliveries)
            .await;
        None
    }

    /// Takes over (`XAUTOCLAIM`) the oldest entry of `stream` idle for at least
    /// `min_idle_ms`, if any.
    pub(super) async fn claim_one(&self, stream: &str, min_idle_ms: u64) -> Option<Entry> {
        let claimed = self
            .run::<Value>(
                cmd("XAUTOCLAIM")
                    .arg(stream)
                    .arg(&self.group)
                    .arg(&self.consumer)
                    .arg(min_idle_ms)
                    .arg("0-0")
                    .arg("COUNT")
                    .arg(1),
            )
            .await;
        match claimed {
            Ok(Value::Array(parts)) => parts
                .get(1)
                .and_then(|list| entry_list(list, stream).into_iter().next()),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!(error = %e, "XAUTOCLAIM failed");
                None
            }
        }
    }

    /// How many times the entry was delivered (`XPENDING` of one id).
    pub(super) async fn deliveries(&self, stream: &str, id: &str) -> Option<u64> {
        let pending: Value = self
            .run(
                cmd("XPENDING")
                    .arg(stream)
                    .arg(&self.group)
                    .arg(id)
                    .arg(id)
                    .arg(1),
            )
            .await
            .ok()?;
        let Value::Array(rows) = pending else {
            return None;
        };
        let Some(Value::Array(row)) = rows.first() else {
            return None;
        };
        redis::from_redis_value::<u64>(row.get(3)?.clone()).ok()
    }

    /// Makes a poison entry a dead letter in the runtime's dead-letter sink (for
    /// [`crate::delivery::deadletter::ALL_ROUTES`], with its body kept as it was),
    /// then acknowledges it; when no sink takes it, it stays pending.
    async fn bury(
        &self,
        dispatcher: &Dispatcher,
        entry: &Entry,
        reason: &str,
        error: String,
        deliveries: u64,
    ) {
        let body = match &entry.event {
            Ok(event) => PoisonBody::Event(event),
            Err(undecodable) => PoisonBody::Raw(&undecodable.raw),
        };
        let letter = DeadLetter::poison(
            format!("{} {}", entry.stream, entry.id),
            body,
            u32::try_from(deliveries).unwrap_or(u32::MAX),
            reason,
            error,
        );
        let runtime = dispatcher.runtime();
        let Some(sink) = &runtime.settings.dead_letters else {
            return tracing::error!(entry = %entry.id, "no dead-letter sink; the poison entry stays pending");
        };
        match sink.put(&letter).await {
            Ok(()) => {
                tracing::warn!(entry = %entry.id, reason, error = %letter.error, dead_letter = %letter.id, "entry dead-lettered");
                self.ack(&entry.stream, &entry.id).await;
            }
            Err(e) => {
                tracing::error!(entry = %entry.id, error = %e, "cannot dead-letter the entry; it stays pending")
            }
        }
    }

    /// Acknowledges one entry, in the acker's next batch, and waits for Redis's
    /// answer (a straight `XACK` should the acker have ended). The acker starts
    /// with [`RedisQueue::start`], before anything that acknowledges.
    async fn ack(&self, stream: &str, id: &str) {
        let (reply, answer) = oneshot::channel();
        let result = match self.acks.send((stream.to_owned(), id.to_owned(), reply)) {
            Ok(()) => answer.await.unwrap_or_else(|_| {
                Err(QueueError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "the acknowledger stopped",
                ))))
            }),
            Err(_) => self
                .run::<u64>(cmd("XACK").arg(stream).arg(&self.group).arg(id))
                .await
                .map(drop),
        };
        if let Err(e) = result {
            // Not acknowledged: it will be delivered again (at least once).
            tracing::warn!(entry = %id, error = %e, "XACK failed");
        }
    }

    /// Routes one entry, renewing its lease meanwhile, then acknowledges it unless
    /// routing failed in a way another delivery may fix; true when acknowledged.
    pub(super) async fn route(&self, dispatcher: &Dispatcher, entry: Entry) -> bool {
        let event = match &entry.event {
            Ok(event) => event.clone(),
            Err(undecodable) => {
                let error = format!("the entry holds no valid event: {}", undecodable.reason);
                let deliveries = self.deliveries(&entry.stream, &entry.id).await;
                self.bury(
                    dispatcher,
                    &entry,
                    "undecodable",
                    error,
                    deliveries.unwrap_or(1),
                )
                .await;
                return true;
            }
        };
        let renew = async {
            let every = (self.visibility / 3).max(Duration::from_millis(10));
            loop {
                tokio::time::sleep(every).await;
                let renewed = self
                    .run::<Value>(
                        cmd("XCLAIM")
                            .arg(&entry.stream)
                            .arg(&self.group)
                            .arg(&self.consumer)
                            .arg(0)
                            .arg(&entry.id)
                            .arg("JUSTID"),
                    )
                    .await;
                if let Err(e) = renewed {
                    tracing::warn!(entry = %entry.id, error = %e, "cannot renew the lease");
                }
            }
        };
        let report = tokio::select! {
            report = dispatcher.dispatch(event) => report,
            () = renew => unreachable!("the renewal loop never ends"),
        };
        crate::metrics::metrics().queue_routed.inc();
        if report.failure() == Some(Failure::Retryable) {
            // Left pending: after the visibility timeout a worker takes it over.
            tracing::warn!(entry = %entry.id, routes = ?report.failed_routes(), "routing failed; the entry will be delivered again");
            return false;
        }
        self.ack(&entry.stream, &entry.id).await;
        true
    }
}

/// Acknowledges entries in batches: whatever routing tasks asked for while
/// the previous `XACK` was under way goes in the next one.
pub(super) async fn acker(
    redis: Redis,
    group: String,
    mut requests: mpsc::UnboundedReceiver<AckRequest>,
) {
    let mut batch = Vec::new();
    while requests.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let mut streams: Vec<&str> = batch.iter().map(|(s, _, _)| s.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        let acks: Vec<redis::Cmd> = streams
            .iter()
            .map(|stream| {
                let ids = batch
                    .iter()
                    .filter(|(s, _, _)| s == stream)
                    .map(|(_, id, _)| id);
                cmd("XACK")
                    .arg(*stream)
                    .arg(&group)
                    .arg(ids.collect::<Vec<_>>())
                    .to_owned()
            })
            .collect();
        let result: Result<Vec<u64>, QueueError> = redis.run_each(&acks).await;
        for (_, _, reply) in batch.drain(..) {
            let _ = reply.send(result.as_ref().map(drop).map_err(Clone::clone));
        }
    }
}
