//! A diffusers pipeline folder on disk: model_index.json plus one sub-folder per component. Reads the
//! configs (never the weights) to find the family, inpainting, the prediction type and the files.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::entry::{Defaults, Family};
use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionType {
    Epsilon,
    VPrediction,
    Sample,
}

/// The component folders of the pipeline (absolute or relative as `dir` was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentPaths {
    /// The denoiser: unet/ (Stable Diffusion) or transformer/ (FLUX).
    pub denoiser: PathBuf,
    pub vae: PathBuf,
    pub text_encoder: PathBuf,
    pub text_encoder_2: Option<PathBuf>,
    pub tokenizer: PathBuf,
    pub tokenizer_2: Option<PathBuf>,
    pub scheduler: PathBuf,
}

impl ComponentPaths {
    /// A transformer folder with one text encoder (Wan, LTX-Video, Z-Image): transformer/, vae/,
    /// text_encoder/, tokenizer/, scheduler/.
    pub fn transformer_with_one_encoder(dir: &Path) -> Self {
        Self {
            denoiser: dir.join("transformer"),
            vae: dir.join("vae"),
            text_encoder: dir.join("text_encoder"),
            text_encoder_2: None,
            tokenizer: dir.join("tokenizer"),
            tokenizer_2: None,
            scheduler: dir.join("scheduler"),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelLayout {
    pub dir: PathBuf,
    pub family: Family,
    pub inpainting: bool,
    pub prediction_type: PredictionType,
    /// The UNet folder holds a `*.fp16.safetensors` variant.
    pub has_fp16_variants: bool,
    pub paths: ComponentPaths,
    /// model_index.json's `_class_name`, e.g. "StableDiffusionXLPipeline".
    pub pipeline_class: String,
    /// Pixels per latent cell: 2^(number of VAE blocks - 1), 8 for every real SD model.
    pub vae_scale_factor: u32,
    /// The UNet's `sample_size` (latent side it was trained at), when given.
    pub unet_sample_size: Option<u32>,
    /// FLUX: whether the transformer embeds `--guidance` (dev) or has no guidance input
    /// (schnell). None for UNet families.
    pub embedded_guidance: Option<bool>,
}

impl ModelLayout {
    /// Read a diffusers folder. Errors name the folder and the missing or broken file.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::bad_input(format!(
                "{} is not a folder; --model takes a registry id (see `pallaidium models`) or a diffusers folder",
                dir.display()
            )));
        }
        let index = read_json(dir, "model_index.json")?;
        let pipeline_class = index
            .get("_class_name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let listed = |name: &str| {
            index
                .get(name)
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| !v.is_null()))
        };

        if super::flux_layout::is_flux(dir, &pipeline_class) {
            return super::flux_layout::open(dir, pipeline_class);
        }
        if super::zimage_layout::is_zimage(dir, &pipeline_class) {
            return super::zimage_layout::open(dir, pipeline_class);
        }
        if super::wan_layout::is_wan(&pipeline_class) {
            return super::wan_layout::open(dir, pipeline_class);
        }
        if super::ltx_layout::is_ltx(&pipeline_class) {
            return super::ltx_layout::open(dir, pipeline_class);
        }
        if super::sd3_layout::is_sd3(dir, &pipeline_class) {
            return super::sd3_layout::open(dir, pipeline_class);
        }
        let unet_cfg = read_json(dir, "unet/config.json")?;
        let vae_cfg = read_json(dir, "vae/config.json")?;
        let te_cfg = read_json(dir, "text_encoder/config.json")?;
        let sched_cfg = read_json(dir, "scheduler/scheduler_config.json")?;
        check_tokenizer(dir, "tokenizer")?;

        let has_second = listed("text_encoder_2") || dir.join("text_encoder_2").is_dir();
        if has_second {
            read_json(dir, "text_encoder_2/config.json")?;
            check_tokenizer(dir, "tokenizer_2")?;
        }

        let prediction_type = match sched_cfg.get("prediction_type").and_then(Value::as_str) {
            None | Some("epsilon") => PredictionType::Epsilon,
            Some("v_prediction") => PredictionType::VPrediction,
            Some("sample") => PredictionType::Sample,
            Some(other) => {
                return Err(Error::bad_input(format!(
                    "{}: unknown prediction_type `{other}` (expected epsilon, v_prediction or sample)",
                    dir.join("scheduler/scheduler_config.json").display()
                )));
            }
        };
        let family = detect_family(
            &unet_cfg,
            &te_cfg,
            &pipeline_class,
            has_second,
            prediction_type,
        );
        let in_channels = unet_cfg
            .get("in_channels")
            .and_then(Value::as_u64)
            .unwrap_or(4);
        let inpainting = in_channels == 9 || pipeline_class.contains("Inpaint");
        let vae_blocks = vae_cfg
            .get("block_out_channels")
            .and_then(Value::as_array)
            .map_or(4, Vec::len)
            .clamp(1, 8);
        let vae_scale_factor = 1u32 << (vae_blocks - 1);
        let unet_sample_size = unet_cfg
            .get("sample_size")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok());

        let paths = ComponentPaths {
            denoiser: dir.join("unet"),
            vae: dir.join("vae"),
            text_encoder: dir.join("text_encoder"),
            text_encoder_2: has_second.then(|| dir.join("text_encoder_2")),
            tokenizer: dir.join("tokenizer"),
            tokenizer_2: has_second.then(|| dir.join("tokenizer_2")),
            scheduler: dir.join("scheduler"),
        };
        let has_fp16_variants = folder_has_fp16(&paths.denoiser);
        Ok(Self {
            dir: dir.to_path_buf(),
            family,
            inpainting,
            prediction_type,
            has_fp16_variants,
            paths,
            pipeline_class,
            vae_scale_factor,
            unet_sample_size,
            embedded_guidance: None,
        })
    }

    /// What a folder with no registry entry makes: its family's kind, but image-to-video for a
    /// Wan folder whose pipeline takes an init image (Wan 2.2 TI2V).
    pub fn kind(&self) -> super::entry::Kind {
        if self.family == Family::Wan {
            return super::wan_layout::kind(&self.dir);
        }
        self.family.kind()
    }

    /// Defaults for a folder with no registry entry: the family's, with the size the UNet was
    /// trained at when its config says (SD2 epsilon models are 512, v-prediction ones 768).
    pub fn default_params(&self) -> Defaults {
        let mut d = self.family.default_params();
        if self.family == Family::Flux {
            return super::flux_layout::default_params(d, self.embedded_guidance);
        }
        if matches!(self.family, Family::ZImage | Family::Wan | Family::Ltx) {
            return d;
        }
        if self.family == Family::Sd3 {
            return super::sd3_layout::default_params(d, &self.dir);
        }
        let side = match self.unet_sample_size {
            Some(s) if s >= 8 => s * self.vae_scale_factor,
            _ if self.family == Family::Sd2 && self.prediction_type == PredictionType::Epsilon => {
                512
            }
            _ => d.width,
        };
        d.width = side;
        d.height = side;
        d
    }

    /// The weights file of a component folder: the fp16 variant when asked for and present, else
    /// the full-precision file. Only safetensors: pickles are refused with a reason.
    pub fn weights_file(folder: &Path, fp16: bool) -> Result<PathBuf> {
        let stems = ["diffusion_pytorch_model", "model"];
        let pick = |suffix: &str| {
            stems
                .iter()
                .map(|s| folder.join(format!("{s}{suffix}")))
                .find(|p| p.is_file())
        };
        let found = if fp16 {
            pick(".fp16.safetensors")
        } else {
            None
        };
        if let Some(p) = found.or_else(|| pick(".safetensors")) {
            return Ok(p);
        }
        let pickled = [".bin", ".fp16.bin", ".ckpt", ".pt", ".pth"]
            .iter()
            .find_map(|s| pick(s));
        Err(Error::bad_input(match pickled {
            Some(p) => format!(
                "{} holds pickled weights, which can run code when loaded and are refused; convert them to \
                 safetensors (e.g. with diffusers: `pipe.save_pretrained(dir, safe_serialization=True)`)",
                p.display()
            ),
            None => format!(
                "{}: no weights found (expected diffusion_pytorch_model.safetensors or model.safetensors)",
                folder.display()
            ),
        }))
    }
}

fn detect_family(
    unet: &Value,
    te: &Value,
    class: &str,
    has_second: bool,
    pred: PredictionType,
) -> Family {
    if has_second
        || unet.get("addition_embed_type").and_then(Value::as_str) == Some("text_time")
        || class.contains("XL")
    {
        return Family::Sdxl;
    }
    match unet.get("cross_attention_dim").and_then(Value::as_u64) {
        Some(1024) => Family::Sd2,
        Some(768) => Family::Sd1,
        // Tiny test models use other widths: OpenCLIP (SD2) uses gelu where CLIP-L (SD1) uses
        // quick_gelu, and only SD2 ships v-prediction models.
        _ if te.get("hidden_act").and_then(Value::as_str) == Some("gelu")
            || pred == PredictionType::VPrediction =>
        {
            Family::Sd2
        }
        _ => Family::Sd1,
    }
}

pub(super) fn read_json(dir: &Path, rel: &str) -> Result<Value> {
    let path = dir.join(rel);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::NotFound { "is missing" } else { "cannot be read" };
        Error::bad_input(format!(
            "{}: {rel} {what} ({e}); a diffusers folder needs model_index.json and unet/, vae/, text_encoder/, \
             tokenizer/ and scheduler/ with their configs",
            dir.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| Error::bad_input(format!("{}: not valid JSON: {e}", path.display())))
}

pub(super) fn check_tokenizer(dir: &Path, folder: &str) -> Result<()> {
    let base = dir.join(folder);
    let bpe = base.join("vocab.json").is_file() && base.join("merges.txt").is_file();
    if bpe || base.join("tokenizer.json").is_file() {
        return Ok(());
    }
    Err(Error::bad_input(format!(
        "{}: {folder}/ needs vocab.json and merges.txt (or tokenizer.json)",
        dir.display()
    )))
}

pub(super) fn folder_has_fp16(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|rd| {
        rd.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".fp16.safetensors")
        })
    })
}
