//! `/admin/*`: what the router is running, and reloads on demand.

use super::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::SystemTime;

/// `GET /admin/plugins`: each plugin's file, content hash, load time, world and
/// instances, with the snapshot's generation and the last reload error.
pub async fn plugins(State(state): State<AppState>) -> Json<Value> {
    let runtime = state.dispatcher.runtime();
    let plugins: Vec<Value> = runtime
        .plugins()
        .iter()
        .map(|p| {
            json!({
                "name": p.name(),
                "file": p.path().display().to_string(),
                "sha256": p.digest(),
                "loaded_at_unix_ms": unix_ms(p.loaded_at()),
                "world": p.world(),
                "instances": p.instances(),
                "idle_instances": p.idle_instances(),
                "mode": p.mode(),
                "paused_for_ms": p.paused_for().map(|d| d.as_millis() as u64),
            })
        })
        .collect();
    Json(json!({
        "generation": runtime.generation(),
        "plugins": plugins,
        "reload": state.reloader.status(),
    }))
}

/// `GET /admin/routes`: the active routes of the current snapshot.
pub async fn routes(State(state): State<AppState>) -> Json<Value> {
    let runtime = state.dispatcher.runtime();
    let routes: Vec<Value> = runtime
        .routes()
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "filter": r.filter.as_ref().map(|f| f.to_json()),
                "handler": r.handler.as_ref().map(|p| p.name()),
                "forward": r.forward,
                "append": r.append.as_ref().map(|j| j.describe()),
            })
        })
        .collect();
    Json(json!({
        "generation": runtime.generation(),
        "routes": routes,
        "reload": state.reloader.status(),
    }))
}

/// `POST /admin/reload`: reloads now; 200 with the new generation, or 422 with
/// the reason the previous configuration keeps serving.
pub async fn reload(State(state): State<AppState>) -> Response {
    match state.reloader.reload_now().await {
        Ok(generation) => Json(json!({ "generation": generation })).into_response(),
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
pub async fn explain(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
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
pub struct DlqQuery {
    /// Only the dead letters of this route.
    route: Option<String>,
}

fn dlq_error(e: crate::delivery::deadletter::DeadLetterError) -> Response {
    use crate::delivery::deadletter::DeadLetterError as E;
    let status = match e {
        E::NotConfigured | E::NotListable(_) => StatusCode::CONFLICT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({ "error": e.to_string() }))).into_response()
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
pub async fn dlq_list(
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
pub async fn dlq_show(
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
/// letters chosen by the body (ids and/or a route; all when absent).
pub async fn dlq_redrive(
    State(state): State<AppState>,
    body: Option<Json<crate::delivery::redrive::Selection>>,
) -> Response {
    let selection = body.map(|Json(s)| s).unwrap_or_default();
    let runtime = state.dispatcher.runtime();
    let Some(sink) = &runtime.settings.dead_letters else {
        return dlq_error(crate::delivery::deadletter::DeadLetterError::NotConfigured);
    };
    match crate::delivery::redrive::redrive(sink, &selection, state.dispatcher.as_ref()).await {
        Ok(outcome) => Json(outcome).into_response(),
        Err(e) => dlq_error(e),
    }
}
