//! UniPC (diffusers `UniPCMultistepScheduler`; defaults bh2, solver order 2, predict_x0): a
//! multistep predictor, and a corrector applied to each incoming sample using the new model output.
//! With `use_flow_sigmas` (Wan) it runs on flow-matching sigmas (see [`super::flow`]).

use candle_core::Tensor;

use super::config::{
    ClassDefaults, FinalSigmas, PredictionType, Resolved, SchedulerConfig, TimestepSpacing,
    refuse_sigma_variants, unsupported,
};
use super::flow::{check_flow_config, flow_schedule, is_flow};
use super::ops::{StepCursor, check_index, lincomb};
use super::schedule::{
    alpha_sigma, f32r, interp_index, karras_sigmas, log_sigmas, multistep_timesteps,
    sigma_alphas_cumprod, sigma_of, sigma_to_t, train_sigmas,
};
use super::{NoiseSource, Scheduler};
use crate::{Error, Result};

const CLASS: &str = "UniPCMultistepScheduler";

pub(crate) struct UniPc {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    prediction: PredictionType,
    /// Flow matching: alpha = 1 - sigma, sigma_t = sigma, velocity predictions.
    flow: bool,
    order: usize,
    predict_x0: bool,
    bh2: bool,
    lower_order_final: bool,
    disable_corrector: Vec<usize>,
    /// Converted model outputs, oldest first, at most `order`.
    history: Vec<Tensor>,
    /// The (corrected) sample the last predictor started from, and that predictor's order.
    last_sample: Option<Tensor>,
    this_order: usize,
    lower_order_nums: usize,
    cursor: StepCursor,
}

impl UniPc {
    pub(crate) fn new(cfg: &SchedulerConfig, steps: usize) -> Result<Self> {
        let defaults = ClassDefaults {
            class: CLASS,
            timestep_spacing: TimestepSpacing::Linspace,
        };
        let flow = is_flow(cfg);
        let flow_rest;
        let shared = if flow {
            flow_rest = check_flow_config(cfg, CLASS)?;
            &flow_rest
        } else {
            refuse_sigma_variants(cfg, CLASS)?;
            cfg
        };
        let r = Resolved::new(shared, defaults)?;
        let order = cfg.solver_order.unwrap_or(2);
        if order == 0 {
            return Err(Error::bad_input(
                "scheduler config: solver_order must be at least 1",
            ));
        }
        // diffusers maps DPM-Solver's solver names onto bh2.
        let bh2 = match cfg.solver_type.as_deref() {
            None | Some("bh2") | Some("midpoint") | Some("heun") | Some("logrho") => true,
            Some("bh1") => false,
            Some(other) => return Err(unsupported(CLASS, &format!("solver_type \"{other}\""))),
        };

        let ac = sigma_alphas_cumprod(&r);
        let train = train_sigmas(&ac);
        let mut timesteps = multistep_timesteps(
            r.timestep_spacing,
            r.num_train_timesteps,
            r.num_train_timesteps,
            steps,
            r.steps_offset,
        );
        let sigmas: Vec<f64> = if flow {
            let s = flow_schedule(
                cfg,
                r.num_train_timesteps,
                steps,
                r.final_sigmas_type == FinalSigmas::Zero,
            );
            timesteps = s.timesteps;
            s.sigmas
        } else if r.use_karras_sigmas {
            let lo = cfg.sigma_min.unwrap_or(train[0]);
            let hi = cfg.sigma_max.unwrap_or(train[train.len() - 1]);
            let mut sigmas = karras_sigmas(lo, hi, steps);
            let logs = log_sigmas(&train);
            timesteps = sigmas
                .iter()
                .map(|&s| sigma_to_t(s, &logs).round_ties_even())
                .collect();
            let last = match r.final_sigmas_type {
                FinalSigmas::Zero => 0.0,
                FinalSigmas::SigmaMin => sigmas[sigmas.len() - 1],
            };
            sigmas.push(last);
            sigmas
        } else {
            let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp_index(t, &train)).collect();
            sigmas.push(match r.final_sigmas_type {
                FinalSigmas::Zero => 0.0,
                FinalSigmas::SigmaMin => sigma_of(ac[0]),
            });
            sigmas
        };
        Ok(Self {
            timesteps,
            sigmas: sigmas.into_iter().map(f32r).collect(),
            prediction: r.prediction_type,
            flow,
            order,
            predict_x0: cfg.predict_x0.unwrap_or(true),
            bh2,
            lower_order_final: cfg.lower_order_final.unwrap_or(true),
            disable_corrector: cfg.disable_corrector.clone().unwrap_or_default(),
            history: Vec::new(),
            last_sample: None,
            this_order: 1,
            lower_order_nums: 0,
            cursor: StepCursor::default(),
        })
    }

    /// alpha_t and sigma_t at this sigma (diffusers' `_sigma_to_alpha_sigma_t`).
    fn alpha_sigma(&self, sigma: f64) -> (f64, f64) {
        if self.flow {
            (1.0 - sigma, sigma)
        } else {
            alpha_sigma(sigma)
        }
    }

    fn lambda(&self, index: usize) -> (f64, f64, f64) {
        let (alpha, sigma) = self.alpha_sigma(self.sigmas[index]);
        (alpha, sigma, alpha.ln() - sigma.ln())
    }

    /// x0 (predict_x0) or epsilon from the raw model output.
    fn convert(
        &self,
        model_output: &Tensor,
        sample: &Tensor,
        index: usize,
    ) -> candle_core::Result<Tensor> {
        if self.flow {
            // x0 = sample - sigma * velocity (predict_x0 is required with flow).
            return lincomb(&[(1.0, sample), (-self.sigmas[index], model_output)]);
        }
        let (alpha_t, sigma_t) = alpha_sigma(self.sigmas[index]);
        match (self.predict_x0, self.prediction) {
            (true, PredictionType::Epsilon) => {
                lincomb(&[(1.0 / alpha_t, sample), (-sigma_t / alpha_t, model_output)])
            }
            (true, PredictionType::VPrediction) => {
                lincomb(&[(alpha_t, sample), (-sigma_t, model_output)])
            }
            (false, PredictionType::Epsilon) | (true, PredictionType::Sample) => {
                super::ops::f32(model_output)
            }
            (false, PredictionType::Sample) => {
                lincomb(&[(1.0 / sigma_t, sample), (-alpha_t / sigma_t, model_output)])
            }
            (false, PredictionType::VPrediction) => {
                lincomb(&[(alpha_t, model_output), (sigma_t, sample)])
            }
        }
    }

    /// One UniPC update from `x` at sigma index `s0` to `t`, using the last `order` history
    /// entries (taken at indices s0, s0-1, ...). `corrector` carries the new model output for the
    /// UniC correction (it then adds the D1_t term and solves the full system).
    fn update(
        &self,
        x: &Tensor,
        s0: usize,
        t: usize,
        order: usize,
        corrector: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (alpha_t, sigma_t, lambda_t) = self.lambda(t);
        let (alpha_s0, sigma_s0, lambda_s0) = self.lambda(s0);
        let h = lambda_t - lambda_s0;
        let m = &self.history;
        let m0 = &m[m.len() - 1];

        let mut rks = Vec::with_capacity(order);
        for k in 1..order {
            let (_, _, lambda_sk) = self.lambda(s0 - k);
            rks.push((lambda_sk - lambda_s0) / h);
        }
        rks.push(1.0);

        let hh = if self.predict_x0 { -h } else { h };
        let h_phi_1 = hh.exp_m1();
        let b_h = if self.bh2 { hh.exp_m1() } else { hh };
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let mut factorial = 1.0;
        let mut rows = Vec::with_capacity(order);
        let mut b = Vec::with_capacity(order);
        for i in 1..=order {
            rows.push(
                rks.iter()
                    .map(|r| r.powi(i as i32 - 1))
                    .collect::<Vec<f64>>(),
            );
            b.push(h_phi_k * factorial / b_h);
            factorial *= (i + 1) as f64;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }

        // rhos for the D1 terms (and, for the corrector, the D1_t term last).
        let rhos: Vec<f64> = match corrector {
            None if order == 1 => Vec::new(),
            None if order == 2 => vec![0.5],
            None => solve(&sub_matrix(&rows, order - 1), &b[..order - 1])?,
            Some(_) if order == 1 => vec![0.5],
            Some(_) => solve(&rows, &b)?,
        };

        let (base_x, base_m0, scale) = if self.predict_x0 {
            (sigma_t / sigma_s0, -alpha_t * h_phi_1, alpha_t * b_h)
        } else {
            (alpha_t / alpha_s0, -sigma_t * h_phi_1, sigma_t * b_h)
        };
        // x_t = base_x*x + base_m0*m0 - scale*(sum_k rho_k (m_k - m0)/r_k [+ rho_t (model_t - m0)])
        let mut m0_coef = base_m0;
        let mut terms: Vec<(f64, &Tensor)> = vec![(base_x, x)];
        for k in 1..order {
            let coef = rhos[k - 1] / rks[k - 1];
            terms.push((-scale * coef, &m[m.len() - 1 - k]));
            m0_coef += scale * coef;
        }
        if let Some(model_t) = corrector {
            let rho_t = rhos[rhos.len() - 1];
            terms.push((-scale * rho_t, model_t));
            m0_coef += scale * rho_t;
        }
        terms.push((m0_coef, m0));
        lincomb(&terms)
    }
}

fn sub_matrix(rows: &[Vec<f64>], n: usize) -> Vec<Vec<f64>> {
    rows[..n].iter().map(|r| r[..n].to_vec()).collect()
}

/// Solve `a x = b` (tiny systems) by Gaussian elimination with partial pivoting.
fn solve(a: &[Vec<f64>], b: &[f64]) -> candle_core::Result<Vec<f64>> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = a
        .iter()
        .zip(b)
        .map(|(row, &v)| row.iter().copied().chain([v]).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs()))
            .unwrap_or(col);
        if m[pivot][col] == 0.0 || !m[pivot][col].is_finite() {
            return Err(candle_core::Error::Msg(
                "unipc: singular corrector system".into(),
            ));
        }
        m.swap(col, pivot);
        let pivot_row = m[col].clone();
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / pivot_row[col];
            for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                *v -= f * p;
            }
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| m[row][k] * x[k]).sum();
        x[row] = (m[row][n] - s) / m[row][row];
    }
    Ok(x)
}

impl Scheduler for UniPc {
    fn name(&self) -> &'static str {
        "unipc"
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
        let i = timestep_index;
        check_index(i, n)?;
        if self.cursor.enter(i)? {
            self.history.clear();
            self.last_sample = None;
            self.lower_order_nums = 0;
        }
        let converted = self.convert(model_output, sample, i)?;
        let sample = match &self.last_sample {
            Some(last) if i > 0 && !self.disable_corrector.contains(&(i - 1)) => {
                self.update(last, i - 1, i, self.this_order, Some(&converted))?
            }
            _ => super::ops::f32(sample)?,
        };
        self.history.push(converted);
        if self.history.len() > self.order {
            self.history.remove(0);
        }
        let this_order = if self.lower_order_final {
            self.order.min(n - i)
        } else {
            self.order
        };
        self.this_order = this_order.min(self.lower_order_nums + 1);
        let prev = self.update(&sample, i, i + 1, self.this_order, None)?;
        self.last_sample = Some(sample);
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
        let (alpha_t, sigma_t) = self.alpha_sigma(self.sigmas[timestep_index]);
        lincomb(&[(alpha_t, original), (sigma_t, noise)])?.to_dtype(original.dtype())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn solve_small_systems() {
        let x = solve(&[vec![1.0, 1.0], vec![1.0, 3.0]], &[3.0, 7.0]).unwrap();
        assert!(
            (x[0] - 1.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12,
            "{x:?}"
        );
        let x = solve(&[vec![0.0, 2.0], vec![1.0, 0.0]], &[4.0, 5.0]).unwrap();
        assert!(
            (x[0] - 5.0).abs() < 1e-12 && (x[1] - 2.0).abs() < 1e-12,
            "{x:?}"
        );
        assert!(solve(&[vec![1.0, 2.0], vec![2.0, 4.0]], &[1.0, 2.0]).is_err());
    }
}
