//! The dispatcher: matches an event against the current runtime snapshot, delivers
//! it to every matched route's targets, and routes the events that handlers emit.
//!
//! Delivery here is synchronous: a call returns when every matched route, and every
//! route of every emitted event, has finished, retries included. A route whose
//! retries are spent puts the event in the dead-letter sink, if one is configured.
//! The [`EventReport`] says what happened to each.

use crate::delivery::deadletter::DeadLetter;
use crate::delivery::dedup;
use crate::delivery::retry::{self, Attempts};
use crate::event::{CAUSATION_ID, CORRELATION_ID, Event, REPLAY_ID};
use crate::forward::Forwarder;
use crate::runtime::{Route, Runtime};
use arc_swap::ArcSwap;
use futures_util::future::{BoxFuture, Either, OptionFuture, join_all, join3, ready};
use serde::Serialize;
use smallvec::SmallVec;
use std::sync::Arc;
use tracing::Instrument as _;

/// The routes an event matched. One is the common case, and is kept without
/// an allocation.
type Matched<'a> = SmallVec<[&'a Route; 1]>;

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
    /// The event was dropped as a duplicate of one seen within the dedup window.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// What happened on one route.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RouteReport {
    /// The route's name.
    pub route: String,
    /// `delivered`, `failed`, `dropped`, `dead_lettered` or `duplicate`.
    pub outcome: Outcome,
    /// Attempts made on the target that needed most, when there was more than one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Why it failed, naming the target.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Whether delivering the event again might succeed (failures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// The events the route's handler emitted, each with its own report.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<EventReport>,
    /// The id of the dead letter written (`dead_lettered` only), to show or
    /// redrive it by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter: Option<String>,
}

/// The outcome of a route.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every target took the event.
    Delivered,
    /// A target failed, and no dead-letter sink took the event.
    Failed,
    /// A transform dropped the event: nothing to deliver, and nothing failed.
    Dropped,
    /// A target failed, retries included, and the event is in the dead-letter sink.
    DeadLettered,
    /// The route saw this (`source`, `id`) within its dedup window.
    Duplicate,
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
    /// The report of `event`, with what happened on each of its routes.
    fn new(event: Event, routes: Vec<RouteReport>) -> Self {
        Self {
            id: event.id,
            source: event.source,
            ty: event.ty,
            routes,
            duplicate: false,
        }
    }

    /// [`Self::new`] for an event that was shared with the calls. They are
    /// over, so it is usually the caller's alone again and its attributes move
    /// into the report; a call moved to the guest threads may still be letting
    /// go of it, and then they are copied.
    fn shared(event: Arc<Event>, routes: Vec<RouteReport>) -> Self {
        match Arc::try_unwrap(event) {
            Ok(event) => Self::new(event, routes),
            Err(shared) => Self {
                id: shared.id.clone(),
                source: shared.source.clone(),
                ty: shared.ty.clone(),
                routes,
                duplicate: false,
            },
        }
    }

    /// The worst failure on any route of this event or of the events it caused.
    pub fn failure(&self) -> Option<Failure> {
        self.routes
            .iter()
            .flat_map(|r| {
                let own = match (r.outcome, r.retryable) {
                    (Outcome::Failed, Some(true)) => Some(Failure::Retryable),
                    (Outcome::Failed, _) => Some(Failure::Fatal),
                    (
                        Outcome::Delivered
                        | Outcome::Dropped
                        | Outcome::DeadLettered
                        | Outcome::Duplicate,
                        _,
                    ) => None,
                };
                own.into_iter()
                    .chain(r.emitted.iter().filter_map(Self::failure))
            })
            .max()
    }

    /// What became of the event, for `router_events_accepted_total`'s
    /// `outcome` when it did not fail, over the events it caused too: a dead
    /// letter anywhere outweighs a delivery, a delivery a dedup or transform drop.
    pub fn accepted_outcome(&self) -> &'static str {
        fn any(report: &EventReport, outcome: Outcome) -> bool {
            report
                .routes
                .iter()
                .any(|r| r.outcome == outcome || r.emitted.iter().any(|e| any(e, outcome)))
        }
        if self.duplicate {
            "duplicate"
        } else if self.routes.is_empty() {
            "unmatched"
        } else if any(self, Outcome::DeadLettered) {
            "dead_lettered"
        } else if any(self, Outcome::Delivered) {
            "delivered"
        } else if self.routes.iter().all(|r| r.outcome == Outcome::Duplicate) {
            "duplicate"
        } else {
            "dropped"
        }
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
    /// finish on the one they started with. The new snapshot keeps the old one's
    /// in-memory dedup set, so a reload does not reopen the windows.
    pub fn swap(&self, mut runtime: Runtime) {
        runtime
            .settings
            .dedup
            .carry_over(&self.runtime.load().settings.dedup);
        self.runtime.store(Arc::new(runtime));
    }

    /// Routes `event` and everything it causes, and reports the outcome. With a
    /// global dedup window, an event delivered within it is reported as a
    /// duplicate and not routed; only an event that was delivered is remembered,
    /// so the sender's retry of a failed one is not taken for a duplicate.
    pub async fn dispatch(&self, event: Event) -> EventReport {
        let runtime = self.runtime.load_full();
        self.dispatch_with(&runtime, Arc::new(event), None).await
    }

    /// [`Self::dispatch`], to the routes it matches among those named `only`
    /// when given (a replay to one route); what the handlers emit goes through
    /// every route it matches.
    pub async fn dispatch_to(&self, event: Event, only: Option<&str>) -> EventReport {
        let runtime = self.runtime.load_full();
        self.dispatch_with(&runtime, Arc::new(event), only).await
    }

    /// [`Self::dispatch_to`] on `runtime`, a snapshot the caller holds: a
    /// request's events all go through the snapshot the request was admitted
    /// by, and none of them takes a reference of its own to the shared one.
    ///
    /// The event comes behind an `Arc`: held by value, it would take a slot
    /// in this future and in each one it awaits, and each future is moved
    /// whole into its parent on every request. Making the future only stores
    /// what it captures and cannot fail, so a caller can make it straight into
    /// a box (`boxed::pinned`).
    ///
    /// Not an `async fn`: that keeps its arguments twice in its future
    /// (rust-lang/rust#62958), and this future and `dispatch_on`'s
    /// are made for every event. As `async fn`s the two cost 227
    /// instructions and 23 first-level data-cache misses a request more
    /// (callgrind, `bench/instructions.py`).
    #[allow(clippy::manual_async_fn)]
    pub fn dispatch_with<'a>(
        &'a self,
        runtime: &'a Runtime,
        event: Arc<Event>,
        only: Option<&'a str>,
    ) -> impl std::future::Future<Output = EventReport> + 'a {
        async move {
            let dedup = match runtime.settings.dedup.window {
                Some(window) => {
                    let key = dedup_key("", &event);
                    let seen = runtime.settings.dedup.seen(&key).await;
                    Some((key, window, seen))
                }
                None => None,
            };
            if let Some((_, _, true)) = dedup {
                crate::metrics::metrics().events_duplicate.inc();
                let mut report = EventReport::shared(event, Vec::new());
                report.duplicate = true;
                return report;
            }
            let routes: Matched = match only {
                None => runtime.matching(&event).collect(),
                Some(name) => runtime
                    .matching(&event)
                    .filter(|r| r.name == name)
                    .collect(),
            };
            // Made in a box (`boxed::pinned`): awaited by value, the
            // deliveries' future would be made on the stack and copied into
            // this one's.
            let span = event_span(&event, 0);
            let deliveries = || self.dispatch_on(runtime, event, routes, 0).instrument(span);
            let report = crate::boxed::pinned(deliveries).await;
            if let Some((key, window, _)) = dedup
                && report.failure().is_none()
            {
                runtime.settings.dedup.remember(&key, window).await;
            }
            report
        }
    }

    /// Delivers `event` to the route named `route` only, skipping its filter (a
    /// dead letter sent back); `None` when no such route exists any more.
    pub(crate) async fn redeliver(&self, route: &str, event: &Event) -> Option<RouteReport> {
        let runtime = self.runtime.load_full();
        let route = runtime.routes().iter().find(|r| r.name == route)?;
        Some(
            self.deliver(&runtime, route, &Arc::new(event.clone()), 0)
                .await,
        )
    }

    /// [`Self::dispatch_on`] behind a pointer, for emitted events: the recursion
    /// needs the box, and a plain function (not an `async` one) to name its type.
    fn dispatch_boxed<'a>(
        &'a self,
        runtime: &'a Runtime,
        event: Event,
        routes: Matched<'a>,
        depth: u32,
    ) -> BoxFuture<'a, EventReport> {
        let event = Arc::new(event);
        let span = event_span(&event, depth);
        crate::boxed::pinned(|| {
            self.dispatch_on(runtime, event, routes, depth)
                .instrument(span)
        })
    }

    /// Delivers `event` to `routes` (those it matched) at once, and reports.
    /// The event is shared with the handler calls, which may move to the
    /// guest threads and so must own what they use. The caller runs it in the
    /// event's span ([`event_span`]): made here, the span would make this
    /// function one that can fail, and its future could not be made in a box.
    #[allow(clippy::manual_async_fn)] // as `dispatch_with`
    fn dispatch_on<'a>(
        &'a self,
        runtime: &'a Runtime,
        event: Arc<Event>,
        routes: Matched<'a>,
        depth: u32,
    ) -> impl std::future::Future<Output = EventReport> + 'a {
        async move {
            // One matched route is the common case: awaited in place, it saves
            // `join_all`'s allocation and the moves of a large future.
            let routes = match routes.as_slice() {
                [] => Vec::new(),
                [route] => vec![self.deliver(runtime, route, &event, depth).await],
                _ => {
                    join_all(
                        routes
                            .iter()
                            .map(|route| self.deliver(runtime, route, &event, depth)),
                    )
                    .await
                }
            };
            EventReport::shared(event, routes)
        }
    }

    /// Delivers `event` to the targets of one route, each retried by the route's
    /// policy, then routes what the handler emitted; dead-letters the event when
    /// a target failed for good. The steps: the route's dedup window, its
    /// transforms, its targets, the emitted events, then the verdict.
    async fn deliver(
        &self,
        runtime: &Runtime,
        route: &Route,
        event: &Arc<Event>,
        depth: u32,
    ) -> RouteReport {
        let counters = &route.counters;
        counters.matched.inc();
        let dedup_key = route
            .dedup
            .map(|window| (dedup_key(&route.name, event), window));
        if let Some((key, _)) = &dedup_key
            && runtime.settings.dedup.seen(key).await
        {
            counters.duplicates.inc();
            return RouteReport::of(route, Outcome::Duplicate);
        }
        let original = event;
        let transformed;
        let event = match Self::transform(route, event).await {
            Transformed::Unchanged => event,
            Transformed::Into(e) => {
                transformed = Arc::new(e);
                &transformed
            }
            Transformed::Dropped => {
                counters.delivered.inc();
                if let Some((key, window)) = &dedup_key {
                    runtime.settings.dedup.remember(key, *window).await;
                }
                return RouteReport::of(route, Outcome::Dropped);
            }
            Transformed::Failed(e) => {
                tracing::warn!(route = %route.name, event = %event, error = %e, "transform failed");
                let retryable = e.retryable();
                return Box::pin(self.give_up(
                    runtime,
                    route,
                    original,
                    vec![e.to_string()],
                    retryable,
                    Attempts::once(),
                ))
                .await;
            }
        };
        let mut verdict = self.run_targets(runtime, route, event).await;
        let emitted = match verdict.children.take() {
            Some(children) => {
                self.route_emitted(runtime, route, event, children, depth, &mut verdict)
                    .await
            }
            None => Vec::new(),
        };
        if verdict.errors.is_empty() {
            counters.delivered.inc();
            if let Some((key, window)) = &dedup_key {
                runtime.settings.dedup.remember(key, *window).await;
            }
            let mut report = RouteReport::of(route, Outcome::Delivered);
            report.attempts = (verdict.most_attempts > 1).then_some(verdict.most_attempts);
            report.emitted = emitted;
            return report;
        }
        let attempts = verdict.failed_attempts.unwrap_or_else(Attempts::once);
        let mut failed = Box::pin(self.give_up(
            runtime,
            route,
            original,
            verdict.errors,
            verdict.retryable,
            attempts,
        ))
        .await;
        failed.emitted = emitted;
        failed
    }

    /// Step 2: the route's transforms applied to `event`.
    async fn transform(route: &Route, event: &Event) -> Transformed {
        if route.transforms.is_empty() {
            return Transformed::Unchanged;
        }
        match Box::pin(crate::policy::transform::apply_all(
            &route.transforms,
            event.clone(),
        ))
        .await
        {
            Ok(Some(e)) => Transformed::Into(e),
            Ok(None) => Transformed::Dropped,
            Err(e) => Transformed::Failed(e),
        }
    }

    /// Step 3: the route's handler, forward and append at once, each retried by the
    /// route's policy; what they did, as a [`Verdict`].
    async fn run_targets(&self, runtime: &Runtime, route: &Route, event: &Arc<Event>) -> Verdict {
        let counters = &route.counters;
        let policy = &route.retry;
        let forward_timeout = policy
            .attempt_timeout
            .unwrap_or(runtime.settings.forward_timeout);
        // A closure, so the handler's future is built where it is awaited: a
        // future made earlier and moved later keeps a slot of its own in this
        // function's state, which every delivery then allocates and copies.
        let handle = || async {
            match (&route.handler, &route.candidates) {
                (Some(plugin), None) => Some(
                    retry::run(policy, &counters.retried, || plugin.handle_shared(event))
                        .instrument(tracing::debug_span!("handler", plugin = plugin.name()))
                        .await,
                ),
                // Boxed: a plugin with candidate versions is the rare case,
                // and its future should not grow every delivery's.
                (Some(plugin), Some(candidates)) => Some(
                    Box::pin(
                        retry::run(policy, &counters.retried, || {
                            candidates.handle(plugin, event)
                        })
                        .instrument(tracing::debug_span!("handler", plugin = plugin.name())),
                    )
                    .await,
                ),
                (None, _) => None,
            }
        };
        // Forwards and appends are boxed, and only built when the route has
        // them: a handler-only route (the hot path) then awaits its handler
        // alone, without moving the large futures of the other targets around.
        let forwarded = route.forward.as_ref().map(|url| {
            Box::pin(
                retry::run(policy, &counters.retried, move || {
                    self.forwarder.send(url, event, forward_timeout)
                })
                .instrument(tracing::debug_span!("forward", url = %url)),
            )
        });
        let appended = route.append.as_ref().map(|journal| {
            Box::pin(
                retry::run(policy, &counters.retried, move || journal.append(event))
                    .instrument(tracing::debug_span!("append", journal = %journal.describe())),
            )
        });
        let span = tracing::debug_span!("route", route = %route.name);
        let (handled, forwarded, appended) = match (forwarded, appended) {
            (None, None) => (handle().instrument(span).await, None, None),
            (forwarded, appended) => {
                Box::pin(
                    join3(
                        handle(),
                        OptionFuture::from(forwarded),
                        OptionFuture::from(appended),
                    )
                    .instrument(span),
                )
                .await
            }
        };

        let mut verdict = Verdict {
            errors: Vec::new(),
            retryable: true,
            failed_attempts: None,
            most_attempts: [
                forwarded.as_ref().map(|(_, a)| a.count),
                appended.as_ref().map(|(_, a)| a.count),
                handled.as_ref().map(|(_, a)| a.count),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(1),
            children: None,
        };
        if let Some((Err(e), attempts)) = forwarded {
            verdict.retryable &= e.is_retryable();
            verdict.failed(format!("forward: {e}"), attempts);
        }
        if let Some((Err(e), attempts)) = appended {
            verdict.failed(format!("append: {e}"), attempts);
        }
        match handled {
            Some((Err(e), attempts)) => {
                verdict.retryable &= e.is_retryable();
                verdict.failed(format!("handler: {e}"), attempts);
            }
            Some((Ok(children), _)) if !children.is_empty() => verdict.children = Some(children),
            _ => {}
        }
        verdict
    }

    /// Step 4: the events the handler emitted, each routed through the routes it
    /// matches, with the causation and correlation of `event`; past the hop limit,
    /// none is routed and the route fails.
    async fn route_emitted(
        &self,
        runtime: &Runtime,
        route: &Route,
        event: &Event,
        children: Vec<Event>,
        depth: u32,
        verdict: &mut Verdict,
    ) -> Vec<EventReport> {
        if depth >= runtime.settings.hop_limit {
            verdict.retryable = false;
            verdict.errors.push(format!(
                "handler: {} emitted {} event(s) past the hop limit of {}: dropped (is there a routing loop?)",
                route.handler.as_ref().map_or("", |p| p.name()),
                children.len(),
                runtime.settings.hop_limit
            ));
            return Vec::new();
        }
        let correlation = event
            .extension(CORRELATION_ID)
            .unwrap_or(&event.id)
            .to_owned();
        let route_child = |mut child: Event, correlation: String| {
            // Room for the extensions set here, made once: the guest's list
            // was lifted at its exact length, so the first push would move it.
            child.extensions.reserve(3);
            child.set_extension(CAUSATION_ID, event.id.clone());
            child.set_extension(CORRELATION_ID, correlation);
            if let Some(replay) = event.extension(REPLAY_ID) {
                child.set_extension(REPLAY_ID, replay.to_owned());
            }
            crate::trace::inherit(&mut child, event);
            let routes: Matched = runtime.matching(&child).collect();
            route
                .counters
                .emitted
                .saw(&child.ty, routes.iter().map(|r| r.name.as_str()));
            if routes.is_empty() {
                // Nothing to await: no boxed future for an event
                // that no route wants.
                return Either::Left(ready(EventReport::new(child, Vec::new())));
            }
            Either::Right(self.dispatch_boxed(runtime, child, routes, depth + 1))
        };
        // One emitted event (the common case) is awaited in place and takes
        // the correlation id: no `join_all` list, no copy of the id.
        let mut children = children.into_iter();
        match (children.next(), children.len()) {
            (None, _) => Vec::new(),
            (Some(only), 0) => vec![route_child(only, correlation).await],
            (Some(first), _) => {
                join_all(
                    std::iter::once(first)
                        .chain(children)
                        .map(|child| route_child(child, correlation.clone())),
                )
                .await
            }
        }
    }

    /// A route failed for good: dead-letters the event if a sink is configured,
    /// otherwise reports the failure. Its dedup window never remembered it, so a
    /// retry by the sender, or a redrive, is not taken for a duplicate.
    async fn give_up(
        &self,
        runtime: &Runtime,
        route: &Route,
        original: &Event,
        mut errors: Vec<String>,
        retryable: bool,
        attempts: Attempts,
    ) -> RouteReport {
        let counters = &route.counters;
        let shown_attempts = (attempts.count > 1).then_some(attempts.count);
        if let Some(sink) = &runtime.settings.dead_letter {
            let letter = DeadLetter::new(&route.name, original, &attempts, errors.join("; "));
            // Boxed: a dead-letter sink's future (an HTTP request) is large and
            // rarely needed; inline, it would grow every delivery's future.
            match Box::pin(sink.put(&letter)).await {
                Ok(()) => {
                    counters.dead_lettered.inc();
                    tracing::warn!(route = %route.name, event = %original, errors = ?errors, attempts = attempts.count, dead_letter = %letter.id, "route gave up: event dead-lettered");
                    return RouteReport {
                        route: route.name.clone(),
                        outcome: Outcome::DeadLettered,
                        attempts: shown_attempts,
                        errors,
                        retryable: None,
                        emitted: Vec::new(),
                        dead_letter: Some(letter.id),
                    };
                }
                Err(e) => errors.push(format!("dead letter: {e}")),
            }
        }
        counters.failed.inc();
        tracing::warn!(route = %route.name, event = %original, errors = ?errors, attempts = attempts.count, "route failed");
        RouteReport {
            route: route.name.clone(),
            outcome: Outcome::Failed,
            attempts: shown_attempts,
            errors,
            retryable: Some(retryable),
            emitted: Vec::new(),
            dead_letter: None,
        }
    }
}

/// The span an event is routed in, at `depth` hops from the request.
fn event_span(event: &Event, depth: u32) -> tracing::Span {
    tracing::debug_span!(
        "event",
        id = %event.id,
        r#type = %event.ty,
        trace_id = crate::trace::trace_id(event).unwrap_or_default(),
        depth,
    )
}

/// The dedup key of `event` in `scope` (a route's name, `""` for the global
/// window). A replayed event (one with a `replayid`) has its own window per
/// replay: its scope carries the replay's id, so neither the original delivery
/// nor an earlier replay drops it, while one replay still delivers an event at
/// most once per window.
fn dedup_key(scope: &str, event: &Event) -> dedup::Key {
    match event.extension(REPLAY_ID) {
        None => dedup::key(scope, &event.source, &event.id),
        Some(replay) => dedup::key(
            &format!("{scope}\u{1f}{REPLAY_ID}={replay}"),
            &event.source,
            &event.id,
        ),
    }
}

/// What a redrive did with one dead letter's event: its route's report, or for a
/// dead letter of every route (a durable queue's poison entry), the event's.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Redelivered {
    /// Sent back to its one route.
    Route(RouteReport),
    /// Routed through every route it matches.
    Event(EventReport),
}

impl crate::delivery::redrive::Redeliver for Dispatcher {
    type Report = Redelivered;

    async fn deliver_again(&self, route: Option<&str>, event: Event) -> Option<Redelivered> {
        match route {
            Some(route) => self.redeliver(route, &event).await.map(Redelivered::Route),
            None => Some(Redelivered::Event(self.dispatch(event).await)),
        }
    }

    fn still_failing(report: &Redelivered) -> bool {
        match report {
            Redelivered::Route(report) => report.outcome == Outcome::Failed,
            Redelivered::Event(report) => {
                report.routes.iter().any(|r| r.outcome == Outcome::Failed)
            }
        }
    }
}

/// What a route's transforms made of an event.
enum Transformed {
    /// The route has no transforms.
    Unchanged,
    /// The event the targets get.
    Into(Event),
    /// A step dropped the event: nothing to deliver, nothing failed.
    Dropped,
    /// A step failed.
    Failed(crate::policy::transform::TransformError),
}

/// What a route's targets did: the errors, whether another try may help, the
/// attempts made, and the events the handler emitted (routed next).
struct Verdict {
    errors: Vec<String>,
    retryable: bool,
    /// The attempts of the failed target that made most.
    failed_attempts: Option<Attempts>,
    /// The most attempts any target made.
    most_attempts: u32,
    children: Option<Vec<Event>>,
}

impl Verdict {
    /// A target failed with `error` after `attempts`.
    fn failed(&mut self, error: String, attempts: Attempts) {
        self.errors.push(error);
        self.failed_attempts = Some(self.failed_attempts.map_or(attempts, |a| a.most(attempts)));
    }
}

impl RouteReport {
    /// The report of `route` with `outcome`, nothing else to say yet.
    fn of(route: &Route, outcome: Outcome) -> Self {
        Self::named(route.name.clone(), outcome)
    }

    /// [`Self::of`] by the route's name.
    pub(crate) fn named(route: String, outcome: Outcome) -> Self {
        Self {
            route,
            outcome,
            attempts: None,
            errors: Vec::new(),
            retryable: None,
            emitted: Vec::new(),
            dead_letter: None,
        }
    }
}
