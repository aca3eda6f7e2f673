//! The editing toolkit's fields of an image job: its LoRAs (`--lora PATH@WEIGHT`, chosen in the
//! LoRA picker), the upscale step after it (`--upscale 2|4`, `--upscaler ID|FILE`) and one
//! ControlNet (`--controlnet`, `--control-image`, `--control-scale`, `--control-preprocess`).

use super::fields::ParamField;
use crate::jobs::spec::JobOverrides;
use std::path::PathBuf;

use crate::jobs::spec::controlnet::{
    ControlPreprocess, DEFAULT_CANNY_HIGH, DEFAULT_CANNY_LOW, MAX_SCALE,
};
use crate::jobs::spec::lora::{MAX_WEIGHT, split_weight};

/// The toolkit's fields as typed; empty strings are "none" or the default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Toolkit {
    /// LoRAs (`--lora`), in order.
    pub loras: Vec<LoraPick>,
    /// Upscale after the job by 2 or 4 (`--upscale`), or not.
    pub upscale: Option<u32>,
    /// `--upscaler` as typed (empty: the scale's default).
    pub upscaler: String,
    /// `--controlnet` (a folder or a cached repo id), the first of the command line's.
    pub controlnet: String,
    pub control_image: String,
    pub control_scale: String,
    /// `--control-preprocess canny` (else none).
    pub control_canny: bool,
}

impl Toolkit {
    /// The command line's values (the first ControlNet's: the form shows one).
    pub fn from_flags(j: &JobOverrides) -> Self {
        let first = |v: &Option<Vec<String>>| v.iter().flatten().next().cloned();
        Self {
            // A --lora value that does not parse is refused when the job is submitted.
            loras: j
                .lora
                .iter()
                .flatten()
                .filter_map(|v| LoraPick::parse(v).ok())
                .collect(),
            upscale: j.upscale,
            upscaler: j.upscaler.clone().unwrap_or_default(),
            controlnet: first(&j.controlnet).unwrap_or_default(),
            control_image: j
                .control_image
                .iter()
                .flatten()
                .next()
                .map_or_else(String::new, |p| p.display().to_string()),
            control_scale: j
                .control_scale
                .iter()
                .flatten()
                .next()
                .map_or_else(String::new, |v| v.to_string()),
            control_canny: j
                .control_preprocess
                .iter()
                .flatten()
                .next()
                .is_some_and(|p| *p == ControlPreprocess::Canny),
        }
    }

    pub fn get(&self, field: ParamField) -> String {
        match field {
            ParamField::Loras => loras_text(&self.loras),
            ParamField::Upscale => self.upscale.map_or_else(String::new, |s| format!("x{s}")),
            ParamField::Upscaler => self.upscaler.clone(),
            ParamField::ControlNet => self.controlnet.clone(),
            ParamField::ControlImage => self.control_image.clone(),
            ParamField::ControlScale => self.control_scale.clone(),
            ParamField::ControlPreprocess => if self.control_canny { "canny" } else { "" }.into(),
            _ => String::new(),
        }
    }

    /// Sets a field (the form checks the whole job after).
    pub fn set(&mut self, field: ParamField, value: String) -> Result<(), String> {
        match field {
            ParamField::Loras => self.loras = parse_loras(&value)?,
            ParamField::Upscale => self.upscale = parse_upscale(&value)?,
            ParamField::Upscaler => self.upscaler = value,
            ParamField::ControlNet => self.controlnet = value,
            ParamField::ControlImage => self.control_image = value,
            ParamField::ControlScale => self.control_scale = value,
            ParamField::ControlPreprocess => {
                self.control_canny = !value.trim().is_empty()
                    && ControlPreprocess::parse_flag(&value)
                        .map_err(|e| format!("ctrl prep: {e}"))?
                        == ControlPreprocess::Canny
            }
            _ => {}
        }
        Ok(())
    }

    /// What the preview shows of the control image: its path, and Canny's thresholds (the
    /// command line's first, else the defaults) when it is preprocessed.
    pub fn control_preview(&self, base: &JobOverrides) -> Option<(PathBuf, Option<(f64, f64)>)> {
        let path = self.control_image.trim();
        if path.is_empty() {
            return None;
        }
        let first =
            |v: &Option<Vec<f64>>, d: f64| v.as_ref().and_then(|v| v.first()).copied().unwrap_or(d);
        let canny = self.control_canny.then(|| {
            (
                first(&base.canny_low, DEFAULT_CANNY_LOW),
                first(&base.canny_high, DEFAULT_CANNY_HIGH),
            )
        });
        Some((path.into(), canny))
    }

    /// The flags the toolkit's fields replace, dropped (the kinds without them send none).
    pub fn clear(o: &mut JobOverrides) {
        (o.lora, o.upscale, o.upscaler) = (None, None, None);
        (o.controlnet, o.control_image, o.control_scale) = (None, None, None);
        (o.control_start, o.control_end, o.control_preprocess) = (None, None, None);
        (o.canny_low, o.canny_high) = (None, None);
    }

    /// The toolkit's fields written into an image job (the form's fields replace the flags';
    /// `base`, the command line's, gives the ControlNet's start, end and Canny thresholds).
    pub fn apply(&self, o: &mut JobOverrides, base: &JobOverrides) -> Result<(), String> {
        o.lora =
            (!self.loras.is_empty()).then(|| self.loras.iter().map(LoraPick::flag_value).collect());
        o.upscale = self.upscale;
        // An upscaler without the step is refused by the job: it goes only with it.
        o.upscaler = self
            .upscale
            .and(Some(self.upscaler.trim().to_owned()).filter(|u| !u.is_empty()));
        let scale: Option<f64> = match self.control_scale.trim() {
            "" => None,
            t => match t.parse::<f64>() {
                Ok(v) if (0.0..=MAX_SCALE).contains(&v) => Some(v),
                _ => {
                    return Err(format!(
                        "ctrl scale: {t:?} is not a number between 0 and {MAX_SCALE}"
                    ));
                }
            },
        };
        let net = self.controlnet.trim();
        // One ControlNet: the command line's others and their per-net values are dropped.
        let one = |v: &Option<Vec<f64>>| v.as_ref().and_then(|v| v.first()).map(|x| vec![*x]);
        o.control_start = one(&base.control_start).filter(|_| !net.is_empty());
        o.control_end = one(&base.control_end).filter(|_| !net.is_empty());
        o.canny_low = one(&base.canny_low).filter(|_| !net.is_empty());
        o.canny_high = one(&base.canny_high).filter(|_| !net.is_empty());
        if net.is_empty() {
            (o.controlnet, o.control_image) = (None, None);
            (o.control_scale, o.control_preprocess) = (None, None);
            return Ok(());
        }
        // (`clear` ran first; the lines above keep `apply` whole on its own.)
        let image = self.control_image.trim();
        o.controlnet = Some(vec![net.to_owned()]);
        o.control_image = (!image.is_empty()).then(|| vec![image.into()]);
        o.control_scale = scale.map(|v| vec![v]);
        o.control_preprocess = self.control_canny.then(|| vec![ControlPreprocess::Canny]);
        Ok(())
    }
}

/// How far + and - move a LoRA's weight.
pub const WEIGHT_STEP: f64 = 0.05;

/// One LoRA of the form: its file (as `--lora` takes it) and strength.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraPick {
    pub path: String,
    pub weight: f64,
}

/// A weight as few digits as it needs (`0.8`, `1`, `-0.25`), in hundredths.
pub fn weight_text(weight: f64) -> String {
    let s = format!("{:.2}", (weight * 100.0).round() / 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0" } else { s }.to_owned()
}

/// A typed weight, checked as `--lora` checks it.
pub fn parse_weight(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(w) if w.is_finite() && w.abs() <= MAX_WEIGHT => Ok(w),
        _ => Err(format!(
            "weight: {:?} is not a number between -{MAX_WEIGHT} and {MAX_WEIGHT} (1 is the LoRA \
             as trained)",
            text.trim()
        )),
    }
}

/// `weight` moved one step up or down, kept in range and in hundredths.
pub fn nudge_weight(weight: f64, up: bool) -> f64 {
    let step = if up { WEIGHT_STEP } else { -WEIGHT_STEP };
    ((weight + step).clamp(-MAX_WEIGHT, MAX_WEIGHT) * 100.0).round() / 100.0
}

impl LoraPick {
    /// `PATH[@WEIGHT]`, as `--lora` takes it.
    pub fn parse(value: &str) -> Result<Self, String> {
        let (path, weight) = split_weight(value.trim()).map_err(|e| format!("loras: {e}"))?;
        Ok(Self {
            path: path.to_owned(),
            weight,
        })
    }

    /// The `--lora` value.
    pub fn flag_value(&self) -> String {
        format!("{}@{}", self.path, weight_text(self.weight))
    }

    /// The file's stem, as A1111's `<lora:NAME:WEIGHT>` names it.
    pub fn name(&self) -> String {
        let path = std::path::Path::new(&self.path);
        path.file_stem()
            .map_or_else(|| self.path.clone(), |s| s.to_string_lossy().into_owned())
    }
}

/// The LoRAs as the form row shows them: `name@0.8, other@1`.
pub fn loras_text(picks: &[LoraPick]) -> String {
    picks
        .iter()
        .map(|p| format!("{}@{}", p.name(), weight_text(p.weight)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Typed LoRAs: `PATH[@WEIGHT]` separated by commas; empty is none.
pub fn parse_loras(text: &str) -> Result<Vec<LoraPick>, String> {
    text.split(',')
        .filter(|v| !v.trim().is_empty())
        .map(LoraPick::parse)
        .collect()
}

/// The upscale step as typed: empty or `off`, `2`/`x2`, `4`/`x4`.
pub fn parse_upscale(text: &str) -> Result<Option<u32>, String> {
    match text.trim().trim_start_matches(['x', 'X']) {
        "" | "off" => Ok(None),
        "2" => Ok(Some(2)),
        "4" => Ok(Some(4)),
        t => Err(format!("upscale: {t:?} is not off, x2 or x4")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_typed_nudged_and_written_in_hundredths() {
        assert_eq!(weight_text(0.8), "0.8");
        assert_eq!(weight_text(1.0), "1");
        assert_eq!(weight_text(-0.25), "-0.25");
        let mut w = 1.0;
        for _ in 0..4 {
            w = nudge_weight(w, false);
        }
        assert_eq!(weight_text(w), "0.8");
        assert_eq!(nudge_weight(MAX_WEIGHT, true), MAX_WEIGHT);
        assert_eq!(parse_weight(" 0.8 ").unwrap(), 0.8);
        assert!(parse_weight("11").unwrap_err().starts_with("weight:"));
        assert!(parse_weight("lots").is_err());
    }

    #[test]
    fn loras_and_upscale_become_the_job_flags() {
        let picks = parse_loras("/l/style.safetensors@0.8, other.safetensors").unwrap();
        assert_eq!(loras_text(&picks), "style@0.8, other@1");
        let mut o = JobOverrides::default();
        let mut kit = Toolkit {
            loras: picks,
            upscale: Some(2),
            upscaler: "up.safetensors".into(),
            ..Toolkit::default()
        };
        kit.apply(&mut o, &JobOverrides::default()).unwrap();
        assert_eq!(
            o.lora.as_deref().unwrap(),
            ["/l/style.safetensors@0.8", "other.safetensors@1"]
        );
        assert_eq!(
            (o.upscale, o.upscaler.as_deref()),
            (Some(2), Some("up.safetensors"))
        );
        kit.loras.clear();
        kit.upscale = None;
        kit.apply(&mut o, &JobOverrides::default()).unwrap();
        assert_eq!((o.lora, o.upscale, o.upscaler), (None, None, None));
        assert_eq!(parse_upscale("x4").unwrap(), Some(4));
        assert_eq!(parse_upscale("off").unwrap(), None);
        assert!(parse_upscale("3").unwrap_err().starts_with("upscale:"));
        assert!(parse_loras("a@99").unwrap_err().contains("weight"));
    }

    #[test]
    fn one_controlnet_with_its_image_scale_and_canny() {
        let flags = JobOverrides {
            controlnet: Some(vec!["cn-a".into(), "cn-b".into()]),
            control_image: Some(vec!["a.png".into(), "b.png".into()]),
            control_start: Some(vec![0.1, 0.2]),
            control_preprocess: Some(vec![ControlPreprocess::Canny]),
            ..JobOverrides::default()
        };
        let mut kit = Toolkit::from_flags(&flags);
        assert_eq!((kit.controlnet.as_str(), kit.control_canny), ("cn-a", true));
        kit.set(ParamField::ControlScale, "0.6".into()).unwrap();
        assert_eq!(
            kit.control_preview(&flags),
            Some((
                "a.png".into(),
                Some((DEFAULT_CANNY_LOW, DEFAULT_CANNY_HIGH))
            ))
        );
        let mut o = JobOverrides::default();
        kit.apply(&mut o, &flags).unwrap();
        assert_eq!(o.controlnet, Some(vec!["cn-a".to_owned()]));
        assert_eq!(o.control_image, Some(vec!["a.png".into()]));
        assert_eq!(o.control_scale, Some(vec![0.6]));
        assert_eq!(
            o.control_start,
            Some(vec![0.1]),
            "the first net's own value"
        );
        assert_eq!(o.control_preprocess, Some(vec![ControlPreprocess::Canny]));
        kit.set(ParamField::ControlPreprocess, "none".into())
            .unwrap();
        kit.set(ParamField::ControlScale, "11".into()).unwrap();
        assert!(
            kit.apply(&mut o, &flags)
                .unwrap_err()
                .starts_with("ctrl scale:")
        );
        kit.set(ParamField::ControlScale, String::new()).unwrap();
        kit.set(ParamField::ControlNet, String::new()).unwrap();
        kit.apply(&mut o, &flags).unwrap();
        assert_eq!(
            (o.controlnet, o.control_image, o.control_start),
            (None, None, None)
        );
    }
}
