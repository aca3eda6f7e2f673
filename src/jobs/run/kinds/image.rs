//! Image jobs on the worker: the prompt enhanced first when the job asks, then the diffusion
//! engine in passes the memory plan sizes, each image written and recorded before the next pass.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::engines::CancelToken;
use crate::engines::EngineEvent;
use crate::vocab::ResidencyChoice;

use crate::jobs::run::cache::{EngineKey, estimate_bytes};
use crate::jobs::run::engine::{Engine, EngineLoad};
use crate::jobs::run::events::{JobEvent, Timings};
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};

use super::KindJob;
use crate::jobs::spec::resolve::build_request;
use crate::jobs::store::JobRecord;

/// txt2img, img2img and inpaint: the prompt enhanced first when the job asks, then the diffusion
/// engine in passes the memory plan sizes.
pub(super) struct ImageJob;

impl KindJob for ImageJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        let id = record.id;
        let enhanced;
        let to_enhance = record
            .spec
            .image()
            .and_then(|p| p.enhance.as_ref())
            .is_some_and(|e| e.from.is_none());
        let spec = if to_enhance {
            enhanced = super::text::enhance_spec(w, record, cancel, timings)?;
            &enhanced
        } else {
            &record.spec
        };
        let model = (w.config.models)(&spec.model)?;
        let mut request = build_request(spec, w.config.preview_every)?;
        // Outputs recorded by an earlier attempt are kept, never produced twice.
        let mut outputs: Vec<PathBuf> = record
            .outputs
            .iter()
            .filter(|p| p.is_file())
            .cloned()
            .collect();
        let already = outputs.len() as u32;
        if already >= request.batch {
            return Ok(JobOutcome {
                outputs,
                ..JobOutcome::default()
            });
        }
        if already > 0 {
            if let Some(latents) = &request.init_latents
                && latents.dim(0)? == request.batch as usize
            {
                let rest = request.batch as usize - already as usize;
                request.init_latents = Some(latents.narrow(0, already as usize, rest)?);
            }
            request.seed = request.seed.wrapping_add(u64::from(already));
            request.batch -= already;
            tracing::info!(already, "resuming a partly written batch");
        }
        let dtype = (w.config.device.dtype)(spec.dtype)?;
        // The plan is made again now (memory may have changed since the job was queued) and
        // decides residency, attention slicing, VAE tiling and how many images run at once.
        crate::jobs::run::fault::point(w.config.switches.test_fault.as_deref(), "plan", id);
        let plan = match &w.config.planner {
            Some(planner) => Some(planner.plan(
                &model.dir,
                spec,
                &request,
                dtype,
                (model.family, &model.weights),
            )?),
            None => None,
        };
        let residency = match &plan {
            Some(plan) => plan.residency,
            None => spec
                .image()
                .and_then(|p| p.residency)
                .and_then(ResidencyChoice::forced)
                .unwrap_or_default(),
        };
        let per_pass = plan.as_ref().map_or(request.batch, |p| p.batch.max(1));
        if let Some(plan) = &plan {
            request.memory = plan.memory_modes();
        }
        let image_params = spec.image();
        // The job's own files first, then a quantized variant the model resolved to.
        let transformer = image_params
            .and_then(|p| p.transformer.clone())
            .or_else(|| model.weights.transformer.clone());
        let text_encoder_2 = image_params
            .and_then(|p| p.text_encoder_2.clone())
            .or_else(|| model.weights.text_encoder_2.clone());
        let no_t5 = image_params.is_some_and(|p| p.no_t5);
        let loras: Vec<_> = image_params
            .map(|p| p.loras.iter().map(|l| l.to_engine()).collect())
            .unwrap_or_default();
        let key = EngineKey {
            model_dir: model.dir.clone(),
            device: w.config.device.name.clone(),
            dtype,
            residency,
            weights: transformer.iter().chain(&text_encoder_2).cloned().collect(),
            no_t5,
            loras: loras
                .iter()
                .map(|l| (l.path.clone(), l.weight.to_bits()))
                .collect(),
        };
        let replaced_bytes: u64 = key
            .weights
            .iter()
            .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
            .sum();
        // The --upscale step's network, loaded first so a bad one fails before any image is made.
        let step = super::upscale::load_step(w, spec, dtype, timings)?;
        let load_started = Instant::now();
        let shared = Arc::clone(&w.shared);
        let device = w.config.device.device.clone();
        let switches = crate::engines::EngineSwitches::from_switches(&w.config.switches);
        let fault = w.config.switches.test_fault.clone();
        let (engine, fresh) = w.cache.get_or_load(
            &key,
            estimate_bytes(&model.dir, dtype) + replaced_bytes,
            || {
                shared.emit(JobEvent::Loading {
                    job: id,
                    stage: "model".into(),
                });
                crate::jobs::run::fault::point(fault.as_deref(), "load", id);
                Engine::load(&EngineLoad {
                    family: model.family,
                    path: &model.dir,
                    device: &device,
                    dtype,
                    residency,
                    switches,
                    transformer: transformer.as_deref(),
                    text_encoder_2: text_encoder_2.as_deref(),
                    no_t5,
                    loras: &loras,
                })
            },
        )?;
        let family = engine.family_name();
        let Some(engine) = engine.images() else {
            return Err(crate::Error::bad_input(format!(
                "model `{}` is a {family} model, not an image model",
                model.id
            )));
        };
        if fresh {
            let secs = load_started.elapsed().as_secs_f64();
            tracing::info!(model = %model.id, dtype = ?dtype, secs, "engine loaded");
            timings.insert("load".into(), secs);
        }
        if cancel.is_cancelled() {
            return Err(crate::Error::Cancelled);
        }
        let sink = |event: EngineEvent| w.shared.emit(to_job_event(id, event));
        let (mut generate_s, mut write_s) = (0.0, 0.0);
        let mut done = 0u32;
        // Passes of at most `per_pass` images (the plan shrinks the batch when memory is short);
        // each pass's outputs are recorded before the next starts, so --resume skips them.
        while done < request.batch {
            let mut pass = request.clone();
            pass.batch = per_pass.min(request.batch - done);
            pass.seed = request.seed.wrapping_add(u64::from(done));
            if let Some(latents) = &request.init_latents
                && latents.dim(0)? == request.batch as usize
            {
                pass.init_latents = Some(latents.narrow(0, done as usize, pass.batch as usize)?);
            }
            let generate_started = Instant::now();
            let images =
                match catch_unwind(AssertUnwindSafe(|| engine.generate(&pass, &sink, cancel))) {
                    Ok(result) => result?,
                    Err(panic) => {
                        w.cache.evict(&key);
                        return Err(engine_crash(panic));
                    }
                };
            generate_s += generate_started.elapsed().as_secs_f64();
            let write_started = Instant::now();
            for image in images {
                let mut image_spec = spec.clone();
                image_spec.seed = Some(image.seed);
                if let Some(p) = image_spec.image_mut() {
                    p.batch = 1;
                }
                let before_place = |target: &std::path::Path| {
                    Ok(w.shared.lock().store_mut().set_pending_output(id, target)?)
                };
                let path = match &step {
                    None => w.writer.write_png(&image.image, &image_spec, before_place),
                    Some(s) => {
                        sink(EngineEvent::Loading {
                            stage: "upscale".into(),
                        });
                        let upscaled = super::upscale::run_upscaler(
                            &s.upscaler,
                            &image::DynamicImage::ImageRgb8(image.image),
                            s.tile,
                            &sink,
                            cancel,
                        )?;
                        w.writer
                            .write_image_png(&upscaled, &image_spec, before_place)
                    }
                }
                .map_err(crate::Error::on_output_write)?;
                w.shared.lock().store_mut().record_output(id, &path)?;
                tracing::info!(path = %path.display(), "output written");
                outputs.push(path);
            }
            write_s += write_started.elapsed().as_secs_f64();
            done += pass.batch;
        }
        timings.insert("generate".into(), generate_s);
        timings.insert("write".into(), write_s);
        Ok(JobOutcome {
            outputs,
            text: spec
                .image()
                .and_then(|p| p.enhance.as_ref())
                .and_then(|e| e.from.as_ref())
                .map(|_| spec.prompt.clone()),
            duration_s: None,
        })
    }
}
