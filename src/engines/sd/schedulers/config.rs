//! A diffusers `scheduler/scheduler_config.json`, and its resolution for one scheduler class.
//!
//! Keys stay optional as read: diffusers' `Target.from_config(source.config)` takes every key the
//! json really had, and the *target* class's own default for every key it lacked (the source class
//! records them in `_use_default_values`). So SD 1.5's PNDM json, which has no `timestep_spacing`,
//! gives DDIM "leading" but Euler and DPM++ "linspace", exactly as in diffusers.

use std::path::Path;

use serde::Deserialize;

use crate::{Error, Result};

/// The scheduler config as written in the model folder (unknown keys ignored).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    pub num_train_timesteps: Option<usize>,
    pub beta_start: Option<f64>,
    pub beta_end: Option<f64>,
    pub beta_schedule: Option<String>,
    pub trained_betas: Option<Vec<f64>>,
    pub prediction_type: Option<String>,
    pub timestep_spacing: Option<String>,
    pub steps_offset: Option<i64>,
    pub set_alpha_to_one: Option<bool>,
    pub clip_sample: Option<bool>,
    pub clip_sample_range: Option<f64>,
    pub thresholding: Option<bool>,
    pub rescale_betas_zero_snr: Option<bool>,
    pub final_sigmas_type: Option<String>,
    pub lower_order_final: Option<bool>,
    pub euler_at_final: Option<bool>,
    pub use_karras_sigmas: Option<bool>,
    pub use_exponential_sigmas: Option<bool>,
    pub use_beta_sigmas: Option<bool>,
    pub use_lu_lambdas: Option<bool>,
    pub use_flow_sigmas: Option<bool>,
    /// Flow UniPC's static shift (Wan: 3.0 for 480p, 5.0 for 720p).
    pub flow_shift: Option<f64>,
    pub use_dynamic_shifting: Option<bool>,
    pub shift_terminal: Option<f64>,
    pub interpolation_type: Option<String>,
    pub timestep_type: Option<String>,
    pub sigma_min: Option<f64>,
    pub sigma_max: Option<f64>,
    pub solver_order: Option<usize>,
    pub algorithm_type: Option<String>,
    pub solver_type: Option<String>,
    pub predict_x0: Option<bool>,
    pub lambda_min_clipped: Option<f64>,
    pub disable_corrector: Option<Vec<usize>>,
}

impl SchedulerConfig {
    /// Parse the json text of a scheduler_config.json.
    pub fn from_json(text: &str) -> Result<Self> {
        let text = crate::engines::sd::json_compat::python_json_to_standard(text);
        serde_json::from_str(&text).map_err(|e| {
            Error::bad_input(format!(
                "the scheduler config is not valid: {e}; expected diffusers' scheduler/scheduler_config.json"
            ))
        })
    }

    /// Read `scheduler/scheduler_config.json` (or any path to such a file).
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text).map_err(|e| Error::bad_input(format!("{}: {e}", path.display())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetaSchedule {
    Linear,
    ScaledLinear,
    SquaredCosCapV2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    Epsilon,
    VPrediction,
    Sample,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalSigmas {
    Zero,
    SigmaMin,
}

/// The keys every scheduler here shares, with the class's defaults filled in and strings parsed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resolved {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: BetaSchedule,
    pub trained_betas: Option<Vec<f64>>,
    pub prediction_type: PredictionType,
    pub timestep_spacing: TimestepSpacing,
    pub steps_offset: i64,
    pub rescale_betas_zero_snr: bool,
    pub final_sigmas_type: FinalSigmas,
    pub use_karras_sigmas: bool,
}

/// Defaults that differ between the diffusers classes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClassDefaults {
    pub class: &'static str,
    pub timestep_spacing: TimestepSpacing,
}

impl Resolved {
    pub(crate) fn new(cfg: &SchedulerConfig, defaults: ClassDefaults) -> Result<Self> {
        let class = defaults.class;
        if cfg.thresholding == Some(true) {
            return Err(unsupported(class, "thresholding = true"));
        }
        let num_train_timesteps = cfg.num_train_timesteps.unwrap_or(1000);
        if num_train_timesteps < 2 {
            return Err(Error::bad_input(format!(
                "scheduler config: num_train_timesteps must be at least 2, got {num_train_timesteps}"
            )));
        }
        if let Some(betas) = &cfg.trained_betas
            && betas.len() != num_train_timesteps
        {
            return Err(Error::bad_input(format!(
                "scheduler config: trained_betas has {} values but num_train_timesteps is {num_train_timesteps}",
                betas.len()
            )));
        }
        Ok(Self {
            num_train_timesteps,
            beta_start: cfg.beta_start.unwrap_or(0.0001),
            beta_end: cfg.beta_end.unwrap_or(0.02),
            beta_schedule: parse_beta_schedule(cfg.beta_schedule.as_deref())?,
            trained_betas: cfg.trained_betas.clone(),
            prediction_type: parse_prediction(cfg.prediction_type.as_deref())?,
            timestep_spacing: parse_spacing(
                cfg.timestep_spacing.as_deref(),
                defaults.timestep_spacing,
            )?,
            steps_offset: cfg.steps_offset.unwrap_or(0),
            rescale_betas_zero_snr: cfg.rescale_betas_zero_snr.unwrap_or(false),
            final_sigmas_type: parse_final_sigmas(cfg.final_sigmas_type.as_deref())?,
            use_karras_sigmas: cfg.use_karras_sigmas.unwrap_or(false),
        })
    }
}

/// Options this engine does not implement: refuse them rather than silently sample differently.
pub(crate) fn refuse_sigma_variants(cfg: &SchedulerConfig, class: &str) -> Result<()> {
    let flags = [
        ("use_exponential_sigmas", cfg.use_exponential_sigmas),
        ("use_beta_sigmas", cfg.use_beta_sigmas),
        ("use_lu_lambdas", cfg.use_lu_lambdas),
        ("use_flow_sigmas", cfg.use_flow_sigmas),
    ];
    match flags.iter().find(|(_, v)| *v == Some(true)) {
        Some((name, _)) => Err(unsupported(class, &format!("{name} = true"))),
        None => Ok(()),
    }
}

pub(crate) fn unsupported(class: &str, what: &str) -> Error {
    Error::bad_input(format!(
        "scheduler config: {what} is not supported by {class} here; choose another scheduler with \
         --scheduler or remove the key from scheduler_config.json"
    ))
}

fn invalid(key: &str, value: &str, valid: &str) -> Error {
    Error::bad_input(format!(
        "scheduler config: {key} \"{value}\" is not supported (valid: {valid})"
    ))
}

fn parse_beta_schedule(v: Option<&str>) -> Result<BetaSchedule> {
    match v.unwrap_or("linear") {
        "linear" => Ok(BetaSchedule::Linear),
        "scaled_linear" => Ok(BetaSchedule::ScaledLinear),
        "squaredcos_cap_v2" => Ok(BetaSchedule::SquaredCosCapV2),
        other => Err(invalid(
            "beta_schedule",
            other,
            "linear, scaled_linear, squaredcos_cap_v2",
        )),
    }
}

fn parse_prediction(v: Option<&str>) -> Result<PredictionType> {
    match v.unwrap_or("epsilon") {
        "epsilon" => Ok(PredictionType::Epsilon),
        "v_prediction" => Ok(PredictionType::VPrediction),
        "sample" => Ok(PredictionType::Sample),
        other => Err(invalid(
            "prediction_type",
            other,
            "epsilon, v_prediction, sample",
        )),
    }
}

fn parse_spacing(v: Option<&str>, default: TimestepSpacing) -> Result<TimestepSpacing> {
    match v {
        None => Ok(default),
        Some("leading") => Ok(TimestepSpacing::Leading),
        Some("trailing") => Ok(TimestepSpacing::Trailing),
        Some("linspace") => Ok(TimestepSpacing::Linspace),
        Some(other) => Err(invalid(
            "timestep_spacing",
            other,
            "leading, trailing, linspace",
        )),
    }
}

fn parse_final_sigmas(v: Option<&str>) -> Result<FinalSigmas> {
    match v.unwrap_or("zero") {
        "zero" => Ok(FinalSigmas::Zero),
        "sigma_min" => Ok(FinalSigmas::SigmaMin),
        other => Err(invalid("final_sigmas_type", other, "zero, sigma_min")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const SD15: &str = r#"{"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0",
        "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true,
        "steps_offset": 1, "trained_betas": null, "clip_sample": false}"#;

    const EULER: ClassDefaults = ClassDefaults {
        class: "EulerDiscreteScheduler",
        timestep_spacing: TimestepSpacing::Linspace,
    };

    #[test]
    fn reads_sd15_and_ignores_unknown_keys() {
        let cfg = SchedulerConfig::from_json(SD15).unwrap();
        assert_eq!(cfg.class_name.as_deref(), Some("PNDMScheduler"));
        assert_eq!(cfg.steps_offset, Some(1));
        assert_eq!(cfg.trained_betas, None);
        assert_eq!(cfg.timestep_spacing, None);
        let r = Resolved::new(&cfg, EULER).unwrap();
        assert_eq!(r.beta_schedule, BetaSchedule::ScaledLinear);
        assert_eq!(r.timestep_spacing, TimestepSpacing::Linspace);
        assert_eq!(r.prediction_type, PredictionType::Epsilon);
        assert_eq!(r.beta_end, 0.012);
    }

    #[test]
    fn missing_keys_take_the_target_class_defaults() {
        let r = Resolved::new(&SchedulerConfig::default(), EULER).unwrap();
        assert_eq!(r.num_train_timesteps, 1000);
        assert_eq!(r.beta_schedule, BetaSchedule::Linear);
        assert_eq!((r.beta_start, r.beta_end), (0.0001, 0.02));
        let ddim = ClassDefaults {
            class: "DDIMScheduler",
            timestep_spacing: TimestepSpacing::Leading,
        };
        assert_eq!(
            Resolved::new(&SchedulerConfig::default(), ddim)
                .unwrap()
                .timestep_spacing,
            TimestepSpacing::Leading
        );
    }

    #[test]
    fn bad_values_are_bad_input_naming_the_key() {
        let cfg = SchedulerConfig::from_json(r#"{"beta_schedule": "sqrt"}"#).unwrap();
        let err = Resolved::new(&cfg, EULER).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("beta_schedule"), "{err}");
        let err = SchedulerConfig::from_json(r#"{"steps_offset": "one"}"#).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let cfg = SchedulerConfig::from_json(r#"{"thresholding": true}"#).unwrap();
        assert!(
            Resolved::new(&cfg, EULER)
                .unwrap_err()
                .to_string()
                .contains("thresholding")
        );
        let cfg = SchedulerConfig::from_json(r#"{"trained_betas": [0.1, 0.2]}"#).unwrap();
        assert!(
            Resolved::new(&cfg, EULER)
                .unwrap_err()
                .to_string()
                .contains("trained_betas")
        );
    }
}

#[cfg(test)]
mod python_json_tests {
    use super::*;

    #[test]
    fn configs_saved_by_diffusers_with_minus_infinity_load() {
        let text = r#"{"_class_name": "DPMSolverMultistepScheduler", "lambda_min_clipped": -Infinity, "beta_schedule": "scaled_linear"}"#;
        let config = SchedulerConfig::from_json(text).unwrap();
        assert_eq!(config.beta_schedule.as_deref(), Some("scaled_linear"));
    }
}
