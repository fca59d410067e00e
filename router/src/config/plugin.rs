//! `[[plugin]]` and `[plugin_defaults]`: the WASM components, their grants and
//! their limits.

use super::{ByteSize, ConfigError, Duration, Name, Positioned, Source};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use toml::Spanned;

/// The largest linear memory any plugin may be configured for.
pub const MAX_MEMORY_LIMIT: u64 = 1 << 30;

/// `[[plugin]]`: a WASM component of the `handler` world.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// Unique name; routes refer to it.
    pub name: Spanned<Name>,
    /// The `.wasm` file, relative to the configuration file.
    pub path: Spanned<String>,
    /// Values the guest reads through the `config` interface.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// How many instances may run at once (one event each).
    pub instances: Option<NonZeroU32>,
    /// Longest time one call may take before it is interrupted.
    pub timeout: Option<Duration>,
    /// Most linear memory one instance may grow to.
    pub memory_limit: Option<ByteSize>,
    /// Keep warm instances (`reuse`) or start a new one per event (`fresh`).
    pub mode: Option<InstanceMode>,
    /// Most events one call may emit.
    pub max_emitted: Option<u32>,
    /// Largest data of one emitted event.
    pub max_event_bytes: Option<ByteSize>,
    /// Most log output (log interface, stdout, stderr) one call may write; the rest is dropped.
    pub max_log_bytes: Option<ByteSize>,
    /// Consecutive traps or timeouts after which the plugin is paused; 0 never pauses.
    pub breaker_threshold: Option<u32>,
    /// How long a paused plugin refuses events.
    pub breaker_cooldown: Option<Duration>,
    /// Timeout of one outbound HTTP request.
    pub http_timeout: Option<Duration>,
    /// Largest outbound HTTP response body.
    pub max_http_response_bytes: Option<ByteSize>,
    /// Environment variables the guest may read, by name (values from the router's environment).
    #[serde(default)]
    pub env: Vec<String>,
    /// Read-only directories the guest may read.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Hosts (and methods) the guest may call over `wasi:http`.
    #[serde(default)]
    pub http: Vec<HttpGrant>,
    /// A candidate version given every event this one is given, whose output
    /// is compared with this one's and never routed: a path, or a table
    /// ([`ShadowSpec`]).
    pub shadow: Option<Spanned<Shadow>>,
    /// A candidate version given a share of the events for real, rolled back
    /// when it fails more often than this one ([`CanarySpec`]).
    pub canary: Option<Spanned<CanarySpec>>,
    /// Position in its `[[...]]` array as written, for error paths: entries that
    /// fail to parse are dropped, so the position in the parsed list can differ.
    #[serde(skip)]
    pub index: usize,
}

/// `shadow = "v2.wasm"` or `shadow = { path = "v2.wasm", ... }`: the candidate
/// version a plugin's events are also given to.
#[derive(Clone, Debug)]
pub struct Shadow(pub ShadowSpec);

/// The table form of `shadow`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowSpec {
    /// The candidate's `.wasm` file, relative to the configuration file.
    pub path: String,
    /// The candidate's `config` values; the live version's when absent.
    pub config: Option<BTreeMap<String, ConfigValue>>,
    /// Hosts the candidate may call over HTTP: none unless granted here (the
    /// live version's grants do not carry over to a shadow).
    #[serde(default)]
    pub http: Vec<HttpGrant>,
    /// Attributes left out of the comparison: `id`, `time`, `source`,
    /// `subject`, `dataschema`, `datacontenttype`, `data`, or an extension.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Shadow calls that may wait or run at once; past it, shadow work is
    /// dropped (and counted) rather than queued.
    pub max_pending: Option<u32>,
    /// How many of the latest differences `GET /admin/plugins/{name}/shadow` keeps.
    pub keep_differences: Option<u32>,
}

/// Shadow calls waiting or running at once unless `max_pending` says otherwise.
pub const DEFAULT_SHADOW_PENDING: u32 = 64;
/// Differences kept unless `keep_differences` says otherwise.
pub const DEFAULT_KEEP_DIFFERENCES: u32 = 20;

impl<'de> Deserialize<'de> for Shadow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shadow;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path to a .wasm file or a table with `path`")
            }
            fn visit_str<E>(self, v: &str) -> Result<Shadow, E> {
                Ok(Shadow(ShadowSpec {
                    path: v.to_owned(),
                    config: None,
                    http: Vec::new(),
                    ignore: Vec::new(),
                    max_pending: None,
                    keep_differences: None,
                }))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Shadow, A::Error> {
                ShadowSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(Shadow)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `canary = { path = "v2.wasm", share = 0.1, max_error_ratio = 2.0 }`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The candidate's `.wasm` file, relative to the configuration file.
    pub path: String,
    /// The share of events (0 to 1) the candidate handles instead of the live version.
    pub share: f64,
    /// How many times the live version's error rate the candidate's may reach
    /// before it is rolled back (default 2).
    pub max_error_ratio: Option<f64>,
    /// The window error rates are counted over (default `1m`).
    pub window: Option<Duration>,
    /// Calls the candidate must have had in the window before it is judged (default 20).
    pub min_calls: Option<u32>,
    /// The candidate's `config` values; the live version's when absent.
    pub config: Option<BTreeMap<String, ConfigValue>>,
}

/// `max_error_ratio` unless configured.
pub const DEFAULT_MAX_ERROR_RATIO: f64 = 2.0;
/// `window` unless configured.
pub const DEFAULT_CANARY_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);
/// `min_calls` unless configured.
pub const DEFAULT_MIN_CALLS: u32 = 20;

/// Whether a plugin's instances serve many events or one.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceMode {
    /// Warm instances serve one event after another.
    #[default]
    Reuse,
    /// A new instance per event: nothing survives from one event to the next.
    Fresh,
}

/// A directory a plugin may read.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// The directory on the router's machine, relative to the configuration file.
    pub host: String,
    /// Where the guest sees it, such as `/data`.
    pub guest: String,
}

/// A host a plugin may call over HTTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpGrant {
    /// `[scheme://]host[:port]`: `https://rates.example.com`,
    /// `http://127.0.0.1:8080`. Without a scheme, `https`; without a port, the
    /// scheme's (443, 80). Only that scheme, host and port are allowed.
    pub host: String,
    /// Allowed methods; all when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Whether a host *name* may resolve to a loopback, private, link-local or
    /// otherwise non-public address. Without it only public addresses are
    /// reached through a name; an address written in `host` is always allowed.
    #[serde(default)]
    pub allow_private: bool,
}

/// The scheme, host and port of an HTTP grant or of an outbound request, in the
/// form they are compared in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https` (else `http`).
    pub https: bool,
    /// Lowercase, without a trailing dot; an IP address in its canonical form,
    /// without brackets.
    pub host: String,
    /// The port, the scheme's default when none is written.
    pub port: u16,
    /// The address, when `host` is one.
    pub ip: Option<std::net::IpAddr>,
}

impl HttpTarget {
    /// Parses `[scheme://]host[:port]` (a grant), `https` when no scheme is
    /// written. The error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (https, rest) = match text.split_once("://") {
            None => (true, text),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            Some((scheme, _)) => {
                return Err(format!("scheme {scheme:?} is neither http nor https"));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(
                "only a scheme, a host and a port may be given: no path, query or user".into(),
            );
        }
        Self::from_authority(https, rest)
    }

    /// The target of a request to `authority` (`host[:port]`) over `https` or
    /// plain `http`.
    pub fn from_authority(https: bool, authority: &str) -> Result<Self, String> {
        let parsed: http::uri::Authority = authority
            .parse()
            .map_err(|e| format!("{authority:?} is not a host or host:port ({e})"))?;
        let host = parsed.host();
        if host.is_empty() {
            return Err(format!("{authority:?} names no host"));
        }
        let port = match parsed.port() {
            Some(port) => port.as_u16(),
            None if parsed.as_str().len() > host.len() => {
                return Err(format!("{authority:?} has an invalid port"));
            }
            None if https => 443,
            None => 80,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let ip = bare.parse::<std::net::IpAddr>().ok();
        let host = match ip {
            Some(ip) => ip.to_string(),
            None => bare.trim_end_matches('.').to_ascii_lowercase(),
        };
        Ok(Self {
            https,
            host,
            port,
            ip,
        })
    }
}

impl std::fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        match self.ip {
            Some(std::net::IpAddr::V6(ip)) => write!(f, "{scheme}://[{ip}]:{}", self.port),
            _ => write!(f, "{scheme}://{}:{}", self.host, self.port),
        }
    }
}

/// `[plugin_defaults]`: the limits of every plugin that does not set its own.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginDefaults {
    /// Instances that may run at once.
    pub instances: NonZeroU32,
    /// Longest call.
    pub timeout: Duration,
    /// Linear memory per instance.
    pub memory_limit: ByteSize,
    /// Instance mode.
    pub mode: InstanceMode,
    /// Events one call may emit.
    pub max_emitted: u32,
    /// Data bytes per emitted event.
    pub max_event_bytes: ByteSize,
    /// Log bytes per call.
    pub max_log_bytes: ByteSize,
    /// Consecutive failures that pause a plugin; 0 never pauses.
    pub breaker_threshold: u32,
    /// How long a paused plugin refuses events.
    pub breaker_cooldown: Duration,
    /// Outbound HTTP timeout.
    pub http_timeout: Duration,
    /// Outbound HTTP response size.
    pub max_http_response_bytes: ByteSize,
}

impl Default for PluginDefaults {
    fn default() -> Self {
        let secs = |s| Duration(std::time::Duration::from_secs(s));
        Self {
            instances: NonZeroU32::new(4).unwrap_or(NonZeroU32::MIN),
            timeout: secs(5),
            memory_limit: ByteSize(64 << 20),
            mode: InstanceMode::Reuse,
            max_emitted: 100,
            max_event_bytes: ByteSize(1 << 20),
            max_log_bytes: ByteSize(64 << 10),
            breaker_threshold: 5,
            breaker_cooldown: secs(10),
            http_timeout: secs(10),
            max_http_response_bytes: ByteSize(1 << 20),
        }
    }
}

/// A plugin's limits, its own settings over `[plugin_defaults]`.
#[derive(Clone, Debug)]
pub struct PluginLimits {
    /// Instances that may run at once.
    pub instances: NonZeroU32,
    /// Longest call.
    pub timeout: std::time::Duration,
    /// Linear memory per instance, bytes.
    pub memory_limit: u64,
    /// Instance mode.
    pub mode: InstanceMode,
    /// Events one call may emit.
    pub max_emitted: u32,
    /// Data bytes per emitted event.
    pub max_event_bytes: u64,
    /// Log bytes per call.
    pub max_log_bytes: u64,
    /// Consecutive failures that pause the plugin; 0 never pauses.
    pub breaker_threshold: u32,
    /// How long a paused plugin refuses events.
    pub breaker_cooldown: std::time::Duration,
    /// Outbound HTTP timeout.
    pub http_timeout: std::time::Duration,
    /// Outbound HTTP response size.
    pub max_http_response_bytes: u64,
}

impl PluginConfig {
    /// This plugin's limits: its own settings, else `defaults`.
    pub fn limits(&self, defaults: &PluginDefaults) -> PluginLimits {
        PluginLimits {
            instances: self.instances.unwrap_or(defaults.instances),
            timeout: self.timeout.unwrap_or(defaults.timeout).0,
            memory_limit: self.memory_limit.unwrap_or(defaults.memory_limit).0,
            mode: self.mode.unwrap_or(defaults.mode),
            max_emitted: self.max_emitted.unwrap_or(defaults.max_emitted),
            max_event_bytes: self.max_event_bytes.unwrap_or(defaults.max_event_bytes).0,
            max_log_bytes: self.max_log_bytes.unwrap_or(defaults.max_log_bytes).0,
            breaker_threshold: self.breaker_threshold.unwrap_or(defaults.breaker_threshold),
            breaker_cooldown: self.breaker_cooldown.unwrap_or(defaults.breaker_cooldown).0,
            http_timeout: self.http_timeout.unwrap_or(defaults.http_timeout).0,
            max_http_response_bytes: self
                .max_http_response_bytes
                .unwrap_or(defaults.max_http_response_bytes)
                .0,
        }
    }
}

/// A plugin configuration value: strings, numbers and booleans, kept as text
/// because that is what the guest's `config.get` returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigValue(pub String);

impl<'de> Deserialize<'de> for ConfigValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ConfigValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ConfigValue, E> {
                Ok(ConfigValue(v.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Positioned for PluginConfig {
    fn set_index(&mut self, index: usize) {
        self.index = index;
    }
}

impl PluginConfig {
    /// Checks the limits (its own over `defaults`) and the grants' syntax.
    pub fn validate(
        &self,
        source: &Source,
        defaults: &PluginDefaults,
        errors: &mut Vec<ConfigError>,
    ) {
        let i = self.index;
        let span = || Some(self.name.span());
        let limits = self.limits(defaults);
        let at = |key: &str| format!("plugin[{i}].{key}");
        if limits.memory_limit > MAX_MEMORY_LIMIT {
            errors.push(source.error(
                span(),
                at("memory_limit"),
                format!("{} bytes exceeds the maximum of 1 GiB", limits.memory_limit),
            ));
        }
        if limits.timeout.is_zero() {
            errors.push(source.error(span(), at("timeout"), "must be more than 0"));
        }
        for (j, name) in self.env.iter().enumerate() {
            if name.is_empty() || name.contains('=') {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].env[{j}]"),
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        for (j, dir) in self.dirs.iter().enumerate() {
            if !dir.guest.starts_with('/') {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].dirs[{j}].guest"),
                    format!(
                        "{:?} must be an absolute guest path such as \"/data\"",
                        dir.guest
                    ),
                ));
            }
        }
        let shadow_grants = self.shadow.iter().flat_map(|s| {
            s.get_ref()
                .0
                .http
                .iter()
                .enumerate()
                .map(|(j, g)| (format!("plugin[{i}].shadow.http[{j}]"), g))
        });
        let grants = self
            .http
            .iter()
            .enumerate()
            .map(|(j, g)| (format!("plugin[{i}].http[{j}]"), g))
            .chain(shadow_grants);
        for (at, grant) in grants {
            if let Err(e) = HttpTarget::parse(&grant.host) {
                errors.push(source.error(
                    span(),
                    format!("{at}.host"),
                    format!(
                        "{:?} is not [http:// or https://]host[:port]: {e}",
                        grant.host
                    ),
                ));
            }
            for m in &grant.methods {
                if http::Method::from_bytes(m.as_bytes()).is_err() {
                    errors.push(source.error(
                        span(),
                        format!("{at}.methods"),
                        format!("{m:?} is not an HTTP method"),
                    ));
                }
            }
        }
        if let Some(canary) = &self.canary {
            let span = || Some(canary.span());
            let c = canary.get_ref();
            if !(0.0..=1.0).contains(&c.share) {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].canary.share"),
                    format!(
                        "{} is not a share of events: write a number from 0 to 1 (0.1 sends one event in ten to the candidate)",
                        c.share
                    ),
                ));
            }
            if let Some(ratio) = c.max_error_ratio
                && !(ratio.is_finite() && ratio >= 1.0)
            {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].canary.max_error_ratio"),
                    format!("{ratio} must be a number of at least 1 (2 rolls back a candidate failing twice as often as the live version)"),
                ));
            }
            if c.window.is_some_and(|w| w.0.is_zero()) {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].canary.window"),
                    "must be more than 0",
                ));
            }
            if c.min_calls == Some(0) {
                errors.push(source.error(
                    span(),
                    format!("plugin[{i}].canary.min_calls"),
                    "must be at least 1",
                ));
            }
        }
        if let Some(shadow) = &self.shadow {
            let s = &shadow.get_ref().0;
            for (at, n) in [
                ("max_pending", s.max_pending),
                ("keep_differences", s.keep_differences),
            ] {
                if n == Some(0) {
                    errors.push(source.error(
                        Some(shadow.span()),
                        format!("plugin[{i}].shadow.{at}"),
                        "must be at least 1",
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::HttpTarget;

    fn target(text: &str) -> (bool, String, u16) {
        let t = HttpTarget::parse(text).expect(text);
        (t.https, t.host, t.port)
    }

    #[test]
    fn a_grant_names_a_scheme_a_host_and_a_port() {
        assert_eq!(
            target("rates.example.com"),
            (true, "rates.example.com".into(), 443)
        );
        assert_eq!(
            target("https://Rates.Example.com."),
            (true, "rates.example.com".into(), 443)
        );
        assert_eq!(
            target("http://rates.example.com/"),
            (false, "rates.example.com".into(), 80)
        );
        assert_eq!(
            target("http://127.0.0.1:8080"),
            (false, "127.0.0.1".into(), 8080)
        );
        assert_eq!(target("127.0.0.1:8443"), (true, "127.0.0.1".into(), 8443));
        assert_eq!(target("http://[::1]:81"), (false, "::1".into(), 81));
        assert_eq!(
            HttpTarget::parse("http://[::1]:81").unwrap().to_string(),
            "http://[::1]:81"
        );
    }

    #[test]
    fn anything_else_is_refused_with_the_reason() {
        for (text, reason) in [
            ("ftp://host", "neither http nor https"),
            ("https://host/path", "no path"),
            ("https://user@host", "no path, query or user"),
            ("host:99999", "invalid port"),
            ("", "not a host"),
            ("http://", "not a host"),
        ] {
            let e = HttpTarget::parse(text).unwrap_err();
            assert!(e.contains(reason), "{text:?}: {e}");
        }
    }
}
