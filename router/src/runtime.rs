//! The runtime snapshot: compiled routes and loaded plugins, immutable once built.
//!
//! The dispatcher loads the current snapshot once per event; a reload builds a
//! new one off the hot path and swaps it in, so events in flight finish on the
//! snapshot they started with.

use crate::config::{Config, ConfigError, ConfigErrors, Source};
use crate::delivery::archive::Archive;
use crate::delivery::deadletter::DeadLetterSink;
use crate::delivery::dedup::Dedup;
use crate::event::Event;
use crate::gate::Gate;
use crate::plugin::{Candidates, Plugin, PluginHost};
use crate::policy::filter::Filter;
use crate::policy::schema::Schemas;
use crate::policy::transform::Step;
use crate::redis::Redis;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One route, ready to match and deliver.
pub struct Route {
    /// The route's name.
    pub name: String,
    /// Its compiled filter; `None` matches every event.
    pub filter: Option<Filter>,
    /// The plugin that handles matched events.
    pub(crate) handler: Option<Arc<Plugin>>,
    /// The handler's shadow and canary versions, if it has any.
    pub(crate) candidates: Option<Arc<Candidates>>,
    /// The URL matched events are forwarded to.
    pub forward: Option<String>,
    /// The journal matched events are appended to.
    pub(crate) append: Option<crate::delivery::journal::Journal>,
    /// Steps applied before the targets.
    pub(crate) transforms: Vec<Step>,
    /// The route's metrics.
    pub(crate) counters: crate::metrics::RouteCounters,
    /// How its targets are retried.
    pub(crate) retry: crate::config::RetryPolicy,
    /// Its own duplicate window, if any.
    pub(crate) dedup: Option<Duration>,
}

/// Settings the dispatcher needs per event.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest chain of emitted events.
    pub hop_limit: u32,
    /// Timeout of one forward request.
    pub forward_timeout: Duration,
    /// Where routes put the events they gave up on (`[delivery.dead_letter]`).
    pub(crate) dead_letter: Option<DeadLetterSink>,
    /// Where every dead letter is kept, listed and redriven from: the configured
    /// sink, or in durable mode without one, the stream `<queue stream>:dead`
    /// beside the queue's (where the queue puts its poison entries).
    pub(crate) dead_letters: Option<DeadLetterSink>,
    /// Duplicate suppression: the global window and the store of delivered pairs.
    pub(crate) dedup: Dedup,
    /// Where ingest keeps accepted events (`[archive]`), for browsing and replay.
    pub(crate) archive: Option<Arc<Archive>>,
}

/// The Redis-backed parts of a runtime, built once per load so that a URL the
/// Redis client refuses is a configuration error, not a feature silently off.
struct Backends {
    dead_letter: Option<DeadLetterSink>,
    dead_letters: Option<DeadLetterSink>,
    dedup: Dedup,
    queue: Option<Redis>,
    /// The Redis of `[ingest] replay_store = "redis"`, and its key prefix.
    replay: Option<(Redis, String)>,
    /// `[archive]`, its filter compiled.
    archive: Option<Arc<Archive>>,
}

impl Backends {
    /// The dead-letter sink, the dedup store and the durable queue's Redis of
    /// `config`, with an error (at the key holding the URL) for each that cannot
    /// be built.
    fn build(config: &Config) -> (Self, Vec<ConfigError>) {
        let mut errors = Vec::new();
        let source = &config.source;
        let mut open = |url: &str, timeout: Duration, at: &[&str]| {
            Redis::open(url, timeout)
                .map_err(|e| {
                    errors.push(source.error(source.span_of(at), at.join("."), e.to_string()))
                })
                .ok()
        };
        let queue = (config.queue.kind == crate::config::QueueKind::Redis)
            .then(|| open(&config.queue.url, config.queue.timeout.0, &["queue", "url"]))
            .flatten();
        let dead_letter = config.delivery.dead_letter.as_ref().and_then(|dl| {
            match (&dl.file, &dl.url, &dl.stream) {
                (Some(file), _, _) => Some(DeadLetterSink::file(&config.resolve(file))),
                (None, Some(url), _) => {
                    Some(DeadLetterSink::http(url, config.server.forward_timeout.0))
                }
                (None, None, Some(stream)) => open(
                    dl.redis.as_deref().unwrap_or(&config.queue.url),
                    crate::redis::DEFAULT_TIMEOUT,
                    &["delivery", "dead_letter", "redis"],
                )
                .map(|redis| DeadLetterSink::stream(redis, stream)),
                (None, None, None) => None,
            }
        });
        let dead_letters = dead_letter.clone().or_else(|| {
            queue.as_ref().map(|redis| {
                DeadLetterSink::stream(redis.clone(), &format!("{}:dead", config.queue.stream))
            })
        });
        let dedup = match &config.delivery.dedup {
            None => Dedup::default(),
            Some(d) if d.store == crate::config::DedupStore::Redis => open(
                d.url.as_deref().unwrap_or(&config.queue.url),
                crate::redis::DEFAULT_TIMEOUT,
                &["delivery", "dedup", "url"],
            )
            .map_or_else(Dedup::default, |redis| {
                Dedup::redis(
                    Some(d.window.0),
                    redis,
                    &format!("{}:seen:", config.queue.stream),
                )
            }),
            Some(d) => Dedup::memory(Some(d.window.0), d.max_entries, d.memory_limit.0),
        };
        let replay = (config.ingest.replay_store == crate::config::DedupStore::Redis)
            .then(|| {
                open(
                    config
                        .ingest
                        .replay_url
                        .as_deref()
                        .unwrap_or(&config.queue.url),
                    crate::redis::DEFAULT_TIMEOUT,
                    &["ingest", "replay_url"],
                )
            })
            .flatten()
            .map(|redis| (redis, format!("{}:webhook-id:", config.queue.stream)));
        // The filter's error is pushed once `open`, which holds `errors`, is done.
        let mut filter_error = None;
        let archive = config.archive.as_ref().and_then(|spec| {
            let filter = match spec.filter.as_ref().map(crate::config::FilterSpec::compile) {
                None => None,
                Some(Ok(filter)) => Some(filter),
                Some(Err(e)) => {
                    filter_error = Some(source.error(
                        source.span_of(&["archive", "filter"]),
                        format!("archive.{}", e.path),
                        e.message,
                    ));
                    return None;
                }
            };
            let redis = match &spec.stream {
                Some(_) => Some(open(
                    spec.redis.as_deref().unwrap_or(&config.queue.url),
                    crate::redis::DEFAULT_TIMEOUT,
                    &["archive", "redis"],
                )?),
                None => None,
            };
            Archive::new(spec, |p| config.resolve(p), redis, filter).map(Arc::new)
        });
        errors.extend(filter_error);
        let backends = Self {
            dead_letter,
            dead_letters,
            dedup,
            queue,
            replay,
            archive,
        };
        (backends, errors)
    }
}

/// The hasher of the route indexes, looked up twice per event (it and what it
/// emits): SipHash cost more than the rest of matching. A sender chooses the
/// keys looked up but never the keys stored, and the seed is random per
/// process, so a faster hash gives it no collisions to aim at.
type FastHash = foldhash::fast::RandomState;

/// An immutable snapshot of everything routing needs.
pub struct Runtime {
    routes: Vec<Route>,
    /// Routes whose filter pins one exact `type`, by that type.
    by_type: HashMap<String, Vec<usize>, FastHash>,
    /// Routes whose filter requires a `type` prefix, by that prefix.
    by_prefix: HashMap<String, Vec<usize>, FastHash>,
    /// The lengths of those prefixes, so a lookup tries each length once.
    prefix_lengths: Vec<usize>,
    /// Every other route, in declaration order.
    unindexed: Vec<usize>,
    plugins: Vec<Arc<Plugin>>,
    /// The candidate versions of the plugins that have them, by plugin name.
    candidates: HashMap<String, Arc<Candidates>>,
    /// The promotions this snapshot applied: plugin name, and the file it
    /// was promoted from.
    promoted: HashMap<String, String>,
    /// The configuration this snapshot was built from, so that a promotion
    /// rebuilds it without reading the file again.
    config: Arc<Config>,
    /// Per-event settings.
    pub(crate) settings: Settings,
    /// The durable queue's Redis, when `[queue] kind = "redis"`.
    queue: Option<Redis>,
    generation: u64,
    files: Vec<PathBuf>,
    schemas: Schemas,
    /// Who may send events (`[ingest]`), swapped in with the routes.
    gate: Gate,
    /// The settings only read at start, by section, to tell a reload that
    /// changes them that a restart is needed.
    start_only: Vec<(&'static str, String)>,
}

impl Runtime {
    /// Reads the configuration at `path` and builds its runtime, reporting every
    /// problem of both in one list: TOML and validation errors together with
    /// plugins that cannot be loaded.
    pub async fn load(path: &Path) -> Result<(Config, Self), ConfigErrors> {
        Self::load_with(path, &Promotions::default()).await
    }

    /// [`Runtime::load`], with the candidate versions in `promotions` live.
    pub(crate) async fn load_with(
        path: &Path,
        promotions: &Promotions,
    ) -> Result<(Config, Self), ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        let (config, mut errors) =
            Config::parse_lenient(Source::new(path, text), |name| std::env::var(name).ok());
        let (loaded, plugin_errors) = load_plugins(&config, promotions).await;
        errors.extend(plugin_errors);
        let (schemas, schema_errors) = Schemas::load(&config);
        errors.extend(schema_errors);
        let (filters, filter_errors) = compile_filters(&config);
        errors.extend(filter_errors);
        let (backends, backend_errors) = Backends::build(&config);
        errors.extend(backend_errors);
        if !errors.is_empty() {
            return Err(config.name_routes(ConfigErrors(errors)).sorted());
        }
        let runtime = Self::assemble(&config, loaded, schemas, filters, backends)
            .map_err(|errors| config.name_routes(errors))?;
        Ok((config, runtime))
    }

    /// Loads every plugin and compiles every route of a validated `config`.
    /// Plugin problems (a missing file, an invalid component, a wrong world) are
    /// all reported, each at its `path` key.
    pub async fn build(config: &Config) -> Result<Self, ConfigErrors> {
        Self::build_with(config, &Promotions::default()).await
    }

    /// [`Runtime::build`], with the candidate versions in `promotions` live.
    pub(crate) async fn build_with(
        config: &Config,
        promotions: &Promotions,
    ) -> Result<Self, ConfigErrors> {
        let (loaded, mut errors) = load_plugins(config, promotions).await;
        let (schemas, schema_errors) = Schemas::load(config);
        errors.extend(schema_errors);
        let (filters, filter_errors) = compile_filters(config);
        errors.extend(filter_errors);
        let (backends, backend_errors) = Backends::build(config);
        errors.extend(backend_errors);
        if !errors.is_empty() {
            return Err(config.name_routes(ConfigErrors(errors)).sorted());
        }
        Self::assemble(config, loaded, schemas, filters, backends)
            .map_err(|errors| config.name_routes(errors))
    }

    /// Puts the routes together with their plugins; a plugin of the wrong world for
    /// its use is an error at the route's TOML path.
    fn assemble(
        config: &Config,
        loaded: Loaded,
        schemas: Schemas,
        filters: Vec<Option<Filter>>,
        backends: Backends,
    ) -> Result<Self, ConfigErrors> {
        let Loaded {
            plugins,
            candidates,
            promoted,
        } = loaded;
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        for (r, filter) in config.routes.iter().zip(filters) {
            let i = r.index;
            let handler = r
                .handler
                .as_ref()
                .and_then(|h| plugins.get(h.get_ref().as_str()).cloned());
            if let (Some(h), Some(plugin)) = (&r.handler, &handler)
                && !plugin.is_handler()
            {
                errors.push(config.source.error(
                    Some(h.span()),
                    format!("route[{i}].handler"),
                    format!(
                        "plugin `{}` implements {}, not {}: use it in a `transform` step",
                        plugin.name(),
                        plugin.world(),
                        crate::plugin::HANDLER_WORLD
                    ),
                ));
            }
            let mut transforms = Vec::new();
            for (j, spec) in r.transform.iter().enumerate() {
                let resolve = |name: &str| match plugins.get(name) {
                    Some(p) if p.is_transform() => Ok(Arc::clone(p)),
                    Some(p) => Err(format!(
                        "plugin `{name}` implements {}, not {}",
                        p.world(),
                        crate::plugin::TRANSFORM_WORLD
                    )),
                    None => Err(format!("unknown plugin {name:?}")),
                };
                match spec.compile(resolve) {
                    Ok(step) => transforms.push(step),
                    Err(message) => errors.push(config.source.error(
                        Some(r.name.span()),
                        format!("route[{i}].transform[{j}]"),
                        message,
                    )),
                }
            }
            let append = r.append.as_ref().and_then(|spec| {
                use crate::delivery::journal::Journal;
                let append = spec.get_ref();
                match (&append.file, &append.stream) {
                    (Some(file), _) => Some(Journal::file(&config.resolve(file))),
                    (None, Some(stream)) => {
                        let url = append.redis.as_deref().unwrap_or(&config.queue.url);
                        Redis::open(url, crate::redis::DEFAULT_TIMEOUT)
                            .map(|redis| Journal::stream(redis, stream))
                            .map_err(|e| {
                                errors.push(config.source.error(
                                    Some(spec.span()),
                                    format!("route[{i}].append.redis"),
                                    e.to_string(),
                                ))
                            })
                            .ok()
                    }
                    (None, None) => None,
                }
            });
            let route_candidates = r
                .handler
                .as_ref()
                .and_then(|h| candidates.get(h.get_ref().as_str()).cloned());
            routes.push(Route {
                name: r.name.get_ref().to_string(),
                filter,
                handler,
                candidates: route_candidates,
                forward: r.forward.as_ref().map(|f| f.get_ref().clone()),
                append,
                transforms,
                counters: crate::metrics::RouteCounters::new(r.name.get_ref().as_str()),
                retry: r
                    .retry
                    .clone()
                    .unwrap_or_default()
                    .resolve(&config.delivery.retry),
                dedup: r.dedup.map(|d| d.0),
            });
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors).sorted());
        }
        let mut by_type: HashMap<String, Vec<usize>, FastHash> = HashMap::default();
        let mut by_prefix: HashMap<String, Vec<usize>, FastHash> = HashMap::default();
        let mut unindexed = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let filter = r.filter.as_ref();
            if let Some(ty) = filter.and_then(Filter::exact_type) {
                by_type.entry(ty.to_owned()).or_default().push(i);
            } else if let Some(prefix) = filter.and_then(Filter::type_prefix) {
                by_prefix.entry(prefix.to_owned()).or_default().push(i);
            } else {
                unindexed.push(i);
            }
        }
        let mut prefix_lengths: Vec<usize> = by_prefix.keys().map(String::len).collect();
        prefix_lengths.sort_unstable();
        prefix_lengths.dedup();
        let mut plugins: Vec<_> = plugins.into_values().collect();
        plugins.sort_by(|a, b| a.name().cmp(b.name()));
        let mut files = vec![config.source.file.clone()];
        files.extend(
            config
                .plugins
                .iter()
                .map(|p| config.resolve(p.path.get_ref())),
        );
        files.extend(config.plugins.iter().flat_map(|p| {
            let shadow = p.shadow.as_ref().map(|s| s.get_ref().0.path.as_str());
            let canary = p.canary.as_ref().map(|c| c.get_ref().path.as_str());
            shadow
                .into_iter()
                .chain(canary)
                .map(|path| config.resolve(path))
        }));
        files.extend(
            config
                .schemas
                .iter()
                .map(|s| config.resolve(s.path.get_ref())),
        );
        Ok(Self {
            generation: 1,
            files,
            schemas,
            routes,
            by_type,
            by_prefix,
            prefix_lengths,
            unindexed,
            plugins,
            candidates,
            promoted,
            config: Arc::new(config.clone()),
            settings: Settings {
                hop_limit: config.server.hop_limit,
                forward_timeout: config.server.forward_timeout.0,
                dead_letter: backends.dead_letter,
                dead_letters: backends.dead_letters,
                dedup: backends.dedup,
                archive: backends.archive,
            },
            queue: backends.queue,
            gate: Gate::new(&config.ingest, backends.replay),
            start_only: start_only(config),
        })
    }

    /// The routes that `event` matches, in declaration order. Routes indexed
    /// under another exact type, or under a type prefix the event's type does not
    /// start with, are never looked at.
    pub fn matching<'a, 'e>(
        &'a self,
        event: &'e Event,
    ) -> impl Iterator<Item = &'a Route> + use<'a, 'e> {
        let indexed = self
            .by_type
            .get(event.ty.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default();
        // Without prefix routes (the common case) nothing is collected: the
        // two sorted lists are merged as they are read.
        let mut prefixed: Vec<usize> = Vec::new();
        let ty = event.ty.as_str();
        for &len in &self.prefix_lengths {
            if let Some(routes) = ty.get(..len).and_then(|p| self.by_prefix.get(p)) {
                prefixed.extend_from_slice(routes);
            }
        }
        prefixed.sort_unstable();
        let candidates = merge_sorted(
            merge_sorted(indexed.iter().copied(), self.unindexed.iter().copied()),
            prefixed,
        );
        let subject = crate::policy::data::Subject::new(event);
        candidates.map(|i| &self.routes[i]).filter(move |r| {
            r.filter
                .as_ref()
                .is_none_or(|f| f.matches_subject(&subject))
        })
    }

    /// The snapshot's number: 1 for the first load, one more for each reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Numbers this snapshot as the successor of `previous`, and takes over
    /// the state of its gate that the new settings allow (see [`Gate::succeed`]).
    pub(crate) fn succeed(&mut self, previous: &Runtime) {
        self.generation = previous.generation + 1;
        self.gate.succeed(&previous.gate);
        // Routes share their plugin's candidates: the routes let go of them
        // while the state is taken over in place, before the snapshot serves.
        for route in &mut self.routes {
            route.candidates = None;
        }
        for (name, candidates) in &mut self.candidates {
            let (Some(old), Some(live), Some(old_live)) = (
                previous.candidates.get(name),
                self.plugins.iter().find(|p| p.name() == name),
                previous.plugins.iter().find(|p| p.name() == name),
            ) else {
                continue;
            };
            if let Some(new) = Arc::get_mut(candidates) {
                new.succeed(live, old, old_live);
            }
        }
        for route in &mut self.routes {
            if let Some(h) = &route.handler {
                route.candidates = self.candidates.get(h.name()).cloned();
            }
        }
    }

    /// The start-only settings (read when the server starts, not by a reload)
    /// of this snapshot's file, by section.
    pub(crate) fn start_only(&self) -> &[(&'static str, String)] {
        &self.start_only
    }

    /// The sections of start-only settings whose values differ between this
    /// snapshot's file and `started` (those of the running server).
    pub(crate) fn restart_needed(&self, started: &[(&'static str, String)]) -> Vec<&'static str> {
        self.start_only
            .iter()
            .zip(started)
            .filter(|(new, old)| new != old)
            .map(|(new, _)| new.0)
            .collect()
    }

    /// Who may send events: credentials, rate limits, load shedding.
    pub(crate) fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The files this snapshot was built from: the configuration, then each plugin.
    pub(crate) fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The JSON Schemas enforced at ingest.
    pub(crate) fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// Every route, in declaration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Starts instances of plugin `name` until `n` (at most its `instances`) wait
    /// warm in its pool, so the first events of a burst do not pay for
    /// instantiation; how many wait, or `None` for an unknown plugin or one that
    /// cannot be instantiated.
    pub async fn prewarm(&self, name: &str, n: usize) -> Option<usize> {
        let plugin = self.plugins.iter().find(|p| p.name() == name)?;
        plugin.prewarm(n).await.ok()
    }

    /// Every loaded plugin, by name.
    pub(crate) fn plugins(&self) -> &[Arc<Plugin>] {
        &self.plugins
    }

    /// The candidate versions of plugin `name`, if it has any.
    pub(crate) fn candidates(&self, name: &str) -> Option<&Arc<Candidates>> {
        self.candidates.get(name)
    }

    /// The file plugin `name` was promoted from, when a promotion made its
    /// candidate live in this snapshot.
    pub(crate) fn promoted_from(&self, name: &str) -> Option<&str> {
        self.promoted.get(name).map(String::as_str)
    }

    /// The configuration this snapshot was built from.
    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The digests of every component this snapshot holds, candidates included.
    pub(crate) fn digests(&self) -> Vec<&str> {
        let candidates = self.candidates.values().flat_map(|c| {
            let shadow = c.shadow.as_ref().map(|s| s.plugin.digest());
            let canary = c.canary.as_ref().map(|c| c.plugin.digest());
            shadow.into_iter().chain(canary)
        });
        self.plugins
            .iter()
            .map(|p| p.digest())
            .chain(candidates)
            .collect()
    }

    /// The durable queue's Redis, when `[queue] kind = "redis"` (built, and its
    /// URL checked, with the rest of the snapshot).
    pub(crate) fn queue_redis(&self) -> Option<&Redis> {
        self.queue.as_ref()
    }
}

/// The settings the server reads once, at start (the listener, its limits and
/// timeouts, the admin listener and token, reloading, the durable queue), as text to compare: new keys of
/// these sections are covered without being listed.
fn start_only(config: &Config) -> Vec<(&'static str, String)> {
    let mut server = config.server.clone();
    // The two that each snapshot carries (see `Settings`).
    server.hop_limit = 0;
    server.forward_timeout = crate::config::Duration(Duration::ZERO);
    vec![
        ("[server]", format!("{server:?}")),
        (
            "[admin]",
            format!(
                "{:?} {:?}",
                config.admin,
                config.admin.token.as_ref().map(|t| t.fingerprint())
            ),
        ),
        ("[reload]", format!("{:?}", config.reload)),
        ("[queue]", format!("{:?}", config.queue)),
    ]
}

/// The compile cache of `config`, when there is one to use. A directory named
/// in the configuration that cannot be used is a configuration error; the
/// default one (in the user's cache folder) only costs a warning, since nobody
/// asked for it.
fn compile_cache(
    config: &Config,
    errors: &mut Vec<ConfigError>,
) -> Option<crate::plugin::DiskCache> {
    let settings = &config.compile_cache;
    if !settings.enabled || config.plugins.is_empty() {
        return None;
    }
    let max = settings.max_size.0;
    match &settings.dir {
        Some(dir) => crate::plugin::DiskCache::open(&config.resolve(dir), max)
            .map_err(|e| {
                errors.push(config.source.error(
                    config.source.span_of(&["compile_cache", "dir"]),
                    "compile_cache.dir",
                    e.to_string(),
                ));
            })
            .ok(),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            crate::plugin::DiskCache::open(&base.join("router/components"), max)
                .map_err(|e| {
                    tracing::warn!(error = %e, "compiled plugins are not cached on disk (set [compile_cache] dir)");
                })
                .ok()
        }
    }
}

/// Compiles the filter of each route of `config`, in order, with an error at the
/// route's TOML path for each one that cannot be compiled.
fn compile_filters(config: &Config) -> (Vec<Option<Filter>>, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let filters = config
        .routes
        .iter()
        .map(|r| {
            let spec = r.filter.as_ref()?;
            spec.get_ref()
                .compile()
                .map_err(|e| {
                    errors.push(config.source.error(
                        Some(spec.span()),
                        format!("route[{}].{}", r.index, e.path),
                        e.message,
                    ))
                })
                .ok()
        })
        .collect();
    (filters, errors)
}

/// Which candidate version of a plugin an operator made live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CandidateKind {
    /// The `shadow` version.
    Shadow,
    /// The `canary` version.
    Canary,
}

/// A candidate version made live by `POST /admin/plugins/{name}/promote`.
/// It holds while the plugin's entry names the same live and candidate files:
/// a reload of an unchanged file keeps it, a changed entry ends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Promotion {
    /// The candidate made live.
    pub kind: CandidateKind,
    /// The entry's `path` when it was promoted, as written.
    pub live: String,
    /// The candidate's `path`, as written.
    pub candidate: String,
}

/// The promotions in force, by plugin name.
pub(crate) type Promotions = HashMap<String, Promotion>;

impl Promotion {
    /// The promotion of plugin `p`'s `kind` candidate, when it has one.
    pub(crate) fn of(p: &crate::config::PluginConfig, kind: CandidateKind) -> Option<Self> {
        let candidate = match kind {
            CandidateKind::Shadow => p.shadow.as_ref()?.get_ref().0.path.clone(),
            CandidateKind::Canary => p.canary.as_ref()?.get_ref().path.clone(),
        };
        Some(Self {
            kind,
            live: p.path.get_ref().clone(),
            candidate,
        })
    }
}

/// What [`load_plugins`] loaded.
#[derive(Default)]
struct Loaded {
    plugins: HashMap<String, Arc<Plugin>>,
    candidates: HashMap<String, Arc<Candidates>>,
    promoted: HashMap<String, String>,
}

/// Loads the plugins that `config` declares, keyed by name, and their
/// candidate versions, with an error for each one that cannot be loaded. A
/// plugin in `promotions` (whose entry still names the same files) runs its
/// candidate as its live version, without candidates.
async fn load_plugins(config: &Config, promotions: &Promotions) -> (Loaded, Vec<ConfigError>) {
    let mut loaded = Loaded::default();
    let host = match PluginHost::shared() {
        Ok(host) => host,
        Err(e) => {
            let message = format!("cannot start the WebAssembly engine: {e}");
            return (loaded, vec![config.source.error(None, "", message)]);
        }
    };
    let mut errors = Vec::new();
    let kv = match config.kv.store {
        crate::config::DedupStore::Memory => crate::kv::Kv::memory(config.kv.memory_limit.0),
        crate::config::DedupStore::Redis => {
            let url = config.kv.url.as_deref().unwrap_or(&config.queue.url);
            match Redis::open(url, crate::redis::DEFAULT_TIMEOUT) {
                Ok(redis) => crate::kv::Kv::Redis(Arc::new(crate::kv::RedisKv::new(
                    redis,
                    &config.kv.prefix,
                ))),
                Err(e) => {
                    errors.push(config.source.error(
                        config.source.span_of(&["kv", "url"]),
                        "kv.url",
                        e.to_string(),
                    ));
                    crate::kv::Kv::default()
                }
            }
        }
    };
    let disk = compile_cache(config, &mut errors).map(Arc::new);
    for p in &config.plugins {
        let i = p.index;
        let name = p.name.get_ref().to_string();
        let limits = p.limits(&config.plugin_defaults);
        let dirs = config.granted_dirs(p);
        let promotion = promotions
            .get(&name)
            .filter(|promoted| Promotion::of(p, promoted.kind).as_ref() == Some(*promoted));
        if let Some(promotion) = promotion {
            // The candidate, as the live version: the entry's grants and
            // limits, the candidate's own `config` when it has one.
            let mut entry = p.clone();
            entry.config = match promotion.kind {
                CandidateKind::Shadow => {
                    p.shadow.as_ref().and_then(|s| s.get_ref().0.config.clone())
                }
                CandidateKind::Canary => p.canary.as_ref().and_then(|c| c.get_ref().config.clone()),
            }
            .unwrap_or_else(|| p.config.clone());
            let path = config.resolve(&promotion.candidate);
            match host.load(&entry, limits, &path, dirs, disk.as_ref()).await {
                Ok(plugin) => {
                    loaded
                        .plugins
                        .insert(name.clone(), Arc::new(plugin.with_kv(kv.clone())));
                    loaded.promoted.insert(name, promotion.live.clone());
                }
                Err(e) => errors.push(config.source.error(
                    Some(p.path.span()),
                    format!("plugin[{i}].path"),
                    format!("plugin `{name}` (promoted {:?}): {e}", promotion.candidate),
                )),
            }
            continue;
        }
        let path = config.resolve(p.path.get_ref());
        let live = match host
            .load(p, limits.clone(), &path, dirs.clone(), disk.as_ref())
            .await
        {
            Ok(plugin) => Arc::new(plugin.with_kv(kv.clone())),
            Err(e) => {
                errors.push(config.source.error(
                    Some(p.path.span()),
                    format!("plugin[{i}].path"),
                    format!("plugin `{name}`: {e}"),
                ));
                continue;
            }
        };
        loaded.plugins.insert(name.clone(), Arc::clone(&live));
        if p.shadow.is_none() && p.canary.is_none() {
            continue;
        }
        if !live.is_handler() {
            let at = if p.shadow.is_some() {
                "shadow"
            } else {
                "canary"
            };
            errors.push(config.source.error(
                Some(p.name.span()),
                format!("plugin[{i}].{at}"),
                format!(
                    "plugin `{name}` implements {}: shadow and canary versions are for handler plugins",
                    live.world()
                ),
            ));
            continue;
        }
        // A candidate has the entry's limits, directories and environment; its
        // own `config` when it gives one; a shadow has only its own HTTP grants.
        let candidate = |kind: &'static str,
                         path: &str,
                         own_config: Option<
            &std::collections::BTreeMap<String, crate::config::ConfigValue>,
        >,
                         http: Option<&Vec<crate::config::HttpGrant>>| {
            let mut entry = p.clone();
            if let Some(own) = own_config {
                entry.config = own.clone();
            }
            if let Some(http) = http {
                entry.http = http.clone();
            }
            let path = config.resolve(path);
            let (limits, dirs, disk, live) = (
                limits.clone(),
                dirs.clone(),
                disk.as_ref(),
                Arc::clone(&live),
            );
            async move {
                let plugin = host
                    .load(&entry, limits, &path, dirs, disk)
                    .await
                    .map_err(|e| e.to_string())?;
                if plugin.world() != live.world() {
                    return Err(format!(
                        "the {kind} implements {}, the live version {}",
                        plugin.world(),
                        live.world()
                    ));
                }
                Ok(plugin.with_metrics_label(&format!("{}@{kind}", live.name())))
            }
        };
        let mut shadow = None;
        if let Some(spec) = &p.shadow {
            let s = &spec.get_ref().0;
            match candidate("shadow", &s.path, s.config.as_ref(), Some(&s.http)).await {
                Ok(plugin) => {
                    let scratch = crate::kv::Kv::Scratch(Arc::new(crate::kv::ScratchKv::new(
                        kv.clone(),
                        config.kv.memory_limit.0,
                    )));
                    shadow = Some(crate::plugin::Shadow::new(
                        &name,
                        Arc::new(plugin.with_kv(scratch)),
                        s.ignore.clone(),
                        s.max_pending
                            .unwrap_or(crate::config::DEFAULT_SHADOW_PENDING)
                            as usize,
                        s.keep_differences
                            .unwrap_or(crate::config::DEFAULT_KEEP_DIFFERENCES)
                            as usize,
                    ));
                }
                Err(e) => errors.push(config.source.error(
                    Some(spec.span()),
                    format!("plugin[{i}].shadow.path"),
                    format!("plugin `{name}`: shadow: {e}"),
                )),
            }
        }
        let mut canary = None;
        if let Some(spec) = &p.canary {
            let c = spec.get_ref();
            match candidate("canary", &c.path, c.config.as_ref(), None).await {
                Ok(plugin) => {
                    let settings = crate::plugin::CanarySettings {
                        share: c.share,
                        max_error_ratio: c
                            .max_error_ratio
                            .unwrap_or(crate::config::DEFAULT_MAX_ERROR_RATIO),
                        window: c
                            .window
                            .map_or(crate::config::DEFAULT_CANARY_WINDOW, |w| w.0),
                        min_calls: u64::from(
                            c.min_calls.unwrap_or(crate::config::DEFAULT_MIN_CALLS),
                        ),
                    };
                    canary = Some(crate::plugin::Canary::new(
                        Arc::new(plugin.with_kv(kv.clone())),
                        &settings,
                    ));
                }
                Err(e) => errors.push(config.source.error(
                    Some(spec.span()),
                    format!("plugin[{i}].canary.path"),
                    format!("plugin `{name}`: canary: {e}"),
                )),
            }
        }
        if shadow.is_some() || canary.is_some() {
            loaded.candidates.insert(
                name.clone(),
                Arc::new(Candidates::new(&name, shadow, canary)),
            );
        }
    }
    (loaded, errors)
}

/// Merges two ascending index lists into one ascending sequence.
fn merge_sorted(
    a: impl IntoIterator<Item = usize>,
    b: impl IntoIterator<Item = usize>,
) -> impl Iterator<Item = usize> {
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if x < y => a.next(),
        (_, Some(_)) => b.next(),
        (_, None) => a.next(),
    })
}

#[cfg(test)]
mod tests {
    use super::{Runtime, merge_sorted};
    use crate::config::{Config, Source};
    use crate::event::Event;

    #[tokio::test]
    async fn indexed_and_scanned_routes_match_in_declaration_order() {
        let route = |name: &str, filter: &str| {
            format!(
                "[[route]]\nname = \"{name}\"\nfilter = {filter}\nforward = \"http://127.0.0.1:9/\"\n"
            )
        };
        let text = [
            route("prefix", r#"{ prefix = { type = "com.shop." } }"#),
            route("exact", r#"{ exact = { type = "com.shop.order" } }"#),
            route("scanned", r#"{ suffix = { type = ".order" } }"#),
            route("long-prefix", r#"{ all = [ { prefix = { type = "com.shop.or" } }, { exact = { source = "/s" } } ] }"#),
            route("other-prefix", r#"{ prefix = { type = "org." } }"#),
            route("other-exact", r#"{ exact = { type = "com.shop.refund" } }"#),
        ]
        .concat();
        let config = Config::parse(Source::new("t.toml", text), |_| None).unwrap();
        let runtime = Runtime::build(&config).await.unwrap();
        let names = |ty: &str| -> Vec<String> {
            let e = Event::new("1", "/s", ty);
            runtime.matching(&e).map(|r| r.name.clone()).collect()
        };
        assert_eq!(
            names("com.shop.order"),
            ["prefix", "exact", "scanned", "long-prefix"]
        );
        assert_eq!(names("com.shop.refund"), ["prefix", "other-exact"]);
        assert_eq!(names("org.x"), ["other-prefix"]);
        assert!(names("net.order.x").is_empty());
    }

    /// Each Redis backend whose URL the client refuses is an error at the key
    /// that holds it, with its line, whatever the configuration checks before.
    #[tokio::test]
    async fn backends_that_cannot_be_built_are_configuration_errors() {
        let text = "[queue]\nkind = \"redis\"\nurl = \"rediss://127.0.0.1:6379\"\n\n\
                    [delivery.dead_letter]\nstream = \"dlq\"\nredis = \"redis://h/x\"\n\n\
                    [delivery.dedup]\nwindow = \"1h\"\nstore = \"redis\"\nurl = \"redis://0.0.0.0\"\n";
        let (config, _) = Config::parse_lenient(Source::new("t.toml", text), |_| None);
        let (_, errors) = super::Backends::build(&config);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(
            shown[0].starts_with("t.toml:3:7: queue.url: \"rediss://"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("t.toml:7:9: delivery.dead_letter.redis: "),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with("t.toml:12:7: delivery.dedup.url: "),
            "{shown:#?}"
        );
    }

    /// In durable mode without a dead-letter sink, dead letters are kept beside
    /// the queue's stream; routes still have none of their own.
    #[tokio::test]
    async fn durable_mode_keeps_dead_letters_beside_its_stream() {
        let text = "[queue]\nkind = \"redis\"\nstream = \"s\"\n";
        let config = Config::parse(Source::new("t.toml", text), |_| None).unwrap();
        let runtime = Runtime::build(&config).await.unwrap();
        assert!(runtime.queue_redis().is_some());
        assert!(runtime.settings.dead_letter.is_none());
        assert!(
            format!("{:?}", runtime.settings.dead_letters).contains("\"s:dead\""),
            "{:?}",
            runtime.settings.dead_letters
        );
    }

    #[tokio::test]
    async fn start_only_sections_are_named_when_they_change() {
        async fn build(text: &str) -> Result<Runtime, crate::config::ConfigErrors> {
            let config = Config::parse(Source::new("t.toml", text.to_owned()), |_| None).unwrap();
            Runtime::build(&config).await
        }
        let started = build("[server]\nhop_limit = 3\n").await.unwrap();
        let reloadable = build(
            "[server]\nhop_limit = 5\nforward_timeout = \"2s\"\n[ingest]\nmax_in_flight = 7\n",
        )
        .await
        .unwrap();
        assert!(reloadable.restart_needed(started.start_only()).is_empty());
        let restart = build("[server]\nbody_limit = \"2MiB\"\n[queue]\nstream = \"other\"\n")
            .await
            .unwrap();
        assert_eq!(
            restart.restart_needed(started.start_only()),
            ["[server]", "[queue]"]
        );
    }

    #[test]
    fn merge_keeps_declaration_order() {
        let merged: Vec<_> = merge_sorted([0, 3, 4], [1, 2, 5]).collect();
        assert_eq!(merged, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(merge_sorted([], [2]).collect::<Vec<_>>(), vec![2]);
    }
}
