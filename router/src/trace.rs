//! W3C Trace Context, mapped to and from the CloudEvents distributed tracing
//! extension (`traceparent`, `tracestate`).
//!
//! The extension records the trace an event was created in and travels with it
//! unchanged; the HTTP `traceparent` header of each hop is a child of it, so a
//! forwarded event carries the incoming trace id.

use crate::event::Event;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};

/// The extension (and header) names.
pub const TRACEPARENT: &str = "traceparent";
/// The vendor-specific companion of `traceparent`.
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent`: version 00, trace id, parent (span) id, flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 32 lowercase hex digits, not all zero.
    pub trace_id: String,
    /// 16 lowercase hex digits, not all zero.
    pub parent_id: String,
    /// 2 hex digits.
    pub flags: String,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` unless it is valid version-00 syntax.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, parent_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let valid = version == "00"
            && parts.next().is_none()
            && hex(trace_id, 32)
            && hex(parent_id, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0');
        valid.then(|| Self {
            trace_id: trace_id.to_owned(),
            parent_id: parent_id.to_owned(),
            flags: flags.to_owned(),
        })
    }

    /// The same trace with a new span id: what this hop sends onwards.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            parent_id: new_span_id(),
            flags: self.flags.clone(),
        }
    }
}

impl std::fmt::Display for TraceParent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "00-{}-{}-{}", self.trace_id, self.parent_id, self.flags)
    }
}

/// The trace context of a request: its `traceparent` and `tracestate` headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestTrace<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl<'a> RequestTrace<'a> {
    /// The trace context in `headers`, if any.
    pub fn of(headers: &'a http::HeaderMap) -> Self {
        // Names made once: a lookup by `&str` parses the name first.
        static PARENT: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
        static STATE: http::HeaderName = http::HeaderName::from_static(TRACESTATE);
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            traceparent: get(&PARENT),
            tracestate: get(&STATE),
        }
    }

    /// Gives `event` this trace context when it has none of its own.
    pub fn adopt(self, event: &mut Event) {
        if event.extension(TRACEPARENT).is_some() {
            return;
        }
        if let Some(tp) = self.traceparent.and_then(TraceParent::parse) {
            event.set_extension(TRACEPARENT, tp.to_string());
            if let Some(ts) = self.tracestate.filter(|s| !s.is_empty()) {
                event.set_extension(TRACESTATE, ts);
            }
        }
    }
}

/// An emitted event inherits its parent's trace unless it started its own.
pub fn inherit(child: &mut Event, parent: &Event) {
    RequestTrace {
        traceparent: parent.extension(TRACEPARENT),
        tracestate: parent.extension(TRACESTATE),
    }
    .adopt(child);
}

/// The trace id of an event, for logs.
pub fn trace_id(event: &Event) -> Option<String> {
    event
        .extension(TRACEPARENT)
        .and_then(TraceParent::parse)
        .map(|t| t.trace_id)
}

/// OpenTelemetry export (feature `otel`): spans go to the OTLP/HTTP endpoint of
/// `OTEL_EXPORTER_OTLP_ENDPOINT`, each event's span a child of its trace context.
#[cfg(feature = "otel")]
pub mod otel {
    use super::{Event, TRACEPARENT, TraceParent};
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        TracerProvider as _,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    use tracing_subscriber::registry::LookupSpan;

    /// The export layer, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
    pub fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT")?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| eprintln!("OTLP export disabled: {e}"))
            .ok()?;
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .build();
        let tracer = provider.tracer("router");
        opentelemetry::global::set_tracer_provider(provider);
        Some(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    /// Makes `span` a child of the trace the event travels in.
    pub fn set_parent(span: &tracing::Span, event: &Event) {
        let Some(tp) = event.extension(TRACEPARENT).and_then(TraceParent::parse) else {
            return;
        };
        let (Ok(trace_id), Ok(span_id), Ok(flags)) = (
            TraceId::from_hex(&tp.trace_id),
            SpanId::from_hex(&tp.parent_id),
            u8::from_str_radix(&tp.flags, 16),
        ) else {
            return;
        };
        let remote = SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags),
            true,
            TraceState::default(),
        );
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

/// A random, non-zero 64-bit span id in hex.
fn new_span_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", hasher.finish().max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_refuses() {
        let tp = TraceParent::parse(TP).unwrap();
        assert_eq!(tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.to_string(), TP);
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn child_keeps_the_trace_and_changes_the_span() {
        let tp = TraceParent::parse(TP).unwrap();
        let child = tp.child();
        assert_eq!(child.trace_id, tp.trace_id);
        assert_ne!(child.parent_id, tp.parent_id);
        assert!(TraceParent::parse(&child.to_string()).is_some());
    }

    #[test]
    fn events_adopt_the_request_trace_but_keep_their_own() {
        let mut e = Event::new("1", "/s", "t");
        let trace = |traceparent, tracestate| RequestTrace {
            traceparent,
            tracestate,
        };
        trace(Some(TP), Some("k=v")).adopt(&mut e);
        assert_eq!(e.extension(TRACEPARENT), Some(TP));
        assert_eq!(e.extension(TRACESTATE), Some("k=v"));
        let other = "00-11111111111111111111111111111111-2222222222222222-00";
        trace(Some(other), None).adopt(&mut e);
        assert_eq!(e.extension(TRACEPARENT), Some(TP));
        let mut child = Event::new("2", "/s", "t");
        inherit(&mut child, &e);
        assert_eq!(
            trace_id(&child).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
    }
}
