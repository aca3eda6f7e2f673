//! Video jobs on the worker (txt2vid, img2vid with its init image): the clip made by the video
//! engine (Wan or LTX-Video), written as
//! `<seed>_<slug>.mp4` (atomically, recorded), then, with `--save-frames`, every frame as
//! `<mp4 stem>_NNNN.png` (zero-padded so they sort in frame order), then the `.json` sidecar
//! listing the .mp4 and the frames.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::engines::ltx::pipeline::LtxRequest;
use crate::engines::video::{VideoClip, fit_to_clip};
use crate::engines::wan::pipeline::VideoRequest;
use crate::engines::{CancelToken, EngineEvent};
use crate::jobs::output::video::check_clip;
use crate::jobs::run::engine::Engine;
use crate::jobs::run::events::Timings;
use crate::jobs::run::worker::{JobOutcome, Worker, engine_crash, to_job_event};
use crate::jobs::spec::latents_file::read_video_latents;
use crate::jobs::spec::resolve::load_image;
use crate::jobs::spec::video::VideoGeometry;
use crate::jobs::spec::{JobSpec, Params, VideoParams};
use crate::jobs::store::JobRecord;
use crate::vocab::{Residency, ResidencyChoice, Toggle};

use super::KindJob;
use super::media_engine::{Start, cached_engine_as, media_start, run_evicting, wrong_engine};

pub(super) struct VideoJob;

impl KindJob for VideoJob {
    fn run(
        &self,
        w: &mut Worker,
        record: &JobRecord,
        cancel: &CancelToken,
        timings: &mut Timings,
    ) -> crate::Result<JobOutcome> {
        run_evicting(w, record, |w| video_job(w, record, cancel, timings))
    }
}

/// `--init-latents`: the unpacked noise of the clip's latent shape.
fn init_latents(
    p: &VideoParams,
    (channels, ratio): (usize, u32),
    geometry: VideoGeometry,
) -> crate::Result<Option<candle_core::Tensor>> {
    match &p.init_latents {
        Some(path) => Ok(Some(read_video_latents(
            path,
            (channels, geometry.latent_frames(p.frames)),
            (p.width, p.height),
            ratio,
        )?)),
        None => Ok(None),
    }
}

fn request(
    spec: &JobSpec,
    p: &VideoParams,
    init_latents: Option<candle_core::Tensor>,
    vae_tiling: bool,
    preview_every: u32,
) -> crate::Result<VideoRequest> {
    // As given: the engine resizes it for the VAE (Wan 2.1's CLIP crops it its own way).
    let init_image = match &p.init_image {
        Some(path) => Some(load_image(path, "--init-image")?.to_rgb8()),
        None => None,
    };
    let last_image = match &p.last_image {
        Some(path) => Some(load_image(path, "--last-image")?.to_rgb8()),
        None => None,
    };
    Ok(VideoRequest {
        prompt: spec.prompt.clone(),
        negative: p.negative.clone(),
        steps: p.steps,
        guidance: p.guidance,
        width: p.width,
        height: p.height,
        frames: p.frames,
        seed: spec.seed.unwrap_or(0),
        init_latents,
        max_sequence_length: p.max_sequence_length,
        vae_tiling,
        preview_every,
        init_image,
        last_image,
    })
}

/// LTX-Video's request: the job's fps is the pipeline's `frame_rate` (it scales the RoPE's
/// time axis), the first frame resized to the clip as diffusers' video processor does.
fn ltx_request(
    spec: &JobSpec,
    p: &VideoParams,
    init_latents: Option<candle_core::Tensor>,
    vae_tiling: bool,
) -> crate::Result<LtxRequest> {
    let image = match &p.init_image {
        Some(path) => {
            let rgb = fit_to_clip(
                &load_image(path, "--init-image")?.to_rgb8(),
                p.width,
                p.height,
            );
            Some(crate::engines::sd::latents::image_to_tensor(
                &rgb,
                &candle_core::Device::Cpu,
                candle_core::DType::F32,
            )?)
        }
        None => None,
    };
    Ok(LtxRequest {
        prompt: spec.prompt.clone(),
        negative: p.negative.clone(),
        steps: p.steps,
        guidance: p.guidance,
        width: p.width,
        height: p.height,
        frames: p.frames,
        frame_rate: f64::from(p.fps),
        seed: spec.seed.unwrap_or(0),
        init_latents,
        max_sequence_length: p.max_sequence_length,
        // diffusers' defaults 0 and None (the timestep); 0.9.1+'s model cards suggest 0.03 and
        // 0.025.
        decode_timestep: p.decode_timestep.unwrap_or(0.0),
        decode_noise_scale: p.decode_noise_scale,
        image,
        vae_tiling,
    })
}

fn video_job(
    w: &mut Worker,
    record: &JobRecord,
    cancel: &CancelToken,
    timings: &mut Timings,
) -> crate::Result<JobOutcome> {
    let (id, spec) = (record.id, &record.spec);
    let Params::Video(p) = &spec.params else {
        return Err(crate::Error::bad_input(
            "a video job without its parameters",
        ));
    };
    let start = match media_start(w, record, "mp4")? {
        Start::Finished(outcome) => return Ok(outcome),
        Start::Run(start) => start,
    };
    // The plan again now (memory may have changed since the job was queued): residency and
    // tiling; without a planner, the job's own choices (resident unless staged is asked).
    let (residency, tiled) = match &w.config.planner {
        Some(planner) => {
            let plan =
                planner.plan_video((&start.model.dir, start.model.family), spec, start.dtype)?;
            (plan.residency, plan.vae_tiling)
        }
        None => (
            p.residency
                .and_then(ResidencyChoice::forced)
                .unwrap_or(Residency::Resident),
            p.vae_tiling == Some(Toggle::On),
        ),
    };
    let geometry = VideoGeometry::read(start.model.family, &start.model.dir)?;
    let engine = cached_engine_as(
        &mut w.cache,
        &w.shared,
        &w.config,
        id,
        &start.model,
        (start.dtype, residency, p.text_encoder_2.as_deref()),
        timings,
    )?;
    let shared = Arc::clone(&w.shared);
    let sink = move |event: EngineEvent| shared.emit(to_job_event(id, event));
    let started = Instant::now();
    let decoded = match engine {
        Engine::Wan(wan) => {
            let latents = init_latents(p, wan.latent_shape(), geometry)?;
            let req = request(spec, p, latents, tiled, w.config.preview_every)?;
            if cancel.is_cancelled() {
                return Err(crate::Error::Cancelled);
            }
            catch_unwind(AssertUnwindSafe(|| wan.generate(&req, &sink, cancel)))
        }
        Engine::Ltx(ltx) => {
            let latents = init_latents(p, ltx.latent_shape(), geometry)?;
            let req = ltx_request(spec, p, latents, tiled)?;
            if cancel.is_cancelled() {
                return Err(crate::Error::Cancelled);
            }
            catch_unwind(AssertUnwindSafe(|| ltx.generate(&req, &sink, cancel)))
        }
        other => return Err(wrong_engine(&start.model, other)),
    }
    .unwrap_or_else(|panic| Err(engine_crash(panic)))?;
    let clip = VideoClip::from_decoded(&decoded, p.fps)?;
    timings.insert("generate".into(), started.elapsed().as_secs_f64());
    check_clip(&clip)?;
    let write_started = Instant::now();
    let mut outputs = start.outputs;
    let mp4 = w
        .writer
        .write_mp4(&clip, spec, |target| {
            Ok(w.shared.lock().store_mut().set_pending_output(id, target)?)
        })
        .map_err(crate::Error::on_output_write)?;
    w.shared.lock().store_mut().record_output(id, &mp4)?;
    tracing::info!(path = %mp4.display(), frames = clip.frames.len(), "video written");
    outputs.push(mp4.clone());
    let mut frames = Vec::new();
    if p.save_frames {
        frames = write_frames(w, id, &clip, &mp4)?;
        outputs.extend(frames.iter().cloned());
    }
    w.writer
        .write_video_sidecar(&mp4, spec, &clip, &frames)
        .map_err(crate::Error::on_output_write)?;
    timings.insert("write".into(), write_started.elapsed().as_secs_f64());
    Ok(JobOutcome {
        outputs,
        text: None,
        duration_s: Some(clip.duration_s()),
    })
}

/// Every frame as `<mp4 stem>_NNNN.png`, each recorded as it is placed.
fn write_frames(
    w: &Worker,
    id: crate::jobs::run::events::JobId,
    clip: &VideoClip,
    mp4: &std::path::Path,
) -> crate::Result<Vec<PathBuf>> {
    let stem = mp4
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let digits = clip.frames.len().to_string().len().max(4);
    let mut paths = Vec::with_capacity(clip.frames.len());
    for (i, rgb) in clip.frames.iter().enumerate() {
        let image = image::RgbImage::from_raw(clip.width, clip.height, rgb.clone())
            .ok_or_else(|| crate::Error::job_failed("internal: a frame of the wrong size"))?;
        let mut bytes = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| crate::Error::job_failed(format!("PNG encoding failed: {e}")))?;
        let name = format!("{stem}_{:0digits$}", i + 1);
        let path = w
            .writer
            .write_bytes(&name, "png", &bytes, |target| {
                Ok(w.shared.lock().store_mut().set_pending_output(id, target)?)
            })
            .map_err(crate::Error::on_output_write)?;
        w.shared.lock().store_mut().record_output(id, &path)?;
        paths.push(path);
    }
    Ok(paths)
}
