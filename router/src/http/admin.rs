//! The admin API, on its own listener: what the router is running, reloads on
//! demand, explanations, the dead letters, the archive and its replays; `/metrics` too unless it is
//! served with ingest. Every request needs the `[admin]` token when one is set,
//! but for the dashboard's page ([`super::dashboard`]), which holds no data and
//! asks for the token itself.

use super::{AppState, IngestError};
use crate::config::{AdminToken, MetricsListener};
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::SystemTime;

/// The admin listener's application: `/admin/*` (and `/metrics` when
/// `metrics` says so), every path behind `token` when there is one.
pub fn app(state: AppState, token: Option<AdminToken>, metrics: MetricsListener) -> Router {
    let mut router = Router::new()
        .route("/", get(super::dashboard::page))
        .route("/dashboard", get(super::dashboard::page))
        .route("/admin/plugins", get(plugins))
        .route("/admin/plugins/{name}/promote", post(promote))
        .route("/admin/plugins/{name}/shadow", get(shadow))
        .route("/admin/routes", get(routes))
        .route("/admin/reload", post(reload))
        .route("/admin/explain", post(explain))
        .route("/admin/dlq", get(dlq_list))
        .route("/admin/dlq/redrive", post(dlq_redrive))
        .route("/admin/dlq/{id}", get(dlq_show))
        .route("/admin/queue", get(queue))
        .route("/admin/archive", get(archive_list))
        .route("/admin/archive/{position}", get(archive_show))
        .route("/admin/replay", get(replay_list).post(replay_start))
        .route(
            "/admin/replay/{id}",
            get(replay_progress).delete(replay_cancel),
        )
        .route("/admin/replay/{id}/resume", post(replay_resume));
    if metrics == MetricsListener::Admin {
        router = router.route("/metrics", get(super::metrics_text));
    }
    router
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": "not found: the admin API serves /dashboard, /admin/plugins, /admin/plugins/{name}/shadow, /admin/plugins/{name}/promote, /admin/routes, /admin/reload, /admin/explain, /admin/dlq, /admin/queue, /admin/archive and /admin/replay" })),
            )
        })
        .with_state(state)
        // A layer rather than a route layer: unknown paths are refused too, so
        // nobody learns what is served without the token.
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(token),
            authorize,
        ))
}

/// Lets a request through when it carries the admin token (or none is set);
/// answers 401 with `WWW-Authenticate: Bearer` otherwise.
async fn authorize(
    State(token): State<Arc<Option<AdminToken>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = token.as_ref() else {
        return next.run(request).await;
    };
    if super::dashboard::is_page(&request) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let (error, challenge) = match presented {
        Some(presented) if token.matches(presented.trim()) => return next.run(request).await,
        Some(_) => ("invalid admin token", r#"Bearer error="invalid_token""#),
        None => (
            "the admin API requires `Authorization: Bearer <token>` with the token of `[admin] token`",
            "Bearer",
        ),
    };
    let mut response = (StatusCode::UNAUTHORIZED, Json(json!({ "error": error }))).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Reads an admin request's body within the server's body limit and body
/// timeout, as ingest does: the admin API is no reason to hold memory or a
/// connection for as long as a client likes.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.limits.body) {
        return Err(IngestError::TooLarge {
            limit: state.limits.body,
        }
        .into_response());
    }
    // Not from the ingest buffer budget, which a flood of senders may hold:
    // the admin API must stay usable then. Its own listener's connection cap
    // and the body limit bound what it buffers.
    let own = super::ByteBudget::new(state.limits.body);
    let reserved = own
        .reserve(declared.unwrap_or(0))
        .ok_or_else(|| IngestError::Buffers { limit: own.total() }.into_response())?;
    super::collect_body(body, state, headers, reserved)
        .await
        .map(|(body, _)| body)
        .map_err(IntoResponse::into_response)
}

/// `GET /admin/plugins`: each plugin's file, content hash, load time, world,
/// instances and circuit breaker, with the snapshot's generation and the last
/// reload's status.
async fn plugins(State(state): State<AppState>, query: RawQuery, headers: HeaderMap) -> Response {
    let runtime = state.dispatcher.runtime();
    let plugins: Vec<Value> = runtime
        .plugins()
        .iter()
        .map(|p| {
            let paused = p.paused_for();
            let candidates = runtime.candidates(p.name()).map(|c| c.describe());
            let mut shown = without_nulls(json!({
                "name": p.name(),
                "file": lexically_normal(p.path()).display().to_string(),
                "sha256": p.digest(),
                "loaded_at_unix_ms": unix_ms(p.loaded_at()),
                "world": p.world(),
                "instances": p.instances(),
                "idle_instances": p.idle_instances(),
                "mode": p.mode(),
                "breaker": if paused.is_some() { "open" } else { "closed" },
                "paused_for_ms": paused.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                "promoted_from": runtime.promoted_from(p.name()),
            }));
            if let (Value::Object(shown), Some(Value::Object(candidates))) =
                (&mut shown, candidates)
            {
                shown.extend(candidates);
            }
            shown
        })
        .collect();
    let answer = json!({
        "generation": runtime.generation(),
        "plugins": plugins,
        "reload": reload_status(&state),
    });
    json_answer(&answer, pretty(&query, &headers))
}

/// `GET /admin/routes`: the active routes of the current snapshot, each with
/// its steps, its targets and the event types its handler was seen to emit
/// (with the routes they went to).
async fn routes(State(state): State<AppState>, query: RawQuery, headers: HeaderMap) -> Response {
    let runtime = state.dispatcher.runtime();
    let routes: Vec<Value> = runtime
        .routes()
        .iter()
        .map(|r| {
            let transforms: Vec<String> = r.transforms.iter().map(|s| s.describe()).collect();
            let emitted: Vec<Value> = r
                .counters
                .emitted
                .snapshot()
                .into_iter()
                .map(|(ty, routes)| json!({ "type": ty, "routes": routes }))
                .collect();
            without_nulls(json!({
                "name": r.name,
                "filter": r.filter.as_ref().map(|f| f.to_json()),
                "transforms": (!transforms.is_empty()).then_some(transforms),
                "handler": r.handler.as_ref().map(|p| p.name()),
                "forward": r.forward,
                "append": r.append.as_ref().map(|j| j.describe()),
                "emitted": (!emitted.is_empty()).then_some(emitted),
            }))
        })
        .collect();
    let answer = json!({
        "generation": runtime.generation(),
        "routes": routes,
        "reload": reload_status(&state),
    });
    json_answer(&answer, pretty(&query, &headers))
}

/// Query of `POST /admin/plugins/{name}/promote`.
#[derive(serde::Deserialize)]
struct PromoteQuery {
    /// `shadow` or `canary`; the canary when the plugin has one, else the shadow.
    candidate: Option<crate::runtime::CandidateKind>,
}

/// `POST /admin/plugins/{name}/promote[?candidate=shadow|canary]`: makes the
/// plugin's candidate its live version, swapped in like a reload; 200 with
/// the new generation, 404 for an unknown plugin, 409 for a plugin without
/// that candidate, 422 when the new snapshot cannot be built.
async fn promote(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<PromoteQuery>,
) -> Response {
    use crate::reload::PromoteError;
    match state.reloader.promote(&name, query.candidate).await {
        Ok(generation) => {
            let runtime = state.dispatcher.runtime();
            let plugin = runtime.plugins().iter().find(|p| p.name() == name);
            Json(json!({
                "generation": generation,
                "plugin": name,
                "file": plugin.map(|p| lexically_normal(p.path()).display().to_string()),
                "sha256": plugin.map(|p| p.digest()),
            }))
            .into_response()
        }
        Err(e) => {
            let status = match e {
                PromoteError::UnknownPlugin(_) => StatusCode::NOT_FOUND,
                PromoteError::NoCandidate { .. } => StatusCode::CONFLICT,
                PromoteError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}

/// `GET /admin/plugins/{name}/shadow`: the shadow's comparisons by outcome,
/// the calls dropped, and the latest differences with both outputs.
async fn shadow(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Response {
    let runtime = state.dispatcher.runtime();
    let not_found =
        |error: String| (StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response();
    if !runtime.plugins().iter().any(|p| p.name() == name) {
        return not_found(format!("no plugin named {name:?}"));
    }
    let Some(shadow) = runtime.candidates(&name).and_then(|c| c.shadow.as_ref()) else {
        return not_found(format!("plugin {name:?} has no shadow version"));
    };
    let mut answer = shadow.stats.report();
    if let Value::Object(members) = &mut answer {
        members.insert("plugin".into(), name.into());
        members.insert(
            "file".into(),
            lexically_normal(shadow.plugin.path())
                .display()
                .to_string()
                .into(),
        );
        members.insert("sha256".into(), shadow.plugin.digest().into());
    }
    json_answer(&answer, pretty(&query, &headers))
}

/// The reloader's status without its empty fields.
fn reload_status(state: &AppState) -> Value {
    without_nulls(serde_json::to_value(state.reloader.status()).unwrap_or_default())
}

/// `value` without the members of its own object that are `null`: an absent
/// breaker pause or reload error is left out rather than padded. Nested
/// values (a filter's JSON) are the data's own and kept whole.
fn without_nulls(mut value: Value) -> Value {
    if let Value::Object(members) = &mut value {
        members.retain(|_, v| !v.is_null());
    }
    value
}

/// `path` with its `.` and `..` components resolved as written, without
/// asking the file system: `examples/x/../../target/p.wasm` is shown as
/// `target/p.wasm`, and a file that is gone by now still has a path.
fn lexically_normal(path: &std::path::Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut normal = std::path::PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let last = normal.components().next_back();
                match last {
                    Some(Component::Normal(_)) => {
                        normal.pop();
                    }
                    // `/..` is `/`; a relative path keeps its leading `..`s.
                    Some(Component::RootDir | Component::Prefix(_)) => {}
                    _ => normal.push(".."),
                }
            }
            other => normal.push(other.as_os_str()),
        }
    }
    normal
}

/// Whether the client asked for indented JSON: `?pretty` (but `?pretty=false`
/// or `=0`), or an `Accept` that names `text/html` (a browser). `*/*` alone,
/// as curl and scripts send, keeps the compact form.
fn pretty(query: &RawQuery, headers: &HeaderMap) -> bool {
    let asked = query.0.as_deref().is_some_and(|q| {
        q.split('&').any(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            name == "pretty" && !matches!(value, "0" | "false" | "no")
        })
    });
    asked
        || headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|range| {
                range
                    .split(';')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
            })
}

/// `value` as an `application/json` answer, indented (with a final newline,
/// for a terminal) when `pretty`.
fn json_answer(value: &Value, pretty: bool) -> Response {
    let body = if pretty {
        serde_json::to_vec_pretty(value).map(|mut body| {
            body.push(b'\n');
            body
        })
    } else {
        serde_json::to_vec(value)
    };
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        // A `Value` always serializes; this is no reason to panic regardless.
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// `POST /admin/reload`: reloads now; 200 with the new generation (and the
/// changed sections that only a restart applies), or 422 with the reason the
/// previous configuration keeps serving.
async fn reload(State(state): State<AppState>) -> Response {
    match state.reloader.reload_now().await {
        // The status is written before the answer is sent, so it is this reload's.
        Ok(generation) => Json(json!({
            "generation": generation,
            "restart_needed": state.reloader.status().restart_needed,
        }))
        .into_response(),
        Err(error) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": error.to_string(),
                "generation": state.dispatcher.runtime().generation(),
            })),
        )
            .into_response(),
    }
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

/// `POST /admin/explain`: a structured-mode event in, its explanation out.
async fn explain(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    match crate::event::json::decode_structured(&body) {
        Ok(event) => {
            let runtime = state.dispatcher.runtime();
            Json(crate::explain::explain(&runtime, &event).await).into_response()
        }
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({ "error": format!("invalid CloudEvent: {e}"), "attribute": e.attribute() }),
            ),
        )
            .into_response(),
    }
}

/// Query of `GET /admin/dlq`.
#[derive(serde::Deserialize)]
struct DlqQuery {
    /// Only the dead letters of this route.
    route: Option<String>,
}

fn dlq_error(e: crate::delivery::deadletter::DeadLetterError) -> Response {
    use crate::delivery::deadletter::DeadLetterError as E;
    let status = match e {
        E::NotConfigured | E::NotListable(_) => StatusCode::CONFLICT,
        // The store is unreachable or unreadable for now: nothing is wrong with
        // the request, so the operator (or a script) may retry.
        E::Io { .. } | E::Http { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut response = (status, Json(json!({ "error": e.to_string() }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

async fn dead_letters(
    state: &AppState,
) -> Result<Vec<crate::delivery::deadletter::DeadLetter>, Response> {
    let runtime = state.dispatcher.runtime();
    let sink =
        runtime.settings.dead_letters.as_ref().ok_or_else(|| {
            dlq_error(crate::delivery::deadletter::DeadLetterError::NotConfigured)
        })?;
    sink.list().await.map_err(dlq_error)
}

/// `GET /admin/dlq[?route=NAME]`: the dead letters, oldest first.
async fn dlq_list(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<DlqQuery>,
) -> Response {
    match dead_letters(&state).await {
        Ok(mut letters) => {
            if let Some(route) = &query.route {
                letters.retain(|l| &l.route == route);
            }
            Json(json!({ "count": letters.len(), "dead_letters": letters })).into_response()
        }
        Err(response) => response,
    }
}

/// `GET /admin/dlq/{id}`: one dead letter.
async fn dlq_show(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match dead_letters(&state).await {
        Ok(letters) => match letters.into_iter().find(|l| l.id == id) {
            Some(letter) => Json(letter).into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": format!("no dead letter {id:?}") })),
            )
                .into_response(),
        },
        Err(response) => response,
    }
}

/// `POST /admin/dlq/redrive`: [`crate::delivery::redrive::redrive`] of the dead
/// letters the body names (ids, a route, or `{"all": true}`); a body that names
/// none is a 400, never "all".
async fn dlq_redrive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    use crate::delivery::redrive::{Selection, SelectionError};
    let body = match read_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let bad_request =
        |error: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    if body.trim_ascii().is_empty() {
        return bad_request(SelectionError::Empty.to_string());
    }
    let selection: Selection = match serde_json::from_slice(&body) {
        Ok(selection) => selection,
        Err(e) => {
            return bad_request(format!(
                "the body is not a selection ({e}): {}",
                SelectionError::Empty
            ));
        }
    };
    if let Err(e) = selection.validate() {
        return bad_request(e.to_string());
    }
    let runtime = state.dispatcher.runtime();
    let Some(sink) = &runtime.settings.dead_letters else {
        return dlq_error(crate::delivery::deadletter::DeadLetterError::NotConfigured);
    };
    match crate::delivery::redrive::redrive(sink, &selection, state.dispatcher.as_ref()).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => dlq_error(e),
    }
}

/// `GET /admin/queue`: durable mode's partition members (with the partitions
/// each holds), each partition's owner, and each partition's and shard's lag
/// and pending count
/// ([`crate::queue::RedisQueue::status`]). 404 without `[queue]`: there is no
/// queue to show.
async fn queue(State(state): State<AppState>, query: RawQuery, headers: HeaderMap) -> Response {
    let Some(queue) = &state.queue else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "no durable queue: /admin/queue needs a [queue] table (durable mode)" })),
        )
            .into_response();
    };
    match queue.status().await {
        Ok(status) => json_answer(
            &serde_json::to_value(status).unwrap_or_default(),
            pretty(&query, &headers),
        ),
        Err(e) => {
            // Redis is down or slow: nothing is wrong with the request.
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": format!("cannot read the queue's state: {e}") })),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// An error answer: `status` with `{"error": ...}`, and `Retry-After` on a 503.
fn error_answer(status: u16, error: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(json!({ "error": error }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn replay_error(e: &crate::replay::ReplayError) -> Response {
    error_answer(e.status(), e.to_string())
}

/// Query of `GET /admin/archive`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ArchiveQuery {
    /// Arrived at or after (RFC 3339 or ms since the epoch).
    from: Option<String>,
    /// Arrived before.
    to: Option<String>,
    /// A CESQL expression, or a JSON route filter.
    filter: Option<String>,
    /// After this position (the previous page's `next`).
    after: Option<String>,
    /// At most this many (default 100, at most 1000).
    limit: Option<usize>,
    /// Indented JSON (read by [`pretty`] from the raw query).
    #[serde(rename = "pretty")]
    _pretty: Option<String>,
}

/// `GET /admin/archive[?from=T1&to=T2&filter=EXPR&after=POS&limit=N]`: the
/// archived events, oldest first, each with its position and arrival time;
/// `next` names the position to continue after when there may be more.
async fn archive_list(
    State(state): State<AppState>,
    raw: RawQuery,
    headers: HeaderMap,
    query: Result<axum::extract::Query<ArchiveQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use crate::replay::{parse_filter, parse_position, parse_time};
    let axum::extract::Query(query) = match query {
        Ok(query) => query,
        Err(e) => return error_answer(400, format!("bad query: {}", e.body_text())),
    };
    let Some(archive) = state.dispatcher.runtime().settings.archive.clone() else {
        return replay_error(&crate::replay::ReplayError::NoArchive);
    };
    let time = |which, value: &Option<String>| {
        value
            .as_ref()
            .map(|v| parse_time(which, &Value::String(v.clone())))
            .transpose()
    };
    let (from, to) = match (time("from", &query.from), time("to", &query.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(e), _) | (_, Err(e)) => return replay_error(&e),
    };
    if let (Some(from), Some(to)) = (from, to)
        && from >= to
    {
        return replay_error(&crate::replay::ReplayError::BadRange(format!(
            "`from` ({}) must be before `to` ({})",
            crate::delivery::archive::rfc3339(from),
            crate::delivery::archive::rfc3339(to)
        )));
    }
    let filter = match query.filter.as_deref().map(parse_filter).transpose() {
        Ok(filter) => filter,
        Err(e) => return replay_error(&e),
    };
    let after = match query.after.as_deref().map(parse_position).transpose() {
        Ok(after) => after,
        Err(e) => return error_answer(400, e),
    };
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let read = crate::delivery::archive::Query {
        from,
        to,
        after,
        filter,
        limit,
    };
    match archive.read(&read).await {
        Ok(page) => {
            let events: Vec<Value> = page.records.iter().map(|r| r.to_json()).collect();
            json_answer(
                &without_nulls(json!({
                    "archive": archive.describe(),
                    "count": events.len(),
                    "events": events,
                    "next": page.next.map(|p| p.to_string()),
                })),
                pretty(&raw, &headers),
            )
        }
        Err(e) => error_answer(503, e.to_string()),
    }
}

/// `GET /admin/archive/{position}`: one archived event.
async fn archive_show(
    State(state): State<AppState>,
    axum::extract::Path(position): axum::extract::Path<String>,
    raw: RawQuery,
    headers: HeaderMap,
) -> Response {
    let position = match crate::replay::parse_position(&position) {
        Ok(position) => position,
        Err(e) => return error_answer(400, e),
    };
    let Some(archive) = state.dispatcher.runtime().settings.archive.clone() else {
        return replay_error(&crate::replay::ReplayError::NoArchive);
    };
    match archive.get(position).await {
        Ok(Some(record)) => json_answer(&record.to_json(), pretty(&raw, &headers)),
        Ok(None) => error_answer(
            404,
            format!(
                "no archived event at position {position} (removed by retention, or never there)"
            ),
        ),
        Err(e) => error_answer(503, e.to_string()),
    }
}

/// `GET /admin/replay`: the replays this process ran or runs.
async fn replay_list(State(state): State<AppState>, raw: RawQuery, headers: HeaderMap) -> Response {
    let replays = state.replays.list();
    json_answer(
        &json!({ "count": replays.len(), "replays": replays }),
        pretty(&raw, &headers),
    )
}

/// `POST /admin/replay`: starts a replay ([`crate::replay::ReplayRequest`]);
/// 202 with its first progress, to follow at `GET /admin/replay/{id}`.
async fn replay_start(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&state, &headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let request: crate::replay::ReplayRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_answer(
                400,
                format!(
                    "the body is not a replay request ({e}): {{\"from\": T1, \"to\": T2, \"route\": \"R\" or \"all\": true, \"filter\", \"rate\", \"id\"}}"
                ),
            );
        }
    };
    match state.replays.start(request).await {
        Ok(progress) => (StatusCode::ACCEPTED, Json(progress)).into_response(),
        Err(e) => replay_error(&e),
    }
}

/// `GET /admin/replay/{id}`: a replay's parameters and progress.
async fn replay_progress(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    raw: RawQuery,
    headers: HeaderMap,
) -> Response {
    match state.replays.progress(&id).await {
        Ok(progress) => json_answer(
            &serde_json::to_value(progress).unwrap_or_default(),
            pretty(&raw, &headers),
        ),
        Err(e) => replay_error(&e),
    }
}

/// `DELETE /admin/replay/{id}`: stops a running replay after the event in
/// hand; `POST /admin/replay/{id}/resume` continues it.
async fn replay_cancel(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match state.replays.cancel(&id).await {
        Ok(progress) => Json(progress).into_response(),
        Err(e) => replay_error(&e),
    }
}

/// `POST /admin/replay/{id}/resume`: continues a stopped replay after its
/// checkpoint's position; 202.
async fn replay_resume(
    State(state): State<AppState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match state.replays.resume(&id).await {
        Ok(progress) => (StatusCode::ACCEPTED, Json(progress)).into_response(),
        Err(e) => replay_error(&e),
    }
}
