//! The router's TOML configuration: its types, and a loader that reports every
//! problem at once with its file, line and TOML path.
//!
//! Loading has three passes, so one mistake does not hide the next: the TOML
//! syntax (every syntax error), then each `[server]`, `[[plugin]]` and `[[route]]`
//! table on its own (types, unknown keys, `${VAR}` references), then the
//! cross-references between them (names, targets). The configuration is data:
//! filters, transforms and plugins are compiled later, by
//! `runtime::Runtime::build`, which reports in the same format.

mod admin;
mod archive;
mod compile_cache;
mod delivery;
mod env;
mod error;
mod filter;
mod ingest;
mod kv;
mod name;
mod plugin;
mod queue;
mod reload;
mod route;
mod schema;
mod server;
mod transform;
mod units;

pub use admin::{AdminConfig, AdminError, AdminToken, MIN_ADMIN_TOKEN_LEN, MetricsListener};
pub use archive::ArchiveConfig;
pub use compile_cache::CompileCacheConfig;
pub use delivery::{
    AppendSpec, BackoffKind, DeadLetterSpec, DedupSpec, DedupStore, DeliveryConfig, RetryPolicy,
    RetrySpec,
};
pub use env::{EnvError, interpolate};
pub use error::{ConfigError, ConfigErrors, Source};
pub use filter::{DataFilterSpec, FilterSpec};
pub use ingest::{
    CredentialConfig, IngestConfig, ProxyRange, ProxyRangeError, RateLimitConfig, WebhookSecret,
    WebhookSecretError,
};
pub use kv::KvConfig;
pub use name::Name;
pub use plugin::{
    CanarySpec, ConfigValue, DEFAULT_CANARY_WINDOW, DEFAULT_KEEP_DIFFERENCES,
    DEFAULT_MAX_ERROR_RATIO, DEFAULT_MIN_CALLS, DEFAULT_SHADOW_PENDING, DirGrant, HttpGrant,
    HttpTarget, InstanceMode, MAX_MEMORY_LIMIT, PluginConfig, PluginDefaults, PluginLimits, Shadow,
    ShadowSpec,
};
pub use queue::{QueueConfig, QueueKind};
pub use reload::ReloadConfig;
pub use route::RouteConfig;
pub use schema::SchemaConfig;
pub use server::{MIN_BODY_LIMIT, MIN_HEADER_LIMIT, Report, ServerConfig, TlsConfig};
pub use transform::StepSpec;
pub use units::{ByteSize, Duration};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, with its text (for error positions).
    pub source: Source,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[admin]`: the admin API's listener and token.
    pub admin: AdminConfig,
    /// `[reload]`.
    pub reload: ReloadConfig,
    /// `[ingest]`.
    pub ingest: IngestConfig,
    /// `[plugin_defaults]`.
    pub plugin_defaults: PluginDefaults,
    /// `[delivery]`: retries, dead letters, dedup.
    pub delivery: DeliveryConfig,
    /// `[queue]`: in-request routing, or Redis Streams.
    pub queue: QueueConfig,
    /// `[kv]`: where plugins' key-value stores live.
    pub kv: KvConfig,
    /// `[compile_cache]`.
    pub compile_cache: CompileCacheConfig,
    /// `[archive]`: where accepted events are kept for browsing and replay.
    pub archive: Option<ArchiveConfig>,
    /// `[[plugin]]`, in file order.
    pub plugins: Vec<PluginConfig>,
    /// `[[route]]`, in file order.
    pub routes: Vec<RouteConfig>,
    /// `[[schema]]`: JSON Schemas enforced at ingest.
    pub schemas: Vec<SchemaConfig>,
}

impl Config {
    /// Reads and validates the configuration at `path`, with `${VAR}` taken from
    /// the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::file(path, format!("cannot read the file: {e}")))?;
        Self::parse(Source::new(path, text), |name| std::env::var(name).ok())
    }

    /// The folder of the configuration file: relative paths in it (plugins,
    /// schemas, TLS files, journals, granted directories) are relative to it.
    pub fn dir(&self) -> &Path {
        self.source.file.parent().unwrap_or(Path::new("."))
    }

    /// `path`, from the configuration, resolved against [`Config::dir`]; an
    /// absolute path stays as it is.
    pub fn resolve(&self, path: impl AsRef<Path>) -> PathBuf {
        self.dir().join(path)
    }

    /// The directories granted to `plugin`: each host path resolved, with the
    /// path the guest sees it at.
    pub fn granted_dirs(&self, plugin: &PluginConfig) -> Vec<(PathBuf, String)> {
        plugin
            .dirs
            .iter()
            .map(|d| (self.resolve(&d.host), d.guest.clone()))
            .collect()
    }

    /// Validates configuration text; `env` resolves `${VAR}` references.
    pub fn parse(
        source: Source,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let (config, errors) = Self::parse_lenient(source, env);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(config.name_routes(ConfigErrors(errors)).sorted())
        }
    }

    /// `errors` with each route's TOML path (`route[0].handler`) naming the route
    /// (`route "orders".handler`): a name is found in a long file, an index is
    /// counted. A route that did not parse, or whose name is not unique, keeps
    /// its index.
    pub fn name_routes(&self, mut errors: ConfigErrors) -> ConfigErrors {
        let mut names: HashMap<usize, &str> = HashMap::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for r in &self.routes {
            names.insert(r.index, r.name.get_ref().as_str());
            *seen.entry(r.name.get_ref().as_str()).or_default() += 1;
        }
        for e in &mut errors.0 {
            let Some(rest) = e.path.strip_prefix("route[") else {
                continue;
            };
            let Some((index, tail)) = rest.split_once(']') else {
                continue;
            };
            let name = index.parse().ok().and_then(|i| names.get(&i));
            if let Some(name) = name.filter(|n| seen.get(*n) == Some(&1)) {
                e.path = format!("route \"{name}\"{tail}");
            }
        }
        errors
    }

    /// Like [`Config::parse`], but returns whatever parsed (tables with errors are
    /// left out) beside the errors, so that later checks, such as loading the
    /// plugins, can report their problems in the same run.
    pub fn parse_lenient(
        source: Source,
        env: impl Fn(&str) -> Option<String>,
    ) -> (Self, Vec<ConfigError>) {
        let text = source.text().to_owned();
        let (mut root, syntax) = DeTable::parse_recoverable(&text);
        if !syntax.is_empty() {
            let errors = syntax
                .into_iter()
                .map(|e| source.error(e.span(), "", e.message().trim().to_owned()))
                .collect();
            let empty = Config {
                schemas: Vec::new(),
                source,
                server: ServerConfig::default(),
                admin: AdminConfig::default(),
                reload: ReloadConfig::default(),
                ingest: IngestConfig::default(),
                plugin_defaults: PluginDefaults::default(),
                delivery: DeliveryConfig::default(),
                queue: QueueConfig::default(),
                kv: KvConfig::default(),
                compile_cache: CompileCacheConfig::default(),
                archive: None,
                plugins: Vec::new(),
                routes: Vec::new(),
            };
            return (empty, errors);
        }
        let mut errors = Vec::new();
        for (key, value) in root.get_mut().iter_mut() {
            interpolate_tree(&source, key.get_ref(), value, &env, &mut errors);
        }
        // A value whose `${VAR}` failed is already reported; checking it again
        // would only repeat the error in other words.
        let unresolved: HashSet<usize> = errors.iter().map(|e| e.line).collect();

        let mut server = ServerConfig::default();
        let mut admin = AdminConfig::default();
        let mut reload = ReloadConfig::default();
        let mut ingest = IngestConfig::default();
        let mut plugin_defaults = PluginDefaults::default();
        let mut delivery = DeliveryConfig::default();
        let mut queue = QueueConfig::default();
        let mut kv = KvConfig::default();
        let mut compile_cache = CompileCacheConfig::default();
        let mut archive = None;
        let mut plugins = Vec::new();
        let mut routes = Vec::new();
        let mut schemas = Vec::new();
        for (key, value) in root.into_inner() {
            match key.get_ref().as_ref() {
                "server" => {
                    if let Some(s) = deserialize(&source, "server", value, &mut errors) {
                        server = s;
                    }
                }
                "admin" => {
                    if let Some(a) = deserialize(&source, "admin", value, &mut errors) {
                        admin = a;
                    }
                }
                "reload" => {
                    if let Some(r) = deserialize(&source, "reload", value, &mut errors) {
                        reload = r;
                    }
                }
                "ingest" => {
                    if let Some(i) = deserialize(&source, "ingest", value, &mut errors) {
                        ingest = i;
                    }
                }
                "plugin_defaults" => {
                    if let Some(d) = deserialize(&source, "plugin_defaults", value, &mut errors) {
                        plugin_defaults = d;
                    }
                }
                "delivery" => {
                    if let Some(d) = deserialize(&source, "delivery", value, &mut errors) {
                        delivery = d;
                    }
                }
                "queue" => {
                    if let Some(q) = deserialize(&source, "queue", value, &mut errors) {
                        queue = q;
                    }
                }
                "kv" => {
                    if let Some(k) = deserialize(&source, "kv", value, &mut errors) {
                        kv = k;
                    }
                }
                "compile_cache" => {
                    if let Some(c) = deserialize(&source, "compile_cache", value, &mut errors) {
                        compile_cache = c;
                    }
                }
                "archive" => archive = deserialize(&source, "archive", value, &mut errors),
                "plugin" => plugins = deserialize_array(&source, "plugin", value, &mut errors),
                "route" => routes = deserialize_array(&source, "route", value, &mut errors),
                "schema" => schemas = deserialize_array(&source, "schema", value, &mut errors),
                other => errors.push(source.error(
                    Some(key.span()),
                    other,
                    "unknown key: expected `server`, `admin`, `reload`, `ingest`, `plugin_defaults`, `delivery`, `queue`, `kv`, `compile_cache`, `archive`, `plugin`, `route` or `schema`",
                )),
            }
        }
        let config = Config {
            source,
            server,
            admin,
            reload,
            ingest,
            plugin_defaults,
            delivery,
            queue,
            kv,
            compile_cache,
            archive,
            plugins,
            routes,
            schemas,
        };
        config.validate(&unresolved, &mut errors);
        (config, errors)
    }

    /// Checks each section, then the references between sections. Errors without
    /// a position come out in this order, so it is the order of the sections.
    fn validate(&self, unresolved: &HashSet<usize>, errors: &mut Vec<ConfigError>) {
        let source = &self.source;
        self.server.validate(source, errors);
        self.admin.validate(source, errors);
        self.ingest.validate(source, errors);
        for schema in &self.schemas {
            schema.validate(source, errors);
        }
        self.delivery
            .retry
            .validate(source, "delivery.retry", errors);
        for r in &self.routes {
            if let Some(spec) = &r.retry {
                spec.validate(source, &format!("route[{}].retry", r.index), errors);
            }
        }
        self.delivery.validate(source, errors);
        self.queue.validate(source, errors);
        if let Some(archive) = &self.archive {
            archive.validate(source, errors);
        }

        let mut plugin_names = HashSet::new();
        for p in &self.plugins {
            if !plugin_names.insert(p.name.get_ref().as_str()) {
                errors.push(source.error(
                    Some(p.name.span()),
                    format!("plugin[{}].name", p.index),
                    format!("duplicate plugin name {:?}", p.name.get_ref().as_str()),
                ));
            }
        }
        for p in &self.plugins {
            p.validate(source, &self.plugin_defaults, errors);
        }

        let mut route_names = HashSet::new();
        for r in &self.routes {
            if !route_names.insert(r.name.get_ref().clone()) {
                errors.push(source.error(
                    Some(r.name.span()),
                    format!("route[{}].name", r.index),
                    format!("duplicate route name {:?}", r.name.get_ref().as_str()),
                ));
            }
            r.validate(source, &plugin_names, unresolved, errors);
        }
    }
}

fn deserialize<T: serde::de::DeserializeOwned>(
    source: &Source,
    path: &str,
    value: Spanned<DeValue<'_>>,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    let span = value.span();
    let mut value = value;
    value.get_mut().make_owned();
    match serde_path_to_error::deserialize::<_, T>(ValueDeserializer::from(value)) {
        Ok(v) => Some(v),
        Err(e) => {
            // `Spanned` fields add serde_spanned's private key to the path.
            let inner_path = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "")
                .replace("$__serde_spanned_private_value", ".");
            let full = if inner_path == "." {
                path.to_owned()
            } else {
                format!("{path}.{inner_path}")
            };
            let inner = e.into_inner();
            errors.push(source.error(
                inner.span().or(Some(span)),
                full,
                inner.message().trim().to_owned(),
            ));
            None
        }
    }
}

/// An element of a `[[...]]` array, which remembers its position as written.
trait Positioned {
    fn set_index(&mut self, index: usize);
}

fn deserialize_array<T: serde::de::DeserializeOwned + Positioned>(
    source: &Source,
    key: &str,
    value: Spanned<DeValue<'_>>,
    errors: &mut Vec<ConfigError>,
) -> Vec<T> {
    let span = value.span();
    let DeValue::Array(items) = value.into_inner() else {
        errors.push(source.error(
            Some(span),
            key,
            format!("expected an array of tables: write [[{key}]]"),
        ));
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let mut element: T = deserialize(source, &format!("{key}[{i}]"), item, errors)?;
            element.set_index(i);
            Some(element)
        })
        .collect()
}

/// Interpolates `${VAR}` in every string of the tree, in place.
fn interpolate_tree(
    source: &Source,
    path: &str,
    value: &mut Spanned<DeValue<'_>>,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<ConfigError>,
) {
    let span = value.span();
    match value.get_mut() {
        DeValue::String(s) => match interpolate(s, env) {
            Ok(v) if v != **s => *s = v.into(),
            Ok(_) => {}
            Err(e) => errors.push(source.error(Some(span), path, e.to_string())),
        },
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_tree(source, &format!("{path}[{i}]"), item, env, errors);
            }
        }
        DeValue::Table(table) => {
            for (k, v) in table.iter_mut() {
                interpolate_tree(source, &format!("{path}.{}", k.get_ref()), v, env, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(Source::new("t.toml", text.to_owned()), |n| {
            (n == "SINK").then(|| "http://sink:9/".to_owned())
        })
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(
            "[[plugin]]\nname = \"p\"\npath = \"p.wasm\"\n[[route]]\nname = \"r\"\nhandler = \"p\"\nforward = \"${SINK}\"\n",
        )
        .unwrap();
        assert_eq!(c.server.hop_limit, 8);
        assert_eq!(c.plugins[0].limits(&c.plugin_defaults).instances.get(), 4);
        assert_eq!(
            c.routes[0].forward.as_ref().unwrap().get_ref(),
            "http://sink:9/"
        );
        assert!(c.routes[0].filter.is_none());
    }

    #[test]
    fn every_error_is_reported_with_line_and_path() {
        let errors = parse(
            "[server]\nlisten = \"nope\"\n[[plugin]]\nname = \"p\"\npath = \"p.wasm\"\ncolour = 1\n[[route]]\nname = \"r\"\nhandler = \"q\"\n[[route]]\nname = \"r\"\nforward = \"${UNSET}\"\n",
        )
        .unwrap_err();
        let lines: Vec<_> = errors.0.iter().map(|e| (e.line, e.path.as_str())).collect();
        assert_eq!(
            lines,
            vec![
                (2, "server.listen"),
                (6, "plugin[0].colour"),
                // Named routes are named; two of one name keep their index.
                (9, "route[0].handler"),
                (11, "route[1].name"),
                (12, "route[1].forward"),
            ],
            "{errors}"
        );
    }

    #[test]
    fn errors_name_their_route() {
        let errors = parse("[[route]]\nname = \"orders\"\nhandler = \"q\"\n").unwrap_err();
        assert_eq!(errors.0[0].path, "route \"orders\".handler", "{errors}");
    }
}
