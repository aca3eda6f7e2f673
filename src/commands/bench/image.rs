//! `bench image`: a whole generation from files on disk. Timed stages: `SdPipeline::load`
//! (configs, tokenizers, memory-mapped weights of every component), then per run: text
//! encoding, the first denoising step, all steps, VAE decode. Stage boundaries come from the
//! engine's own progress events, so nothing is added to the pipeline to time it.

use std::sync::Mutex;
use std::time::Instant;

use serde_json::{Value, json};

use super::configs::BenchModel;
use super::report::{median_min, peak, reset_peak};
use super::{BenchSetup, validate_size, weights_dir};
use crate::Result;
use crate::engines::progress::{CancelToken, EngineEvent, ProgressSink};
use crate::engines::sd::SdPipeline;
use crate::engines::sd::request::{GenerateRequest, LoadOptions, MemoryModes};
use crate::platform::paths::Paths;
use crate::vocab::Residency;

/// Event timestamps of one generation.
struct Recorder {
    start: Instant,
    marks: Mutex<Vec<(String, f64)>>,
}

impl ProgressSink for Recorder {
    fn emit(&self, event: EngineEvent) {
        let label = match event {
            EngineEvent::Loading { stage } => stage,
            EngineEvent::Progress { step, .. } => format!("step {step}"),
            EngineEvent::Preview(_) | EngineEvent::Text { .. } => return,
        };
        if let Ok(mut m) = self.marks.lock() {
            m.push((label, self.start.elapsed().as_secs_f64()));
        }
    }
}

/// Seconds at the first mark with this label.
fn at(marks: &[(String, f64)], label: &str) -> Option<f64> {
    marks.iter().find(|(l, _)| l == label).map(|(_, t)| *t)
}

/// Per-stage seconds of one generation from its marks and total time.
fn stages(marks: &[(String, f64)], steps: u32, total: f64) -> Value {
    let text = at(marks, "text_encoder").unwrap_or(0.0);
    let unet = at(marks, "unet");
    let first = at(marks, "step 1");
    let last = at(marks, &format!("step {steps}"));
    let decode = at(marks, "vae_decode");
    let diff = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let denoise = diff(unet, last);
    json!({
        "text_encoder_s": diff(Some(text), unet),
        "first_step_s": diff(unet, first),
        "denoise_s": denoise,
        "step_mean_s": denoise.map(|d| d / f64::from(steps.max(1))),
        "vae_decode_s": decode.map(|d| total - d),
        "generate_s": total,
        "generate_to_first_step_s": first,
    })
}

pub fn run(model: &BenchModel, s: &BenchSetup) -> Result<Value> {
    let a = s.args;
    validate_size(a.width, a.height)?;
    crate::jobs::spec::resolve::check_steps(a.steps)?;
    let paths = Paths::resolve(s.global.out.as_deref(), s.switches)?;
    let t = Instant::now();
    let (dir, written) = weights_dir::ensure(model, &paths.home)?;
    let write_s = t.elapsed().as_secs_f64();

    let opts = LoadOptions {
        model_dir: dir.clone(),
        device: s.device.device.clone(),
        dtype: s.dtype,
        residency: Residency::Resident,
        prefer_fp16_variant: false,
        switches: crate::engines::EngineSwitches::from_switches(s.switches),
        loras: vec![],
    };
    let peak_reset = reset_peak(&s.device.device);
    let t = Instant::now();
    let mut pipe = SdPipeline::load(&opts)?;
    s.device.device.synchronize()?;
    let load_s = t.elapsed().as_secs_f64();

    let req = GenerateRequest {
        prompt: "a photograph of an astronaut riding a horse".into(),
        steps: a.steps,
        guidance: 7.5,
        width: a.width,
        height: a.height,
        batch: a.batch.max(1),
        scheduler: crate::vocab::Scheduler::Euler,
        memory: MemoryModes {
            attention_slice: match s.attention {
                crate::engines::nn::attention::AttentionMode::Sliced { query_chunk } => {
                    Some(query_chunk)
                }
                _ => None,
            },
            vae_tiling: false,
        },
        ..GenerateRequest::default()
    };
    let cancel = CancelToken::new();
    let mut runs = Vec::new();
    let mut totals = Vec::new();
    for i in 0..(a.warmup + a.runs) {
        let rec = Recorder {
            start: Instant::now(),
            marks: Mutex::new(Vec::new()),
        };
        pipe.generate(&req, &rec, &cancel)?;
        s.device.device.synchronize()?;
        let total = rec.start.elapsed();
        let marks = rec.marks.lock().map(|m| m.clone()).unwrap_or_default();
        tracing::info!(run = i, secs = total.as_secs_f64(), "generation");
        if i >= a.warmup {
            runs.push(stages(&marks, a.steps, total.as_secs_f64()));
            totals.push(total);
        }
    }
    let (median_s, min_s) = median_min(&totals);
    let (peak_bytes, peak_reserved, peak_kind) = peak(&s.device.device, peak_reset);
    let first_gen = runs
        .first()
        .and_then(|r| r["generate_to_first_step_s"].as_f64());
    Ok(json!({
        "bench": "image",
        "model": model.id,
        "model_dir": dir.display().to_string(),
        "weights_written_now": written,
        "write_s": if written { Some(write_s) } else { None },
        "width": a.width,
        "height": a.height,
        "batch": req.batch,
        "steps": a.steps,
        "guidance": req.guidance,
        "scheduler": req.scheduler,
        "runs": runs.len(),
        "warmup": a.warmup,
        "load_s": load_s,
        "load_to_first_step_s": first_gen.map(|g| load_s + g),
        "median_s": median_s,
        "min_s": min_s,
        "stages": runs,
        "peak_bytes": peak_bytes,
        "peak_reserved_bytes": peak_reserved,
        "peak_kind": format!("{peak_kind}; over load and every generation"),
        // What the peak depends on: the decode holds one image's activations at a time.
        "vae_decode": format!(
            "one image at a time, untiled, in {} (SDXL: f32 when its VAE says force_upcast, as \
             diffusers; a half-precision decode that overflows is redone in f32)",
            crate::engines::nn::dtype::dtype_name(s.dtype)
        ),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stage_times_come_from_event_marks() {
        let marks: Vec<(String, f64)> = [
            ("text_encoder", 0.0),
            ("unet", 1.0),
            ("step 1", 3.0),
            ("step 2", 5.0),
            ("vae_decode", 5.5),
        ]
        .iter()
        .map(|(l, t)| (l.to_string(), *t))
        .collect();
        let s = stages(&marks, 2, 7.0);
        assert_eq!(s["text_encoder_s"], 1.0);
        assert_eq!(s["first_step_s"], 2.0);
        assert_eq!(s["denoise_s"], 4.0);
        assert_eq!(s["step_mean_s"], 2.0);
        assert_eq!(s["vae_decode_s"], 1.5);
    }
}
