//! Queueing a request's job on the runner (the CLI's validation, off the async threads), and
//! waiting for its end for the endpoints that answer with the result (OpenAI, A1111).

use std::path::PathBuf;
use std::sync::Arc;

use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobEvent, JobId};
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::limits;
use crate::serve::state::AppState;

/// A queued job and the number of the last event logged before it.
#[derive(Debug, Clone, Copy)]
pub struct Queued {
    pub id: JobId,
    pub after: u64,
}

/// Checks `asked` (laid over the operator's defaults) as the CLI does and queues it.
pub async fn submit(state: &AppState, asked: JobOverrides) -> ApiResult<Queued> {
    state.check_open()?;
    limits::check_texts(&asked)?;
    let job = state.defaults.as_ref().clone().merged(asked);
    let runner = Arc::clone(&state.runner);
    let after = state.events.last();
    // Preparing reads model configs and plans memory: blocking work.
    let ids =
        tokio::task::spawn_blocking(move || runner.submit(std::slice::from_ref(&job))).await??;
    let id = ids
        .first()
        .copied()
        .ok_or_else(|| ApiError::Internal("the runner queued nothing".to_owned()))?;
    tracing::info!(job = %id, "queued from an API request");
    Ok(Queued { id, after })
}

/// What a finished job wrote.
#[derive(Debug, Clone)]
pub struct Finished {
    pub id: JobId,
    pub outputs: Vec<PathBuf>,
}

/// Queues `asked` and waits for its end: its outputs, or the refusal its failure deserves.
pub async fn run_to_end(state: &AppState, asked: JobOverrides) -> ApiResult<Finished> {
    let queued = submit(state, asked).await?;
    let end = state
        .events
        .wait_for_end(queued.id, queued.after)
        .await
        .ok_or_else(|| {
            ApiError::Unavailable(format!(
                "the server stopped before job {} ended; it stays queued",
                queued.id
            ))
        })?;
    match end.as_ref() {
        JobEvent::Done { outputs, .. } => Ok(Finished {
            id: queued.id,
            outputs: outputs.clone(),
        }),
        JobEvent::Failed { error, .. } if state.runner.failed_on_bad_input(queued.id) => {
            Err(ApiError::Unprocessable(error.clone()))
        }
        JobEvent::Failed { error, .. } => Err(ApiError::Internal(format!(
            "job {} failed: {error}",
            queued.id
        ))),
        _ => Err(ApiError::Conflict(format!(
            "job {} was cancelled before it finished",
            queued.id
        ))),
    }
}

/// The bytes of each output, in order.
pub async fn read_outputs(finished: &Finished) -> ApiResult<Vec<Vec<u8>>> {
    let mut all = Vec::with_capacity(finished.outputs.len());
    for path in &finished.outputs {
        let bytes = tokio::fs::read(path).await.map_err(|e| {
            ApiError::Internal(format!(
                "job {}: cannot read its output {}: {e}",
                finished.id,
                path.display()
            ))
        })?;
        all.push(bytes);
    }
    Ok(all)
}
