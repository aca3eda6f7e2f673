//! `JobSpec`: everything one job needs, as the user asked for it (defaults not yet applied).
//! Stored in the queue database and in every output's JSON chunk.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::{DtypeArg, JobArgs, ResidencyArg, Toggle};

/// What a job produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    #[default]
    Txt2img,
    Img2img,
    Inpaint,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct JobSpec {
    pub kind: JobKind,
    pub model: String,
    pub prompt: String,
    pub negative: String,
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
    pub seed: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub batch: Option<u32>,
    pub scheduler: Option<String>,
    pub init_image: Option<PathBuf>,
    pub strength: Option<f64>,
    pub mask: Option<PathBuf>,
    pub init_latents: Option<PathBuf>,
    pub dtype: Option<DtypeArg>,
    pub attention_slicing: Option<String>,
    pub vae_tiling: Option<Toggle>,
    pub residency: Option<ResidencyArg>,
}

impl JobSpec {
    /// A spec from command-line job flags; the kind follows from --mask / --init-image.
    pub fn from_args(args: &JobArgs) -> Self {
        let kind = if args.mask.is_some() {
            JobKind::Inpaint
        } else if args.init_image.is_some() {
            JobKind::Img2img
        } else {
            JobKind::Txt2img
        };
        Self {
            kind,
            model: args.model.clone().unwrap_or_default(),
            prompt: args.prompt.clone().unwrap_or_default(),
            negative: args.negative.clone().unwrap_or_default(),
            steps: args.steps,
            guidance: args.guidance,
            seed: args.seed,
            width: args.width,
            height: args.height,
            batch: args.batch,
            scheduler: args.scheduler.clone(),
            init_image: args.init_image.clone(),
            strength: args.strength,
            mask: args.mask.clone(),
            init_latents: args.init_latents.clone(),
            dtype: None,
            attention_slicing: args.attention_slicing.clone(),
            vae_tiling: args.vae_tiling,
            residency: args.residency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_follows_the_inputs() {
        let mut args = JobArgs::default();
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Txt2img);
        args.init_image = Some("a.png".into());
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Img2img);
        args.mask = Some("m.png".into());
        assert_eq!(JobSpec::from_args(&args).kind, JobKind::Inpaint);
    }

    #[test]
    fn spec_round_trips_through_json() {
        let spec = JobSpec {
            model: "sd15".into(),
            prompt: "a cat".into(),
            steps: Some(20),
            ..JobSpec::default()
        };
        let text = serde_json::to_string(&spec).unwrap();
        let back: JobSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(spec, back);
    }
}
