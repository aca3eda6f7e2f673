//! `bench transformer`: one FLUX.1 transformer step of a full-size architecture.
//!
//! What is timed: `FluxTransformer::forward` on one packed latent of `(h/16)*(w/16)` image tokens
//! with `--text-tokens` T5 tokens (256 for schnell, 512 for dev, as their pipelines pad), pooled
//! CLIP, timestep 1.0 (and guidance 3.5 for dev), followed by one device synchronize. Loading
//! and input creation are outside the timed region; `--warmup` untimed runs come first.
//!
//! Weights: a diffusers `transformer/` folder (`--weights`, e.g. random bf16 safetensors written
//! by scripts/bench_flux_diffusers.py, so diffusers and we run the very same file), or a city96
//! GGUF (`--gguf`, kept quantized as the engine keeps it); the transformer's config.json is the
//! folder's, else the committed full-size one (`configs/flux-*/transformer/config.json`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use serde_json::{Value, json};

use super::report::{current_rss, median_min, peak, peak_rss, reset_peak};
use super::{BenchSetup, validate_size};
use crate::engines::flux::transformer::{
    FluxTransformer, FluxTransformerConfig, GgufMatmul, Inputs,
};
use crate::platform::paths::Paths;
use crate::{Error, Result};

/// A FLUX model's committed transformer config.
pub struct FluxBenchModel {
    pub id: &'static str,
    pub transformer: &'static str,
    /// T5 tokens its diffusers pipeline pads the prompt to (max_sequence_length).
    pub text_tokens: usize,
}

pub const FLUX_MODELS: [FluxBenchModel; 2] = [
    FluxBenchModel {
        id: "flux-schnell",
        transformer: include_str!("configs/flux-schnell/transformer/config.json"),
        text_tokens: 256,
    },
    FluxBenchModel {
        id: "flux-dev",
        transformer: include_str!("configs/flux-dev/transformer/config.json"),
        text_tokens: 512,
    },
];

/// The FLUX config for `--model` (registry aliases included).
pub fn find(model: &str) -> Result<&'static FluxBenchModel> {
    let id = match model.to_ascii_lowercase().as_str() {
        "flux-schnell" | "flux1-schnell" | "flux.1-schnell" | "schnell" => "flux-schnell",
        "flux-dev" | "flux1-dev" | "flux.1-dev" | "dev" => "flux-dev",
        other => {
            return Err(Error::bad_input(format!(
                "--model {other:?} has no transformer benchmark configuration: use flux-schnell, flux-dev, z-image-turbo or sd35-medium"
            )));
        }
    };
    FLUX_MODELS
        .iter()
        .find(|m| m.id == id)
        .ok_or_else(|| Error::bad_input(format!("no FLUX bench config {id}")))
}

/// The transformer/ folder to load from: `--weights`, else the committed config written under
/// PALLAIDIUM_HOME/bench-models/<id>/transformer (a GGUF brings every weight).
fn transformer_dir(model: &FluxBenchModel, s: &BenchSetup) -> Result<PathBuf> {
    if let Some(dir) = &s.args.weights {
        return Ok(dir.clone());
    }
    let paths = Paths::resolve(s.global.out.as_deref(), s.switches)?;
    let dir = paths
        .home
        .join("bench-models")
        .join(model.id)
        .join("transformer");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = dir.join("config.json");
    std::fs::write(&file, model.transformer).map_err(|e| Error::io(&file, e))?;
    Ok(dir)
}

/// FLUX's image ids for an `lh` x `lw` grid of 2x2 latent patches: (0, row, col).
fn image_ids(lh: usize, lw: usize, device: &Device) -> Result<Tensor> {
    let mut v = Vec::with_capacity(lh * lw * 3);
    for r in 0..lh {
        for c in 0..lw {
            v.extend([0f32, r as f32, c as f32]);
        }
    }
    Ok(Tensor::from_vec(v, (lh * lw, 3), device)?)
}

fn file_size(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

pub fn run(model: &FluxBenchModel, s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    let (w, h) = validate_size(a.width, a.height)?;
    if w % 16 != 0 || h % 16 != 0 {
        return Err(Error::bad_input(format!(
            "FLUX needs --width and --height in multiples of 16 ({w}x{h})"
        )));
    }
    if a.gguf.is_none() && a.weights.is_none() {
        return Err(Error::bad_input(
            "bench transformer needs --weights DIR (a diffusers transformer/ folder; \
             scripts/bench_flux_diffusers.py --write DIR makes random full-size ones) or \
             --gguf FILE (a city96 FLUX GGUF)",
        ));
    }
    let n_txt = a.text_tokens.map_or(model.text_tokens, |n| n as usize);
    if n_txt == 0 || n_txt > 4096 {
        return Err(Error::bad_input(format!(
            "--text-tokens {n_txt}: 1 to 4096"
        )));
    }
    let dir = transformer_dir(model, s)?;
    let config = FluxTransformerConfig::load(&dir.join("config.json"))?;
    let committed = FluxTransformerConfig::from_json(model.transformer)
        .map_err(|e| Error::bad_input(format!("bench config for {}: {e}", model.id)))?;
    if config.guidance_embeds != committed.guidance_embeds {
        return Err(Error::bad_input(format!(
            "{}: guidance_embeds = {} but --model {} has {}",
            dir.display(),
            config.guidance_embeds,
            model.id,
            committed.guidance_embeds
        )));
    }
    let device = &s.device.device;
    let switches = crate::engines::EngineSwitches::from_switches(s.switches);

    let rss_before_build = current_rss();
    let t = Instant::now();
    let mut model_t =
        FluxTransformer::load(&dir, a.gguf.as_deref(), device, s.dtype, switches, None)?;
    model_t.set_attention_mode(s.attention);
    device.synchronize()?;
    let build_s = t.elapsed().as_secs_f64();
    let rss_after_build = current_rss();

    let (lh, lw) = (h / 16, w / 16);
    let n_img = lh * lw;
    let c = model_t.config();
    let hidden = Tensor::randn(0f32, 1., (1, n_img, c.in_channels), device)?.to_dtype(s.dtype)?;
    let text =
        Tensor::randn(0f32, 1., (1, n_txt, c.joint_attention_dim), device)?.to_dtype(s.dtype)?;
    let pooled =
        Tensor::randn(0f32, 1., (1, c.pooled_projection_dim), device)?.to_dtype(s.dtype)?;
    let timestep = Tensor::new(&[1.0f32], device)?;
    let guidance_value = 3.5f32;
    let guidance = c
        .guidance_embeds
        .then(|| Tensor::new(&[guidance_value], device))
        .transpose()?;
    let img_ids = image_ids(lh, lw, device)?;
    let txt_ids = Tensor::zeros((n_txt, 3), DType::F32, device)?;
    let inputs = Inputs {
        hidden_states: &hidden,
        encoder_hidden_states: &text,
        pooled: &pooled,
        timestep: &timestep,
        guidance: guidance.as_ref(),
        img_ids: &img_ids,
        txt_ids: &txt_ids,
    };
    let cancel = crate::engines::progress::CancelToken::new();
    let step = || -> Result<()> {
        let out = model_t.forward_watched(&inputs, &cancel)?;
        device.synchronize()?;
        drop(out);
        Ok(())
    };

    for i in 0..a.warmup {
        let t = Instant::now();
        step()?;
        tracing::info!(
            run = i,
            secs = t.elapsed().as_secs_f64(),
            "warm-up FLUX step"
        );
    }
    // The whole process's peak so far (load + warm-up), before the timed runs' reset.
    let peak_rss_load_warmup = peak_rss();
    let peak_reset = reset_peak(device);
    let mut times = Vec::with_capacity(a.runs as usize);
    for i in 0..a.runs.max(1) {
        let t = Instant::now();
        step()?;
        let d = t.elapsed();
        tracing::info!(run = i, secs = d.as_secs_f64(), "timed FLUX step");
        times.push(d);
    }
    let (median_s, min_s) = median_min(&times);
    let (peak_bytes, peak_reserved, peak_kind) = peak(device, peak_reset);
    let weights = match &a.gguf {
        Some(g) => json!({
            "gguf": g.display().to_string(),
            "file_bytes": file_size(g),
            // How its quantized matrices were multiplied (PALLAIDIUM_GGUF_MATMUL or the default).
            "matmul": GgufMatmul::resolve(switches.gguf_matmul, device).word(),
            "cpu_threads": candle_core::utils::get_num_threads(),
        }),
        None => json!({"diffusers_dir": dir.display().to_string()}),
    };
    Ok(json!({
        "bench": "transformer",
        "model": model.id,
        "width": w,
        "height": h,
        "image_tokens": n_img,
        "text_tokens": n_txt,
        "timestep": 1.0,
        "guidance": c.guidance_embeds.then_some(guidance_value),
        "parameters": c.parameters(),
        "weights": weights,
        "weight_bytes_loaded": model_t.weight_bytes_loaded(),
        "runs": times.len(),
        "warmup": a.warmup,
        "times_s": times.iter().map(|d| d.as_secs_f64()).collect::<Vec<_>>(),
        "median_s": median_s,
        "min_s": min_s,
        "build_s": build_s,
        "peak_bytes": peak_bytes,
        "peak_reserved_bytes": peak_reserved,
        "peak_kind": format!("{peak_kind}; over the timed runs"),
        "peak_rss_load_and_warmup_bytes": peak_rss_load_warmup,
        "rss_after_build_bytes": rss_after_build,
        "rss_before_build_bytes": rss_before_build,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn committed_flux_configs_are_the_public_shapes() {
        for m in &FLUX_MODELS {
            let c = FluxTransformerConfig::from_json(m.transformer).unwrap();
            assert_eq!(c.num_layers, 19);
            assert_eq!(c.num_single_layers, 38);
            assert_eq!(c.inner_dim(), 3072);
            assert_eq!(c.guidance_embeds, m.id == "flux-dev");
        }
        assert_eq!(find("FLUX-SCHNELL").unwrap().text_tokens, 256);
        assert_eq!(find("flux-dev").unwrap().text_tokens, 512);
        assert_eq!(find("sd15").err().unwrap().exit_code(), 2);
    }

    #[test]
    fn image_ids_are_row_then_column() {
        let ids = image_ids(2, 3, &Device::Cpu)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(ids[4], vec![0.0, 1.0, 1.0]);
    }
}
