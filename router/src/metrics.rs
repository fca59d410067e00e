//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! One registry per process: the counters describe the process, whichever runtime
//! snapshot served an event. Names follow the Prometheus conventions (`_total` for
//! counters, base units in the name).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::OnceLock;

/// Labels naming a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route's name.
    pub route: String,
}

/// Labels naming a plugin.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    /// The plugin's name.
    pub plugin: String,
}

/// Labels giving why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `invalid`, `too_large`, `unsupported_media_type`, `timeout`, `overloaded`,
    /// `unauthorized`, `forbidden`, `rate_limited`, `body`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric the router exports.
pub struct Metrics {
    registry: Registry,
    /// Events decoded from accepted requests.
    pub events_received: Counter,
    /// Events whose every route delivered (answered 2xx).
    pub events_accepted: Counter,
    /// Requests refused before routing, by reason.
    pub requests_rejected: Family<ReasonLabels, Counter>,
    /// Events matched, per route.
    pub route_matched: Family<RouteLabels, Counter>,
    /// Events delivered, per route.
    pub route_delivered: Family<RouteLabels, Counter>,
    /// Events that failed, per route.
    pub route_failed: Family<RouteLabels, Counter>,
    /// Deliveries retried, per route.
    pub route_retried: Family<RouteLabels, Counter>,
    /// Events dead-lettered, per route.
    pub route_dead_lettered: Family<RouteLabels, Counter>,
    /// Duplicates a route's own window dropped.
    pub route_duplicates: Family<RouteLabels, Counter>,
    /// Events dropped at ingest as duplicates of one seen within the window.
    pub events_duplicate: Counter,
    /// Calls into a plugin.
    pub plugin_invocations: Family<PluginLabels, Counter>,
    /// Calls that trapped.
    pub plugin_traps: Family<PluginLabels, Counter>,
    /// Calls interrupted at the time limit.
    pub plugin_timeouts: Family<PluginLabels, Counter>,
    /// Log bytes dropped over a plugin's `max_log_bytes`.
    pub plugin_log_dropped_bytes: Family<PluginLabels, Counter>,
    /// Duration of plugin calls, seconds.
    pub plugin_call_seconds: Family<PluginLabels, Histogram>,
    /// Events being routed right now.
    pub events_in_flight: Gauge,
    /// Entries in the Redis stream (durable mode).
    pub queue_length: Gauge,
    /// Entries delivered to a consumer and not yet acknowledged (durable mode).
    pub queue_pending: Gauge,
    /// Entries this process routed from the Redis stream.
    pub queue_routed: Counter,
    /// Events appended to the Redis stream at ingest.
    pub queue_enqueued: Counter,
    /// Successful reloads.
    pub reloads: Counter,
    /// Failed reloads.
    pub reload_errors: Counter,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("router");
        let metrics = Self {
            events_received: Counter::default(),
            events_accepted: Counter::default(),
            requests_rejected: Family::default(),
            route_matched: Family::default(),
            route_delivered: Family::default(),
            route_failed: Family::default(),
            route_retried: Family::default(),
            route_dead_lettered: Family::default(),
            route_duplicates: Family::default(),
            events_duplicate: Counter::default(),
            plugin_invocations: Family::default(),
            plugin_traps: Family::default(),
            plugin_timeouts: Family::default(),
            plugin_log_dropped_bytes: Family::default(),
            plugin_call_seconds: Family::new_with_constructor(|| {
                Histogram::new([
                    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
                    5.0,
                ])
            }),
            events_in_flight: Gauge::default(),
            queue_length: Gauge::default(),
            queue_pending: Gauge::default(),
            queue_routed: Counter::default(),
            queue_enqueued: Counter::default(),
            reloads: Counter::default(),
            reload_errors: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "events_received",
            "Events decoded from accepted requests",
            metrics.events_received.clone(),
        );
        r.register(
            "events_accepted",
            "Events whose every matched route delivered",
            metrics.events_accepted.clone(),
        );
        r.register(
            "requests_rejected",
            "Requests refused before routing, by reason",
            metrics.requests_rejected.clone(),
        );
        r.register(
            "route_matched",
            "Events matched by a route",
            metrics.route_matched.clone(),
        );
        r.register(
            "route_delivered",
            "Events a route delivered to all its targets",
            metrics.route_delivered.clone(),
        );
        r.register(
            "route_failed",
            "Events that failed on a route",
            metrics.route_failed.clone(),
        );
        r.register(
            "route_retried",
            "Delivery attempts retried on a route",
            metrics.route_retried.clone(),
        );
        r.register(
            "route_dead_lettered",
            "Events dead-lettered by a route",
            metrics.route_dead_lettered.clone(),
        );
        r.register(
            "route_duplicates",
            "Duplicates dropped by a route's own dedup window",
            metrics.route_duplicates.clone(),
        );
        r.register(
            "events_duplicate",
            "Events dropped as duplicates within the global dedup window",
            metrics.events_duplicate.clone(),
        );
        r.register(
            "plugin_invocations",
            "Calls into a plugin",
            metrics.plugin_invocations.clone(),
        );
        r.register(
            "plugin_traps",
            "Plugin calls that trapped",
            metrics.plugin_traps.clone(),
        );
        r.register(
            "plugin_timeouts",
            "Plugin calls interrupted at their time limit",
            metrics.plugin_timeouts.clone(),
        );
        r.register(
            "plugin_call_seconds",
            "Duration of plugin calls",
            metrics.plugin_call_seconds.clone(),
        );
        r.register(
            "events_in_flight",
            "Events being routed now",
            metrics.events_in_flight.clone(),
        );
        r.register(
            "queue_length",
            "Entries in the Redis stream",
            metrics.queue_length.clone(),
        );
        r.register(
            "queue_pending",
            "Entries delivered to a consumer and not yet acknowledged",
            metrics.queue_pending.clone(),
        );
        r.register(
            "queue_routed",
            "Entries this process routed from the Redis stream",
            metrics.queue_routed.clone(),
        );
        r.register(
            "queue_enqueued",
            "Events appended to the Redis stream at ingest",
            metrics.queue_enqueued.clone(),
        );
        r.register(
            "reloads",
            "Successful configuration reloads",
            metrics.reloads.clone(),
        );
        r.register(
            "reload_errors",
            "Failed configuration reloads",
            metrics.reload_errors.clone(),
        );
        r.register(
            "plugin_log_dropped_bytes",
            "Log bytes dropped over a plugin's max_log_bytes",
            metrics.plugin_log_dropped_bytes.clone(),
        );
        let build: Family<BuildLabels, Gauge> = Family::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        r.register("build_info", "The router's version", build);
        Self {
            registry,
            ..metrics
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }

    /// Counts a request refused for `reason`.
    pub fn rejected(&self, reason: &str) {
        self.requests_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// The counters of one route.
    pub fn route(&self, route: &str) -> RouteLabels {
        RouteLabels {
            route: route.to_owned(),
        }
    }
}

/// One route's counters, looked up once when the runtime is built so the
/// per-event path neither allocates labels nor takes the family's lock.
#[derive(Clone, Debug, Default)]
pub struct RouteCounters {
    /// Events matched.
    pub matched: Counter,
    /// Events delivered.
    pub delivered: Counter,
    /// Events failed.
    pub failed: Counter,
    /// Attempts retried.
    pub retried: Counter,
    /// Events dead-lettered.
    pub dead_lettered: Counter,
    /// Duplicates dropped by the route's own window.
    pub duplicates: Counter,
}

impl RouteCounters {
    /// The counters of route `route`.
    pub fn new(route: &str) -> Self {
        let m = metrics();
        let labels = m.route(route);
        Self {
            matched: m.route_matched.get_or_create(&labels).clone(),
            delivered: m.route_delivered.get_or_create(&labels).clone(),
            failed: m.route_failed.get_or_create(&labels).clone(),
            retried: m.route_retried.get_or_create(&labels).clone(),
            dead_lettered: m.route_dead_lettered.get_or_create(&labels).clone(),
            duplicates: m.route_duplicates.get_or_create(&labels).clone(),
        }
    }
}

/// One plugin's metrics, looked up once per loaded plugin.
#[derive(Clone, Debug)]
pub struct PluginCounters {
    /// Calls.
    pub invocations: Counter,
    /// Traps.
    pub traps: Counter,
    /// Timeouts.
    pub timeouts: Counter,
    /// Log bytes dropped.
    pub log_dropped_bytes: Counter,
    /// Call durations.
    pub call_seconds: Histogram,
}

impl PluginCounters {
    /// The metrics of plugin `plugin`.
    pub fn new(plugin: &str) -> Self {
        let m = metrics();
        let labels = PluginLabels {
            plugin: plugin.to_owned(),
        };
        Self {
            invocations: m.plugin_invocations.get_or_create(&labels).clone(),
            traps: m.plugin_traps.get_or_create(&labels).clone(),
            timeouts: m.plugin_timeouts.get_or_create(&labels).clone(),
            log_dropped_bytes: m.plugin_log_dropped_bytes.get_or_create(&labels).clone(),
            call_seconds: m.plugin_call_seconds.get_or_create(&labels).clone(),
        }
    }
}

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}
