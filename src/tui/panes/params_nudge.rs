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
const UPSCALES: [Option<u32>; 3] = [None, Some(2), Some(4)];
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
            // A video model's frame step (LTX-Video 8n+1, Wan 4n+1) keeps a valid count valid.
            let step = match (field, self.form.family.and_then(|f| f.video_steps())) {
                (ParamField::Frames, Some((temporal, _))) => f64::from(temporal),
                _ => step,
            };
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
                // Only the schedulers the model runs: flow-euler for FLUX and Z-Image, the
                // UNet schedulers otherwise.
                let flow = self
                    .current_model()
                    .is_some_and(|m| m.defaults.scheduler.is_flow());
                let names: Vec<String> = crate::vocab::Scheduler::names()
                    .into_iter()
                    .filter(|n| {
                        crate::vocab::Scheduler::parse(n).is_ok_and(|s| s.is_flow() == flow)
                    })
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
            ParamField::ControlPreprocess => {
                self.form.toolkit.control_canny ^= true;
                out.push(Action::ParamsChanged);
                out.extend(self.preview_control());
                return;
            }
            ParamField::Upscale => {
                self.form.toolkit.upscale =
                    cycle(&UPSCALES, &self.form.toolkit.upscale, forward).unwrap_or_default();
                out.push(Action::ParamsChanged);
                return;
            }
            ParamField::Upscaler => {
                // The scale's default, the registry's upscalers, and a file typed or given.
                let mut ids: Vec<String> = std::iter::once(String::new())
                    .chain(
                        self.models
                            .iter()
                            .filter(|m| m.kind == crate::models::Kind::Upscale)
                            .map(|m| m.id.clone()),
                    )
                    .collect();
                if !ids.contains(&self.form.toolkit.upscaler) {
                    ids.push(self.form.toolkit.upscaler.clone());
                }
                cycle(&ids, &self.form.toolkit.upscaler, forward).unwrap_or_default()
            }
            _ => return,
        };
        self.commit(field, value, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{Defaults, Kind, Verdict};
    use crate::tui::panes::form::{Form, ModelChoice};
    use crate::vocab::Scheduler;

    fn pane(scheduler: Scheduler) -> ParamsPane {
        let model = ModelChoice {
            id: "m".into(),
            name: "m".into(),
            verdict: Verdict::Ok,
            defaults: Defaults {
                scheduler,
                ..Defaults::default()
            },
            native: [1024, 1024],
            kind: Kind::Txt2img,
            family: None,
        };
        let form = Form {
            model: "m".into(),
            ..Form::default()
        };
        let mut p = ParamsPane::new(form, vec![model]);
        p.selected = p
            .form
            .fields()
            .iter()
            .position(|f| *f == ParamField::Scheduler)
            .unwrap();
        p
    }

    /// Every scheduler Right offers, starting from the model's default.
    fn offered(p: &mut ParamsPane) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..10 {
            p.nudge(true, &mut Vec::new());
            let s = p.form.scheduler.clone();
            if seen.contains(&s) {
                break;
            }
            seen.push(s);
        }
        seen
    }

    #[test]
    fn the_scheduler_cycles_through_what_the_model_runs() {
        assert_eq!(offered(&mut pane(Scheduler::FlowEuler)), ["flow-euler"]);
        let unet = offered(&mut pane(Scheduler::Euler));
        assert_eq!(unet.len(), Scheduler::names().len() - 1, "{unet:?}");
        assert!(!unet.contains(&"flow-euler".to_owned()));
    }
}
