//! DPM-Solver++ multistep (diffusers `DPMSolverMultistepScheduler`, algorithm dpmsolver++):
//! 2M by default, with Karras sigmas as an option; orders 1 and 3 when the config asks.

use candle_core::Tensor;

use super::config::{
    BetaSchedule, ClassDefaults, FinalSigmas, PredictionType, Resolved, SchedulerConfig,
    TimestepSpacing, refuse_sigma_variants, unsupported,
};
use super::ops::{StepCursor, check_index, lincomb};
use super::schedule::{
    alpha_sigma, f32r, interp_index, karras_sigmas, log_sigmas, multistep_timesteps,
    sigma_alphas_cumprod, sigma_of, sigma_to_t, train_sigmas,
};
use super::{NoiseSource, Scheduler};
use crate::{Error, Result};

const CLASS: &str = "DPMSolverMultistepScheduler";

pub(crate) enum Variant {
    /// dpm++2m / dpm++2m-karras: solver order 2, Karras as named.
    TwoM { karras: bool },
    /// Named by class: solver order and Karras sigmas from the config.
    FromConfig,
}

pub(crate) struct DpmSolver {
    name: &'static str,
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    prediction: PredictionType,
    order: usize,
    heun: bool,
    lower_order_final: bool,
    euler_at_final: bool,
    final_zero: bool,
    /// Converted model outputs (x0 predictions), oldest first, at most `order`.
    history: Vec<Tensor>,
    lower_order_nums: usize,
    cursor: StepCursor,
}

impl DpmSolver {
    pub(crate) fn new(cfg: &SchedulerConfig, steps: usize, variant: Variant) -> Result<Self> {
        let defaults = ClassDefaults {
            class: CLASS,
            timestep_spacing: TimestepSpacing::Linspace,
        };
        let r = Resolved::new(cfg, defaults)?;
        refuse_sigma_variants(cfg, CLASS)?;
        let (name, order, karras) = match variant {
            Variant::TwoM { karras } => {
                (if karras { "dpm++2m-karras" } else { "dpm++2m" }, 2, karras)
            }
            Variant::FromConfig => {
                // "deis" is diffusers' alias for dpmsolver++ here.
                match cfg.algorithm_type.as_deref() {
                    None | Some("dpmsolver++") | Some("deis") => {}
                    Some(other) => {
                        return Err(unsupported(CLASS, &format!("algorithm_type \"{other}\"")));
                    }
                }
                let order = cfg.solver_order.unwrap_or(2);
                if !(1..=3).contains(&order) {
                    return Err(Error::bad_input(format!(
                        "scheduler config: solver_order must be 1, 2 or 3, got {order}"
                    )));
                }
                let karras = r.use_karras_sigmas;
                (
                    if karras { "dpm++2m-karras" } else { "dpm++2m" },
                    order,
                    karras,
                )
            }
        };
        // diffusers maps the other solvers' names onto midpoint.
        let heun = cfg.solver_type.as_deref() == Some("heun");

        let ac = sigma_alphas_cumprod(&r);
        let train = train_sigmas(&ac);
        let last_timestep = r.num_train_timesteps - clipped_count(&ac, cfg.lambda_min_clipped);
        let mut timesteps = multistep_timesteps(
            r.timestep_spacing,
            r.num_train_timesteps,
            last_timestep,
            steps,
            r.steps_offset,
        );
        let mut sigmas: Vec<f64> = if karras {
            let sigmas = karras_sigmas(train[0], train[train.len() - 1], steps);
            let logs = log_sigmas(&train);
            timesteps = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &logs);
                    // Rounded except for the cosine schedule, where the int64 cast truncates.
                    if r.beta_schedule == BetaSchedule::SquaredCosCapV2 {
                        t.trunc()
                    } else {
                        t.round_ties_even()
                    }
                })
                .collect();
            sigmas
        } else {
            timesteps.iter().map(|&t| interp_index(t, &train)).collect()
        };
        sigmas.push(match r.final_sigmas_type {
            FinalSigmas::Zero => 0.0,
            FinalSigmas::SigmaMin => sigma_of(ac[0]),
        });
        Ok(Self {
            name,
            timesteps,
            sigmas: sigmas.into_iter().map(f32r).collect(),
            prediction: r.prediction_type,
            order,
            heun,
            lower_order_final: cfg.lower_order_final.unwrap_or(true),
            euler_at_final: cfg.euler_at_final.unwrap_or(false),
            final_zero: r.final_sigmas_type == FinalSigmas::Zero,
            history: Vec::new(),
            lower_order_nums: 0,
            cursor: StepCursor::default(),
        })
    }

    fn lambda(sigma: f64) -> (f64, f64, f64) {
        let (alpha, sigma_t) = alpha_sigma(sigma);
        (alpha, sigma_t, alpha.ln() - sigma_t.ln())
    }
}

/// diffusers' `searchsorted(flip(lambda_t), lambda_min_clipped)`: timesteps cut off at the top.
fn clipped_count(ac: &[f64], lambda_min_clipped: Option<f64>) -> usize {
    let Some(clip) = lambda_min_clipped else {
        return 0;
    };
    ac.iter()
        .filter(|&&a| {
            let a = a as f32;
            let lambda = a.sqrt().ln() - (1.0f32 - a).sqrt().ln();
            (lambda as f64) < clip
        })
        .count()
}

/// The data prediction x0 (dpmsolver++ works on x0 whatever the model predicts).
fn convert(
    prediction: PredictionType,
    sigma: f64,
    model_output: &Tensor,
    sample: &Tensor,
) -> candle_core::Result<Tensor> {
    let (alpha_t, sigma_t) = alpha_sigma(sigma);
    match prediction {
        PredictionType::Epsilon => {
            lincomb(&[(1.0 / alpha_t, sample), (-sigma_t / alpha_t, model_output)])
        }
        PredictionType::VPrediction => lincomb(&[(alpha_t, sample), (-sigma_t, model_output)]),
        PredictionType::Sample => super::ops::f32(model_output),
    }
}

impl Scheduler for DpmSolver {
    fn name(&self) -> &'static str {
        self.name
    }

    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    fn set_begin_index(&mut self, index: usize) {
        self.cursor.set_begin(index);
    }

    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    fn scale_model_input(
        &self,
        sample: &Tensor,
        _timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        Ok(sample.clone())
    }

    fn step(
        &mut self,
        model_output: &Tensor,
        timestep_index: usize,
        sample: &Tensor,
        _noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor> {
        let n = self.timesteps.len();
        check_index(timestep_index, n)?;
        if self.cursor.enter(timestep_index)? {
            self.history.clear();
            self.lower_order_nums = 0;
        }
        let i = timestep_index;
        let lower_order_final = i == n - 1
            && (self.euler_at_final || (self.lower_order_final && n < 15) || self.final_zero);
        let lower_order_second = i + 2 == n && self.lower_order_final && n < 15;

        let x0 = convert(self.prediction, self.sigmas[i], model_output, sample)?;
        self.history.push(x0);
        if self.history.len() > self.order {
            self.history.remove(0);
        }
        let (alpha_t, sigma_t, lambda_t) = Self::lambda(self.sigmas[i + 1]);
        let (_, sigma_s0, lambda_s0) = Self::lambda(self.sigmas[i]);
        let h = lambda_t - lambda_s0;
        let phi = (-h).exp() - 1.0;
        let m = &self.history;
        let m0 = &m[m.len() - 1];

        let prev = if self.order == 1 || self.lower_order_nums < 1 || lower_order_final {
            lincomb(&[(sigma_t / sigma_s0, sample), (-alpha_t * phi, m0)])?
        } else if self.order == 2 || self.lower_order_nums < 2 || lower_order_second {
            let m1 = &m[m.len() - 2];
            let (_, _, lambda_s1) = Self::lambda(self.sigmas[i - 1]);
            let r0 = (lambda_s0 - lambda_s1) / h;
            let c1 = if self.heun {
                alpha_t * (phi / h + 1.0)
            } else {
                -0.5 * alpha_t * phi
            };
            // D1 = (m0 - m1) / r0
            lincomb(&[
                (sigma_t / sigma_s0, sample),
                (-alpha_t * phi + c1 / r0, m0),
                (-c1 / r0, m1),
            ])?
        } else {
            let (m1, m2) = (&m[m.len() - 2], &m[m.len() - 3]);
            let (_, _, lambda_s1) = Self::lambda(self.sigmas[i - 1]);
            let (_, _, lambda_s2) = Self::lambda(self.sigmas[i - 2]);
            let (r0, r1) = ((lambda_s0 - lambda_s1) / h, (lambda_s1 - lambda_s2) / h);
            let d1_0 = lincomb(&[(1.0 / r0, m0), (-1.0 / r0, m1)])?;
            let d1_1 = lincomb(&[(1.0 / r1, m1), (-1.0 / r1, m2)])?;
            let d1 = lincomb(&[(1.0 + r0 / (r0 + r1), &d1_0), (-r0 / (r0 + r1), &d1_1)])?;
            let d2 = lincomb(&[(1.0 / (r0 + r1), &d1_0), (-1.0 / (r0 + r1), &d1_1)])?;
            lincomb(&[
                (sigma_t / sigma_s0, sample),
                (-alpha_t * phi, m0),
                (alpha_t * (phi / h + 1.0), &d1),
                (-alpha_t * ((phi + h) / (h * h) - 0.5), &d2),
            ])?
        };
        if self.lower_order_nums < self.order {
            self.lower_order_nums += 1;
        }
        prev.to_dtype(model_output.dtype())
    }

    fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor> {
        check_index(timestep_index, self.timesteps.len())?;
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[timestep_index]);
        lincomb(&[(alpha_t, original), (sigma_t, noise)])?.to_dtype(original.dtype())
    }
}
