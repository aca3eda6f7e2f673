//! `bench unet`: one UNet evaluation of a full-size architecture with random weights.
//!
//! What is timed: `UNet::forward` on a latent batch of `--batch` (batch 2 = one image with
//! classifier-free guidance), 77 text tokens, followed by a device synchronize. Weight creation
//! and input creation are outside the timed region; `--warmup` untimed runs come first.

use std::time::Instant;

use candle_core::{Device, Tensor};
use serde_json::{Value, json};

use super::configs::BenchModel;
use super::random::random_vb;
use super::report::{current_rss, median_min, peak, reset_peak};
use super::{BenchSetup, validate_size};
use crate::engines::sd::config::UNetConfig;
use crate::engines::sd::unet::{AddedConditioning, UNet};
use crate::{Error, Result};

/// The inputs of one UNet call.
struct Inputs {
    sample: Tensor,
    context: Tensor,
    added: Option<AddedConditioning>,
}

fn inputs(c: &UNetConfig, batch: usize, w: usize, h: usize, device: &Device) -> Result<Inputs> {
    let sample = Tensor::randn(0f32, 1., (batch, c.in_channels, h / 8, w / 8), device)?;
    let context = Tensor::randn(0f32, 1., (batch, 77, c.cross_attention_dim[0]), device)?;
    let added = match (
        c.addition_time_embed_dim,
        c.projection_class_embeddings_input_dim,
    ) {
        (Some(t), Some(p)) if c.needs_added_conditioning() => {
            let pooled = p.checked_sub(6 * t).ok_or_else(|| {
                Error::bad_input("projection_class_embeddings_input_dim is smaller than 6 time ids")
            })?;
            let ids: Vec<f32> = (0..batch)
                .flat_map(|_| [h as f32, w as f32, 0., 0., h as f32, w as f32])
                .collect();
            Some(AddedConditioning {
                text_embeds: Tensor::randn(0f32, 1., (batch, pooled), device)?,
                time_ids: Tensor::from_vec(ids, (batch, 6), device)?,
            })
        }
        _ => None,
    };
    Ok(Inputs {
        sample,
        context,
        added,
    })
}

pub fn run(model: &BenchModel, s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    let (w, h) = validate_size(a.width, a.height)?;
    let batch = a.batch.max(1) as usize;
    let config = model.unet_config()?;
    let device = &s.device.device;

    let rss_before_build = current_rss();
    let t = Instant::now();
    let switches = crate::engines::EngineSwitches::from_switches(s.switches);
    let unet = UNet::new(random_vb(s.dtype, device), config, switches)?;
    device.synchronize()?;
    let build_s = t.elapsed().as_secs_f64();
    let rss_after_build = current_rss();
    let inp = inputs(unet.config(), batch, w, h, device)?;
    let sample = inp.sample.to_dtype(s.dtype)?;
    let context = inp.context.to_dtype(s.dtype)?;
    let timestep = 500.0;
    let step = || -> Result<()> {
        let out = unet.forward(&sample, timestep, &context, inp.added.as_ref(), s.attention)?;
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
            "warm-up UNet step"
        );
    }
    let peak_reset = reset_peak(device);
    unet.take_profile();
    let mut times = Vec::with_capacity(a.runs as usize);
    for i in 0..a.runs.max(1) {
        let t = Instant::now();
        step()?;
        let d = t.elapsed();
        tracing::info!(run = i, secs = d.as_secs_f64(), "timed UNet step");
        times.push(d);
    }
    let (median_s, min_s) = median_min(&times);
    let (peak_bytes, peak_reserved, peak_kind) = peak(device, peak_reset);
    // PALLAIDIUM_PROFILE=1: milliseconds per step by kind of layer (synchronized around each).
    let runs = times.len().max(1) as f64;
    let profile: serde_json::Map<String, Value> = unet
        .take_profile()
        .into_iter()
        .map(|(kind, seconds, calls)| {
            let per_step = json!({"ms": seconds * 1e3 / runs, "calls": calls as f64 / runs});
            (kind.to_string(), per_step)
        })
        .collect();
    Ok(json!({
        "profile": profile,
        "bench": "unet",
        "model": model.id,
        "width": w,
        "height": h,
        "batch": batch,
        "timestep": timestep,
        "runs": times.len(),
        "warmup": a.warmup,
        "times_s": times.iter().map(|d| d.as_secs_f64()).collect::<Vec<_>>(),
        "median_s": median_s,
        "min_s": min_s,
        "build_s": build_s,
        "peak_bytes": peak_bytes,
        "peak_reserved_bytes": peak_reserved,
        "peak_kind": format!("{peak_kind}; over the timed runs"),
        "rss_after_build_bytes": rss_after_build,
        "rss_before_build_bytes": rss_before_build,
    }))
}
