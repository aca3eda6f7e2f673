//! FLUX's `scheduler/scheduler_config.json`: diffusers' FlowMatchEulerDiscreteScheduler options,
//! with the class's defaults for absent keys. Options whose arithmetic we do not implement (other
//! sigma spacings, inverted sigmas, stochastic sampling) are refused by name rather than ignored:
//! ignoring them would give a different schedule than diffusers without saying so.

use std::path::Path;

use serde_json::{Map, Value};

use crate::engines::config_check as check;
use crate::error::Result;

/// The scheduler class this file reads (the only one FLUX pipelines ship).
const CLASS: &str = "FlowMatchEulerDiscreteScheduler";

/// How `use_dynamic_shifting` bends the sigmas (diffusers' `time_shift_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeShift {
    /// `e^mu / (e^mu + (1/t - 1))`: FLUX.1-dev's.
    Exponential,
    /// `mu / (mu + (1/t - 1))`.
    Linear,
}

/// The options of FlowMatchEulerDiscreteScheduler this engine implements.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatchConfig {
    pub num_train_timesteps: usize,
    /// The static shift (used when `use_dynamic_shifting` is off).
    pub shift: f64,
    pub use_dynamic_shifting: bool,
    /// `calculate_shift`'s line through (base_image_seq_len, base_shift) and
    /// (max_image_seq_len, max_shift); None where the file has `null` (unusable when dynamic).
    pub base_shift: Option<f64>,
    pub max_shift: Option<f64>,
    pub base_image_seq_len: Option<usize>,
    pub max_image_seq_len: Option<usize>,
    pub time_shift_type: TimeShift,
    /// Stretch the shifted sigmas so the last one is this (LTX-Video's); None or 0: off (diffusers
    /// tests it for truthiness).
    pub shift_terminal: Option<f64>,
}

impl Default for FlowMatchConfig {
    /// diffusers' constructor defaults.
    fn default() -> Self {
        Self {
            num_train_timesteps: 1000,
            shift: 1.0,
            use_dynamic_shifting: false,
            base_shift: Some(0.5),
            max_shift: Some(1.15),
            base_image_seq_len: Some(256),
            max_image_seq_len: Some(4096),
            time_shift_type: TimeShift::Exponential,
            shift_terminal: None,
        }
    }
}

impl FlowMatchConfig {
    /// Reads `scheduler/scheduler_config.json`; a missing file, bad JSON, a value of the wrong
    /// type or an option we do not implement is bad input naming the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = check::read_config(path)?;
        Self::from_json(&text).map_err(|why| check::bad_config(path, &why))
    }

    /// The config from the file's text; the error is a reason naming the key.
    pub fn from_json(text: &str) -> std::result::Result<Self, String> {
        // diffusers writes with Python's json module (NaN / Infinity tokens).
        let text = crate::engines::sd::json_compat::python_json_to_standard(text);
        let value: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let Value::Object(map) = value else {
            return Err("not a JSON object".to_string());
        };
        Self::from_map(&map)
    }

    fn from_map(map: &Map<String, Value>) -> std::result::Result<Self, String> {
        if let Some(class) = string(map, "_class_name")?
            && class != CLASS
        {
            return Err(format!(
                "`_class_name` = {class:?}: FLUX runs with {CLASS} only"
            ));
        }
        for key in [
            "use_karras_sigmas",
            "use_exponential_sigmas",
            "use_beta_sigmas",
            "invert_sigmas",
            "stochastic_sampling",
        ] {
            if boolean(map, key)?.unwrap_or(false) {
                return Err(check::unsupported(key, true));
            }
        }
        let d = Self::default();
        let time_shift_type = match string(map, "time_shift_type")?.as_deref() {
            None | Some("exponential") => TimeShift::Exponential,
            Some("linear") => TimeShift::Linear,
            Some(other) => return Err(check::unsupported("time_shift_type", other)),
        };
        let config = Self {
            num_train_timesteps: count(map, "num_train_timesteps")?
                .unwrap_or(d.num_train_timesteps),
            shift: number(map, "shift")?.unwrap_or(d.shift),
            use_dynamic_shifting: boolean(map, "use_dynamic_shifting")?.unwrap_or(false),
            base_shift: nullable(map, "base_shift", number, d.base_shift)?,
            max_shift: nullable(map, "max_shift", number, d.max_shift)?,
            base_image_seq_len: nullable(map, "base_image_seq_len", count, d.base_image_seq_len)?,
            max_image_seq_len: nullable(map, "max_image_seq_len", count, d.max_image_seq_len)?,
            time_shift_type,
            shift_terminal: number(map, "shift_terminal")?,
        };
        config.check()?;
        Ok(config)
    }

    /// The values the schedule divides by.
    fn check(&self) -> check::Check {
        check::positive(&[("num_train_timesteps", self.num_train_timesteps)])?;
        if self.use_dynamic_shifting {
            let line = self.shift_line()?;
            if line.base_seq_len == line.max_seq_len {
                return Err(format!(
                    "`base_image_seq_len` = `max_image_seq_len` = {}: the shift line needs two \
                     different lengths",
                    line.base_seq_len
                ));
            }
        } else {
            // shift * s / (1 + (shift - 1) * s) is a schedule from 1 down only for shift > 0.
            check::positive_float("shift", self.shift)?;
        }
        match self.shift_terminal {
            Some(t) if !t.is_finite() || t >= 1.0 => Err(format!(
                "`shift_terminal` = {t}: it must be below 1 (the last sigma it stretches to)"
            )),
            _ => Ok(()),
        }
    }

    /// The dynamic-shift line, or why it is unset.
    pub(crate) fn shift_line(&self) -> std::result::Result<ShiftLine, String> {
        let missing = |k: &str| format!("`{k}` is null but `use_dynamic_shifting` needs it");
        let line = ShiftLine {
            base_seq_len: self
                .base_image_seq_len
                .ok_or_else(|| missing("base_image_seq_len"))?,
            max_seq_len: self
                .max_image_seq_len
                .ok_or_else(|| missing("max_image_seq_len"))?,
            base_shift: self.base_shift.ok_or_else(|| missing("base_shift"))?,
            max_shift: self.max_shift.ok_or_else(|| missing("max_shift"))?,
        };
        for (k, v) in [
            ("base_shift", line.base_shift),
            ("max_shift", line.max_shift),
        ] {
            if !v.is_finite() {
                return Err(format!("`{k}` = {v}: it must be a finite number"));
            }
        }
        Ok(line)
    }
}

/// `calculate_shift`'s line: mu = base_shift at base_seq_len, max_shift at max_seq_len.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShiftLine {
    pub base_seq_len: usize,
    pub max_seq_len: usize,
    pub base_shift: f64,
    pub max_shift: f64,
}

type Field<T> = std::result::Result<Option<T>, String>;

fn wrong(key: &str, what: &str, v: &Value) -> String {
    format!("`{key}` = {v}: expected {what}")
}

/// `key` as a number; None when absent or null.
fn number(map: &Map<String, Value>, key: &str) -> Field<f64> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong(key, "a number", v)),
    }
}

/// `key` as a non-negative integer; None when absent or null.
fn count(map: &Map<String, Value>, key: &str) -> Field<usize> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| wrong(key, "a non-negative integer", v)),
    }
}

fn boolean(map: &Map<String, Value>, key: &str) -> Field<bool> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_bool()
            .map(Some)
            .ok_or_else(|| wrong(key, "true or false", v)),
    }
}

fn string(map: &Map<String, Value>, key: &str) -> Field<String> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_str()
            .map(|s| Some(s.to_string()))
            .ok_or_else(|| wrong(key, "a string", v)),
    }
}

/// An Optional[...] key: absent gives the class default, `null` gives None (as diffusers keeps it).
fn nullable<T>(
    map: &Map<String, Value>,
    key: &str,
    read: fn(&Map<String, Value>, &str) -> Field<T>,
    default: Option<T>,
) -> Field<T> {
    if map.contains_key(key) {
        read(map, key)
    } else {
        Ok(default)
    }
}
