//! What an output PNG carries: an A1111-style `parameters` text chunk (readable by other tools)
//! and a `pallaidium` JSON chunk with the whole resolved JobSpec; and reading them back.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use super::lora_tags;
use crate::jobs::spec::{JobOverrides, JobSpec};
use crate::vocab::Scheduler;

/// Keyword of the JSON chunk holding the JobSpec.
pub const SPEC_KEYWORD: &str = "pallaidium";
/// Keyword of the JSON chunk holding the PALLAIDIUM_* switches set when it was made (if any).
pub const SWITCHES_KEYWORD: &str = "pallaidium-switches";
/// Keyword A1111 / Forge / ComfyUI importers read.
pub const PARAMETERS_KEYWORD: &str = "parameters";

/// Scheduler names as the CLI takes them, with their A1111 sampler names.
const SAMPLERS: &[(&str, &str)] = &[
    ("ddim", "DDIM"),
    ("euler", "Euler"),
    ("euler-a", "Euler a"),
    ("dpm++2m", "DPM++ 2M"),
    ("dpm++2m-karras", "DPM++ 2M Karras"),
    ("unipc", "UniPC"),
];

fn sampler_name(scheduler: Scheduler) -> &'static str {
    SAMPLERS
        .iter()
        .find(|(ours, _)| *ours == scheduler.as_str())
        .map_or(scheduler.as_str(), |(_, theirs)| theirs)
}

/// A sampler another tool wrote: A1111's name, ours or an alias; None (the model's default, with
/// a warning) for one we do not have.
fn scheduler_from_sampler(sampler: &str) -> Option<Scheduler> {
    let ours = SAMPLERS
        .iter()
        .find(|(_, theirs)| theirs.eq_ignore_ascii_case(sampler))
        .map_or(sampler, |(ours, _)| ours);
    Scheduler::parse(ours)
        .inspect_err(|e| tracing::warn!("Sampler: {e}; the model's default is used"))
        .ok()
}

/// The A1111 `parameters` text of an image job (other jobs: the prompt and model).
pub fn a1111_parameters(spec: &JobSpec) -> String {
    let mut text = spec.prompt.clone();
    let image = spec.image();
    text.push_str(&lora_tags::tags(
        image.map(|p| p.loras.as_slice()).unwrap_or_default(),
    ));
    if let Some(p) = image
        && !p.negative.is_empty()
    {
        text.push_str("\nNegative prompt: ");
        text.push_str(&p.negative);
    }
    let mut fields = vec![];
    if let Some(p) = image {
        fields.push(format!("Steps: {}", p.steps));
        fields.push(format!("Sampler: {}", sampler_name(p.scheduler)));
        fields.push(format!("CFG scale: {}", p.guidance));
    }
    if let Some(seed) = spec.seed {
        fields.push(format!("Seed: {seed}"));
    }
    if let Some(p) = image {
        fields.push(format!("Size: {}x{}", p.width, p.height));
    }
    fields.push(format!("Model: {}", spec.model));
    if let Some(p) = image
        && p.init_image.is_some()
    {
        fields.push(format!("Denoising strength: {}", p.strength));
    }
    // A1111's Extras tab names its upscaling so.
    let upscaled = match &spec.params {
        crate::jobs::spec::Params::Upscale(p) => Some((p.scale, spec.model.as_str())),
        _ => image
            .and_then(|p| p.upscale.as_ref())
            .map(|u| (u.scale, u.model.as_str())),
    };
    if let Some((scale, model)) = upscaled {
        fields.push(format!("Postprocess upscale by: {scale}"));
        fields.push(format!("Postprocess upscaler: {model}"));
    }
    text.push('\n');
    text.push_str(&fields.join(", "));
    text
}

/// Best-effort reading of an A1111 `parameters` text (from any tool) into the job it asks for.
pub fn parse_a1111(text: &str) -> JobOverrides {
    let mut job = JobOverrides::default();
    let lines: Vec<&str> = text.lines().collect();
    // The last line holding "Steps: " is the settings line; before it prompt and negative.
    let settings_at = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("Steps:"));
    let (body, settings) = match settings_at {
        Some(i) => (&lines[..i], Some(lines[i])),
        None => (&lines[..], None),
    };
    let mut prompt = vec![];
    let mut negative: Option<Vec<&str>> = None;
    for line in body {
        if let Some(rest) = line.strip_prefix("Negative prompt:") {
            negative = Some(vec![rest.trim_start()]);
        } else if let Some(neg) = negative.as_mut() {
            neg.push(line);
        } else {
            prompt.push(*line);
        }
    }
    let (prompt, loras) = lora_tags::take(&prompt.join("\n"));
    job.prompt = Some(prompt);
    job.lora = (!loras.is_empty()).then_some(loras);
    job.negative = negative.map(|n| n.join("\n"));
    for field in settings.unwrap_or("").split(", ") {
        let Some((key, value)) = field.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "Steps" => job.steps = value.parse().ok(),
            "Sampler" => job.scheduler = scheduler_from_sampler(value),
            "CFG scale" => job.guidance = value.parse().ok(),
            "Seed" => job.seed = value.parse().ok(),
            "Size" => {
                if let Some((w, h)) = value.split_once('x') {
                    job.width = w.parse().ok();
                    job.height = h.parse().ok();
                }
            }
            "Model" => job.model = Some(value.to_string()),
            "Denoising strength" => job.strength = value.parse().ok(),
            _ => {}
        }
    }
    job
}

/// Encodes an RGB image with both chunks into `out`, and the recorded `switches` (when any).
pub fn encode_png(
    out: impl Write,
    image: &image::RgbImage,
    spec: &JobSpec,
    switches: &std::collections::BTreeMap<String, String>,
) -> Result<(), png::EncodingError> {
    let pixels = Pixels {
        width: image.width(),
        height: image.height(),
        alpha: false,
        data: image.as_raw(),
    };
    encode_png_pixels(out, &pixels, spec, switches)
}

/// 8-bit pixels to encode: RGB, or RGBA with `alpha`.
pub struct Pixels<'a> {
    pub width: u32,
    pub height: u32,
    pub alpha: bool,
    pub data: &'a [u8],
}

/// Encodes 8-bit RGB or RGBA pixels with both chunks (see `encode_png`).
pub fn encode_png_pixels(
    out: impl Write,
    image: &Pixels<'_>,
    spec: &JobSpec,
    switches: &std::collections::BTreeMap<String, String>,
) -> Result<(), png::EncodingError> {
    let mut encoder = png::Encoder::new(out, image.width, image.height);
    encoder.set_color(if image.alpha {
        png::ColorType::Rgba
    } else {
        png::ColorType::Rgb
    });
    encoder.set_depth(png::BitDepth::Eight);
    let parameters = a1111_parameters(spec);
    // tEXt is Latin-1 only; other prompts go in UTF-8 iTXt (what PIL does too).
    if parameters.chars().all(|c| u32::from(c) < 256) {
        encoder.add_text_chunk(PARAMETERS_KEYWORD.into(), parameters)?;
    } else {
        encoder.add_itxt_chunk(PARAMETERS_KEYWORD.into(), parameters)?;
    }
    let json = serde_json::to_string(spec)
        .map_err(|e| png::EncodingError::IoError(std::io::Error::other(e)))?;
    encoder.add_itxt_chunk(SPEC_KEYWORD.into(), json)?;
    if !switches.is_empty() {
        encoder.add_itxt_chunk(
            SWITCHES_KEYWORD.into(),
            serde_json::json!(switches).to_string(),
        )?;
    }
    let mut writer = encoder.write_header()?;
    writer.write_image_data(image.data)?;
    writer.finish()
}

/// What an output stores.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredParams {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The A1111 `parameters` text, if any.
    pub parameters: Option<String>,
    /// The JobSpec from the `pallaidium` chunk (None for other tools' PNGs).
    pub spec: Option<JobSpec>,
    /// The job to run it again: the spec's values, or those parsed from `parameters`.
    pub job: JobOverrides,
    /// The PALLAIDIUM_* switches that were set when it was made (`platform::switches`).
    pub switches: std::collections::BTreeMap<String, String>,
}

/// Reads the parameters stored in a PNG (ours, or A1111-style from other tools).
pub fn read_parameters(path: &Path) -> crate::Result<StoredParams> {
    let bad = |what: String| {
        crate::Error::bad_input(format!(
            "{}: {what}; pass a PNG written by pallaidium (or another tool that stores a \
             `parameters` chunk)",
            path.display()
        ))
    };
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot open it ({e})")))?;
    let reader = png::Decoder::new(BufReader::new(file))
        .read_info()
        .map_err(|e| bad(format!("not a readable PNG ({e})")))?;
    let info = reader.info();
    let mut parameters = None;
    let mut json = None;
    let mut switches = std::collections::BTreeMap::new();
    for chunk in &info.uncompressed_latin1_text {
        if chunk.keyword == PARAMETERS_KEYWORD {
            parameters = Some(chunk.text.clone());
        }
    }
    for chunk in &info.compressed_latin1_text {
        if chunk.keyword == PARAMETERS_KEYWORD {
            parameters = chunk.get_text().ok().or(parameters);
        }
    }
    for chunk in &info.utf8_text {
        let text = chunk.get_text().ok();
        match chunk.keyword.as_str() {
            PARAMETERS_KEYWORD => parameters = text.or(parameters),
            SPEC_KEYWORD => json = text,
            SWITCHES_KEYWORD => {
                switches =
                    serde_json::from_str(text.as_deref().unwrap_or_default()).map_err(|e| {
                        bad(format!("its {SWITCHES_KEYWORD} chunk does not parse ({e})"))
                    })?
            }
            _ => {}
        }
    }
    let (width, height) = (info.width, info.height);
    let (spec, job) = match (json, &parameters) {
        (Some(json), _) => {
            let spec = serde_json::from_str::<JobSpec>(&json)
                .map_err(|e| bad(format!("its pallaidium chunk does not parse ({e})")))?;
            let job = spec.to_overrides();
            (Some(spec), job)
        }
        (None, Some(text)) => (None, parse_a1111(text)),
        (None, None) => return Err(bad("it stores no generation parameters".into())),
    };
    Ok(StoredParams {
        path: path.to_path_buf(),
        width,
        height,
        parameters,
        spec,
        job,
        switches,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved() -> JobSpec {
        JobSpec {
            model: "sd15".into(),
            prompt: "a red fox, snow".into(),
            seed: Some(1234),
            params: crate::jobs::spec::Params::Image(crate::jobs::spec::ImageParams {
                negative: "blurry".into(),
                steps: 20,
                guidance: 7.5,
                width: 512,
                height: 768,
                batch: 1,
                scheduler: Scheduler::EulerA,
                ..Default::default()
            }),
            ..JobSpec::default()
        }
    }

    #[test]
    fn parameters_text_is_a1111_shaped() {
        assert_eq!(
            a1111_parameters(&resolved()),
            "a red fox, snow\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, \
             Seed: 1234, Size: 512x768, Model: sd15"
        );
    }

    #[test]
    fn loras_are_a1111_tags_in_the_prompt_and_parse_back() {
        let mut spec = resolved();
        if let Some(p) = spec.image_mut() {
            p.loras = vec![
                crate::jobs::spec::lora::LoraRef {
                    path: "/l/ink style.safetensors".into(),
                    weight: 0.8,
                },
                crate::jobs::spec::lora::LoraRef {
                    path: "/l/detail.safetensors".into(),
                    weight: 1.0,
                },
            ];
        }
        let text = a1111_parameters(&spec);
        assert!(
            text.starts_with("a red fox, snow <lora:ink style:0.8> <lora:detail:1>\n"),
            "{text}"
        );
        let back = parse_a1111(&text);
        assert_eq!(back.prompt.as_deref(), Some("a red fox, snow"));
        assert_eq!(
            back.lora,
            Some(vec!["ink style@0.8".to_string(), "detail@1".to_string()])
        );
    }

    #[test]
    fn a1111_text_parses_back() {
        let spec = resolved();
        let back = parse_a1111(&a1111_parameters(&spec));
        assert_eq!(back.prompt, Some(spec.prompt));
        assert_eq!(back.negative.as_deref(), Some("blurry"));
        assert_eq!(back.steps, Some(20));
        assert_eq!(back.scheduler, Some(Scheduler::EulerA));
        assert_eq!(back.guidance, Some(7.5));
        assert_eq!(back.seed, Some(1234));
        assert_eq!((back.width, back.height), (Some(512), Some(768)));
        assert_eq!(back.model.as_deref(), Some("sd15"));
    }

    #[test]
    fn png_round_trips_both_chunks_even_for_unicode_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.png");
        let mut spec = resolved();
        spec.prompt = "猫 on a mat".into();
        let image = image::RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut bytes = vec![];
        let switches = std::collections::BTreeMap::from([(
            "PALLAIDIUM_STOCK_KERNELS".to_owned(),
            "1".to_owned(),
        )]);
        encode_png(&mut bytes, &image, &spec, &switches).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let stored = read_parameters(&path).unwrap();
        assert_eq!(stored.spec.as_ref(), Some(&spec));
        assert_eq!(stored.job, spec.to_overrides());
        assert_eq!(stored.switches, switches);
        assert_eq!((stored.width, stored.height), (16, 8));
        assert!(
            stored
                .parameters
                .unwrap()
                .starts_with("猫 on a mat\nNegative prompt: blurry")
        );
        let decoded = image::open(&path).unwrap().to_rgb8();
        assert_eq!(decoded, image);
    }

    #[test]
    fn a_png_without_parameters_is_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plain.png");
        image::RgbImage::new(4, 4).save(&path).unwrap();
        let err = read_parameters(&path).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().contains("no generation parameters"),
            "{err}"
        );
        let err = read_parameters(&dir.path().join("missing.png")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
