//! Left/Right on a parameter: numbers step within their range, choices (scheduler, size preset,
//! dtype, residency) cycle, toggles flip.

use super::super::Action;
use super::super::form::ParamField;
use super::super::presets::size_presets;
use super::ParamsPane;
use crate::vocab::{DtypeChoice, ResidencyChoice};

const DTYPES: [DtypeChoice; 4] = [
    DtypeChoice::Auto,
    DtypeChoice::F32,
    DtypeChoice::F16,
    DtypeChoice::Bf16,
];
const RESIDENCIES: [Option<ResidencyChoice>; 3] = [
    None,
    Some(ResidencyChoice::Resident),
    Some(ResidencyChoice::Staged),
];
fn cycle<T: PartialEq + Clone>(items: &[T], current: &T, forward: bool) -> Option<T> {
    let n = items.len();
    if n == 0 {
        return None;
    }
    let i = items.iter().position(|x| x == current);
    let j = match (i, forward) {
        (None, true) => 0,
        (None, false) => n - 1,
        (Some(i), true) => (i + 1) % n,
        (Some(i), false) => (i + n - 1) % n,
    };
    Some(items[j].clone())
}

impl ParamsPane {
    pub(super) fn nudge(&mut self, forward: bool, out: &mut Vec<Action>) {
        let field = self.field();
        if let Some((step, min, max, decimals)) = field.nudge_range() {
            let base: f64 = self
                .form
                .get(field)
                .trim()
                .parse()
                .or_else(|_| self.default_text(field).parse())
                .unwrap_or(min);
            let sign = if forward { 1.0 } else { -1.0 };
            let value = format!("{:.*}", decimals, (base + sign * step).clamp(min, max));
            self.commit(field, value, out);
            return;
        }
        let value = match field {
            ParamField::Scheduler => {
                let current = if self.form.scheduler.is_empty() {
                    self.default_text(field)
                } else {
                    self.form.scheduler.clone()
                };
                let names: Vec<String> = crate::vocab::Scheduler::names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                cycle(&names, &current, forward).unwrap_or_default()
            }
            ParamField::Size => {
                let native = self.current_model().map_or([512, 512], |m| m.native);
                let sizes: Vec<String> = size_presets(native)
                    .iter()
                    .map(|(w, h)| format!("{w}x{h}"))
                    .collect();
                let current = if self.form.size.is_empty() {
                    self.default_text(field)
                } else {
                    self.form.size.clone()
                };
                cycle(&sizes, &current, forward).unwrap_or_default()
            }
            ParamField::Dtype => {
                self.form.dtype = cycle(&DTYPES, &self.form.dtype, forward).unwrap_or_default();
                out.push(Action::ParamsChanged);
                return;
            }
            ParamField::Residency => {
                self.form.residency =
                    cycle(&RESIDENCIES, &self.form.residency, forward).unwrap_or_default();
                out.push(Action::ParamsChanged);
                return;
            }
            ParamField::Seed => {
                self.form.random_seed ^= true;
                out.push(Action::ParamsChanged);
                return;
            }
            ParamField::Translate => {
                self.form.translate ^= true;
                out.push(Action::ParamsChanged);
                return;
            }
            _ => return,
        };
        self.commit(field, value, out);
    }
}
