//! Memory plans for video jobs (Wan, LTX-Video): the text encoder (UMT5, T5), the transformer
//! and the VAE at the run dtype (the encoder widened to f32 from f16, as it loads), each stage's
//! working memory (the prompt's encoding; one transformer pass over latent frames x patch
//! tokens, attention in the device's query chunks; the VAE's decode, `video_vae`), everything
//! resident when that
//! fits, else one component at a time (staged), and the decode in spatial tiles when its
//! full-frame decode does not fit.

use std::path::Path;

use candle_core::DType;

use super::activations::auto_score_budget;
use super::media::MediaWeights;
use super::stages::PlanStep;
use super::video_vae::VideoVae;
use super::{Breakdown, MemoryPlan, Overrides, device_traits, effective_budget};
use crate::device::DeviceMemory;
use crate::engines::ltx::pipeline::check_configs as ltx_configs;
use crate::engines::nn::dtype::widen_f16;
use crate::engines::wan::transformer::WanTransformerConfig;
use crate::engines::wan::vae::WanVaeConfig;
use crate::models::Family;
use crate::vocab::{Backend, Residency};

/// The transformer's shape as the plan needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DitShape {
    pub dim: u64,
    pub heads: u64,
    pub ffn: u64,
    /// Pixels a token covers on each side (VAE 8 x patch 2 = 16) and latent frames per token.
    pub pixels_per_token: u64,
    pub frames_per_token: u64,
}

/// What a video job asks for, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoPlanRequest {
    /// Weights once loaded, by component.
    pub text_encoder_bytes: u64,
    pub transformer_bytes: u64,
    pub vae_bytes: u64,
    /// The largest tensor as stored (held twice while it loads from a mapped file).
    pub largest_tensor_bytes: u64,
    /// The text encoder's width and the prompt tokens it reads.
    pub text_width: u64,
    pub text_tokens: u64,
    pub dit: DitShape,
    pub vae: VideoVae,
    /// Image-to-video: the first frame's encoders.
    pub first_frame: Option<FirstFrame>,
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    pub guided: bool,
    pub dtype: DType,
    pub device: Backend,
    pub memory: DeviceMemory,
    pub budget_cap: Option<u64>,
    pub overrides: Overrides,
}

/// The clip a video job makes: frames, width, height, guided.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoJobShape {
    pub frames: u32,
    pub width: u32,
    pub height: u32,
    pub guided: bool,
    pub max_sequence_length: Option<u32>,
    /// Image-to-video: a first frame to encode.
    pub image: bool,
}

/// An image-to-video job's first frame as the plan counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstFrame {
    /// The CLIP image encoder (Wan 2.1 I2V's image_encoder/), 0 when the model has none.
    pub image_encoder_bytes: u64,
    /// The VAE encodes the whole clip (Wan 2.1 I2V: the image, then zeros) rather than one
    /// frame (Wan 2.2 TI2V, LTX-Video).
    pub whole_clip: bool,
}

/// Where the job runs, as the planner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoDevice {
    pub device: Backend,
    pub memory: DeviceMemory,
    pub budget_cap: Option<u64>,
    pub overrides: Overrides,
}

impl VideoPlanRequest {
    /// From a video folder's configs and weight headers (nothing loaded) for a job of `shape`.
    pub fn read(
        (dir, family): (&Path, Family),
        dtype: DType,
        shape: VideoJobShape,
        on: VideoDevice,
    ) -> crate::Result<Self> {
        let (dit, vae, default_tokens) = if family == Family::Ltx {
            let (t, vae) = ltx_configs(dir)?;
            let dim = (t.num_attention_heads * t.attention_head_dim) as u64;
            let dit = DitShape {
                dim,
                heads: t.num_attention_heads as u64,
                // GELU feed-forward of 4x the width.
                ffn: 4 * dim,
                pixels_per_token: (vae.spatial_ratio() * t.patch_size) as u64,
                frames_per_token: t.patch_size_t as u64,
            };
            (dit, VideoVae::Ltx(vae), 128)
        } else {
            let t = WanTransformerConfig::load(&dir.join("transformer/config.json"))?;
            let vae = WanVaeConfig::read(&dir.join("vae"))?;
            let dit = DitShape {
                dim: t.inner_dim() as u64,
                heads: t.num_attention_heads as u64,
                ffn: t.ffn_dim as u64,
                pixels_per_token: (vae.spatial_ratio() * t.patch_size[1]) as u64,
                frames_per_token: t.patch_size[0] as u64,
            };
            (dit, VideoVae::Wan(vae), 512)
        };
        let te_config = dir.join("text_encoder/config.json");
        let text =
            std::fs::read_to_string(&te_config).map_err(|e| crate::Error::io(&te_config, e))?;
        let text_width = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("d_model").and_then(serde_json::Value::as_u64))
            .unwrap_or(4096);
        let te = MediaWeights::read(&dir.join("text_encoder"), widen_f16(dtype));
        let tr = MediaWeights::read(&dir.join("transformer"), dtype);
        let va = MediaWeights::read(&dir.join("vae"), dtype);
        let image_encoder = dir.join("image_encoder");
        let ie = MediaWeights::read(&image_encoder, dtype);
        let has_clip = image_encoder.join("config.json").is_file();
        let first_frame = shape.image.then_some(FirstFrame {
            image_encoder_bytes: if has_clip { ie.bytes } else { 0 },
            whole_clip: has_clip,
        });
        let largest = [te, tr, va, ie]
            .iter()
            .map(|w| w.largest_tensor_bytes)
            .max()
            .unwrap_or(0);
        Ok(Self {
            text_encoder_bytes: te.bytes,
            transformer_bytes: tr.bytes,
            vae_bytes: va.bytes,
            largest_tensor_bytes: largest,
            text_width,
            text_tokens: u64::from(shape.max_sequence_length.unwrap_or(default_tokens)),
            dit,
            vae,
            first_frame,
            frames: shape.frames,
            width: shape.width,
            height: shape.height,
            guided: shape.guided,
            dtype,
            device: on.device,
            memory: on.memory,
            budget_cap: on.budget_cap,
            overrides: on.overrides,
        })
    }

    /// The model's name in the plan's stages and its text encoder's.
    fn names(&self) -> (&'static str, &'static str) {
        match self.vae {
            VideoVae::Wan(_) => ("wan", "UMT5"),
            VideoVae::Ltx(_) => ("ltx-video", "T5"),
        }
    }

    fn latent(&self) -> (usize, usize, usize) {
        let r = self.vae.spatial_ratio().max(1) as u32;
        let t = self.vae.temporal_ratio().max(1) as u32;
        (
            ((self.frames.max(1) - 1) / t + 1) as usize,
            (self.height / r) as usize,
            (self.width / r) as usize,
        )
    }

    fn tokens(&self) -> u64 {
        let (f, _, _) = self.latent();
        let side = self.dit.pixels_per_token.max(1);
        (f as u64).div_ceil(self.dit.frames_per_token.max(1))
            * u64::from(self.height).div_ceil(side)
            * u64::from(self.width).div_ceil(side)
    }

    /// One transformer pass (two with guidance run one after the other: only one's
    /// activations live at a time, plus the first's output): the hidden states and their
    /// modulated copy, q/k/v and the attention output, the FFN's hidden layer twice (GELU),
    /// one query chunk's f32 scores and softmax, and the latents and text in f32.
    fn denoise_working(&self, score_budget: u64) -> u64 {
        let elem = self.dtype.size_in_bytes() as u64;
        let t = self.tokens();
        let d = &self.dit;
        let activations = t * (8 * d.dim + 2 * d.ffn) * elem;
        let full_scores = d.heads * t * t * 4;
        let scores = 2 * full_scores.min(score_budget);
        let (f, h, w) = self.latent();
        let latents = (f * h * w) as u64 * self.vae.latent_channels() as u64 * 4 * 4;
        let outputs = if self.guided { 2 } else { 1 } * t * d.dim * elem;
        activations + scores + latents + outputs
    }

    /// The prompt's encoding: a few hidden states and the FFN of `text_tokens` rows.
    fn encode_working(&self) -> u64 {
        let elem = self.dtype.size_in_bytes().max(4) as u64;
        self.text_tokens * self.text_width * 16 * elem
    }

    /// The first frame's VAE encode: one frame, or the whole clip (Wan 2.1 I2V), untiled (the
    /// encoder's activations mirror the decoder's).
    fn frame_encode_working(&self, whole_clip: bool, score_budget: u64) -> u64 {
        let elem = self.dtype.size_in_bytes();
        let (f, h, w) = self.latent();
        let f = if whole_clip { f } else { 1 };
        self.vae
            .decode_working((f, h, w), elem, false, score_budget)
    }

    /// CLIP ViT over one image: 257 tokens of its width, a few copies in f32.
    fn image_encode_working(&self) -> u64 {
        257 * 1280 * 16 * 4
    }

    fn decode_working(&self, tiled: bool, score_budget: u64) -> u64 {
        let elem = self.dtype.size_in_bytes();
        self.vae
            .decode_working(self.latent(), elem, tiled, score_budget)
    }
}

fn step(stage: &str, weights: u64, working: u64, overhead: u64) -> PlanStep {
    PlanStep {
        stage: stage.to_owned(),
        weights_bytes: weights,
        working_bytes: working,
        total_bytes: weights + working + overhead,
    }
}

/// The stages of one candidate plan.
fn steps(req: &VideoPlanRequest, residency: Residency, tiled: bool) -> Vec<PlanStep> {
    let dev = device_traits(req.device, &req.memory);
    let scores = auto_score_budget(dev.conv);
    let load = if dev.mapped_files_count {
        req.largest_tensor_bytes
    } else {
        0
    };
    let (te, tr, vae) = (req.text_encoder_bytes, req.transformer_bytes, req.vae_bytes);
    let ie = req.first_frame.map_or(0, |f| f.image_encoder_bytes);
    let all = te + tr + vae + ie;
    let o = dev.overhead_bytes;
    let held = |w: u64| {
        if residency == Residency::Resident {
            all
        } else {
            w
        }
    };
    let (model, encoder) = req.names();
    let mut out = Vec::new();
    let staged = residency != Residency::Resident;
    if !staged {
        out.push(step(&format!("load {model}"), all, load, o));
    }
    if let Some(first) = req.first_frame {
        if first.image_encoder_bytes > 0 {
            if staged {
                out.push(step("load image encoder", ie, load, o));
            }
            out.push(step(
                "encode image (CLIP)",
                held(ie),
                req.image_encode_working(),
                o,
            ));
        }
        if staged {
            out.push(step("load vae (encoder)", vae, load, o));
        }
        out.push(step(
            "encode first frame (VAE)",
            held(vae),
            req.frame_encode_working(first.whole_clip, scores),
            o,
        ));
    }
    if staged {
        out.push(step("load text encoder", te, load, o));
    }
    out.push(step(
        &format!("encode prompt ({encoder})"),
        held(te),
        req.encode_working(),
        o,
    ));
    if residency != Residency::Resident {
        out.push(step("load transformer", tr, load, o));
    }
    out.push(step(
        "denoise (transformer)",
        held(tr),
        req.denoise_working(scores),
        o,
    ));
    if residency != Residency::Resident {
        out.push(step("load vae", vae, load, o));
    }
    let decode = if tiled {
        "vae decode (tiled)"
    } else {
        "vae decode"
    };
    out.push(step(
        decode,
        held(vae),
        req.decode_working(tiled, scores),
        o,
    ));
    out
}

/// The cheapest plan that fits (resident before staged, whole frames before tiles), else the
/// leanest with what would fit.
pub fn plan_video(req: &VideoPlanRequest) -> MemoryPlan {
    let budget = effective_budget(&req.memory, req.budget_cap);
    let residencies: Vec<Residency> = match req.overrides.residency {
        Some(r) => vec![r],
        None => vec![Residency::Resident, Residency::Staged],
    };
    let tilings: Vec<bool> = match req.overrides.vae_tiling {
        Some(t) => vec![t],
        None => vec![false, true],
    };
    let mut candidates = Vec::new();
    for &r in &residencies {
        for &t in &tilings {
            candidates.push((r, t, steps(req, r, t)));
        }
    }
    let peak = |s: &[PlanStep]| s.iter().map(|s| s.total_bytes).max().unwrap_or(0);
    let chosen = candidates
        .iter()
        .find(|(_, _, s)| peak(s) <= budget)
        .or_else(|| candidates.iter().min_by_key(|(_, _, s)| peak(s)))
        .cloned();
    let (residency, tiled, steps) = chosen.unwrap_or((Residency::Staged, true, Vec::new()));
    let peak_step = steps
        .iter()
        .max_by_key(|s| s.total_bytes)
        .cloned()
        .unwrap_or_else(|| step("none", 0, 0, 0));
    let fits = peak_step.total_bytes <= budget;
    let mut suggestions = Vec::new();
    if !fits {
        if req.dtype == DType::F32 {
            suggestions.push("--dtype bf16 (half the weights and activations)".to_owned());
        }
        if req.frames > 17 {
            suggestions.push(format!(
                "fewer --frames (the transformer's memory grows with latent frames x tokens; \
                 {} tokens now)",
                req.tokens()
            ));
        }
        suggestions.push("a smaller --width/--height".to_owned());
    }
    let dev = device_traits(req.device, &req.memory);
    MemoryPlan {
        breakdown: Breakdown {
            text_encoders_bytes: req.text_encoder_bytes,
            unet_bytes: req.transformer_bytes,
            vae_bytes: req.vae_bytes,
            working_bytes: peak_step.working_bytes,
            overhead_bytes: dev.overhead_bytes,
            peak_stage: peak_step.stage.clone(),
            lora: Default::default(),
        },
        peak_bytes: peak_step.total_bytes,
        steps,
        budget_bytes: budget,
        fits,
        residency,
        attention_slice: None,
        vae_tiling: tiled,
        batch: 1,
        requested_batch: 1,
        dtype: crate::engines::nn::dtype::dtype_name(req.dtype).to_owned(),
        suggestions,
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
