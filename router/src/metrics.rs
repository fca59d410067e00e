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

/// Labels of a shadow comparison.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShadowLabels {
    /// The plugin's name.
    pub plugin: String,
    /// `equal`, `different`, `candidate_failed`, `live_failed` or `both_failed`.
    pub outcome: &'static str,
}

/// Labels of a call under a canary.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CanaryLabels {
    /// The plugin's name.
    pub plugin: String,
    /// `live` or `candidate`.
    pub version: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Labels giving why a request was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `invalid`, `too_large`, `unsupported_media_type`, `timeout`, `overloaded`,
    /// `unauthorized`, `forbidden`, `rate_limited`, `body`.
    pub reason: String,
}

/// Labels giving what became of an accepted event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// One of [`ACCEPTED_OUTCOMES`].
    pub outcome: &'static str,
}

/// What became of an event the router answered 2xx for: `delivered` (every
/// matched route delivered), `dead_lettered` (a route gave up and the sink took
/// it), `dropped` (a transform dropped it), `duplicate` (a dedup window),
/// `unmatched` (no route matched), `queued` (durable mode: in the stream, routed
/// later).
pub const ACCEPTED_OUTCOMES: [&str; 6] = [
    "delivered",
    "dead_lettered",
    "dropped",
    "duplicate",
    "unmatched",
    "queued",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Every metric the router exports.
pub struct Metrics {
    registry: Registry,
    /// The durable queue's metrics, served only in durable mode: elsewhere a
    /// gauge stuck at 0 reads as "the queue is empty".
    queue_registry: Registry,
    /// Events decoded from accepted requests.
    pub events_received: Counter,
    /// Events answered 2xx, by outcome ([`ACCEPTED_OUTCOMES`]).
    pub events_accepted: Family<OutcomeLabels, Counter>,
    /// The counters of [`ACCEPTED_OUTCOMES`], in that order, looked up once:
    /// the family's lock and hash would otherwise be paid for every event.
    accepted_by_outcome: [Counter; ACCEPTED_OUTCOMES.len()],
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
    /// Shadow comparisons, by plugin and outcome.
    pub shadow_comparisons: Family<ShadowLabels, Counter>,
    /// Shadow calls dropped because the shadow fell behind, by plugin.
    pub shadow_dropped: Family<PluginLabels, Counter>,
    /// Calls of plugins that have a canary, by version and result.
    pub canary_calls: Family<CanaryLabels, Counter>,
    /// Canaries rolled back, by plugin.
    pub canary_rollbacks: Family<PluginLabels, Counter>,
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
    /// Events written to the archive (`[archive]`).
    pub archived: Counter,
    /// Archived events handed over again by replays.
    pub replayed: Counter,
    /// Successful reloads.
    pub reloads: Counter,
    /// Failed reloads.
    pub reload_errors: Counter,
    /// The event types each route's handler emitted, by route name (kept
    /// across reloads, as the counters are).
    emitted: std::sync::Mutex<std::collections::HashMap<String, Emitted>>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("router");
        let mut metrics = Self {
            events_received: Counter::default(),
            events_accepted: Family::default(),
            accepted_by_outcome: Default::default(),
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
            shadow_comparisons: Family::default(),
            shadow_dropped: Family::default(),
            canary_calls: Family::default(),
            canary_rollbacks: Family::default(),
            events_in_flight: Gauge::default(),
            queue_length: Gauge::default(),
            queue_pending: Gauge::default(),
            queue_routed: Counter::default(),
            queue_enqueued: Counter::default(),
            archived: Counter::default(),
            replayed: Counter::default(),
            reloads: Counter::default(),
            reload_errors: Counter::default(),
            emitted: Default::default(),
            registry: Registry::default(),
            queue_registry: Registry::default(),
        };
        // Every outcome from the start, so that `rate()` sees the first one.
        for (counter, outcome) in metrics
            .accepted_by_outcome
            .iter_mut()
            .zip(ACCEPTED_OUTCOMES)
        {
            *counter = metrics
                .events_accepted
                .get_or_create(&OutcomeLabels { outcome })
                .clone();
        }
        let mut queue_registry = Registry::with_prefix("router");
        let q = &mut queue_registry;
        let r = &mut registry;
        r.register(
            "events_received",
            "Events decoded from accepted requests",
            metrics.events_received.clone(),
        );
        r.register(
            "events_accepted",
            "Events answered 2xx, by outcome: delivered, dead_lettered, dropped, duplicate, unmatched, queued",
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
            "shadow_comparisons",
            "Outputs of a plugin's shadow version compared with the live version's, by outcome",
            metrics.shadow_comparisons.clone(),
        );
        r.register(
            "shadow_dropped",
            "Shadow calls dropped because the shadow version fell behind",
            metrics.shadow_dropped.clone(),
        );
        r.register(
            "canary_calls",
            "Calls of a plugin with a canary, by version (live, candidate) and result (ok, error)",
            metrics.canary_calls.clone(),
        );
        r.register(
            "canary_rollbacks",
            "Canary versions rolled back for failing more often than the live version",
            metrics.canary_rollbacks.clone(),
        );
        r.register(
            "events_in_flight",
            "Events being routed now",
            metrics.events_in_flight.clone(),
        );
        q.register(
            "queue_length",
            "Entries in the Redis stream",
            metrics.queue_length.clone(),
        );
        q.register(
            "queue_pending",
            "Entries delivered to a consumer and not yet acknowledged",
            metrics.queue_pending.clone(),
        );
        q.register(
            "queue_routed",
            "Entries this process routed from the Redis stream",
            metrics.queue_routed.clone(),
        );
        q.register(
            "queue_enqueued",
            "Events appended to the Redis stream at ingest",
            metrics.queue_enqueued.clone(),
        );
        r.register(
            "archived_events",
            "Events written to the archive",
            metrics.archived.clone(),
        );
        r.register(
            "replayed_events",
            "Archived events handed over again by replays",
            metrics.replayed.clone(),
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
            queue_registry,
            ..metrics
        }
    }

    /// The OpenMetrics text exposition of every metric, the durable queue's
    /// only when `durable`; series in label order, seconds in plain decimals.
    pub fn encode(&self, durable: bool) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        let encoded = encode_registry(&mut text, &self.registry)
            .and_then(|()| {
                if durable {
                    encode_registry(&mut text, &self.queue_registry)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| encode_eof(&mut text));
        if encoded.is_err() {
            text.clear();
        }
        exposition::tidy(&text)
    }

    /// Counts `n` events answered 2xx with `outcome` (one of [`ACCEPTED_OUTCOMES`]).
    pub fn accepted(&self, outcome: &'static str, n: u64) {
        match ACCEPTED_OUTCOMES.iter().position(|o| *o == outcome) {
            Some(i) => self.accepted_by_outcome[i].inc_by(n),
            None => self
                .events_accepted
                .get_or_create(&OutcomeLabels { outcome })
                .inc_by(n),
        };
    }

    /// Counts the accepted events of one request, one outcome each, with one
    /// increment per outcome seen (the counters are shared by every worker).
    pub fn accepted_all(&self, outcomes: impl Iterator<Item = &'static str>) {
        let mut counts = [0u64; ACCEPTED_OUTCOMES.len()];
        for outcome in outcomes {
            match ACCEPTED_OUTCOMES.iter().position(|o| *o == outcome) {
                Some(i) => counts[i] += 1,
                None => self.accepted(outcome, 1),
            }
        }
        for (counter, n) in self.accepted_by_outcome.iter().zip(counts) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
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
    /// The types its handler emitted, and the routes they went to.
    pub emitted: Emitted,
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
            emitted: crate::sync::lock(&m.emitted)
                .entry(route.to_owned())
                .or_default()
                .clone(),
        }
    }
}

/// Most emitted types kept per route: a handler may derive the type from its
/// input (`<type>.enriched`), which senders choose.
pub const MAX_EMITTED_TYPES: usize = 32;

/// The event types a route's handler emitted, each with the routes that
/// matched it: the edges from a handler to the routes it feeds, as seen (a
/// plugin does not declare what it emits).
#[derive(Clone, Debug, Default)]
pub struct Emitted(
    std::sync::Arc<
        std::sync::Mutex<std::collections::BTreeMap<String, std::collections::BTreeSet<String>>>,
    >,
);

impl Emitted {
    /// Records that the handler emitted an event of type `ty` that `routes`
    /// matched; types past [`MAX_EMITTED_TYPES`] are not recorded.
    pub fn saw<'r>(&self, ty: &str, routes: impl IntoIterator<Item = &'r str>) {
        let mut types = crate::sync::lock(&self.0);
        // A type seen before (every emitted event after the first) costs no
        // allocation.
        if !types.contains_key(ty) {
            if types.len() >= MAX_EMITTED_TYPES {
                return;
            }
            types.insert(ty.to_owned(), Default::default());
        }
        let Some(fed) = types.get_mut(ty) else {
            return;
        };
        for route in routes {
            if !fed.contains(route) {
                fed.insert(route.to_owned());
            }
        }
    }

    /// Each emitted type with the routes it went to, in name order.
    pub fn snapshot(&self) -> Vec<(String, Vec<String>)> {
        crate::sync::lock(&self.0)
            .iter()
            .map(|(ty, routes)| (ty.clone(), routes.iter().cloned().collect()))
            .collect()
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

/// Touches on prometheus-client's text: it writes a family's series in hash-map
/// order (a different order from one scrape to the next) and floats in
/// exponent form (`le="1e-5"`), and a histogram's sum carries the noise of
/// adding binary fractions (`0.30000000000000004`).
mod exposition {
    use std::fmt::Write as _;

    /// `text` with each family's series sorted by their labels (a histogram's
    /// lines of one series kept together, in their order), bucket bounds in
    /// plain decimals and `_seconds_sum` values rounded to the nanosecond.
    pub(super) fn tidy(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        // The current family's series: (labels but `le`, lines).
        let mut series: Vec<(String, Vec<String>)> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                flush(&mut out, &mut series);
                out.push_str(line);
                out.push('\n');
                continue;
            }
            let Some(sample) = Sample::parse(line) else {
                // Not a sample this parser knows: kept as it is, in place.
                flush(&mut out, &mut series);
                out.push_str(line);
                out.push('\n');
                continue;
            };
            let key = sample.series_key();
            let line = sample.render();
            match series.last_mut() {
                Some((last, lines)) if *last == key => lines.push(line),
                _ => series.push((key, vec![line])),
            }
        }
        flush(&mut out, &mut series);
        out
    }

    fn flush(out: &mut String, series: &mut Vec<(String, Vec<String>)>) {
        // Stable: the lines of equal keys keep their order.
        series.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, lines) in series.drain(..) {
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
    }

    /// One sample line: `name{labels} value`.
    struct Sample<'a> {
        name: &'a str,
        /// `(name, raw quoted value)` pairs, as written.
        labels: Vec<(&'a str, &'a str)>,
        value: &'a str,
    }

    impl<'a> Sample<'a> {
        fn parse(line: &'a str) -> Option<Self> {
            let Some(open) = line.find('{') else {
                let (name, value) = line.split_once(' ')?;
                return Some(Self {
                    name,
                    labels: Vec::new(),
                    value,
                });
            };
            let name = &line[..open];
            let mut labels = Vec::new();
            let mut rest = &line[open + 1..];
            loop {
                if let Some(after) = rest.strip_prefix('}') {
                    let value = after.strip_prefix(' ')?;
                    return Some(Self {
                        name,
                        labels,
                        value,
                    });
                }
                rest = rest.strip_prefix(',').unwrap_or(rest);
                let (label, after) = rest.split_once("=\"")?;
                // The quoted value ends at the first `"` not escaped by `\`.
                let bytes = after.as_bytes();
                let mut i = 0;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() {
                    return None;
                }
                labels.push((label, &after[..i]));
                rest = &after[i + 1..];
            }
        }

        /// The labels that name the series: all but a bucket's `le`.
        fn series_key(&self) -> String {
            let mut key = String::new();
            for (name, value) in self.labels.iter().filter(|(n, _)| *n != "le") {
                let _ = write!(key, "{name}=\"{value}\",");
            }
            key
        }

        fn render(&self) -> String {
            let mut line = String::from(self.name);
            if !self.labels.is_empty() {
                line.push('{');
                for (i, (name, value)) in self.labels.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    let value = if *name == "le" {
                        plain(value, None)
                    } else {
                        (*value).to_owned()
                    };
                    let _ = write!(line, "{name}=\"{value}\"");
                }
                line.push('}');
            }
            line.push(' ');
            if self.name.ends_with("_seconds_sum") {
                line.push_str(&plain(self.value, Some(1e9)));
            } else {
                line.push_str(self.value);
            }
            line
        }
    }

    /// `value` (a float as prometheus-client writes it) in plain decimals,
    /// rounded to `1/per` when `per` is given; anything else unchanged.
    fn plain(value: &str, per: Option<f64>) -> String {
        match value.parse::<f64>() {
            Ok(v) if v.is_finite() => {
                let v = per.map_or(v, |per| (v * per).round() / per);
                // Rust's `Display` never uses an exponent and writes the shortest
                // decimal that reads back as the same float.
                let text = v.to_string();
                if text.contains('.') {
                    text
                } else {
                    format!("{text}.0")
                }
            }
            _ => value.to_owned(),
        }
    }

    #[cfg(test)]
    mod tests {
        use super::tidy;

        #[test]
        fn series_are_sorted_and_histograms_kept_together() {
            let text = "# HELP x_total X.\n# TYPE x_total counter\nx_total{route=\"b\"} 1\nx_total{route=\"a\"} 2\n\
# TYPE h_seconds histogram\nh_seconds_sum{plugin=\"z\"} 0.30000000000000004\nh_seconds_count{plugin=\"z\"} 2\n\
h_seconds_bucket{le=\"1e-5\",plugin=\"z\"} 0\nh_seconds_bucket{le=\"+Inf\",plugin=\"z\"} 2\n\
h_seconds_sum{plugin=\"a\"} 1e-7\nh_seconds_count{plugin=\"a\"} 1\n# EOF\n";
            let tidy = tidy(text);
            assert_eq!(
                tidy,
                "# HELP x_total X.\n# TYPE x_total counter\nx_total{route=\"a\"} 2\nx_total{route=\"b\"} 1\n\
# TYPE h_seconds histogram\nh_seconds_sum{plugin=\"a\"} 0.0000001\nh_seconds_count{plugin=\"a\"} 1\n\
h_seconds_sum{plugin=\"z\"} 0.3\nh_seconds_count{plugin=\"z\"} 2\n\
h_seconds_bucket{le=\"0.00001\",plugin=\"z\"} 0\nh_seconds_bucket{le=\"+Inf\",plugin=\"z\"} 2\n# EOF\n"
            );
        }

        #[test]
        fn a_quote_or_brace_in_a_label_value_is_no_end() {
            let text = "x_total{route=\"b\\\"}\"} 1\nx_total{route=\"a}\"} 2\n";
            assert_eq!(
                tidy(text),
                "x_total{route=\"a}\"} 2\nx_total{route=\"b\\\"}\"} 1\n"
            );
        }
    }
}
