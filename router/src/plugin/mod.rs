//! The wasmtime host: one shared [`Engine`](wasmtime::Engine), compiled
//! components cached by content hash, and per plugin an
//! [`InstancePre`](wasmtime::component::InstancePre) with a pool of warm
//! instances.
//!
//! A call starts as an async call on the tokio worker that handles the event,
//! under an epoch deadline checked at every tick; a call that keeps its thread
//! busy between two ticks moves to the guest threads (`offload`), where it
//! yields at every tick, so a guest that loops cannot hold the workers that
//! drive HTTP; a plugin whose calls were long lately starts its calls there.
//! An instance serves one
//! event at a time, and an instance that trapped is dropped, never reused.
//!
//! - `engine`: the engine, its epoch ticker, and `PluginHost`, which compiles,
//!   caches and loads components;
//! - `world`: the worlds and versions of `router:plugin` served, and their
//!   bindings;
//! - `host`: an instance's store data and the host side of the interfaces a
//!   plugin imports;
//! - `sandbox`: what an instance may use, and how much;
//! - `offload`: the guest threads, where long calls move;
//! - `pool`: a loaded `Plugin` and its warm instances, `breaker` its circuit
//!   breaker, `convert` the event across the WIT boundary;
//! - `candidate`: a plugin's shadow and canary versions, beside its live one;
//! - `error`: why a load or a call failed.

mod breaker;
mod cache;
mod candidate;
mod convert;
mod engine;
mod error;
mod host;
mod offload;
mod pool;
mod sandbox;
mod slots;
mod world;

pub(crate) use cache::DiskCache;
pub(crate) use candidate::{Canary, CanarySettings, Candidates, Shadow, judge, outcome_index};
pub use candidate::{Difference, SHADOW_OUTCOMES};
pub use convert::{to_wit, wit_extensions};
pub(crate) use engine::PluginHost;
pub use engine::{ALLOCATOR_VARIABLE, engine_config, start_epoch_ticker};
pub(crate) use error::{CallError, EngineError, LoadError};
pub(crate) use pool::Plugin;
pub use world::bindings;
pub(crate) use world::{HANDLER_WORLD, TRANSFORM_WORLD};

use std::time::Duration;

/// How often the epoch advances: the longest a call runs on an I/O worker before
/// it moves to the guest threads, the slice a busy guest runs before it yields,
/// and the granularity of plugin time limits. A tick costs the ticker thread a
/// wake-up and each running guest a yield (about a microsecond): 0.1 % at 1 ms.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
