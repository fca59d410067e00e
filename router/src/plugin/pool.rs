//! A loaded plugin and its pool of warm instances.

use super::EPOCH_TICK;
use super::bindings::router::plugin::types as wit;
use super::bindings::{Handler, HandlerPre};
use super::host::HostState;
use crate::config::PluginConfig;
use crate::event::{Event, EventError, SPEC_VERSION};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;
use tokio::sync::Semaphore;
use wasmtime::{Store, StoreLimitsBuilder, Trap};
use wasmtime_wasi::WasiCtx;

/// Why a call into a plugin did not produce events.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The handler returned `handler-error.retryable`.
    #[error("plugin `{plugin}` failed (retryable): {message}")]
    Retryable {
        /// The plugin.
        plugin: String,
        /// The guest's message.
        message: String,
    },
    /// The handler returned `handler-error.fatal`.
    #[error("plugin `{plugin}` failed (fatal): {message}")]
    Fatal {
        /// The plugin.
        plugin: String,
        /// The guest's message.
        message: String,
    },
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted ...).
    #[error("plugin `{plugin}` trapped: {message}")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap and its backtrace summary.
        message: String,
    },
    /// The call ran past the plugin's time limit and was interrupted.
    #[error("plugin `{plugin}` exceeded its time limit of {limit:?}")]
    Timeout {
        /// The plugin.
        plugin: String,
        /// The limit.
        limit: Duration,
    },
    /// The plugin emitted an event that is not a valid CloudEvent.
    #[error("plugin `{plugin}` emitted an invalid event #{index}: {error}")]
    InvalidOutput {
        /// The plugin.
        plugin: String,
        /// Position of the event in the returned list.
        index: usize,
        /// What is wrong with it.
        error: EventError,
    },
}

impl CallError {
    /// Whether delivering the event again might succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Retryable { .. } | Self::Trap { .. } | Self::Timeout { .. }
        )
    }
}

/// A warm instance: its store and its bindings.
struct Instance {
    store: Store<HostState>,
    handler: Handler,
}

/// A loaded plugin, ready to handle events. Cheap to share behind an `Arc`.
pub struct Plugin {
    name: Arc<str>,
    pre: HandlerPre<HostState>,
    config: Arc<BTreeMap<String, String>>,
    memory_limit: usize,
    timeout: Duration,
    digest: String,
    path: PathBuf,
    loaded_at: SystemTime,
    instances: u32,
    idle: Mutex<Vec<Instance>>,
    permits: Arc<Semaphore>,
}

impl Plugin {
    pub(super) fn new(
        config: &PluginConfig,
        pre: HandlerPre<HostState>,
        digest: String,
        path: PathBuf,
    ) -> Self {
        let instances = config.instances.get();
        Self {
            name: config.name.get_ref().as_str().into(),
            pre,
            config: Arc::new(
                config
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.0.clone()))
                    .collect(),
            ),
            memory_limit: usize::try_from(config.memory_limit.0).unwrap_or(usize::MAX),
            timeout: config.timeout.0,
            digest,
            path,
            loaded_at: SystemTime::now(),
            instances,
            idle: Mutex::new(Vec::with_capacity(instances as usize)),
            permits: Arc::new(Semaphore::new(instances as usize)),
        }
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
        super::HANDLER_WORLD
    }

    /// How many instances may run at once.
    pub fn instances(&self) -> u32 {
        self.instances
    }

    /// Hands `event` to the plugin and returns the events it emitted, validated.
    ///
    /// Waits for a free instance when all `instances` are busy.
    pub async fn handle(self: &Arc<Self>, event: &Event) -> Result<Vec<Event>, CallError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.trap("the plugin is shutting down".into()))?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let input = to_wit(event);
        let this = Arc::clone(self);
        let metrics = crate::metrics::metrics();
        let labels = crate::metrics::PluginLabels {
            plugin: self.name.to_string(),
        };
        metrics.plugin_invocations.get_or_create(&labels).inc();
        let started = std::time::Instant::now();
        let (instance, result) = tokio::task::spawn_blocking(move || this.call(idle, &input))
            .await
            .map_err(|e| self.trap(format!("the call was aborted: {e}")))?;
        metrics
            .plugin_call_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Err(CallError::Trap { .. }) => metrics.plugin_traps.get_or_create(&labels).inc(),
            Err(CallError::Timeout { .. }) => metrics.plugin_timeouts.get_or_create(&labels).inc(),
            _ => 0,
        };
        if let Some(instance) = instance {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(instance);
        }
        let emitted = result?;
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

    /// Runs one call on a blocking thread. Returns the instance to put back in
    /// the pool, or `None` when it must be discarded.
    fn call(
        &self,
        idle: Option<Instance>,
        input: &wit::Event,
    ) -> (Option<Instance>, Result<Vec<wit::Event>, CallError>) {
        let mut instance = match idle {
            Some(i) => i,
            None => match self.instantiate() {
                Ok(i) => i,
                Err(e) => return (None, Err(e)),
            },
        };
        instance.store.set_epoch_deadline(self.deadline_ticks());
        match instance.handler.call_handle(&mut instance.store, input) {
            Ok(Ok(events)) => (Some(instance), Ok(events)),
            Ok(Err(wit::HandlerError::Retryable(message))) => (
                Some(instance),
                Err(CallError::Retryable {
                    plugin: self.name.to_string(),
                    message,
                }),
            ),
            Ok(Err(wit::HandlerError::Fatal(message))) => (
                Some(instance),
                Err(CallError::Fatal {
                    plugin: self.name.to_string(),
                    message,
                }),
            ),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => (
                None,
                Err(CallError::Timeout {
                    plugin: self.name.to_string(),
                    limit: self.timeout,
                }),
            ),
            Err(e) => (None, Err(self.trap(format!("{e:#}")))),
        }
    }

    fn instantiate(&self) -> Result<Instance, CallError> {
        let state = HostState {
            plugin: Arc::clone(&self.name),
            config: Arc::clone(&self.config),
            wasi: WasiCtx::builder().build(),
            table: wasmtime::component::ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.memory_limit)
                .instances(64)
                .build(),
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        // Instantiation runs the guest's start code: bound it like a call.
        store.set_epoch_deadline(self.deadline_ticks());
        let handler = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.trap(format!("instantiation failed: {e:#}")))?;
        Ok(Instance { store, handler })
    }

    /// The epoch deadline for one call. The next tick may come at once, so one
    /// extra tick makes the limit a floor: a call is interrupted between
    /// `timeout` and `timeout + EPOCH_TICK`, never before.
    fn deadline_ticks(&self) -> u64 {
        let ticks = self.timeout.as_millis().div_ceil(EPOCH_TICK.as_millis());
        u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
    }

    fn trap(&self, message: String) -> CallError {
        CallError::Trap {
            plugin: self.name.to_string(),
            message,
        }
    }
}

fn to_wit(e: &Event) -> wit::Event {
    wit::Event {
        id: e.id.clone(),
        source: e.source.clone(),
        specversion: SPEC_VERSION.to_owned(),
        type_: e.ty.clone(),
        datacontenttype: e.datacontenttype.clone(),
        dataschema: e.dataschema.clone(),
        subject: e.subject.clone(),
        time: e.time.clone(),
        extensions: e.extensions.clone(),
        data: e.data.as_ref().map(|d| d.to_vec()),
    }
}

/// Guest output is validated exactly like HTTP input: the host never trusts it.
fn from_wit(e: wit::Event) -> Result<Event, EventError> {
    if !e.specversion.is_empty() && e.specversion != SPEC_VERSION {
        return Err(EventError::invalid(
            "specversion",
            format!("plugins emit CloudEvents 1.0, not {:?}", e.specversion),
        ));
    }
    let event = Event {
        id: e.id,
        source: e.source,
        ty: e.type_,
        datacontenttype: e.datacontenttype,
        dataschema: e.dataschema,
        subject: e.subject,
        time: e.time,
        extensions: e.extensions,
        data: e.data.map(Into::into),
    };
    event.validate()?;
    Ok(event)
}
