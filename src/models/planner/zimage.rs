//! Z-Image's stages for the flow planner (`planner::flow`): the Qwen3 text encoder (f32 on the
//! CPU, as the engine runs it), then the transformer (a GGUF one stays quantized; guidance above
//! 1 runs the prompt and the negative as two items of one pass), then the VAE.

use std::path::{Path, PathBuf};

use candle_core::DType;

use super::activations::{self, ActivationShape};
use super::flow::{FlowModel, Held, Source, step};
use super::footprint::{ComponentWeights, component};
use super::stages::{Candidate, DeviceTraits, PlanStep};
use super::{MemoryPlan, PlanRequest};
use crate::Result;
use crate::engines::nn::text::qwen_config::QwenConfig;
use crate::engines::sd::footprint::VaeArch;
use crate::engines::zimage::transformer::ZImageTransformerConfig;
use crate::vocab::{Backend, Residency};

/// What only a Z-Image job adds to the plan request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZImageJob {
    /// Qwen3 tokens at most (the caption's length is not known before tokenizing).
    pub max_sequence_length: u32,
    /// `--transformer` (or a quantized variant's file).
    pub transformer: Option<PathBuf>,
    /// `--text-encoder-2`: Qwen3 from a llama.cpp GGUF (dequantized at load).
    pub text_encoder: Option<PathBuf>,
}

/// A Z-Image folder's weights as the engine will hold them, and its shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ZImageFootprint {
    transformer_config: ZImageTransformerConfig,
    text_config: QwenConfig,
    vae_arch: VaeArch,
    text: Source,
    transformer: Source,
    vae: ComponentWeights,
}

impl ZImageFootprint {
    pub fn read(dir: &Path, fp16_variant: bool, job: &ZImageJob) -> Result<Self> {
        let _span = tracing::info_span!("zimage_footprint", dir = %dir.display()).entered();
        let vae = crate::engines::sd::config::VaeConfig::load(&dir.join("vae/config.json"))?;
        Ok(Self {
            transformer_config: ZImageTransformerConfig::load(
                &dir.join("transformer/config.json"),
            )?,
            text_config: QwenConfig::load(&dir.join("text_encoder/config.json"))?,
            vae_arch: VaeArch::from_config(&vae),
            text: Source::read(dir, job.text_encoder.as_deref(), "text_encoder", false)?,
            transformer: Source::read(
                dir,
                job.transformer.as_deref(),
                "transformer",
                fp16_variant,
            )?,
            vae: component(&dir.join("vae"), "vae", fp16_variant)?,
        })
    }

    /// The dtype Qwen3 computes in (`QwenEncoder::dtype_for`): f32 on the CPU, never f16.
    fn text_dtype(dtype: DType, device: Backend) -> DType {
        if device == Backend::Cpu {
            DType::F32
        } else {
            crate::engines::nn::dtype::widen_f16(dtype)
        }
    }

    /// Qwen3 as the engine holds it: dense in its compute dtype, a GGUF's tensors dequantized
    /// into it at load (one at a time).
    fn text_held(&self, dtype: DType, device: Backend) -> Held {
        let text = Self::text_dtype(dtype, device);
        match &self.text {
            Source::Folder(c) => Held {
                bytes: c.bytes_at(text.size_in_bytes() as u64),
                transient: c.largest_tensor_bytes,
            },
            Source::Gguf(g) => Held {
                bytes: g.dequantized(text),
                transient: g.largest_dequantized(DType::F32),
            },
        }
    }

    fn vae_held(&self, elem: u64) -> Held {
        Held {
            bytes: self.vae.bytes_at(elem),
            transient: self.vae.largest_tensor_bytes,
        }
    }

    /// The largest live set of one single-stream block over `tokens` tokens of `items` items,
    /// besides attention scores: the residual stream with its normed and modulated copies, the
    /// fused qkv with f32 rotated q and k, or the gated FFN's three hidden-width tensors.
    fn block_bytes(&self, tokens: u64, items: u64, elem: u64) -> u64 {
        let c = &self.transformer_config;
        let row = items * tokens * c.dim as u64;
        let streams = 4 * row * elem;
        let qkv = 3 * row * elem + 2 * row * 4;
        let ffn = 3 * items * tokens * c.ffn_dim() as u64 * elem;
        streams + qkv.max(ffn)
    }

    fn steps(
        &self,
        req: &PlanRequest,
        job: &ZImageJob,
        cand: &Candidate,
        dev: &DeviceTraits,
    ) -> Vec<PlanStep> {
        let elem = req.dtype.size_in_bytes() as u64;
        // The prompt and, with guidance, the negative: one item each per image.
        let items = u64::from(cand.batch.max(1)) * if req.guided { 2 } else { 1 };
        let text = self.text_held(req.dtype, req.device);
        let transformer = self.transformer.transformer_held(elem);
        let vae = self.vae_held(elem);
        let resident = cand.residency == Residency::Resident;
        let all = text.bytes + transformer.bytes + vae.bytes;
        let held = |own: u64| if resident { all } else { own };
        let (lh, lw) = (u64::from(req.height) / 8, u64::from(req.width) / 8);
        let pad = |n: u64| n.div_ceil(32) * 32;
        let caption = pad(u64::from(job.max_sequence_length));
        let tokens = pad((lh / 2) * (lw / 2)) + caption;
        let text_elem = Self::text_dtype(req.dtype, req.device).size_in_bytes();
        let text_work =
            self.text_config
                .working_bytes(1, job.max_sequence_length as usize, text_elem)
                + text.transient;
        let shape = ActivationShape {
            latent_h: lh,
            latent_w: lw,
            images: items,
            guided: false,
            elem,
            conv: dev.conv,
            attention_slice: cand.attention_slice,
            stock_kernels: dev.stock_kernels,
        };
        let c = &self.transformer_config;
        let scores = activations::attention_bytes(
            &shape,
            items * c.n_heads as u64,
            tokens,
            tokens,
            c.head_dim() as u64,
        );
        // Latents, the prediction and the stepped latents in f32.
        let latents = 3 * items * c.in_channels as u64 * lh * lw * 4;
        let denoise_work =
            self.block_bytes(tokens, items, elem) + scores + latents + transformer.transient;
        let tile = if cand.vae_tiling { lh.min(64) } else { lh };
        let tile_w = if cand.vae_tiling { lw.min(64) } else { lw };
        let vae_shape = ActivationShape {
            latent_h: tile,
            latent_w: tile_w,
            images: 1,
            ..shape
        };
        let dec = activations::vae_decode(&self.vae_arch, &vae_shape) + vae.transient;
        vec![
            step("encode prompt (Qwen3)", held(text.bytes), text_work, dev),
            step(
                "denoise (transformer)",
                held(transformer.bytes),
                denoise_work,
                dev,
            ),
            step("vae decode", held(vae.bytes), dec, dev),
        ]
    }
}

/// A Z-Image footprint with its job: what the flow planner plans.
struct ZImageModel<'a> {
    fp: &'a ZImageFootprint,
    job: &'a ZImageJob,
    device: Backend,
}

impl FlowModel for ZImageModel<'_> {
    fn steps(&self, req: &PlanRequest, cand: &Candidate, dev: &DeviceTraits) -> Vec<PlanStep> {
        self.fp.steps(req, self.job, cand, dev)
    }

    fn held_bytes(&self, dtype: DType) -> (u64, u64, u64) {
        let elem = dtype.size_in_bytes() as u64;
        (
            self.fp.text_held(dtype, self.device).bytes,
            self.fp.transformer.transformer_held(elem).bytes,
            self.fp.vae_held(elem).bytes,
        )
    }

    fn dense_transformer(&self) -> bool {
        matches!(self.fp.transformer, Source::Folder(_))
    }

    fn suggested_quant(&self) -> &'static str {
        "q4_k_m"
    }
}

/// Plans one Z-Image job: the first candidate that fits, else the last, with what would fit.
pub fn plan(fp: &ZImageFootprint, req: &PlanRequest, job: &ZImageJob) -> MemoryPlan {
    super::flow::plan(
        &ZImageModel {
            fp,
            job,
            device: req.device,
        },
        req,
    )
}

/// Reads a Z-Image folder's footprint (with the job's replacement transformer) and plans a job.
pub fn plan_zimage_folder(
    dir: &Path,
    fp16_variant: bool,
    req: &PlanRequest,
    job: &ZImageJob,
) -> Result<MemoryPlan> {
    let fp = ZImageFootprint::read(dir, fp16_variant, job)?;
    Ok(plan(&fp, req, job))
}

#[cfg(test)]
#[path = "zimage_tests.rs"]
mod tests;
