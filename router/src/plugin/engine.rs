//! The process-wide wasmtime engine, its epoch ticker, and the host that
//! compiles, caches and loads components.

use super::cache::DiskCache;
use super::host::HostState;
use super::world::{self, Prepared, Version};
use super::{EPOCH_TICK, EngineError, LoadError, Plugin};
use crate::config::{MAX_MEMORY_LIMIT, PluginConfig, PluginLimits};
use crate::digest::hex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The environment variable that turns wasmtime's pooling allocator off:
/// `ROUTER_INSTANCE_ALLOCATOR=on-demand`. The pool reserves terabytes of
/// address space up front, which a process under `ulimit -v` (or valgrind)
/// cannot have; on demand, each instance maps its own memory, slower to start.
pub const ALLOCATOR_VARIABLE: &str = "ROUTER_INSTANCE_ALLOCATOR";

/// The wasmtime configuration every plugin runs under: epoch interruption, the
/// stack limits, and the pooling allocator with copy-on-write memory images
/// (or, when [`ALLOCATOR_VARIABLE`] says `on-demand`, instances allocated one
/// by one). Public so that the benchmarks measure bare wasmtime under the same
/// settings, as the floor of the router's own figures.
pub fn engine_config() -> Result<Config, EngineError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Well below the fiber stack, so deep recursion in a guest is a trap rather
    // than a crash of the router.
    config.max_wasm_stack(512 * 1024);
    config.async_stack_size(1024 * 1024);
    match std::env::var(ALLOCATOR_VARIABLE).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("pooling") => {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling()));
        }
        Ok("on-demand") => {
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
        Ok(other) => {
            return Err(EngineError::Config(format!(
                "{ALLOCATOR_VARIABLE}={other:?}: say `pooling` (the default) or `on-demand`"
            )));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(EngineError::Config(format!(
                "{ALLOCATOR_VARIABLE} is not UTF-8: say `pooling` (the default) or `on-demand`"
            )));
        }
    }
    Ok(config)
}

/// The pool every instance is allocated from, unless turned off.
fn pooling() -> PoolingAllocationConfig {
    const KEEP_RESIDENT: usize = 2 << 20;
    let mut pooling = PoolingAllocationConfig::default();
    pooling.total_component_instances(1000);
    pooling.total_core_instances(1000);
    pooling.total_memories(1000);
    pooling.total_tables(1000);
    pooling.max_memory_size(MAX_MEMORY_LIMIT as usize);
    // A slot given back keeps its pages: the ones the instance dirtied
    // (found with Linux's PAGEMAP_SCAN, where the kernel has it) are reset
    // in place, so the next instance in that slot takes no page faults.
    // Unmapping and faulting the pages back was most of a fresh
    // instance's cost.
    pooling.pagemap_scan(wasmtime::Enabled::Auto);
    pooling.linear_memory_keep_resident(KEEP_RESIDENT);
    pooling.table_keep_resident(KEEP_RESIDENT / 16);
    pooling
}

/// Advances `engine`'s epoch every `EPOCH_TICK` (1 ms) on a thread of its own, which
/// ends when the engine is dropped: plugin time limits are checked at these ticks.
pub fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let ticker = engine.weak();
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
}

/// The process-wide wasmtime engine, linker and compiled-component cache.
pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
}

impl PluginHost {
    /// The host shared by every runtime in this process, so that a component is
    /// compiled once per file content however often the configuration is loaded.
    pub fn shared() -> Result<&'static PluginHost, EngineError> {
        static HOST: OnceLock<Result<PluginHost, EngineError>> = OnceLock::new();
        HOST.get_or_init(PluginHost::new)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn new() -> Result<Self, EngineError> {
        let link = |e: wasmtime::Error| EngineError::Link(format!("{e:#}"));
        let engine =
            Engine::new(&engine_config()?).map_err(|e| EngineError::Config(format!("{e:#}")))?;
        start_epoch_ticker(&engine).map_err(|e| EngineError::Ticker(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(link)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker).map_err(link)?;
        world::add_to_linker(&mut linker).map_err(link)?;
        Ok(Self {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// Loads the plugin of `config` from `path`: compiles it on a blocking thread
    /// (or takes it from this process's cache, then from `disk`), checks its
    /// world, and starts one instance under its limits. `dirs` are the granted
    /// directories, resolved, each with where the guest sees it.
    pub async fn load(
        &self,
        config: &PluginConfig,
        limits: PluginLimits,
        path: &Path,
        dirs: Vec<(PathBuf, String)>,
        disk: Option<&Arc<DiskCache>>,
    ) -> Result<Plugin, LoadError> {
        let shown = path.display().to_string();
        let bytes = tokio::fs::read(path).await.map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                LoadError::Missing {
                    path: shown.clone(),
                }
            } else {
                LoadError::Read {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        check_header(&shown, &bytes)?;
        let digest = crate::digest::sha256(&bytes);
        let component = self.compile(&shown, digest, bytes, disk).await?;
        let world_error = |e: wasmtime::Error| LoadError::World {
            path: shown.clone(),
            reason: format!("{e:#}"),
        };
        let version = Version::of(&component, &self.engine).map_err(|reason| LoadError::World {
            path: shown.clone(),
            reason,
        })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(world_error)?;
        let pre = Prepared::new(instance_pre).map_err(world_error)?;
        Plugin::new(
            config,
            limits,
            dirs,
            pre,
            version,
            hex(&digest),
            path.to_owned(),
        )
        .await
    }

    /// Forgets compiled components whose digest is not in `keep`, so a long run of
    /// reloads does not accumulate every version ever loaded.
    pub fn retain_compiled(&self, keep: &[&str]) {
        crate::sync::lock(&self.compiled).retain(|digest, _| keep.contains(&hex(digest).as_str()));
    }

    async fn compile(
        &self,
        shown: &str,
        digest: [u8; 32],
        bytes: Vec<u8>,
        disk: Option<&Arc<DiskCache>>,
    ) -> Result<Component, LoadError> {
        let cached = crate::sync::lock(&self.compiled).get(&digest).cloned();
        if let Some(component) = cached {
            return Ok(component);
        }
        // Cranelift takes from tens of milliseconds to seconds per component,
        // and reading a cached one means reading megabytes: keep both off the
        // async workers.
        let engine = self.engine.clone();
        let disk = disk.cloned();
        let shown_owned = shown.to_owned();
        let compiled = tokio::task::spawn_blocking(move || {
            if let Some(component) = disk.as_ref().and_then(|d| d.get(&engine, &digest)) {
                tracing::info!(plugin = %shown_owned, "loaded from the compile cache");
                return Ok(component);
            }
            let started = std::time::Instant::now();
            let component = Component::new(&engine, &bytes)?;
            tracing::info!(plugin = %shown_owned, took = ?started.elapsed(), "compiled");
            if let Some(disk) = &disk {
                disk.put(&engine, &digest, &component);
            }
            Ok::<_, wasmtime::Error>(component)
        })
        .await
        .map_err(|e| LoadError::Compile {
            path: shown.to_owned(),
            reason: format!("the compiler task failed: {e}"),
        })?;
        let component = compiled.map_err(|e| LoadError::Compile {
            path: shown.to_owned(),
            reason: format!("{e:#}"),
        })?;
        crate::sync::lock(&self.compiled).insert(digest, component.clone());
        Ok(component)
    }
}

/// Tells a file that is not WebAssembly, or a core module, from a component by
/// its 8-byte header, so that the error says which in one line (wasmtime's
/// parser would print the bytes it expected).
fn check_header(shown: &str, bytes: &[u8]) -> Result<(), LoadError> {
    /// Version 1 of the core module format.
    const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
    match bytes.get(..8) {
        Some(header) if header.starts_with(b"\0asm") => {
            if header[4..] == CORE_MODULE {
                Err(LoadError::CoreModule {
                    path: shown.to_owned(),
                })
            } else {
                // A component, or a layer this parser may know better: its
                // own error, if any, says what is wrong.
                Ok(())
            }
        }
        _ if bytes.starts_with(b"\0asm") => Ok(()),
        _ => Err(LoadError::NotWasm {
            path: shown.to_owned(),
        }),
    }
}
