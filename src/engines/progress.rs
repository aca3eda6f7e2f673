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

/// Checked between steps and inside long stages (UNet and VAE blocks, attention chunks, VAE
/// tiles); a cancelled job stops within about a second of work and writes nothing.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

/// The message of the candle error a network returns when its job is cancelled mid-stage;
/// `crate::Error` turns it back into `Error::Cancelled`.
const CANCELLED_MID_STAGE: &str = "the job was cancelled mid-stage";

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

    /// For checks deep inside a network, whose errors are candle's.
    pub fn check(&self) -> candle_core::Result<()> {
        if self.is_cancelled() {
            Err(candle_core::Error::Msg(CANCELLED_MID_STAGE.into()))
        } else {
            Ok(())
        }
    }
}

/// Whether a candle error is `CancelToken::check`'s (however wrapped on its way up).
pub fn is_cancellation(err: &candle_core::Error) -> bool {
    use candle_core::Error as E;
    match err {
        E::Msg(message) => message == CANCELLED_MID_STAGE,
        E::WithBacktrace { inner, .. } | E::Context { inner, .. } | E::WithPath { inner, .. } => {
            is_cancellation(inner)
        }
        _ => false,
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
        assert!(other.check().is_ok());
        token.cancel();
        assert!(other.is_cancelled());
        let err = other.check().unwrap_err();
        assert!(is_cancellation(&err));
        assert!(is_cancellation(&err.context("in the VAE decoder")));
        assert!(!is_cancellation(&candle_core::Error::Msg("other".into())));
        assert!(matches!(
            crate::Error::from(other.check().unwrap_err()),
            crate::Error::Cancelled
        ));
    }
}
