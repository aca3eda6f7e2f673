//! `bench transformer --model sd35-medium`: one SD 3.5 Medium transformer step of the full-size
//! architecture (committed config: 24 MMDiT-X blocks, the first 13 with dual attention, 1536
//! wide, q/k RMSNorm, about 2.2 B parameters).
//!
//! What is timed: `Sd3Transformer::forward` on one (1, 16, h/8, w/8) latent with `--text-tokens`
//! joint text states (default 333: 77 CLIP + 256 T5 tokens, as StableDiffusion3Pipeline's
//! default `max_sequence_length`), the pooled CLIP projections (2048) and timestep 500, followed by
//! one device synchronize. Loading and inputs are outside the timed region; `--warmup` untimed
//! runs come first. Weights: a diffusers `transformer/` folder (`--weights`, e.g. random bf16
//! ones written by scripts/bench_sd3_diffusers.py, so diffusers and we run the same file) or a
//! GGUF (`--gguf`, city96's SD 3.5 layout, kept quantized as the engine keeps it).

use candle_core::Tensor;
use serde_json::{Value, json};

use super::report::timed_runs;
use super::{BenchSetup, flow_common};
use crate::Result;
use crate::engines::sd3::transformer::{self, Sd3Transformer, Sd3TransformerConfig};

/// The registry id this bench builds.
pub const ID: &str = "sd35-medium";
const CONFIG: &str = include_str!("configs/sd35-medium/transformer/config.json");
/// 77 CLIP tokens + 256 T5 tokens (the pipeline's default max_sequence_length).
const DEFAULT_TEXT_TOKENS: usize = 333;
/// The pipeline passes its timesteps on the 0..1000 scale.
const TIMESTEP: f32 = 500.0;

/// Whether `--model` names SD 3.5 Medium.
pub fn is_sd3(model: &str) -> bool {
    matches!(
        model.to_ascii_lowercase().as_str(),
        "sd35-medium" | "sd3.5-medium" | "sd-3.5-medium" | "stable-diffusion-3.5-medium"
    )
}

pub fn run(s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    let shape = flow_common::check_args(
        s,
        "SD 3.5",
        DEFAULT_TEXT_TOKENS,
        "scripts/bench_sd3_diffusers.py write DIR makes random full-size ones) or --gguf FILE (a city96 SD 3.5 GGUF",
    )?;
    let (w, h, n_txt) = (shape.width, shape.height, shape.text_tokens);
    let dir = flow_common::transformer_dir(s, ID, CONFIG)?;
    let device = &s.device.device;
    let switches = crate::engines::EngineSwitches::from_switches(s.switches);
    let (model, built) = flow_common::timed_build(device, || {
        let mut model = Sd3Transformer::load(&dir, a.gguf.as_deref(), device, s.dtype, switches)?;
        model.set_attention_mode(s.attention);
        Ok(model)
    })?;

    let c: &Sd3TransformerConfig = model.config();
    let latent =
        Tensor::randn(0f32, 1., (1, c.in_channels, h / 8, w / 8), device)?.to_dtype(s.dtype)?;
    let text =
        Tensor::randn(0f32, 1., (1, n_txt, c.joint_attention_dim), device)?.to_dtype(s.dtype)?;
    let pooled =
        Tensor::randn(0f32, 1., (1, c.pooled_projection_dim), device)?.to_dtype(s.dtype)?;
    let timestep = Tensor::new(&[TIMESTEP], device)?;
    let cancel = crate::engines::progress::CancelToken::new();
    let step = || -> Result<()> {
        let out = model.forward_watched(&latent, &text, &pooled, &timestep, &cancel)?;
        device.synchronize()?;
        drop(out);
        Ok(())
    };
    let timed = timed_runs(device, (a.warmup, a.runs), "SD 3.5 step", step)?;
    let weights = flow_common::weights_json(s, &dir);
    let mut out = json!({
        "bench": "transformer",
        "model": ID,
        "width": w,
        "height": h,
        "image_tokens": (h / 16) * (w / 16),
        "text_tokens": n_txt,
        "timestep": TIMESTEP,
        "parameters": c.parameters(),
        "weights": weights,
        "weight_bytes_loaded": model.weight_bytes_loaded(),
        "weight_bytes_stored": transformer::weight_bytes(&dir, a.gguf.as_deref()).ok(),
    });
    if let Value::Object(m) = &mut out {
        m.extend(flow_common::timing_json(s, &timed, &built));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_config_is_sd35_medium() {
        let c = Sd3TransformerConfig::from_json(CONFIG).unwrap();
        assert_eq!(
            (c.num_layers, c.num_attention_heads, c.attention_head_dim),
            (24, 24, 64)
        );
        assert_eq!(c.inner_dim(), 1536);
        assert!(c.qk_norm && c.dual_attention(12) && !c.dual_attention(13));
        let billions = c.parameters() as f64 / 1e9;
        assert!((2.0..2.6).contains(&billions), "{billions} B parameters");
        assert!(is_sd3("SD3.5-Medium") && !is_sd3("flux-dev") && !is_sd3("z-image-turbo"));
    }
}
