//! OpenAI's image API, the subset its clients use: `POST /v1/images/generations` and
//! `/v1/images/edits` with `prompt`, `model`, `n`, `size` and `response_format` (`b64_json`, or
//! `url`: a link to the native download route, which asks for the same token). Fields it does not use are ignored, as
//! OpenAI's own clients send ones older servers do not know.

use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::jobs::spec::JobOverrides;
use crate::serve::body::Json;
use crate::serve::error::{ApiError, ApiResult};
use crate::serve::state::AppState;
use crate::serve::{body, submit, views};

/// OpenAI's model names: they mean "the server's model", not a model of ours.
const OPENAI_MODELS: [&str; 3] = ["dall-e-2", "dall-e-3", "gpt-image-1"];

#[derive(Debug, Default, Deserialize)]
struct Generation {
    prompt: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    response_format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Url,
    B64Json,
}

impl Generation {
    fn format(&self) -> ApiResult<Format> {
        match self.response_format.as_deref() {
            None | Some("url") => Ok(Format::Url),
            Some("b64_json") => Ok(Format::B64Json),
            Some(other) => Err(ApiError::Unprocessable(format!(
                "response_format {other:?}: use \"url\" or \"b64_json\""
            ))),
        }
    }

    fn job(&self, state: &AppState) -> ApiResult<JobOverrides> {
        let n = self.n.unwrap_or(1);
        if !(1..=10).contains(&n) {
            return Err(ApiError::Unprocessable(format!(
                "n: {n}; it takes 1 to 10 images"
            )));
        }
        let (width, height) = match self.size.as_deref() {
            None | Some("auto") => (None, None),
            Some(size) => {
                let (w, h) = parse_size(size)?;
                (Some(w), Some(h))
            }
        };
        let asked = self
            .model
            .as_deref()
            .filter(|m| !OPENAI_MODELS.iter().any(|o| m.starts_with(o)));
        Ok(JobOverrides {
            model: Some(state.model_for(asked)?),
            prompt: Some(self.prompt.clone()),
            width,
            height,
            batch: Some(n),
            ..JobOverrides::default()
        })
    }
}

/// `WIDTHxHEIGHT`, e.g. `1024x1024`.
fn parse_size(size: &str) -> ApiResult<(u32, u32)> {
    size.split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
        .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0)
        .ok_or_else(|| {
            ApiError::Unprocessable(format!(
                "size {size:?}: write WIDTHxHEIGHT, e.g. 512x512, or \"auto\""
            ))
        })
}

/// `POST /v1/images/generations`.
pub async fn generations(
    State(state): State<AppState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Json<Value>> {
    let asked: Generation = body::json(&bytes)?;
    let format = asked.format()?;
    let job = asked.job(&state)?;
    let finished = submit::run_to_end(&state, job).await?;
    answer(&finished, format, &asked.prompt, &headers).await
}

/// OpenAI's answer: `created` and one `data` item an image, as `b64_json` or a `url`.
async fn answer(
    finished: &submit::Finished,
    format: Format,
    prompt: &str,
    headers: &HeaderMap,
) -> ApiResult<Json<Value>> {
    let data: Vec<Value> = match format {
        Format::B64Json => submit::read_outputs(finished)
            .await?
            .iter()
            .map(|bytes| {
                json!({
                    "b64_json": base64::engine::general_purpose::STANDARD.encode(bytes),
                    "revised_prompt": prompt,
                })
            })
            .collect(),
        Format::Url => {
            let base = base_url(headers);
            (0..finished.outputs.len())
                .map(|i| {
                    json!({
                        "url": format!("{base}{}", views::output_url(finished.id, i)),
                        "revised_prompt": prompt,
                    })
                })
                .collect()
        }
    };
    let created = crate::jobs::store::now_ms() / 1000;
    Ok(Json(json!({ "created": created, "data": data })))
}

/// `POST /v1/images/edits`: multipart/form-data with `image` (or `image[]`; the first is
/// used), an optional `mask` (a PNG whose transparent pixels are the ones to repaint) and the
/// generation fields. Without a mask the image is redrawn (img2img); with one, inpainted.
pub async fn edits(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let mut form = form
        .map_err(|e| ApiError::BadRequest(format!("the body is not multipart/form-data: {e}")))?;
    let mut asked = Generation::default();
    let (mut image, mut mask) = (None, None);
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or_default().to_owned();
        let data = field.bytes().await.map_err(form_error)?;
        let text = || {
            String::from_utf8(data.to_vec())
                .map_err(|_| ApiError::Unprocessable(format!("{name}: not UTF-8 text")))
        };
        match name.as_str() {
            "image" | "image[]" if image.is_none() => image = Some(data.clone()),
            "mask" => mask = Some(data.clone()),
            "prompt" => asked.prompt = text()?,
            "model" => asked.model = Some(text()?),
            "size" => asked.size = Some(text()?),
            "response_format" => asked.response_format = Some(text()?),
            "n" => {
                asked.n = Some(text()?.trim().parse().map_err(|_| {
                    ApiError::Unprocessable("n: a whole number from 1 to 10".to_owned())
                })?);
            }
            _ => {}
        }
    }
    if asked.prompt.trim().is_empty() {
        return Err(ApiError::Unprocessable(
            "prompt: missing; describe the edit".to_owned(),
        ));
    }
    let image = image.ok_or_else(|| {
        ApiError::Unprocessable("image: missing; send the image to edit as a file field".to_owned())
    })?;
    let format = asked.format()?;
    let mut job = asked.job(&state)?;
    let uploads = std::sync::Arc::clone(&state.uploads);
    let (init, mask) = tokio::task::spawn_blocking(move || {
        let init = uploads.store_image("image", &image)?;
        let mask = match mask {
            Some(m) => Some(uploads.store_image("mask", &repaint_mask(&m)?)?),
            None => None,
        };
        Ok::<_, ApiError>((init, mask))
    })
    .await??;
    job.init_image = Some(init);
    job.mask = mask;
    let finished = submit::run_to_end(&state, job).await?;
    answer(&finished, format, &asked.prompt, &headers).await
}

fn form_error(err: axum::extract::multipart::MultipartError) -> ApiError {
    if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(err.body_text())
    } else {
        ApiError::BadRequest(format!("the form: {}", err.body_text()))
    }
}

/// OpenAI's mask (transparent = repaint) as ours (white = repaint); a mask without alpha is
/// taken as ours already.
fn repaint_mask(bytes: &[u8]) -> ApiResult<Vec<u8>> {
    let mask = image::load_from_memory(bytes)
        .map_err(|e| ApiError::Unprocessable(format!("mask: cannot read the image: {e}")))?;
    let ours = if mask.color().has_alpha() {
        let rgba = mask.to_rgba8();
        image::GrayImage::from_fn(rgba.width(), rgba.height(), |x, y| {
            image::Luma([if rgba.get_pixel(x, y)[3] < 128 {
                255
            } else {
                0
            }])
        })
    } else {
        mask.to_luma8()
    };
    let mut out = std::io::Cursor::new(Vec::new());
    ours.write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ApiError::Internal(format!("mask: {e}")))?;
    Ok(out.into_inner())
}

/// `GET /v1/models`: the registry's image models and the operator's `--model`, as OpenAI lists
/// models (clients pick the `model` of a generation from it).
pub async fn models(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let data: Vec<Value> = crate::serve::system::image_models(&state)
        .await?
        .iter()
        .map(|(id, _)| json!({ "id": id, "object": "model", "created": 0, "owned_by": "pallaidium" }))
        .collect();
    Ok(Json(json!({ "object": "list", "data": data })))
}

/// `http://HOST` as the client reached the server (its `Host` header).
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_formats_read_as_openai_writes_them() {
        assert_eq!(parse_size("512x256").unwrap(), (512, 256));
        assert!(parse_size("512").is_err());
        assert!(parse_size("0x5").is_err());
        let g: Generation = serde_json::from_str(
            r#"{"prompt":"a cat","response_format":"b64_json","quality":"hd"}"#,
        )
        .unwrap();
        assert_eq!(g.format().unwrap(), Format::B64Json);
        let g: Generation =
            serde_json::from_str(r#"{"prompt":"a","response_format":"gif"}"#).unwrap();
        assert!(g.format().is_err());
        let mut headers = HeaderMap::new();
        headers.insert("host", "evil/<x>".parse().unwrap());
        assert_eq!(base_url(&headers), "http://127.0.0.1");
        headers.insert("host", "127.0.0.1:7860".parse().unwrap());
        assert_eq!(base_url(&headers), "http://127.0.0.1:7860");
    }

    #[test]
    fn transparent_mask_pixels_become_white_ones() {
        let mut rgba = image::RgbaImage::from_pixel(2, 1, image::Rgba([0, 0, 0, 255]));
        rgba.put_pixel(1, 0, image::Rgba([9, 9, 9, 0]));
        let mut png = std::io::Cursor::new(Vec::new());
        rgba.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let ours = image::load_from_memory(&repaint_mask(png.get_ref()).unwrap())
            .unwrap()
            .to_luma8();
        assert_eq!((ours.get_pixel(0, 0)[0], ours.get_pixel(1, 0)[0]), (0, 255));
    }
}
