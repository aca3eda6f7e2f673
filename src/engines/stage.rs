//! What every image pipeline does around its stages: a tracing span with the time and memory
//! each took, a cancel check between them, and the per-step progress event.

use std::time::Instant;

use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::error::{Error, Result};

/// `Err(Cancelled)` once the job was cancelled.
pub fn check_cancel(cancel: &CancelToken) -> Result<()> {
    if cancel.is_cancelled() {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs one pipeline stage in a span, logging its time and the memory after it.
pub fn stage<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _span = tracing::info_span!("stage", name).entered();
    let start = Instant::now();
    let out = f()?;
    tracing::info!(
        stage = name,
        seconds = start.elapsed().as_secs_f64(),
        "stage done"
    );
    crate::logging::log_memory(name);
    Ok(out)
}

/// Loads one component in a span, logging its time and the memory after it.
pub fn timed_load<T>(component: &str, load: impl FnOnce() -> Result<T>) -> Result<T> {
    let _span = tracing::info_span!("load", stage = component).entered();
    let start = Instant::now();
    let value = load()?;
    tracing::info!(
        stage = component,
        seconds = start.elapsed().as_secs_f64(),
        "component loaded"
    );
    crate::logging::log_memory(component);
    Ok(value)
}

/// Emits step `step` of `total` (1-based) with the elapsed time since `begin` and an estimate
/// of what is left.
pub fn emit_step(sink: &dyn ProgressSink, step: u32, total: u32, begin: Instant) {
    let elapsed_s = begin.elapsed().as_secs_f64();
    let eta_s = elapsed_s / f64::from(step.max(1)) * f64::from(total.saturating_sub(step));
    sink.emit(EngineEvent::Progress {
        step,
        steps: total,
        elapsed_s,
        eta_s,
    });
}
