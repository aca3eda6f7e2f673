//! The parameters form as values: what the user typed (empty = the model's default), turned into
//! a `JobSpec` with errors naming the field.

use crate::cli::{DtypeArg, ResidencyArg};
use crate::jobs::{JobKind, JobSpec};
use crate::models::{Defaults, Verdict};

/// A model the picker offers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelChoice {
    pub id: String,
    pub name: String,
    pub verdict: Verdict,
    pub defaults: Defaults,
    pub native: [u32; 2],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamField {
    Model,
    Steps,
    Guidance,
    Seed,
    Size,
    Batch,
    Scheduler,
    Strength,
    InitImage,
    Mask,
    Dtype,
    Residency,
    Device,
}

impl ParamField {
    pub const ALL: [ParamField; 13] = [
        Self::Model,
        Self::Steps,
        Self::Guidance,
        Self::Seed,
        Self::Size,
        Self::Batch,
        Self::Scheduler,
        Self::Strength,
        Self::InitImage,
        Self::Mask,
        Self::Dtype,
        Self::Residency,
        Self::Device,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Steps => "steps",
            Self::Guidance => "guidance",
            Self::Seed => "seed",
            Self::Size => "size",
            Self::Batch => "batch",
            Self::Scheduler => "scheduler",
            Self::Strength => "strength",
            Self::InitImage => "init image",
            Self::Mask => "mask",
            Self::Dtype => "dtype",
            Self::Residency => "residency",
            Self::Device => "device",
        }
    }

    pub fn is_path(self) -> bool {
        matches!(self, Self::InitImage | Self::Mask)
    }
}

/// The form's values as text; an empty string means "the model's default".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Form {
    pub model: String,
    pub steps: String,
    pub guidance: String,
    pub seed: String,
    pub random_seed: bool,
    pub size: String,
    pub batch: String,
    pub scheduler: String,
    pub strength: String,
    pub init_image: String,
    pub mask: String,
    pub dtype: DtypeArg,
    /// `None`: the planner chooses (auto).
    pub residency: Option<ResidencyArg>,
    /// The runner's device, fixed for the session (JobSpec has no device): shown, never sent.
    pub device: String,
}

fn opt<T: std::str::FromStr>(text: &str, field: &str, what: &str) -> Result<Option<T>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| format!("{field}: {t:?} is not {what}"))
}

impl Form {
    pub fn get(&self, field: ParamField) -> String {
        match field {
            ParamField::Model => self.model.clone(),
            ParamField::Steps => self.steps.clone(),
            ParamField::Guidance => self.guidance.clone(),
            ParamField::Seed => self.seed.clone(),
            ParamField::Size => self.size.clone(),
            ParamField::Batch => self.batch.clone(),
            ParamField::Scheduler => self.scheduler.clone(),
            ParamField::Strength => self.strength.clone(),
            ParamField::InitImage => self.init_image.clone(),
            ParamField::Mask => self.mask.clone(),
            ParamField::Dtype => format!("{:?}", self.dtype).to_lowercase(),
            ParamField::Residency => self
                .residency
                .map_or_else(String::new, |r| format!("{r:?}").to_lowercase()),
            ParamField::Device => self.device.clone(),
        }
    }

    /// Sets a text field after checking it; the error names the field and what it wants.
    pub fn set(&mut self, field: ParamField, value: String) -> Result<(), String> {
        let mut next = self.clone();
        match field {
            ParamField::Model => next.model = value,
            ParamField::Steps => next.steps = value,
            ParamField::Guidance => next.guidance = value,
            ParamField::Seed => {
                next.random_seed = value.trim().is_empty();
                next.seed = value;
            }
            ParamField::Size => next.size = value,
            ParamField::Batch => next.batch = value,
            ParamField::Scheduler => next.scheduler = value,
            ParamField::Strength => next.strength = value,
            ParamField::InitImage => next.init_image = value,
            ParamField::Mask => next.mask = value,
            // Cycled, not typed; the device is fixed for the session.
            ParamField::Dtype | ParamField::Residency | ParamField::Device => {}
        }
        next.to_spec()?;
        *self = next;
        Ok(())
    }

    /// Width and height typed as `WxH`.
    pub fn size(&self) -> Result<(Option<u32>, Option<u32>), String> {
        let t = self.size.trim();
        if t.is_empty() {
            return Ok((None, None));
        }
        let bad = || format!("size: {t:?} is not WIDTHxHEIGHT, e.g. 512x768");
        let (w, h) = t.split_once(['x', 'X']).ok_or_else(bad)?;
        let w: u32 = w.trim().parse().map_err(|_| bad())?;
        let h: u32 = h.trim().parse().map_err(|_| bad())?;
        Ok((Some(w), Some(h)))
    }

    pub fn to_spec(&self) -> Result<JobSpec, String> {
        let (width, height) = self.size()?;
        let steps: Option<u32> = opt(&self.steps, "steps", "a whole number")?;
        if steps == Some(0) {
            return Err("steps: must be at least 1".into());
        }
        let batch: Option<u32> = opt(&self.batch, "batch", "a whole number")?;
        if batch == Some(0) {
            return Err("batch: must be at least 1".into());
        }
        let strength: Option<f64> = opt(&self.strength, "strength", "a number")?;
        if strength.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err("strength: must be between 0 and 1".into());
        }
        let seed = if self.random_seed {
            None
        } else {
            opt(&self.seed, "seed", "a whole number")?
        };
        let path = |s: &str| (!s.trim().is_empty()).then(|| s.trim().into());
        let init_image = path(&self.init_image);
        let mask = path(&self.mask);
        let kind = if mask.is_some() {
            JobKind::Inpaint
        } else if init_image.is_some() {
            JobKind::Img2img
        } else {
            JobKind::Txt2img
        };
        let scheduler = self.scheduler.trim();
        if !scheduler.is_empty() {
            crate::engines::sd::schedulers::SchedulerKind::parse(scheduler)
                .map_err(|e| format!("scheduler: {e}"))?;
        }
        Ok(JobSpec {
            kind,
            model: self.model.trim().to_owned(),
            steps,
            guidance: opt(&self.guidance, "guidance", "a number")?,
            seed,
            width,
            height,
            batch,
            scheduler: (!scheduler.is_empty()).then(|| scheduler.to_owned()),
            init_image,
            strength,
            mask,
            dtype: (self.dtype != DtypeArg::Auto).then_some(self.dtype),
            residency: self.residency,
            ..JobSpec::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_to_spec_and_field_errors() {
        let mut f = Form {
            model: "sd15".into(),
            random_seed: true,
            ..Form::default()
        };
        f.set(ParamField::Size, "512x768".into()).unwrap();
        f.set(ParamField::Seed, "42".into()).unwrap();
        f.set(ParamField::Mask, "m.png".into()).unwrap();
        let spec = f.to_spec().unwrap();
        assert_eq!(
            (spec.width, spec.height, spec.seed),
            (Some(512), Some(768), Some(42))
        );
        assert_eq!(spec.kind, JobKind::Inpaint);
        assert!(
            f.set(ParamField::Steps, "ten".into())
                .unwrap_err()
                .starts_with("steps:")
        );
        assert!(
            f.set(ParamField::Size, "512".into())
                .unwrap_err()
                .starts_with("size:")
        );
        assert!(f.set(ParamField::Strength, "2".into()).is_err());
        assert!(
            f.set(ParamField::Scheduler, "nope".into())
                .unwrap_err()
                .contains("euler")
        );
        assert_eq!(f.steps, "", "a rejected value leaves the form as it was");
    }
}
