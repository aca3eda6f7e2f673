//! Engines compute: each gets a request, a device, a progress sink and a cancel token,
//! and never knows who is watching. nn/ holds what the families share (weight loading); each
//! family (sd/, audio/, text/) keeps only its own models, and the SD engine tells the memory
//! planner its working memory through `sd::footprint`.

pub mod audio;
pub mod config_check;
pub mod flux;
pub mod ltx;
pub mod media;
pub mod nn;
pub mod progress;
pub mod sd;
pub mod sd3;
pub mod stage;
pub mod text;
pub mod upscale;
pub mod video;
pub mod wan;
pub mod zimage;

pub use progress::{CancelToken, EngineEvent, ProgressSink};

/// The PALLAIDIUM_* switches engines obey, from `platform::switches::Switches` (read once at
/// start and passed down with every load; `Default` is none set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineSwitches {
    /// candle's stock layers instead of ours (`nn::kernels::Kernels::Stock`).
    pub stock_kernels: bool,
    /// Weights copied instead of mapped (CPU) or staged (CUDA) (`nn::weights`).
    pub copy_weights: bool,
    /// Device time per kind of UNet layer (`sd::unet::probe`).
    pub profile: bool,
    /// How a diffusion transformer's quantized GGUF matrices are multiplied (None: the default
    /// for the device, `flux::transformer::GgufMatmul::resolve`).
    pub gguf_matmul: Option<flux::transformer::GgufMatmul>,
    /// kxk convolutions on CUDA as our im2col + GEMM even where cuDNN is built in
    /// (PALLAIDIUM_CONV=gemm).
    pub gemm_conv: bool,
}

impl EngineSwitches {
    pub fn from_switches(s: &crate::platform::switches::Switches) -> Self {
        Self {
            stock_kernels: s.stock_kernels,
            copy_weights: s.copy_weights,
            profile: s.profile,
            gguf_matmul: s
                .gguf_matmul
                .as_deref()
                .and_then(flux::transformer::GgufMatmul::from_word),
            gemm_conv: s.conv.as_deref() == Some("gemm"),
        }
    }

    /// The layers' implementation these switches pick.
    pub fn kernels(self) -> nn::kernels::Kernels {
        match (self.stock_kernels, self.gemm_conv) {
            (true, _) => nn::kernels::Kernels::Stock,
            (false, true) => nn::kernels::Kernels::OursGemmConv,
            (false, false) => nn::kernels::Kernels::Ours,
        }
    }
}
