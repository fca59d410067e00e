//! The dispatcher: matches an event against the current runtime snapshot, delivers
//! it to every matched route's targets, and routes the events that handlers emit.
//!
//! Delivery here is synchronous: a call returns when every matched route, and every
//! route of every emitted event, has finished. The [`EventReport`] says what
//! happened to each; retries and dead letters plug in at [`Dispatcher::deliver`].

use crate::event::{CAUSATION_ID, CORRELATION_ID, Event};
use crate::forward::Forwarder;
use crate::runtime::{Route, Runtime};
use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, join, join_all};
use serde::Serialize;
use std::sync::Arc;
use tracing::Instrument as _;

/// Routes events through the current [`Runtime`].
pub struct Dispatcher {
    runtime: ArcSwap<Runtime>,
    forwarder: Forwarder,
}

/// What happened to one event.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct EventReport {
    /// The event's `id`.
    pub id: String,
    /// The event's `source`.
    pub source: String,
    /// The event's `type`.
    #[serde(rename = "type")]
    pub ty: String,
    /// One entry per matched route, in declaration order.
    pub routes: Vec<RouteReport>,
}

/// What happened on one route.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RouteReport {
    /// The route's name.
    pub route: String,
    /// `delivered` or `failed`.
    pub outcome: Outcome,
    /// Why it failed, naming the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Whether delivering the event again might succeed (failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// The events the route's handler emitted, each with its own report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<EventReport>,
}

/// The outcome of a route.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every target took the event.
    Delivered,
    /// A target failed.
    Failed,
    /// A transform dropped the event: nothing to deliver, and nothing failed.
    Dropped,
}

/// The worst failure in a report tree, which decides the HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Failure {
    /// Failed, and sending the same event again cannot help.
    Fatal,
    /// Failed, and sending the same event again may succeed.
    Retryable,
}

impl EventReport {
    /// The worst failure on any route of this event or of the events it caused.
    pub fn failure(&self) -> Option<Failure> {
        self.routes
            .iter()
            .flat_map(|r| {
                let own = match (r.outcome, r.retryable) {
                    (Outcome::Failed, Some(true)) => Some(Failure::Retryable),
                    (Outcome::Failed, _) => Some(Failure::Fatal),
                    (Outcome::Delivered | Outcome::Dropped, _) => None,
                };
                own.into_iter()
                    .chain(r.emitted.iter().filter_map(Self::failure))
            })
            .max()
    }

    /// The names of the failed routes in this tree, for messages.
    pub fn failed_routes(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for r in &self.routes {
            if r.outcome == Outcome::Failed {
                names.push(r.route.as_str());
            }
            for e in &r.emitted {
                names.extend(e.failed_routes());
            }
        }
        names
    }
}

impl Dispatcher {
    /// A dispatcher serving `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        let forwarder = Forwarder::new(runtime.settings.forward_timeout);
        Self {
            runtime: ArcSwap::from_pointee(runtime),
            forwarder,
        }
    }

    /// The snapshot new events are routed with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Makes `runtime` the snapshot for every event from now on; events in flight
    /// finish on the one they started with.
    pub fn swap(&self, runtime: Runtime) {
        self.runtime.store(Arc::new(runtime));
    }

    /// Routes `event` and everything it causes, and reports the outcome.
    pub async fn dispatch(&self, event: Event) -> EventReport {
        let runtime = self.runtime.load_full();
        self.dispatch_on(&runtime, event, 0).await
    }

    fn dispatch_on<'a>(
        &'a self,
        runtime: &'a Runtime,
        event: Event,
        depth: u32,
    ) -> BoxFuture<'a, EventReport> {
        let span = tracing::debug_span!(
            "event",
            id = %event.id,
            r#type = %event.ty,
            trace_id = crate::trace::trace_id(&event).unwrap_or_default(),
            depth,
        );
        Box::pin(
            async move {
                let routes: Vec<&Route> = runtime.matching(&event).collect();
                let routes = join_all(
                    routes
                        .into_iter()
                        .map(|route| self.deliver(runtime, route, &event, depth)),
                )
                .await;
                EventReport {
                    id: event.id,
                    source: event.source,
                    ty: event.ty,
                    routes,
                }
            }
            .instrument(span),
        )
    }

    /// Delivers `event` to the targets of one route, then routes what the
    /// handler emitted.
    async fn deliver(
        &self,
        runtime: &Runtime,
        route: &Route,
        event: &Event,
        depth: u32,
    ) -> RouteReport {
        let counters = &route.counters;
        counters.matched.inc();
        let transformed;
        let event = if route.transforms.is_empty() {
            event
        } else {
            match crate::policy::transform::apply_all(&route.transforms, event.clone()).await {
                Ok(Some(e)) => {
                    transformed = e;
                    &transformed
                }
                Ok(None) => {
                    counters.delivered.inc();
                    return RouteReport {
                        route: route.name.clone(),
                        outcome: Outcome::Dropped,
                        errors: Vec::new(),
                        retryable: None,
                        emitted: Vec::new(),
                    };
                }
                Err(e) => {
                    counters.failed.inc();
                    tracing::warn!(route = %route.name, event = %event, error = %e, "transform failed");
                    return RouteReport {
                        route: route.name.clone(),
                        outcome: Outcome::Failed,
                        errors: vec![e.to_string()],
                        retryable: Some(e.retryable),
                        emitted: Vec::new(),
                    };
                }
            }
        };
        let handled = async {
            match &route.handler {
                Some(plugin) => Some(
                    plugin
                        .handle(event)
                        .instrument(tracing::debug_span!("handler", plugin = plugin.name()))
                        .await,
                ),
                None => None,
            }
        };
        let forwarded = async {
            match &route.forward {
                Some(url) => Some(
                    self.forwarder
                        .send(url, event, runtime.settings.forward_timeout)
                        .instrument(tracing::debug_span!("forward", url = %url))
                        .await,
                ),
                None => None,
            }
        };
        let (handled, forwarded) = join(handled, forwarded)
            .instrument(tracing::debug_span!("route", route = %route.name))
            .await;

        let mut errors = Vec::new();
        let mut retryable = true;
        let mut emitted = Vec::new();
        if let Some(Err(e)) = forwarded {
            retryable &= e.is_retryable();
            errors.push(format!("forward: {e}"));
        }
        match handled {
            Some(Err(e)) => {
                retryable &= e.is_retryable();
                errors.push(format!("handler: {e}"));
            }
            Some(Ok(children)) if !children.is_empty() => {
                if depth >= runtime.settings.hop_limit {
                    retryable = false;
                    errors.push(format!(
                        "handler: {} emitted {} event(s) past the hop limit of {}: dropped (is there a routing loop?)",
                        route.handler.as_ref().map_or("", |p| p.name()),
                        children.len(),
                        runtime.settings.hop_limit
                    ));
                } else {
                    let correlation = event
                        .extension(CORRELATION_ID)
                        .unwrap_or(&event.id)
                        .to_owned();
                    emitted = join_all(children.into_iter().map(|mut child| {
                        child.set_extension(CAUSATION_ID, event.id.clone());
                        child.set_extension(CORRELATION_ID, correlation.clone());
                        crate::trace::inherit(&mut child, event);
                        self.dispatch_on(runtime, child, depth + 1)
                    }))
                    .await;
                }
            }
            _ => {}
        }
        let failed = !errors.is_empty();
        if failed {
            counters.failed.inc();
            tracing::warn!(route = %route.name, event = %event, errors = ?errors, "route failed");
        } else {
            counters.delivered.inc();
        }
        RouteReport {
            route: route.name.clone(),
            outcome: if failed {
                Outcome::Failed
            } else {
                Outcome::Delivered
            },
            errors,
            retryable: failed.then_some(retryable),
            emitted,
        }
    }
}
