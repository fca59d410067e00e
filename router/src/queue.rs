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
//! time, by a free worker; past `max_deliveries` they go to the dead-letter stream
//! `<stream>:dead` with the reason. Acknowledgements of entries routed at the same
//! time share one `XACK`; each routing task still waits for its own before it
//! counts as done. Trimming removes only entries every group has acknowledged
//! (`XTRIM MINID` below the oldest pending or undelivered entry).

use crate::config::QueueConfig;
use crate::dispatch::{Dispatcher, Failure};
use crate::event::Event;
use crate::event::json::{decode_structured, encode_structured};
use redis::aio::ConnectionManager;
use redis::{Value, cmd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// An entry to acknowledge: its stream, its id, and who waits for the answer.
type AckRequest = (String, String, oneshot::Sender<Result<(), QueueError>>);

/// The most ids one `XACK` carries.
const ACK_BATCH: usize = 256;

/// Why the queue could not take or give an entry.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis did not answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error, or the connection failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The Redis stream and this process's place in its consumer group.
pub struct RedisQueue {
    conn: ConnectionManager,
    client: redis::Client,
    stream: String,
    dead: String,
    group: String,
    consumer: String,
    concurrency: usize,
    consume: bool,
    visibility: Duration,
    max_deliveries: u32,
    timeout: Duration,
    partitions: u32,
    /// Where routing tasks send their acknowledgements, to be batched.
    acks: mpsc::UnboundedSender<AckRequest>,
    /// The other end, taken by [`RedisQueue::start`].
    ack_requests: std::sync::Mutex<Option<mpsc::UnboundedReceiver<AckRequest>>>,
}

/// One entry read from a stream.
struct Entry {
    stream: String,
    id: String,
    event: Result<Event, String>,
}

impl RedisQueue {
    /// A queue for `config`. The connection is made lazily and remade after
    /// failures, so the router starts (not ready) while Redis is down.
    pub fn new(config: &QueueConfig) -> Result<Arc<Self>, QueueError> {
        let client = redis::Client::open(config.url.as_str())?;
        let conn = lazy_connection(&client, config.timeout.0, None)?;
        let consumer = config.consumer.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "router".into());
            format!("{host}-{}", std::process::id())
        });
        let (acks, ack_requests) = mpsc::unbounded_channel();
        Ok(Arc::new(Self {
            acks,
            ack_requests: std::sync::Mutex::new(Some(ack_requests)),
            conn,
            client,
            dead: format!("{}:dead", config.stream),
            stream: config.stream.clone(),
            group: config.group.clone(),
            consumer,
            concurrency: config.concurrency,
            consume: config.consume,
            visibility: config.visibility_timeout.0,
            max_deliveries: config.max_deliveries,
            timeout: config.timeout.0,
            partitions: config.partitions,
        }))
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
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, command.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(QueueError::Timeout(self.timeout)),
        }
    }

    /// Whether Redis answers `PING` within the timeout.
    pub async fn ready(&self) -> bool {
        self.run::<String>(&cmd("PING")).await.is_ok()
    }

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
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, pipe.query_async(&mut conn)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(QueueError::Timeout(self.timeout)),
        }
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

    fn partition_stream(&self, n: u32) -> String {
        format!("{}:p{n}", self.stream)
    }

    /// Creates the stream and the consumer group if they do not exist.
    async fn ensure_group(&self) -> Result<(), QueueError> {
        self.ensure_group_of(&self.stream).await
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
        let ack_requests = self
            .ack_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        tokio::spawn(async move {
            if let Some(requests) = ack_requests {
                // Outlives the workers: it ends when the queue (the last sender)
                // is dropped.
                tokio::spawn(acker(
                    queue.conn.clone(),
                    queue.group.clone(),
                    queue.timeout,
                    requests,
                ));
            }
            let permits = Arc::new(Semaphore::new(queue.concurrency));
            let mut tasks = tokio::task::JoinSet::new();
            {
                let (queue, dispatcher, stop, permits) = (
                    Arc::clone(&queue),
                    Arc::clone(&dispatcher),
                    stop.clone(),
                    Arc::clone(&permits),
                );
                tasks.spawn(async move { queue.reader(dispatcher, stop, permits).await });
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

    /// Reads new entries for the worker slots free right now, and routes each in
    /// a task holding one slot; on stop, waits for those tasks (and their
    /// acknowledgements).
    async fn reader(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        permits: Arc<Semaphore>,
    ) {
        // A blocking read holds its connection: the reader has its own, with a
        // response timeout above the block time.
        let block = Duration::from_millis(500);
        let reader = match lazy_connection(&self.client, self.timeout, Some(block + self.timeout)) {
            Ok(reader) => reader,
            Err(e) => return tracing::error!(error = %e, "queue reader cannot start"),
        };
        let mut routing = tokio::task::JoinSet::new();
        let mut group_ready = false;
        while !*stop.borrow() {
            while routing.try_join_next().is_some() {}
            if !group_ready {
                match self.ensure_group().await {
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
            while let Ok(permit) = Arc::clone(&permits).try_acquire_owned() {
                slots.push(permit);
            }
            let read = self.read_new(&self.stream, slots.len(), block);
            let mut conn = reader.clone();
            let value: Result<Value, _> = tokio::select! {
                v = read.query_async(&mut conn) => v,
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
    async fn claimer(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher>,
        mut stop: watch::Receiver<bool>,
        permits: Arc<Semaphore>,
    ) {
        let idle_ms = self.visibility.as_millis() as u64;
        let every = (self.visibility / 4).max(Duration::from_millis(50));
        while !*stop.borrow() {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
                return;
            };
            let entry = self.claim_one(&self.stream, idle_ms).await;
            match entry {
                Some(entry) => {
                    let deliveries = self.deliveries(&entry.stream, &entry.id).await.unwrap_or(0);
                    if deliveries > u64::from(self.max_deliveries) {
                        self.bury(&entry, &format!(
                            "delivered {deliveries} times without success (max_deliveries = {})",
                            self.max_deliveries
                        ))
                        .await;
                    } else {
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
    fn read_new(&self, stream: &str, count: usize, block: Duration) -> redis::Cmd {
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

    /// Takes over (`XAUTOCLAIM`) the oldest entry of `stream` idle for at least
    /// `min_idle_ms`, if any.
    async fn claim_one(&self, stream: &str, min_idle_ms: u64) -> Option<Entry> {
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
    async fn deliveries(&self, stream: &str, id: &str) -> Option<u64> {
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

    /// Moves an entry to the dead-letter stream, then acknowledges it.
    async fn bury(&self, entry: &Entry, reason: &str) {
        let event = match &entry.event {
            Ok(event) => encode_structured(event),
            Err(raw) => raw.clone().into_bytes(),
        };
        let added = self
            .run::<String>(
                cmd("XADD")
                    .arg(&self.dead)
                    .arg("*")
                    .arg("event")
                    .arg(event)
                    .arg("entry")
                    .arg(format!("{} {}", entry.stream, entry.id))
                    .arg("reason")
                    .arg(reason),
            )
            .await;
        match added {
            Ok(_) => {
                tracing::warn!(entry = %entry.id, reason, stream = %self.dead, "entry dead-lettered");
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
    async fn route(&self, dispatcher: &Dispatcher, entry: Entry) -> bool {
        let event = match &entry.event {
            Ok(event) => event.clone(),
            Err(why) => {
                let reason = format!("the entry holds no valid event: {why}");
                self.bury(&entry, &reason).await;
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

    /// Removes what every group has acknowledged, and publishes the stream's length
    /// and pending count.
    async fn trimmer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        while !*stop.borrow() {
            if let Err(e) = self.trim().await {
                tracing::debug!(error = %e, "trimming the stream failed");
            }
            pause(&mut stop, Duration::from_millis(500)).await;
        }
    }

    async fn trim(&self) -> Result<(), QueueError> {
        let (mut length, mut pending) = (0, 0);
        let partitions = (0..self.partitions).map(|n| self.partition_stream(n));
        for stream in std::iter::once(self.stream.clone()).chain(partitions) {
            match self.trim_stream(&stream).await {
                Ok((l, p)) => {
                    length += l;
                    pending += p;
                }
                // A partition that no event went to yet has no stream.
                Err(QueueError::Redis(e)) if e.to_string().contains("no such key") => {}
                Err(e) => return Err(e),
            }
        }
        let metrics = crate::metrics::metrics();
        metrics.queue_length.set(length);
        metrics
            .queue_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        Ok(())
    }

    /// Trims one stream; returns its length and pending count.
    async fn trim_stream(&self, stream: &str) -> Result<(i64, u64), QueueError> {
        let groups: Value = self.run(cmd("XINFO").arg("GROUPS").arg(stream)).await?;
        let Value::Array(groups) = groups else {
            return Ok((0, 0));
        };
        let mut floor: Option<StreamId> = None;
        let mut pending_total = 0;
        for group in &groups {
            let fields = map(group);
            let name = fields.get("name").cloned().unwrap_or_default();
            let pending: u64 = fields
                .get("pending")
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            pending_total += pending;
            // Everything up to the last delivered id is acknowledged unless pending.
            let mut keep = fields
                .get("last-delivered-id")
                .and_then(|id| StreamId::parse(id))
                .map(StreamId::next);
            if pending > 0 {
                let summary: Value = self.run(cmd("XPENDING").arg(stream).arg(&name)).await?;
                if let Value::Array(parts) = summary
                    && let Some(min) = parts
                        .get(1)
                        .and_then(text)
                        .and_then(|id| StreamId::parse(&id))
                {
                    keep = Some(keep.map_or(min, |k| k.min(min)));
                }
            }
            floor = match (floor, keep) {
                (Some(f), Some(k)) => Some(f.min(k)),
                (None, k) => k,
                (f, None) => f,
            };
        }
        if let Some(floor) = floor {
            self.run::<u64>(cmd("XTRIM").arg(stream).arg("MINID").arg(floor.to_string()))
                .await?;
        }
        let length: i64 = self.run(cmd("XLEN").arg(stream)).await?;
        Ok((length, pending_total))
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

/// Renews `KEYS[1]` to owner `ARGV[1]` for `ARGV[2]` ms, only if that owner still
/// holds it.
const RENEW_LEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

impl RedisQueue {
    /// Holds partition leases: each partition stream is routed by one consumer at a
    /// time (the holder of `<partition>:owner`), one entry after the other, so that
    /// events with the same `partitionkey` are routed in order. A lease not renewed
    /// within the visibility timeout (its process died) is taken by another process,
    /// which routes the dead owner's pending entries first.
    async fn partition_owner(
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
                    let renewed: Result<i64, _> = self
                        .run(
                            cmd("EVAL")
                                .arg(RENEW_LEASE)
                                .arg(1)
                                .arg(&key)
                                .arg(&self.consumer)
                                .arg(ttl),
                        )
                        .await;
                    if !matches!(renewed, Ok(1)) {
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
                let _: Result<i64, _> = self
                    .run(
                        cmd("EVAL")
                            .arg(RENEW_LEASE)
                            .arg(1)
                            .arg(&key)
                            .arg(&self.consumer)
                            .arg(1),
                    )
                    .await;
            }
        }
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
        let reader = match lazy_connection(&self.client, self.timeout, Some(block + self.timeout)) {
            Ok(reader) => reader,
            Err(e) => return tracing::error!(error = %e, "partition worker cannot start"),
        };
        while !*stop.borrow() && owned.load(std::sync::atomic::Ordering::SeqCst) {
            // The lease makes this consumer the only one on the partition, so any
            // pending entry (a dead owner's, or one that failed here) is taken at
            // once, oldest first.
            let entry = match self.claim_one(&stream, 0).await {
                Some(entry) => {
                    let deliveries = self.deliveries(&stream, &entry.id).await.unwrap_or(0);
                    if deliveries > u64::from(self.max_deliveries) {
                        let reason = format!(
                            "delivered {deliveries} times without success (max_deliveries = {})",
                            self.max_deliveries
                        );
                        self.bury(&entry, &reason).await;
                        continue;
                    }
                    Some(entry)
                }
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

/// Acknowledges entries in batches: whatever routing tasks asked for while
/// the previous `XACK` was under way goes in the next one.
async fn acker(
    conn: ConnectionManager,
    group: String,
    timeout: Duration,
    mut requests: mpsc::UnboundedReceiver<AckRequest>,
) {
    let mut batch = Vec::new();
    while requests.recv_many(&mut batch, ACK_BATCH).await > 0 {
        let mut streams: Vec<&str> = batch.iter().map(|(s, _, _)| s.as_str()).collect();
        streams.sort_unstable();
        streams.dedup();
        let mut pipe = redis::pipe();
        for stream in &streams {
            let ids = batch
                .iter()
                .filter(|(s, _, _)| s == stream)
                .map(|(_, id, _)| id);
            pipe.cmd("XACK")
                .arg(*stream)
                .arg(&group)
                .arg(ids.collect::<Vec<_>>());
        }
        let mut conn = conn.clone();
        let result: Result<Vec<u64>, QueueError> =
            match tokio::time::timeout(timeout, pipe.query_async(&mut conn)).await {
                Ok(result) => result.map_err(QueueError::from),
                Err(_) => Err(QueueError::Timeout(timeout)),
            };
        for (_, _, reply) in batch.drain(..) {
            let answer = match &result {
                Ok(_) => Ok(()),
                Err(QueueError::Timeout(t)) => Err(QueueError::Timeout(*t)),
                Err(QueueError::Redis(e)) => Err(QueueError::Redis(e.clone())),
            };
            let _ = reply.send(answer);
        }
    }
}

/// A Redis connection made on first use and remade after failures, so that the
/// router starts (not ready) while Redis is down. Commands time out after
/// `response` (`connect` when absent).
pub fn lazy_connection(
    client: &redis::Client,
    connect: Duration,
    response: Option<Duration>,
) -> redis::RedisResult<ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect))
        .set_response_timeout(Some(response.unwrap_or(connect)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// Sleeps for `duration`, or less when `stop` changes.
async fn pause(stop: &mut watch::Receiver<bool>, duration: Duration) {
    tokio::select! {
        () = tokio::time::sleep(duration) => {}
        _ = stop.changed() => {}
    }
}

/// The entries of an `XREADGROUP` answer: `[[stream, [entry ...]] ...]` (a map in
/// RESP3), or nil when the read timed out.
fn read_entries(value: &Value) -> Vec<Entry> {
    let lists: Vec<(String, &Value)> = match value {
        Value::Array(streams) => streams
            .iter()
            .filter_map(|s| match s {
                Value::Array(pair) => Some((text(pair.first()?)?, pair.get(1)?)),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams
            .iter()
            .filter_map(|(name, list)| Some((text(name)?, list)))
            .collect(),
        _ => Vec::new(),
    };
    lists
        .into_iter()
        .flat_map(|(stream, list)| entry_list(list, &stream))
        .collect()
}

/// A list of entries, `[[id, [field, value ...]] ...]` (as in `XAUTOCLAIM`).
fn entry_list(value: &Value, stream: &str) -> Vec<Entry> {
    let Value::Array(list) = value else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|item| {
            let Value::Array(pair) = item else {
                return None;
            };
            let id = text(pair.first()?)?;
            let fields: &[Value] = match pair.get(1) {
                Some(Value::Array(fields)) => fields,
                // An entry deleted while pending comes back without fields.
                _ => &[],
            };
            let mut event = Err("the entry has no `event` field".to_owned());
            for kv in fields.chunks(2) {
                if let [k, v] = kv
                    && text(k).as_deref() == Some("event")
                {
                    let bytes = match v {
                        Value::BulkString(b) => bytes::Bytes::from(b.clone()),
                        other => bytes::Bytes::from(text(other).unwrap_or_default()),
                    };
                    event = decode_structured(&bytes)
                        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&bytes)));
                }
            }
            Some(Entry {
                stream: stream.to_owned(),
                id,
                event,
            })
        })
        .collect()
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A flat `[key, value, ...]` reply (or a map) as string pairs.
fn map(value: &Value) -> std::collections::HashMap<String, String> {
    match value {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| Some((text(kv.first()?)?, text(kv.get(1)?).unwrap_or_default())))
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, text(v).unwrap_or_default())))
            .collect(),
        _ => Default::default(),
    }
}

/// A stream entry id, `ms-seq`, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct StreamId(u64, u64);

impl StreamId {
    fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }

    /// The smallest id after this one.
    fn next(self) -> Self {
        match self.1.checked_add(1) {
            Some(seq) => Self(self.0, seq),
            None => Self(self.0.saturating_add(1), 0),
        }
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_read_from_both_answer_shapes() {
        let event = String::from_utf8(encode_structured(&Event::new("e-1", "/s", "t"))).unwrap();
        let entry = Value::Array(vec![
            bulk("5-1"),
            Value::Array(vec![bulk("event"), bulk(&event)]),
        ]);
        let read = Value::Array(vec![Value::Array(vec![
            bulk("router:events"),
            Value::Array(vec![entry.clone()]),
        ])]);
        let got = read_entries(&read);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "5-1");
        assert_eq!(got[0].event.as_ref().unwrap().id, "e-1");
        let claimed = Value::Array(vec![entry]);
        assert_eq!(entry_list(&claimed, "s")[0].id, "5-1");
        let deleted = Value::Array(vec![Value::Array(vec![bulk("6-0"), Value::Nil])]);
        assert!(entry_list(&deleted, "s")[0].event.is_err());
        assert!(read_entries(&Value::Nil).is_empty());
    }

    #[test]
    fn stream_ids_order_and_step() {
        let a = StreamId::parse("5-9").unwrap();
        assert!(a < StreamId::parse("6-0").unwrap());
        assert_eq!(a.next().to_string(), "5-10");
        assert_eq!(StreamId(5, u64::MAX).next(), StreamId(6, 0));
        assert_eq!(StreamId::parse("nope"), None);
    }
}
