//! AUTOMATIC1111's web UI API, the subset its clients (Krita plug-ins, scripts, Open WebUI)
//! use: txt2img, img2img (with an inpainting mask), options (the checkpoint) and sd-models.
//! Requests and answers keep A1111's field names; fields it does not use are ignored.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::jobs::spec::JobOverrides;
use crate::serve::body::Json;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::state::AppState;
use crate::serve::{body, submit, uploads};
use crate::vocab::Scheduler;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Generation {
    prompt: String,
    negative_prompt: String,
    seed: Option<i64>,
    sampler_name: Option<String>,
    sampler_index: Option<String>,
    scheduler: Option<String>,
    batch_size: Option<u32>,
    n_iter: Option<u32>,
    steps: Option<u32>,
    cfg_scale: Option<f64>,
    width: Option<u32>,
    height: Option<u32>,
    override_settings: Map<String, Value>,
    // img2img
    init_images: Vec<String>,
    mask: Option<String>,
    denoising_strength: Option<f64>,
}

impl Generation {
    fn sampler(&self) -> ApiResult<Option<Scheduler>> {
        let Some(name) = self
            .sampler_name
            .as_deref()
            .or(self.sampler_index.as_deref())
        else {
            return Ok(None);
        };
        // A1111 1.9+ names the noise schedule apart: "DPM++ 2M" + "Karras".
        let karras = self
            .scheduler
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("karras"));
        let full = if karras && !name.to_ascii_lowercase().contains("karras") {
            format!("{name} Karras")
        } else {
            name.to_owned()
        };
        Scheduler::parse(&full)
            .map(Some)
            .map_err(|e| ApiError::Unprocessable(format!("sampler_name: {e}")))
    }

    fn job(&self, state: &AppState) -> ApiResult<JobOverrides> {
        let checkpoint = self
            .override_settings
            .get("sd_model_checkpoint")
            .and_then(Value::as_str);
        let images = self.batch_size.unwrap_or(1).max(1) * self.n_iter.unwrap_or(1).max(1);
        Ok(JobOverrides {
            model: Some(state.model_for(checkpoint)?),
            prompt: Some(self.prompt.clone()),
            negative: Some(self.negative_prompt.clone()).filter(|n| !n.is_empty()),
            // -1 (or any negative) is A1111's "random".
            seed: self.seed.and_then(|s| u64::try_from(s).ok()),
            scheduler: self.sampler()?,
            steps: self.steps,
            guidance: self.cfg_scale,
            width: self.width,
            height: self.height,
            batch: Some(images),
            strength: self.denoising_strength,
            ..JobOverrides::default()
        })
    }
}

/// `POST /sdapi/v1/txt2img`.
pub async fn txt2img(State(state): State<AppState>, bytes: Bytes) -> ApiResult<Json<Value>> {
    let asked: Generation = body::json(&bytes)?;
    let mut job = asked.job(&state)?;
    job.strength = None;
    generate(&state, &asked, job).await
}

/// `POST /sdapi/v1/img2img`: the first of `init_images`, and `mask` for inpainting.
pub async fn img2img(State(state): State<AppState>, bytes: Bytes) -> ApiResult<Json<Value>> {
    let asked: Generation = body::json(&bytes)?;
    let mut job = asked.job(&state)?;
    let first = asked.init_images.first().ok_or_else(|| {
        ApiError::Unprocessable("init_images: img2img needs one image (base64)".to_owned())
    })?;
    let uploads = Arc::clone(&state.uploads);
    let (init, mask) = (first.clone(), asked.mask.clone());
    let (init_path, mask_path) = tokio::task::spawn_blocking(move || {
        let init = uploads.store_image(
            "init_images[0]",
            &uploads::decode_base64("init_images[0]", &init)?,
        )?;
        let mask = match mask {
            Some(m) => Some(uploads.store_image("mask", &uploads::decode_base64("mask", &m)?)?),
            None => None,
        };
        Ok::<_, ApiError>((init, mask))
    })
    .await??;
    job.init_image = Some(init_path);
    job.mask = mask_path;
    generate(&state, &asked, job).await
}

async fn generate(
    state: &AppState,
    asked: &Generation,
    job: JobOverrides,
) -> ApiResult<Json<Value>> {
    let finished = submit::run_to_end(state, job).await?;
    let images: Vec<String> = submit::read_outputs(&finished)
        .await?
        .iter()
        .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
        .collect();
    let record = state.record(finished.id)?;
    let spec = &record.spec;
    let seed = spec.seed.unwrap_or_default();
    let all_seeds: Vec<u64> = (0..images.len() as u64).map(|i| seed + i).collect();
    let params = spec.image();
    let info = json!({
        "prompt": spec.prompt,
        "all_prompts": vec![spec.prompt.clone(); images.len()],
        "negative_prompt": params.map(|p| p.negative.clone()).unwrap_or_default(),
        "seed": seed,
        "all_seeds": all_seeds,
        "steps": params.map(|p| p.steps),
        "cfg_scale": params.map(|p| p.guidance),
        "width": params.map(|p| p.width),
        "height": params.map(|p| p.height),
        "sampler_name": params.map(|p| p.scheduler.as_str()),
        "sd_model_name": spec.model,
        "job": finished.id,
    });
    let parameters = echo(asked);
    Ok(Json(json!({
        "images": images,
        "parameters": parameters,
        "info": info.to_string(),
    })))
}

/// The request as A1111 echoes it back (without the images it uploaded).
fn echo(asked: &Generation) -> Value {
    json!({
        "prompt": asked.prompt,
        "negative_prompt": asked.negative_prompt,
        "seed": asked.seed.unwrap_or(-1),
        "sampler_name": asked.sampler_name,
        "batch_size": asked.batch_size.unwrap_or(1),
        "n_iter": asked.n_iter.unwrap_or(1),
        "steps": asked.steps,
        "cfg_scale": asked.cfg_scale,
        "width": asked.width,
        "height": asked.height,
        "denoising_strength": asked.denoising_strength,
    })
}

/// `GET /sdapi/v1/options`: the checkpoint jobs run with.
pub async fn get_options(State(state): State<AppState>) -> Json<Value> {
    let model = state.model_for(None).ok();
    Json(json!({
        "sd_model_checkpoint": model,
        "samples_format": "png",
    }))
}

/// `POST /sdapi/v1/options`: `sd_model_checkpoint` chooses the model of later requests; the
/// other options are A1111's own and are ignored.
pub async fn set_options(State(state): State<AppState>, bytes: Bytes) -> ApiResult<Json<Value>> {
    let options: Map<String, Value> = body::json(&bytes)?;
    if let Some(value) = options.get("sd_model_checkpoint") {
        let model = value
            .as_str()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .ok_or_else(|| {
                ApiError::Unprocessable(
                    "sd_model_checkpoint: a model id (see /sdapi/v1/sd-models)".to_owned(),
                )
            })?;
        *state
            .a1111_model
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(model.to_owned());
        tracing::info!(model, "A1111 client chose the checkpoint");
    }
    Ok(Json(Value::Null))
}

/// `GET /sdapi/v1/sd-models`: the registry's image models, and the operator's `--model`.
pub async fn sd_models(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let models = crate::serve::system::image_models(&state).await?;
    Ok(Json(Value::Array(
        models.iter().map(|(id, file)| entry(id, file)).collect(),
    )))
}

/// `GET /sdapi/v1/samplers`: the schedulers under A1111's names (which `sampler_name` takes).
pub async fn samplers() -> Json<Value> {
    let list: Vec<Value> = Scheduler::ALL
        .iter()
        .map(|s| json!({ "name": a1111_name(*s), "aliases": [s.as_str()], "options": {} }))
        .collect();
    Json(Value::Array(list))
}

fn a1111_name(s: Scheduler) -> &'static str {
    match s {
        Scheduler::Ddim => "DDIM",
        Scheduler::Euler => "Euler",
        Scheduler::EulerA => "Euler a",
        Scheduler::DpmPp2m => "DPM++ 2M",
        Scheduler::DpmPp2mKarras => "DPM++ 2M Karras",
        Scheduler::UniPc => "UniPC",
        Scheduler::FlowEuler => "Flow Euler",
    }
}

fn entry(id: &str, file: &str) -> Value {
    json!({
        "title": id,
        "model_name": id,
        "hash": null,
        "sha256": null,
        "filename": file,
        "config": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_read_as_a1111_names_them() {
        let g = |sampler: &str, scheduler: Option<&str>| Generation {
            sampler_name: Some(sampler.to_owned()),
            scheduler: scheduler.map(str::to_owned),
            ..Generation::default()
        };
        assert_eq!(
            g("Euler a", None).sampler().unwrap(),
            Some(Scheduler::EulerA)
        );
        assert_eq!(
            g("DPM++ 2M", Some("Karras")).sampler().unwrap(),
            Some(Scheduler::DpmPp2mKarras)
        );
        assert_eq!(
            g("DPM++ 2M Karras", Some("Karras")).sampler().unwrap(),
            Some(Scheduler::DpmPp2mKarras)
        );
        assert_eq!(
            g("DDIM", Some("Automatic")).sampler().unwrap(),
            Some(Scheduler::Ddim)
        );
        assert!(g("LMS", None).sampler().is_err());
        for s in Scheduler::ALL {
            assert_eq!(g(a1111_name(s), None).sampler().unwrap(), Some(s), "{s:?}");
        }
    }
}
