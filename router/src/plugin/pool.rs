//! A loaded plugin: its prepared component, its limits and capabilities, a pool of
//! warm instances, and a circuit breaker.
//!
//! Calls run as wasmtime async calls, started on the tokio worker that handles the
//! event. A call that keeps its thread busy between two epoch ticks (1 ms) moves
//! to the guest threads (see `offload`), where it yields at every tick, so a busy
//! guest holds an I/O worker for two ticks at most. At each tick the call is
//! interrupted once past its time limit, and the whole call (host calls included,
//! which epochs cannot stop) also runs under a tokio timeout.

use super::bindings::Handler;
use super::bindings::router::plugin::types as wit;
use super::breaker::Breaker;
use super::convert::{from_wit, to_wit, wit_extensions};
use super::host::HostState;
use super::offload;
use super::sandbox::{HttpPolicy, Limiter, LogBudget, LogStream};
use super::slots::{Slot, Slots};
use super::world::transform_bindings::Transform;
use super::world::{Prepared, Version};
use super::{CallError, EPOCH_TICK, LoadError};
use crate::config::{InstanceMode, PluginConfig, PluginLimits};
use crate::event::Event;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant, SystemTime};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtx};

/// A warm instance: its store and its bindings.
struct Instance {
    store: Store<HostState>,
    exports: Exports,
}

enum Exports {
    Handler(Handler),
    Transform(Transform),
}

/// What a call asks of the guest.
enum Call<'a> {
    Handle(wit::EventParam<'a>),
    Transform(wit::EventParam<'a>),
}

/// What the guest returned.
enum Output {
    Events(Vec<wit::EventResult>),
    Maybe(Option<Box<wit::EventResult>>),
}

/// A loaded plugin, ready to handle events. Cheap to share behind an `Arc`.
pub struct Plugin {
    name: Arc<str>,
    pre: Prepared,
    version: Version,
    config: Arc<BTreeMap<String, String>>,
    limits: PluginLimits,
    env: Vec<(String, String)>,
    dirs: Vec<(PathBuf, String)>,
    http: HttpPolicy,
    digest: String,
    path: PathBuf,
    loaded_at: SystemTime,
    slots: Slots<Instance>,
    breaker: Breaker,
    /// Whether its calls were long lately, to start them on the guest threads.
    habit: offload::Habit,
    counters: crate::metrics::PluginCounters,
    kv: crate::kv::Kv,
}

impl Plugin {
    /// Makes the plugin's `kv` calls reach `kv` (the in-memory store otherwise).
    pub fn with_kv(mut self, kv: crate::kv::Kv) -> Self {
        // Instances already warmed up hold the old store in their data.
        for instance in self.slots.idle_mut() {
            instance.store.data_mut().kv = kv.clone();
        }
        self.kv = kv;
        self
    }

    /// Counts this plugin's calls under `label` in the plugin metrics: a
    /// candidate version carries its live version's name (its log lines and
    /// store namespace) and its own series.
    pub(crate) fn with_metrics_label(mut self, label: &str) -> Self {
        self.counters = crate::metrics::PluginCounters::new(label);
        self
    }

    pub(super) async fn new(
        config: &PluginConfig,
        limits: PluginLimits,
        dirs: Vec<(PathBuf, String)>,
        pre: Prepared,
        version: Version,
        digest: String,
        path: PathBuf,
    ) -> Result<Self, LoadError> {
        let name: Arc<str> = config.name.get_ref().as_str().into();
        for (host, guest) in &dirs {
            if !host.is_dir() {
                return Err(LoadError::Limits(format!(
                    "dirs: {} (for {guest}) is not a directory",
                    host.display()
                )));
            }
        }
        let plugin = Self {
            http: HttpPolicy {
                plugin: Arc::clone(&name),
                grants: config.http.clone().into(),
                timeout: limits.http_timeout,
                max_response_bytes: limits.max_http_response_bytes,
            },
            name,
            pre,
            version,
            config: Arc::new(
                config
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
            env: config
                .env
                .iter()
                .filter_map(|k| std::env::var(k).ok().map(|v| (k.clone(), v)))
                .collect(),
            dirs,
            digest,
            path,
            loaded_at: SystemTime::now(),
            slots: Slots::new(limits.instances.get() as usize),
            breaker: Breaker::new(limits.breaker_threshold, limits.breaker_cooldown),
            habit: offload::Habit::default(),
            counters: crate::metrics::PluginCounters::new(config.name.get_ref().as_str()),
            kv: crate::kv::Kv::default(),
            limits,
        };
        // One instance now: a component that cannot start under its limits (an
        // initial memory over `memory_limit`, a start function that traps) is
        // refused at load, not on its first event. It is kept warm.
        let first = plugin.instantiate().await.map_err(|e| {
            LoadError::Limits(match e {
                CallError::Trap { message, .. } => {
                    format!("cannot be instantiated within its limits (memory_limit {} bytes): {message}", plugin.limits.memory_limit)
                }
                other => other.to_string(),
            })
        })?;
        if plugin.limits.mode == InstanceMode::Reuse {
            plugin.slots.put(first);
        }
        Ok(plugin)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SHA-256 of the component file, in hex.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The component file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// When this plugin (this file version, in this snapshot) was loaded.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }

    /// The world the component implements.
    pub fn world(&self) -> &'static str {
        match self.pre {
            Prepared::Handler(_) => self.version.handler_world(),
            Prepared::Transform(_) => self.version.transform_world(),
        }
    }

    /// Whether the component implements the `handler` world.
    pub fn is_handler(&self) -> bool {
        matches!(self.pre, Prepared::Handler(_))
    }

    /// Whether the component implements the `transform` world.
    pub fn is_transform(&self) -> bool {
        matches!(self.pre, Prepared::Transform(_))
    }

    /// How many instances may run at once.
    pub fn instances(&self) -> u32 {
        self.limits.instances.get()
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Warm instances waiting in the pool.
    pub fn idle_instances(&self) -> usize {
        self.slots.idle()
    }

    /// Whether instances are reused.
    pub fn mode(&self) -> InstanceMode {
        self.limits.mode
    }

    /// Starts instances until `n` (at most `instances`) wait warm in the pool, so
    /// the first events of a burst do not pay for instantiation.
    pub async fn prewarm(&self, n: usize) -> Result<usize, CallError> {
        let n = n.min(self.limits.instances.get() as usize);
        if self.limits.mode == InstanceMode::Fresh {
            return Ok(0);
        }
        while self.idle_instances() < n {
            let instance = self.instantiate().await?;
            self.slots.put(instance);
        }
        Ok(self.idle_instances())
    }

    /// How long the plugin stays paused by its circuit breaker, if it is.
    pub fn paused_for(&self) -> Option<Duration> {
        self.breaker.paused_for()
    }

    /// Hands `event` to a `handler` plugin and returns the events it emitted,
    /// validated. Waits for a free instance when all `instances` are busy.
    pub async fn handle(self: &Arc<Self>, event: &Event) -> Result<Vec<Event>, CallError> {
        self.handle_shared(&Arc::new(event.clone())).await
    }

    /// [`Self::handle`] for an event already behind an `Arc`, which the call
    /// shares instead of copying it (a copy is an allocation per attribute).
    pub async fn handle_shared(
        self: &Arc<Self>,
        event: &Arc<Event>,
    ) -> Result<Vec<Event>, CallError> {
        // The call owns what it uses, so that it can move to the guest threads.
        let (plugin, event) = (Arc::clone(self), Arc::clone(event));
        // Boxed in a statement of its own: as a temporary of the awaited
        // expression, the unboxed call (2 KiB) would keep a slot in this
        // future and in every one that awaits it, each copied per event. Made
        // in its box, not copied there (`boxed`).
        let call = crate::boxed::pinned(move || async move {
            let extensions = wit_extensions(&event);
            let input = to_wit(&event, &extensions);
            match plugin.guarded(Call::Handle(input)).await? {
                Output::Events(events) => plugin.check_output(events),
                Output::Maybe(_) => {
                    Err(plugin.trap("a handler call returned a transform result".into()))
                }
            }
        });
        offload::run(call, &self.habit, || {
            Err(self.trap("the call was dropped by the guest threads".into()))
        })
        .await
    }

    /// Hands `event` to a `transform` plugin: the event to deliver, or `None` to
    /// drop it.
    pub async fn transform(self: &Arc<Self>, event: &Event) -> Result<Option<Event>, CallError> {
        let (plugin, event) = (Arc::clone(self), event.clone());
        // Boxed in a statement of its own, and in place, as in `handle_shared`.
        let call = crate::boxed::pinned(move || async move {
            let extensions = wit_extensions(&event);
            let input = to_wit(&event, &extensions);
            match plugin.guarded(Call::Transform(input)).await? {
                Output::Maybe(None) => Ok(None),
                Output::Maybe(Some(e)) => Ok(plugin.check_output(vec![*e])?.pop()),
                Output::Events(_) => {
                    Err(plugin.trap("a transform call returned handler events".into()))
                }
            }
        });
        offload::run(call, &self.habit, || {
            Err(self.trap("the call was dropped by the guest threads".into()))
        })
        .await
    }

    /// A call with the breaker, the instance limit and the metrics around it.
    async fn guarded(&self, call: Call<'_>) -> Result<Output, CallError> {
        if let Some(remaining) = self.paused_for() {
            return Err(CallError::Paused {
                plugin: self.name.to_string(),
                failures: self.limits.breaker_threshold,
                remaining,
            });
        }
        // Given back when this call is over, with the instance if it is kept.
        let (mut slot, warm) = self.slots.take().await;
        let metrics = &self.counters;
        metrics.invocations.inc();
        let started = Instant::now();
        let result = self.call(call, warm, &mut slot, started).await;
        metrics
            .call_seconds
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Err(CallError::Trap { .. }) => metrics.traps.inc(),
            Err(CallError::Timeout { .. }) => metrics.timeouts.inc(),
            _ => 0,
        };
        self.record(&result);
        result
    }

    /// `warm`: the instance waiting in the pool, if any (never one in fresh
    /// mode); `slot`: where an instance to reuse goes back. `called`: when the
    /// call was made, the start of its timeout when a warm instance takes it at
    /// once.
    async fn call(
        &self,
        call: Call<'_>,
        warm: Option<Instance>,
        slot: &mut Slot<'_, Instance>,
        called: Instant,
    ) -> Result<Output, CallError> {
        let (mut instance, started) = match warm {
            Some(i) => (i, called),
            // Boxed: instantiation's future is large and off the reused path.
            None => (Box::pin(self.instantiate()).await?, Instant::now()),
        };
        instance
            .store
            .data()
            .log_budget
            .reset(self.limits.max_log_bytes);
        let state = instance.store.data_mut();
        state.deadline = deadline(started, self.limits.timeout);
        state.busy_mark = None;
        instance.store.set_epoch_deadline(1);
        let outcome = {
            // Epochs stop guest code; the timeout stops a guest blocked in a
            // host call too.
            let Instance { store, exports } = &mut instance;
            let invoke = async {
                match (exports, call) {
                    (Exports::Handler(h), Call::Handle(e)) => h
                        .call_handle(&mut *store, e)
                        .await
                        .map(|r| r.map(Output::Events)),
                    (Exports::Transform(t), Call::Transform(e)) => t
                        .call_transform(&mut *store, e)
                        .await
                        .map(|r| r.map(|e| Output::Maybe(e.map(Box::new)))),
                    _ => Err(wasmtime::format_err!(
                        "plugin `{}` does not implement the world this call needs",
                        self.name
                    )),
                }
            };
            let mut invoke = std::pin::pin!(invoke);
            // Most calls finish in their first poll: the timer (a clone of the
            // runtime's handle, shared by every worker, and a timer entry) is
            // only made for a call that has to wait. Its deadline is the same.
            let first = std::future::poll_fn(|cx| Poll::Ready(invoke.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(outcome) => Ok(outcome),
                Poll::Pending => {
                    let until = started + self.limits.timeout + 2 * EPOCH_TICK;
                    let timer = tokio::time::sleep_until(until.into());
                    let mut timer = std::pin::pin!(timer);
                    // Not polled again before its wake-up: a guest that spent its
                    // slice yielded so that the call can move (see `offload`).
                    let mut polled = true;
                    std::future::poll_fn(|cx| {
                        if !std::mem::take(&mut polled)
                            && let Poll::Ready(outcome) = invoke.as_mut().poll(cx)
                        {
                            return Poll::Ready(Ok(outcome));
                        }
                        timer.as_mut().poll(cx).map(|()| Err(()))
                    })
                    .await
                }
            }
        };
        let dropped = instance.store.data().log_budget.dropped();
        if dropped > 0 {
            self.counters.log_dropped_bytes.inc_by(dropped);
            tracing::warn!(
                plugin = &*self.name,
                dropped_bytes = dropped,
                limit = self.limits.max_log_bytes,
                "log output over the plugin's max_log_bytes was dropped"
            );
        }
        let mut keep = |instance: Instance| {
            if self.limits.mode == InstanceMode::Reuse {
                slot.keep(instance);
            }
        };
        match outcome {
            Err(_) => Err(self.timeout(started)),
            Ok(Err(e)) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Err(self.timeout(started))
            }
            // A trapped instance is never reused: drop it with `instance`.
            Ok(Err(e)) => Err(self.trap(format!("{e:#}"))),
            Ok(Ok(Err(wit::HandlerError::Retryable(message)))) => {
                keep(instance);
                Err(CallError::Retryable {
                    plugin: self.name.to_string(),
                    message,
                })
            }
            Ok(Ok(Err(wit::HandlerError::Fatal(message)))) => {
                keep(instance);
                Err(CallError::Fatal {
                    plugin: self.name.to_string(),
                    message,
                })
            }
            Ok(Ok(Ok(output))) => {
                keep(instance);
                Ok(output)
            }
        }
    }

    /// Guest output is checked against the limits and validated exactly like HTTP
    /// input: the host never trusts it.
    fn check_output(&self, emitted: Vec<wit::EventResult>) -> Result<Vec<Event>, CallError> {
        let over = |limit, detail| CallError::OutputLimit {
            plugin: self.name.to_string(),
            limit,
            detail,
        };
        if emitted.len() > self.limits.max_emitted as usize {
            return Err(over(
                "max_emitted",
                format!(
                    "emitted {} events, the limit is {}",
                    emitted.len(),
                    self.limits.max_emitted
                ),
            ));
        }
        if let Some((i, size)) = emitted
            .iter()
            .enumerate()
            .map(|(i, e)| (i, e.data.as_ref().map_or(0, Vec::len)))
            .find(|(_, size)| *size as u64 > self.limits.max_event_bytes)
        {
            return Err(over(
                "max_event_bytes",
                format!(
                    "event #{i} has {size} bytes of data, the limit is {}",
                    self.limits.max_event_bytes
                ),
            ));
        }
        emitted
            .into_iter()
            .enumerate()
            .map(|(index, e)| {
                from_wit(e).map_err(|error| CallError::InvalidOutput {
                    plugin: self.name.to_string(),
                    index,
                    error,
                })
            })
            .collect()
    }

    fn record<T>(&self, result: &Result<T, CallError>) {
        match result {
            Err(e) if e.trips_breaker() => {
                if let Some(failures) = self.breaker.failed() {
                    tracing::error!(
                        plugin = &*self.name,
                        failures,
                        cooldown = ?self.limits.breaker_cooldown,
                        "plugin paused by its circuit breaker"
                    );
                }
            }
            Err(CallError::Paused { .. }) => {}
            _ => self.breaker.succeeded(),
        }
    }

    async fn instantiate(&self) -> Result<Instance, CallError> {
        let budget = Arc::new(LogBudget::default());
        let mut wasi = WasiCtx::builder();
        wasi.stdout(LogStream::new(
            Arc::clone(&self.name),
            "stdout",
            Arc::clone(&budget),
        ))
        .stderr(LogStream::new(
            Arc::clone(&self.name),
            "stderr",
            Arc::clone(&budget),
        ));
        for (k, v) in &self.env {
            wasi.env(k, v);
        }
        for (host, guest) in &self.dirs {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .map_err(|e| self.trap(format!("cannot open {}: {e:#}", host.display())))?;
        }
        let state = HostState {
            plugin: Arc::clone(&self.name),
            config: Arc::clone(&self.config),
            kv: self.kv.clone(),
            wasi: wasi.build(),
            table: wasmtime::component::ResourceTable::new(),
            limits: Limiter {
                memory: usize::try_from(self.limits.memory_limit).unwrap_or(usize::MAX),
                table_elements: 100_000,
            },
            log_budget: budget,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_policy: self.http.clone(),
            // Interrupted at the first tick past it: between `timeout` and
            // `timeout` + a tick.
            deadline: deadline(Instant::now(), self.limits.timeout),
            busy_mark: None,
        };
        let engine = match &self.pre {
            Prepared::Handler(pre) => pre.engine(),
            Prepared::Transform(pre) => pre.engine(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if Instant::now() >= state.deadline {
                Err(Trap::Interrupt.into())
            } else {
                Ok(offload::at_tick(&mut state.busy_mark))
            }
        });
        store.set_epoch_deadline(1);
        let started = Instant::now();
        let instantiate = async {
            match &self.pre {
                Prepared::Handler(pre) => pre
                    .instantiate_async(&mut store)
                    .await
                    .map(Exports::Handler),
                Prepared::Transform(pre) => pre
                    .instantiate_async(&mut store)
                    .await
                    .map(Exports::Transform),
            }
        };
        let exports = tokio::time::timeout(self.limits.timeout + 2 * EPOCH_TICK, instantiate)
            .await
            .map_err(|_| self.timeout(started))?
            .map_err(|e| self.trap(format!("instantiation failed: {e:#}")))?;
        Ok(Instance { store, exports })
    }

    fn trap(&self, message: String) -> CallError {
        CallError::Trap {
            plugin: self.name.to_string(),
            message,
        }
    }

    fn timeout(&self, started: Instant) -> CallError {
        CallError::Timeout {
            plugin: self.name.to_string(),
            limit: self.limits.timeout,
            elapsed: started.elapsed(),
        }
    }
}

/// `timeout` after `from`; a year after it for a limit past what the clock holds
/// (durations in the configuration go up to `u64::MAX` milliseconds).
fn deadline(from: Instant, timeout: Duration) -> Instant {
    from.checked_add(timeout)
        .or_else(|| from.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(from)
}
