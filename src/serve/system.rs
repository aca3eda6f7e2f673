//! The server's own routes: health (no token needed), the model registry with verdicts, the
//! doctor's report, and the OpenAPI document.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::serve::body::Json;
use crate::serve::error::ApiResult;
use crate::serve::state::AppState;

/// The OpenAPI 3 document, as committed (src/serve/openapi.json).
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /api/v1/health`: up, its version, and whether it takes work.
pub async fn health(State(state): State<AppState>) -> Json<Value> {
    let stopping = state.events.is_closed();
    Json(json!({
        "status": if stopping { "stopping" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "api": "v1",
        "halted": state.runner.halted(),
    }))
}

/// `GET /api/v1/system`: the server's memory, CPU and device memory now (the TUI's gauges in
/// client mode), its device, and the newest event id.
pub async fn system(
    State(state): State<AppState>,
) -> ApiResult<Json<crate::serve::machine::SystemReport>> {
    let last = state.events.event_id(state.events.last());
    let machine = Arc::clone(&state.machine);
    Ok(Json(
        tokio::task::spawn_blocking(move || machine.report(last)).await?,
    ))
}

/// `GET /api/v1/models`: `pallaidium models --json`.
pub async fn models(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let (global, switches) = (Arc::clone(&state.global), Arc::clone(&state.switches));
    let rows =
        tokio::task::spawn_blocking(move || crate::commands::models::listing(&global, &switches))
            .await??;
    Ok(Json(json!({ "models": rows })))
}

/// `GET /api/v1/doctor`: `pallaidium doctor --json`.
pub async fn doctor(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let (global, switches) = (Arc::clone(&state.global), Arc::clone(&state.switches));
    let report =
        tokio::task::spawn_blocking(move || crate::commands::doctor::collect(&global, &switches))
            .await??;
    let value = serde_json::to_value(&report)
        .map_err(|e| crate::serve::error::ApiError::Internal(e.to_string()))?;
    Ok(Json(value))
}

/// `GET /api/v1/openapi.json`.
pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// The models a compatible client may pick, as (id, where it comes from): the operator's
/// `--model` first when it is no registry id, then the registry's image models.
pub async fn image_models(state: &AppState) -> ApiResult<Vec<(String, String)>> {
    let global = Arc::clone(&state.global);
    let registry = tokio::task::spawn_blocking(move || {
        crate::models::Registry::load(global.models_file.as_deref())
    })
    .await??;
    let mut models = Vec::new();
    if let Some(model) = state.defaults.model.as_deref()
        && registry.get(model).is_none()
    {
        models.push((model.to_owned(), model.to_owned()));
    }
    models.extend(
        registry
            .entries()
            .iter()
            .filter(|e| {
                use crate::models::Kind;
                matches!(e.kind, Kind::Txt2img | Kind::Img2img | Kind::Inpaint)
            })
            .map(|e| (e.id.clone(), e.repo.clone())),
    );
    Ok(models)
}
