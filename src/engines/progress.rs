//! How an engine reports progress and learns that it should stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A small RGB image (e.g. a latent preview), row-major, 3 bytes a pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbPreview {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// What an engine tells its watcher while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// A pipeline stage started (e.g. "text_encoder", "unet", "vae").
    Loading { stage: String },
    /// One denoising step finished.
    Progress {
        step: u32,
        steps: u32,
        elapsed_s: f64,
        eta_s: f64,
    },
    /// A cheap look at the current latents.
    Preview(RgbPreview),
    /// Text produced so far grew by `delta` (streamed tokens of the prompt enhancer, a caption,
    /// a transcript segment).
    Text { delta: String },
}

/// Receives engine events; must be cheap (called every step).
pub trait ProgressSink: Send + Sync {
    fn emit(&self, event: EngineEvent);
}

/// A sink that drops everything (tests, benchmarks).
pub struct NullSink;

impl ProgressSink for NullSink {
    fn emit(&self, _event: EngineEvent) {}
}

impl<F: Fn(EngineEvent) + Send + Sync> ProgressSink for F {
    fn emit(&self, event: EngineEvent) {
        self(event)
    }
}

/// Checked between steps; a cancelled job stops within one step and writes nothing.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_shared_between_clones() {
        let token = CancelToken::new();
        let other = token.clone();
        assert!(!other.is_cancelled());
        token.cancel();
        assert!(other.is_cancelled());
    }
}
