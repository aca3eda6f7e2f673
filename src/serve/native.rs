//! The native API's job routes (under /api/v1): submit, list, get, cancel, retry, move, and
//! outputs by job id and index.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::jobs::JobState;
use crate::jobs::run::queue::CancelOutcome;
use crate::jobs::spec::JobOverrides;
use crate::serve::body;
use crate::serve::body::Json;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::limits::{self, MAX_LIST};
use crate::serve::state::{AppState, blocking};
use crate::serve::{submit, views};

/// `POST /api/v1/jobs`: a job as job files write it, and its input files uploaded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    job: JobOverrides,
    /// Job-file key (`init-image`, `mask`, `caption`) to the file's bytes in base64.
    #[serde(default)]
    files: BTreeMap<String, String>,
}

pub async fn submit_job(State(state): State<AppState>, bytes: Bytes) -> ApiResult<Response> {
    let asked: SubmitBody = body::json(&bytes)?;
    limits::check_no_paths(&asked.job)?;
    limits::check_texts(&asked.job)?;
    let uploads = Arc::clone(&state.uploads);
    let job = tokio::task::spawn_blocking(move || {
        let mut job = asked.job;
        uploads.attach(&mut job, &asked.files).map(|()| job)
    })
    .await??;
    let queued = submit::submit(&state, job).await?;
    let record = state.record(queued.id)?;
    let location = format!("/api/v1/jobs/{}", queued.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(views::job(&record)),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<usize>,
    state: Option<String>,
}

/// `GET /api/v1/jobs?limit=N&state=S`: the newest jobs first.
pub async fn list_jobs(
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let query = body::query(query)?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some(name) => Some(JobState::parse(name).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "state={name}: not a job state; one of {}",
                JobState::ALL.map(JobState::as_str).join(", ")
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(100).min(MAX_LIST);
    let jobs: Vec<Value> = state
        .history(limit)?
        .iter()
        .filter(|r| wanted.is_none_or(|s| r.state == s))
        .map(views::job)
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

pub async fn get_job(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = body::job_id(path)?;
    Ok(Json(views::job(&state.record(id)?)))
}

/// `POST /api/v1/jobs/{id}/cancel`: a waiting job is cancelled now, a running one within a step.
pub async fn cancel_job(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = body::job_id(path)?;
    let record = state.record(id)?;
    let outcome = match blocking(|| state.runner.cancel(id))? {
        CancelOutcome::Dequeued => "cancelled",
        CancelOutcome::Signalled => "stopping",
        CancelOutcome::NotPending => {
            return Err(ApiError::Conflict(format!(
                "job {id} is {}; only a queued or running job of this server can be cancelled",
                record.state
            )));
        }
    };
    Ok(Json(json!({ "id": id, "outcome": outcome })))
}

/// `POST /api/v1/jobs/{id}/retry`: a failed, cancelled or interrupted job goes back to the queue.
pub async fn retry_job(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let id = body::job_id(path)?;
    state.check_open()?;
    state.record(id)?;
    blocking(|| state.runner.retry(id)).map_err(conflict)?;
    Ok(Json(views::job(&state.record(id)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    /// The place among the waiting jobs, 0 = next.
    index: usize,
}

/// `POST /api/v1/jobs/{id}/move`: puts a waiting job at `index` among the waiting jobs.
pub async fn move_job(
    State(state): State<AppState>,
    path: Result<Path<i64>, PathRejection>,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let id = body::job_id(path)?;
    let asked: MoveBody = body::json(&bytes)?;
    state.record(id)?;
    blocking(|| state.runner.move_to(id, asked.index)).map_err(conflict)?;
    Ok(Json(views::job(&state.record(id)?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    paused: bool,
}

/// `POST /api/v1/queue/pause`: `{"paused": true}` holds the waiting jobs (the running one goes
/// on), `false` lets them start again.
pub async fn pause_queue(State(state): State<AppState>, bytes: Bytes) -> ApiResult<Json<Value>> {
    let asked: PauseBody = body::json(&bytes)?;
    state.runner.set_paused(asked.paused);
    Ok(Json(json!({ "paused": asked.paused })))
}

/// The runner's refusal of an action on a job in the wrong state.
fn conflict(err: crate::Error) -> ApiError {
    match err {
        crate::Error::BadInput { message } => ApiError::Conflict(message),
        other => ApiError::from(other),
    }
}

/// `GET /api/v1/jobs/{id}/outputs/{index}`: the file's bytes; never a path from the request.
pub async fn get_output(
    State(state): State<AppState>,
    path: Result<Path<(i64, usize)>, PathRejection>,
) -> ApiResult<Response> {
    let (id, index) = body::job_output(path)?;
    let record = state.record(id)?;
    let file = record.outputs.get(index).ok_or_else(|| {
        ApiError::NotFound(format!(
            "job {id} has {} output(s); index {index} is not one",
            record.outputs.len()
        ))
    })?;
    let bytes = tokio::fs::read(file).await.map_err(|e| {
        ApiError::NotFound(format!(
            "job {id}: output {index} is gone from the server ({e})"
        ))
    })?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().replace(['"', '\\'], "_"))
        .unwrap_or_else(|| format!("{id}-{index}"));
    Ok((
        [
            (header::CONTENT_TYPE, views::content_type(file).to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"{}\"", name.escape_default()),
            ),
        ],
        bytes,
    )
        .into_response())
}
