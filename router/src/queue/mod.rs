//! Durable mode: accepted events go to a Redis stream, and workers in every router
//! process pointed at the same Redis consume it through one consumer group.
//!
//! One stream for all events (not one per route): an event is appended once, and
//! fans out to its routes in the process that takes it, so ingest costs one `XADD`
//! per event whatever the number of routes. Per-route failures are handled by the
//! routes' retries and dead letters; the entry is acknowledged once the event has
//! been routed. An entry is left pending (for another delivery) only when routing
//! failed in a way a retry may fix and no dead-letter sink took it.
//!
//! Leases: the reader asks for as many new entries as there are free worker slots
//! right now (`XREADGROUP ... COUNT <free slots>`), and each entry it gets goes at
//! once to a task holding one slot, so nothing waits in a local buffer while its
//! lease ages; under load one read serves many slots. While the
//! event is routed, the lease is renewed (`XCLAIM ... JUSTID` by its owner, which
//! resets the idle time) every third of the visibility timeout. Entries idle past
//! the timeout (their consumer died) are taken over with `XAUTOCLAIM`, one at a
//! time, by a free worker; past `max_deliveries` (or holding no valid event) they
//! become dead letters in the runtime's dead-letter sink (by default the stream
//! `<stream>:dead`), where `router dlq` lists and redrives them. Acknowledgements of entries routed at the same
//! time share one `XACK`; each routing task still waits for its own before it
//! counts as done. Trimming removes only entries every group has acknowledged
//! (`XTRIM MINID` below the oldest pending or undelivered entry).
//!
//! Scale-out: the events without a partition key may be spread over `shards`
//! streams (`<stream>`, `<stream>:s1`...), each read by its own reader, so that
//! the masters of a Redis Cluster share them as they share the partition
//! streams. No command touches two streams at once, so no key needs a hash tag.
//! With `replicas = N`, every append is followed on its connection by
//! `WAIT N`, and ingest answers 202 only when N replicas have the entries.

use crate::config::QueueConfig;
use crate::dispatch::Dispatcher;
use crate::redis::Redis;
use redis::cmd;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

mod consumer;
mod partitions;
mod producer;
mod reply;
pub(crate) mod status;
mod trim;

/// An entry to acknowledge: its stream, its id, and who waits for the answer.
type AckRequest = (String, String, oneshot::Sender<Result<(), QueueError>>);

/// Why the queue could not take or give an entry: a Redis command failed.
pub use crate::redis::CommandError as QueueError;

/// Why events could not be appended.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EnqueueError {
    /// Nothing was appended: Redis (or the one master of the request's
    /// streams) could not be reached in time, or refused.
    #[error("{0}")]
    Unavailable(QueueError),
    /// The append was not confirmed as asked, and some events may have been
    /// appended: fewer replicas than `replicas` acknowledged it, or a request
    /// spanning several cluster masters reached only some of them. A retry is
    /// safe (routing is at-least-once) and may deliver some events twice.
    #[error("{0}")]
    Unconfirmed(String),
}

/// The Redis stream and this process's place in its consumer group.
pub struct RedisQueue {
    redis: Redis,
    stream: String,
    group: String,
    consumer: String,
    concurrency: usize,
    consume: bool,
    visibility: Duration,
    max_deliveries: u32,
    partitions: u32,
    shards: u32,
    replicas: u32,
    /// The shard the next request's unpartitioned events go to (modulo `shards`).
    next_shard: std::sync::atomic::AtomicU32,
    /// Where routing tasks send their acknowledgements, to be batched.
    acks: mpsc::UnboundedSender<AckRequest>,
    /// The other end, taken by [`RedisQueue::start`].
    ack_requests: std::sync::Mutex<Option<mpsc::UnboundedReceiver<AckRequest>>>,
    /// Redis's clock minus this process's, in ms, as last measured: appends carry
    /// their deadline in Redis's clock.
    clock_offset: std::sync::atomic::AtomicI64,
}

impl RedisQueue {
    /// A queue for `config` on `redis` (the runtime's, see
    /// [`crate::runtime::Runtime::queue_redis`]). The connection is made lazily
    /// and remade after failures, so the router starts (not ready) while Redis is
    /// down.
    pub fn new(config: &QueueConfig, redis: Redis) -> Arc<Self> {
        let consumer = config.consumer.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "router".into());
            format!("{host}-{}", std::process::id())
        });
        let (acks, ack_requests) = mpsc::unbounded_channel();
        Arc::new(Self {
            acks,
            ack_requests: std::sync::Mutex::new(Some(ack_requests)),
            clock_offset: std::sync::atomic::AtomicI64::new(0),
            redis,
            stream: config.stream.clone(),
            group: config.group.clone(),
            consumer,
            concurrency: config.concurrency,
            consume: config.consume,
            visibility: config.visibility_timeout.0,
            max_deliveries: config.max_deliveries,
            partitions: config.partitions,
            shards: config.shards.max(1),
            replicas: config.replicas,
            next_shard: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// This process's consumer name.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Whether this process routes the stream (`consume`), or only appends.
    pub fn consumes(&self) -> bool {
        self.consume
    }

    async fn run<T: redis::FromRedisValue>(&self, command: &redis::Cmd) -> Result<T, QueueError> {
        self.redis.run(command).await
    }

    /// Whether Redis answers `PING` within the timeout.
    pub async fn ready(&self) -> bool {
        self.run::<String>(&cmd("PING")).await.is_ok()
    }

    fn partition_stream(&self, n: u32) -> String {
        format!("{}:p{n}", self.stream)
    }

    /// Shard `n` of the shared stream: the stream itself for shard 0, so that
    /// going from one shard to several keeps reading what is there.
    fn shard_stream(&self, n: u32) -> String {
        if n == 0 {
            self.stream.clone()
        } else {
            format!("{}:s{n}", self.stream)
        }
    }

    /// Every stream of the queue: the shards, then the partitions.
    fn streams(&self) -> impl Iterator<Item = String> + '_ {
        (0..self.shards)
            .map(|n| self.shard_stream(n))
            .chain((0..self.partitions).map(|n| self.partition_stream(n)))
    }

    async fn ensure_group_of(&self, stream: &str) -> Result<(), QueueError> {
        let created = self
            .run::<String>(
                cmd("XGROUP")
                    .arg("CREATE")
                    .arg(stream)
                    .arg(&self.group)
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(QueueError::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Starts the workers, the claimer and the trimmer; they stop taking entries
    /// when `stop` turns true, finish (and acknowledge) what they hold, and end.
    pub fn start(
        self: &Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let queue = Arc::clone(self);
        let ack_requests = crate::sync::lock(&self.ack_requests).take();
        tokio::spawn(async move {
            if let Some(requests) = ack_requests {
                // Outlives the workers: it ends when the queue (the last sender)
                // is dropped.
                tokio::spawn(consumer::acker(
                    queue.redis.clone(),
                    queue.group.clone(),
                    requests,
                ));
            }
            let permits = Arc::new(Semaphore::new(queue.concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            for shard in 0..queue.shards {
                let (queue, dispatcher, stop, permits) = (
                    Arc::clone(&queue),
                    Arc::clone(&dispatcher),
                    stop.clone(),
                    Arc::clone(&permits),
                );
                tasks.spawn(async move { queue.reader(shard, dispatcher, stop, permits).await });
            }
            {
                let (queue, dispatcher, stop, permits) = (
                    Arc::clone(&queue),
                    Arc::clone(&dispatcher),
                    stop.clone(),
                    Arc::clone(&permits),
                );
                tasks.spawn(async move { queue.claimer(dispatcher, stop, permits).await });
            }
            {
                let (queue, stop) = (Arc::clone(&queue), stop.clone());
                tasks.spawn(async move { queue.trimmer(stop).await });
            }
            if queue.partitions > 0 {
                let (queue, dispatcher, stop) =
                    (Arc::clone(&queue), Arc::clone(&dispatcher), stop.clone());
                tasks.spawn(async move { queue.partition_owner(dispatcher, stop).await });
            }
            while tasks.join_next().await.is_some() {}
        })
    }
}

/// Sleeps for `duration`, or less when `stop` changes.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}
