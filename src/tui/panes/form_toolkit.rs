//! The editing toolkit's fields of an image job: its LoRAs (`--lora PATH@WEIGHT`, chosen in the
//! LoRA picker) and the upscale step after it (`--upscale 2|4`, `--upscaler ID|FILE`).

use crate::jobs::spec::JobOverrides;
use crate::jobs::spec::lora::{MAX_WEIGHT, split_weight};

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

/// The toolkit's fields written into an image job (the form's fields replace the flags').
pub fn apply(o: &mut JobOverrides, loras: &[LoraPick], upscale: Option<u32>, upscaler: &str) {
    o.lora = (!loras.is_empty()).then(|| loras.iter().map(LoraPick::flag_value).collect());
    o.upscale = upscale;
    // An upscaler without the step is refused by the job: it goes only with it.
    o.upscaler = upscale.and(Some(upscaler.trim().to_owned()).filter(|u| !u.is_empty()));
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
        apply(&mut o, &picks, Some(2), "up.safetensors");
        assert_eq!(
            o.lora.as_deref().unwrap(),
            ["/l/style.safetensors@0.8", "other.safetensors@1"]
        );
        assert_eq!(
            (o.upscale, o.upscaler.as_deref()),
            (Some(2), Some("up.safetensors"))
        );
        apply(&mut o, &[], None, "up.safetensors");
        assert_eq!((o.lora, o.upscale, o.upscaler), (None, None, None));
        assert_eq!(parse_upscale("x4").unwrap(), Some(4));
        assert_eq!(parse_upscale("off").unwrap(), None);
        assert!(parse_upscale("3").unwrap_err().starts_with("upscale:"));
        assert!(parse_loras("a@99").unwrap_err().contains("weight"));
    }
}
