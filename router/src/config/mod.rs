//! The router's TOML configuration: its types, and a loader that reports every
//! problem at once with its file, line and TOML path.
//!
//! Loading has three passes, so one mistake does not hide the next: the TOML
//! syntax (every syntax error), then each `[server]`, `[[plugin]]` and `[[route]]`
//! table on its own (types, unknown keys, `${VAR}` references), then the
//! cross-references between them (names, targets). The configuration is data:
//! filters, transforms and plugins are compiled later, by
//! `runtime::Runtime::build`, which reports in the same format.

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

pub use delivery::{
    AppendSpec, BackoffKind, DeadLetterSpec, DedupSpec, DedupStore, DeliveryConfig, RetryPolicy,
    RetrySpec,
};
pub use env::{EnvError, interpolate};
pub use error::{ConfigError, ConfigErrors, Source};
pub use filter::{DataFilterSpec, FilterSpec};
pub use ingest::{CredentialConfig, IngestConfig, RateLimitConfig};
pub use kv::KvConfig;
pub use name::Name;
pub use plugin::{
    ConfigValue, DirGrant, HttpGrant, InstanceMode, PluginConfig, PluginDefaults, PluginLimits,
};
pub use queue::{QueueConfig, QueueKind};
pub use reload::ReloadConfig;
pub use route::RouteConfig;
pub use schema::SchemaConfig;
pub use server::{MIN_BODY_LIMIT, ServerConfig, TlsConfig};
pub use transform::StepSpec;
pub use units::{ByteSize, Duration};

use route::check_forward_url;
use std::collections::HashSet;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it came from, with its text (for error positions).
    pub source: Source,
    /// `[server]`.
    pub server: ServerConfig,
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

    /// Validates configuration text; `env` resolves `${VAR}` references.
    pub fn parse(
        source: Source,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let (config, errors) = Self::parse_lenient(source, env);
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors).sorted())
        }
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
                reload: ReloadConfig::default(),
                ingest: IngestConfig::default(),
                plugin_defaults: PluginDefaults::default(),
                delivery: DeliveryConfig::default(),
                queue: QueueConfig::default(),
                kv: KvConfig::default(),
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
        let mut reload = ReloadConfig::default();
        let mut ingest = IngestConfig::default();
        let mut plugin_defaults = PluginDefaults::default();
        let mut delivery = DeliveryConfig::default();
        let mut queue = QueueConfig::default();
        let mut kv = KvConfig::default();
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
                "plugin" => plugins = deserialize_array(&source, "plugin", value, &mut errors),
                "route" => routes = deserialize_array(&source, "route", value, &mut errors),
                "schema" => schemas = deserialize_array(&source, "schema", value, &mut errors),
                other => errors.push(source.error(
                    Some(key.span()),
                    other,
                    "unknown key: expected `server`, `reload`, `ingest`, `plugin_defaults`, `delivery`, `queue`, `kv`, `plugin`, `route` or `schema`",
                )),
            }
        }
        let config = Config {
            source,
            server,
            reload,
            ingest,
            plugin_defaults,
            delivery,
            queue,
            kv,
            plugins,
            routes,
            schemas,
        };
        config.validate(&unresolved, &mut errors);
        (config, errors)
    }

    /// `[delivery]` and the routes' `retry` tables.
    fn validate_delivery(&self, errors: &mut Vec<ConfigError>) {
        let source = &self.source;
        let mut retry = |path: String, spec: &RetrySpec| {
            if spec.max_attempts == Some(0) {
                errors.push(source.error(
                    None,
                    format!("{path}.max_attempts"),
                    "must be at least 1 (1 attempt means no retry)",
                ));
            }
            if let (Some(base), Some(cap)) = (spec.backoff_base, spec.backoff_cap)
                && base > cap
            {
                errors.push(source.error(
                    None,
                    format!("{path}.backoff_base"),
                    format!("{base} is above backoff_cap ({cap})"),
                ));
            }
        };
        retry("delivery.retry".into(), &self.delivery.retry);
        for r in &self.routes {
            if let Some(spec) = &r.retry {
                retry(format!("route[{}].retry", r.index), spec);
            }
        }
        if let Some(dl) = &self.delivery.dead_letter {
            let set = [dl.file.is_some(), dl.url.is_some(), dl.stream.is_some()];
            if set.iter().filter(|&&b| b).count() != 1 {
                errors.push(source.error(
                    None,
                    "delivery.dead_letter",
                    "set exactly one of `file`, `url` and `stream`",
                ));
            }
            if let Some(url) = &dl.url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                errors.push(source.error(
                    None,
                    "delivery.dead_letter.url",
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            let redis_url = dl.redis.as_deref().unwrap_or(&self.queue.url);
            if dl.stream.is_some()
                && let Err(e) = redis::Client::open(redis_url)
            {
                errors.push(source.error(
                    None,
                    "delivery.dead_letter.redis",
                    format!("{redis_url:?} is not a Redis URL: {e}"),
                ));
            }
        }
        if let Some(d) = &self.delivery.dedup {
            if d.max_entries == 0 {
                errors.push(source.error(None, "delivery.dedup.max_entries", "must be at least 1"));
            }
            let url = d.url.as_deref().unwrap_or(&self.queue.url);
            if d.store == DedupStore::Redis
                && let Err(e) = redis::Client::open(url)
            {
                errors.push(source.error(
                    None,
                    "delivery.dedup.url",
                    format!("{url:?} is not a Redis URL: {e}"),
                ));
            }
        }
    }

    fn validate(&self, unresolved: &HashSet<usize>, errors: &mut Vec<ConfigError>) {
        let source = &self.source;
        if self.server.body_limit.0 < MIN_BODY_LIMIT {
            errors.push(source.error(
                None,
                "server.body_limit",
                format!(
                    "{} bytes is below the 64 KiB that CloudEvents intermediaries must accept",
                    self.server.body_limit.0
                ),
            ));
        }
        if self.server.batch_limit == 0 {
            errors.push(source.error(None, "server.batch_limit", "must be at least 1"));
        }

        if self.ingest.max_in_flight == 0 {
            errors.push(source.error(None, "ingest.max_in_flight", "must be at least 1"));
        }
        for (i, c) in self.ingest.credential.iter().enumerate() {
            let at = format!("ingest.credential[{i}]");
            match (&c.bearer, c.webhook_secrets.is_empty()) {
                (Some(_), false) | (None, true) => errors.push(source.error(
                    Some(c.name.span()),
                    at.clone(),
                    "set exactly one of `bearer` and `webhook_secrets`",
                )),
                (Some(token), true) if token.is_empty() => errors.push(source.error(
                    Some(c.name.span()),
                    format!("{at}.bearer"),
                    "the token must not be empty",
                )),
                _ => {}
            }
            for (j, secret) in c.webhook_secrets.iter().enumerate() {
                if let Err(e) = crate::http::decode_webhook_secret(secret) {
                    errors.push(source.error(
                        Some(c.name.span()),
                        format!("{at}.webhook_secrets[{j}]"),
                        e,
                    ));
                }
            }
        }

        for schema in &self.schemas {
            let i = schema.index;
            if schema.ty.is_some() == schema.type_prefix.is_some() {
                errors.push(source.error(
                    Some(schema.path.span()),
                    format!("schema[{i}]"),
                    "set exactly one of `type` and `type_prefix`",
                ));
            }
        }

        self.validate_delivery(errors);
        if self.queue.kind == QueueKind::Redis {
            if self.queue.concurrency == 0 {
                errors.push(source.error(None, "queue.concurrency", "must be at least 1"));
            }
            if self.queue.max_deliveries == 0 {
                errors.push(source.error(None, "queue.max_deliveries", "must be at least 1"));
            }
            if let Err(e) = redis::Client::open(self.queue.url.as_str()) {
                errors.push(source.error(
                    None,
                    "queue.url",
                    format!("{:?} is not a Redis URL: {e}", self.queue.url),
                ));
            }
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
            let i = p.index;
            let limits = p.limits(&self.plugin_defaults);
            let at = |key: &str| format!("plugin[{i}].{key}");
            if limits.memory_limit > crate::plugin::MAX_MEMORY_LIMIT {
                errors.push(source.error(
                    Some(p.name.span()),
                    at("memory_limit"),
                    format!("{} bytes exceeds the maximum of 1 GiB", limits.memory_limit),
                ));
            }
            if limits.timeout.is_zero() {
                errors.push(source.error(
                    Some(p.name.span()),
                    at("timeout"),
                    "must be more than 0",
                ));
            }
            for (j, name) in p.env.iter().enumerate() {
                if name.is_empty() || name.contains('=') {
                    errors.push(source.error(
                        Some(p.name.span()),
                        format!("plugin[{i}].env[{j}]"),
                        format!("{name:?} is not an environment variable name"),
                    ));
                }
            }
            for (j, dir) in p.dirs.iter().enumerate() {
                if !dir.guest.starts_with('/') {
                    errors.push(source.error(
                        Some(p.name.span()),
                        format!("plugin[{i}].dirs[{j}].guest"),
                        format!(
                            "{:?} must be an absolute guest path such as \"/data\"",
                            dir.guest
                        ),
                    ));
                }
            }
            for (j, grant) in p.http.iter().enumerate() {
                if grant.host.is_empty() || grant.host.contains('/') {
                    errors.push(source.error(
                        Some(p.name.span()),
                        format!("plugin[{i}].http[{j}].host"),
                        format!("{:?} is not a host or host:port", grant.host),
                    ));
                }
                for m in &grant.methods {
                    if http::Method::from_bytes(m.as_bytes()).is_err() {
                        errors.push(source.error(
                            Some(p.name.span()),
                            format!("plugin[{i}].http[{j}].methods"),
                            format!("{m:?} is not an HTTP method"),
                        ));
                    }
                }
            }
        }
        let known = || {
            let mut names: Vec<_> = plugin_names.iter().copied().collect();
            names.sort_unstable();
            if names.is_empty() {
                "no plugins are declared".to_owned()
            } else {
                format!("declared plugins: {}", names.join(", "))
            }
        };

        let mut route_names = HashSet::new();
        for r in &self.routes {
            let i = r.index;
            let at = |field: &str| format!("route[{i}].{field}");
            if !route_names.insert(r.name.get_ref().clone()) {
                errors.push(source.error(
                    Some(r.name.span()),
                    at("name"),
                    format!("duplicate route name {:?}", r.name.get_ref().as_str()),
                ));
            }
            if r.handler.is_none() && r.forward.is_none() && r.append.is_none() {
                errors.push(source.error(
                    Some(r.name.span()),
                    format!("route[{i}]"),
                    "the route has no target: set `handler`, `forward` and/or `append`",
                ));
            }
            if let Some(append) = &r.append {
                let spec = append.get_ref();
                let problem = match (&spec.file, &spec.stream, &spec.redis) {
                    (Some(_), None, None) | (None, Some(_), _) => None,
                    (Some(_), Some(_), _) => Some("set `file` or `stream`, not both"),
                    (Some(_), None, Some(_)) => Some("`redis` goes with `stream`, not `file`"),
                    (None, None, _) => {
                        Some("set `file` (a JSON-lines file) or `stream` (a Redis stream)")
                    }
                };
                if let Some(problem) = problem {
                    errors.push(source.error(Some(append.span()), at("append"), problem));
                }
            }
            if let Some(h) = &r.handler
                && !plugin_names.contains(h.get_ref().as_str())
            {
                errors.push(source.error(
                    Some(h.span()),
                    at("handler"),
                    format!("unknown plugin {:?} ({})", h.get_ref(), known()),
                ));
            }
            if let Some(url) = &r.forward
                && !unresolved.contains(&source.line_col(url.span().start).0)
                && let Err(message) = check_forward_url(url.get_ref())
            {
                errors.push(source.error(Some(url.span()), at("forward"), message));
            }
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
                (9, "route[0].handler"),
                (11, "route[1].name"),
                (12, "route[1].forward"),
            ],
            "{errors}"
        );
    }
}
