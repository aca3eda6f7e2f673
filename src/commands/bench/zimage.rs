//! `bench transformer --model z-image-turbo`: one Z-Image transformer step of the full-size
//! architecture (committed config: 30 + 2 + 2 blocks, 3840 wide, 6.15 B parameters).
//!
//! What is timed: `ZImageTransformer::forward` on one (16, 1, h/8, w/8) latent with `--text-tokens`
//! caption features (default 128: a templated prompt of a few dozen words; the pipeline keeps the
//! real tokens only), timestep 0.5, followed by one device synchronize. Loading and inputs are
//! outside the timed region; `--warmup` untimed runs come first. Weights: a diffusers
//! `transformer/` folder (`--weights`, e.g. random bf16 ones written by
//! scripts/bench_zimage_diffusers.py, so diffusers and we run the same file) or a GGUF (`--gguf`,
//! kept quantized as the engine keeps it).

use candle_core::Tensor;
use serde_json::{Value, json};

use super::report::timed_runs;
use super::{BenchSetup, flow_common};
use crate::Result;
use crate::engines::zimage::transformer::{self, ZImageTransformer, ZImageTransformerConfig};

/// The registry id this bench builds.
pub const ID: &str = "z-image-turbo";
const CONFIG: &str = include_str!("configs/z-image-turbo/transformer/config.json");
const DEFAULT_TEXT_TOKENS: usize = 128;

/// Whether `--model` names Z-Image-Turbo.
pub fn is_zimage(model: &str) -> bool {
    matches!(
        model.to_ascii_lowercase().as_str(),
        "z-image-turbo" | "zimage-turbo" | "z-image" | "zimage"
    )
}

pub fn run(s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    let shape = flow_common::check_args(
        s,
        "Z-Image",
        DEFAULT_TEXT_TOKENS,
        "scripts/bench_zimage_diffusers.py write DIR makes random full-size ones) or --gguf FILE (a Z-Image GGUF",
    )?;
    let (w, h, n_txt) = (shape.width, shape.height, shape.text_tokens);
    let dir = flow_common::transformer_dir(s, ID, CONFIG)?;
    let device = &s.device.device;
    let switches = crate::engines::EngineSwitches::from_switches(s.switches);
    let (model, built) = flow_common::timed_build(device, || {
        let mut model =
            ZImageTransformer::load(&dir, a.gguf.as_deref(), device, s.dtype, switches)?;
        model.set_attention_mode(s.attention);
        Ok(model)
    })?;

    let c: &ZImageTransformerConfig = model.config();
    let latent =
        Tensor::randn(0f32, 1., (c.in_channels, 1, h / 8, w / 8), device)?.to_dtype(s.dtype)?;
    let caption = Tensor::randn(0f32, 1., (n_txt, c.cap_feat_dim), device)?.to_dtype(s.dtype)?;
    let timestep = Tensor::new(&[0.5f32], device)?;
    let cancel = crate::engines::progress::CancelToken::new();
    let latents = [latent];
    let captions = [caption];
    let step = || -> Result<()> {
        let out = model.forward_watched(&latents, &timestep, &captions, &cancel)?;
        device.synchronize()?;
        drop(out);
        Ok(())
    };
    let timed = timed_runs(device, (a.warmup, a.runs), "Z-Image step", step)?;
    let weights = flow_common::weights_json(s, &dir);
    let mut out = json!({
        "bench": "transformer",
        "model": ID,
        "width": w,
        "height": h,
        "image_tokens": (h / 16) * (w / 16),
        "text_tokens": n_txt,
        "timestep": 0.5,
        "parameters": c.parameters(),
        "weights": weights,
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
    fn the_committed_config_is_z_image_turbo() {
        let c = ZImageTransformerConfig::from_json(CONFIG).unwrap();
        assert_eq!(
            (c.dim, c.n_layers, c.n_refiner_layers, c.n_heads),
            (3840, 30, 2, 30)
        );
        assert_eq!(c.cap_feat_dim, 2560);
        let billions = c.parameters() as f64 / 1e9;
        assert!((6.0..6.3).contains(&billions), "{billions} B parameters");
        assert!(is_zimage("Z-Image-Turbo") && !is_zimage("flux-dev"));
    }
}
