//! diffusers' FlowMatchEulerDiscreteScheduler as FluxPipeline and FluxImg2ImgPipeline drive it:
//! the sigmas the pipeline hands `set_timesteps` (`linspace(1, 1/steps, steps)`), the
//! resolution-dependent shift `mu`, img2img's truncation by strength, `scale_noise` and the
//! Euler step.
//!
//! The arithmetic follows diffusers' types, not just its formulas: the pipeline's float64 sigmas
//! become a float32 numpy array before shifting, and numpy keeps every shift operation in float32
//! (Python floats such as `e^mu` or `shift` are rounded to float32 first: NEP 50's weak scalars).
//! Timesteps are float32 tensors (`sigmas * 1000` in float32). So every value here is an f32
//! computed by the same f32 operations, stored as f64 for callers.

mod config;

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

pub use config::{FlowMatchConfig, TimeShift};

/// diffusers' `calculate_shift` (pipeline_flux.py): the `mu` of the line through
/// (base_seq_len, base_shift) and (max_seq_len, max_shift) at `image_seq_len`, in float64 as
/// Python computes it (integer differences are exact, then converted).
pub fn calculate_shift(
    image_seq_len: usize,
    base_seq_len: usize,
    max_seq_len: usize,
    base_shift: f64,
    max_shift: f64,
) -> f64 {
    let m = (max_shift - base_shift) / (max_seq_len as f64 - base_seq_len as f64);
    let b = base_shift - m * base_seq_len as f64;
    image_seq_len as f64 * m + b
}

/// `np.linspace(start, stop, num)` in float64, numpy's way: `i * step + start`, the last value
/// set to `stop` exactly.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// `torch.linspace(start, end, num)` in float32 as torch's CPU kernel computes it: one f32 step,
/// the first half counted up from `start`, the second half down from `end`, each value one fused
/// multiply-add (checked against torch for every length up to 119).
fn torch_linspace_f32(start: f32, end: f32, num: usize) -> Vec<f32> {
    if num == 1 {
        return vec![start];
    }
    let step = (end - start) / (num - 1) as f32;
    let halfway = num / 2;
    (0..num)
        .map(|i| {
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((num - i - 1) as f32, end)
            }
        })
        .collect()
}

/// A flow-matching Euler schedule: timesteps, sigmas (one more: the trailing 0) and the index
/// img2img starts at.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowMatchEuler {
    timesteps: Vec<f64>,
    sigmas: Vec<f64>,
    begin: usize,
}

impl FlowMatchEuler {
    /// FluxPipeline's schedule: sigmas = linspace(1.0, 1/steps, steps); mu = calculate_shift(
    /// image_seq_len, ..) (used only when `use_dynamic_shifting`); then `set_timesteps(sigmas=,
    /// mu=)`. `image_seq_len` is the packed latents' sequence length ((h/16) * (w/16) pixels).
    pub fn for_flux(config: &FlowMatchConfig, steps: usize, image_seq_len: usize) -> Result<Self> {
        if steps == 0 {
            return Err(Error::bad_input("FLUX needs at least 1 inference step"));
        }
        let sigmas = linspace(1.0, 1.0 / steps as f64, steps);
        let mu = if config.use_dynamic_shifting {
            let l = config.shift_line().map_err(Error::bad_input)?;
            Some(calculate_shift(
                image_seq_len,
                l.base_seq_len,
                l.max_seq_len,
                l.base_shift,
                l.max_shift,
            ))
        } else {
            None
        };
        Self::with_sigmas(config, &sigmas, mu)
    }

    /// ZImagePipeline's schedule: sigmas = `torch.linspace(1.0, 1/steps, steps)` (float32, torch's
    /// own arithmetic), mu = calculate_shift(image_seq_len, ..) with diffusers' defaults for the
    /// keys the config lacks (used only when `use_dynamic_shifting`); then `set_timesteps(sigmas=,
    /// mu=)`.
    pub fn for_zimage(
        config: &FlowMatchConfig,
        steps: usize,
        image_seq_len: usize,
    ) -> Result<Self> {
        if steps == 0 {
            return Err(Error::bad_input("Z-Image needs at least 1 inference step"));
        }
        let sigmas: Vec<f64> = torch_linspace_f32(1.0, (1.0 / steps as f64) as f32, steps)
            .into_iter()
            .map(f64::from)
            .collect();
        let mu = config.use_dynamic_shifting.then(|| {
            calculate_shift(
                image_seq_len,
                config.base_image_seq_len.unwrap_or(256),
                config.max_image_seq_len.unwrap_or(4096),
                config.base_shift.unwrap_or(0.5),
                config.max_shift.unwrap_or(1.15),
            )
        });
        Self::with_sigmas(config, &sigmas, mu)
    }

    /// diffusers' `set_timesteps(sigmas=sigmas, mu=mu)`. `mu` is required with dynamic shifting
    /// (diffusers raises without it) and ignored otherwise.
    pub fn with_sigmas(config: &FlowMatchConfig, sigmas: &[f64], mu: Option<f64>) -> Result<Self> {
        if sigmas.is_empty() {
            return Err(Error::bad_input("the scheduler got no sigmas"));
        }
        // `np.array(sigmas).astype(np.float32)`.
        let input: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
        let mut shifted: Vec<f32> = if config.use_dynamic_shifting {
            let mu = mu.ok_or_else(|| {
                Error::bad_input("the scheduler uses dynamic shifting and needs `mu`")
            })?;
            // `(1/t - 1) ** 1.0` is exact, so the power is left out.
            match config.time_shift_type {
                TimeShift::Exponential => {
                    let e = mu.exp() as f32;
                    input.iter().map(|&t| e / (e + (1.0 / t - 1.0))).collect()
                }
                TimeShift::Linear => {
                    let m = mu as f32;
                    input.iter().map(|&t| m / (m + (1.0 / t - 1.0))).collect()
                }
            }
        } else {
            // `shift * s / (1 + (shift - 1) * s)`: `shift - 1` is a Python float subtraction.
            let shift = config.shift as f32;
            let shift_m1 = (config.shift - 1.0) as f32;
            input
                .iter()
                .map(|&s| shift * s / (1.0 + shift_m1 * s))
                .collect()
        };
        if let Some(terminal) = config.shift_terminal.filter(|&t| t != 0.0) {
            stretch_to_terminal(&mut shifted, terminal);
        }
        Ok(Self::from_shifted(&shifted, config.num_train_timesteps))
    }

    /// The schedule of final (shifted) f32 sigmas: timesteps `sigma * num_train_timesteps` in
    /// f32, a trailing 0 sigma (the end of diffusers' `set_timesteps`).
    pub(crate) fn from_shifted(shifted: &[f32], num_train_timesteps: usize) -> Self {
        let train = num_train_timesteps as f32;
        let timesteps = shifted.iter().map(|&s| f64::from(s * train)).collect();
        let mut sigmas: Vec<f64> = shifted.iter().map(|&s| f64::from(s)).collect();
        sigmas.push(0.0);
        Self {
            timesteps,
            sigmas,
            begin: 0,
        }
    }

    /// The timesteps still to run (from the img2img start), float32 values.
    pub fn timesteps(&self) -> &[f64] {
        &self.timesteps[self.begin..]
    }

    /// The sigmas still to use: one per remaining timestep, then the trailing 0.
    pub fn sigmas(&self) -> &[f64] {
        &self.sigmas[self.begin..]
    }

    /// The whole schedule's sigmas, as diffusers' `scheduler.sigmas` holds them after truncation.
    pub fn all_sigmas(&self) -> &[f64] {
        &self.sigmas
    }

    /// The schedule index the remaining steps start at (diffusers' `begin_index`).
    pub fn begin_index(&self) -> usize {
        self.begin
    }

    /// FluxImg2ImgPipeline.get_timesteps: init_timestep = min(steps * strength, steps); the first
    /// int(max(steps - init_timestep, 0)) steps are dropped (float64 arithmetic, truncated as
    /// Python's `int`). Returns the steps left; none left is bad input, as in diffusers.
    pub fn truncate_for_strength(&mut self, strength: f64) -> Result<usize> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(Error::bad_input(format!(
                "strength {strength} must be between 0 and 1"
            )));
        }
        let steps = self.timesteps.len();
        let init_timestep = (steps as f64 * strength).min(steps as f64);
        let t_start = (steps as f64 - init_timestep).max(0.0) as usize;
        let left = steps - t_start;
        if left < 1 {
            return Err(Error::bad_input(format!(
                "strength {strength} with {steps} steps leaves no step to run; raise the \
                 strength or the step count"
            )));
        }
        self.begin = t_start;
        Ok(left)
    }

    /// diffusers' `scale_noise` before the first step: `sigma * noise + (1 - sigma) * sample` at
    /// the begin index, computed in the sample's dtype as diffusers does (it casts its sigmas to
    /// the sample's dtype). `noise` is cast to that dtype too.
    pub fn scale_noise(&self, sample: &Tensor, noise: &Tensor) -> Result<Tensor> {
        let dtype = sample.dtype();
        let device = sample.device();
        let sigma = Tensor::new(self.sigmas[self.begin] as f32, device)?.to_dtype(dtype)?;
        let one_minus = sigma.affine(-1.0, 1.0)?;
        let noise = noise.to_dtype(dtype)?;
        Ok((noise.broadcast_mul(&sigma)? + sample.broadcast_mul(&one_minus)?)?)
    }

    /// Euler step `i` (an index into [`Self::timesteps`]): `sample + (sigma_next - sigma) *
    /// model_output`, returned in the model output's dtype. As in diffusers: the sample is
    /// upcast to f32; the sigma difference is an f32 subtraction; torch's promotion multiplies
    /// that 0-dim f32 by the model output in the output's dtype; the sum is f32.
    pub fn step(&self, model_output: &Tensor, i: usize, sample: &Tensor) -> Result<Tensor> {
        let remaining = self.timesteps().len();
        if i >= remaining {
            return Err(Error::job_failed(format!(
                "scheduler step {i} is out of range: {remaining} steps remain"
            )));
        }
        let at = self.begin + i;
        let dt = self.sigmas[at + 1] as f32 - self.sigmas[at] as f32;
        let out_dtype = model_output.dtype();
        let dt = Tensor::new(dt, model_output.device())?.to_dtype(out_dtype)?;
        let delta = model_output.broadcast_mul(&dt)?.to_dtype(DType::F32)?;
        let prev = (sample.to_dtype(DType::F32)? + delta)?;
        Ok(prev.to_dtype(out_dtype)?)
    }
}

/// diffusers' `stretch_shift_to_terminal`: `1 - (1 - t) / ((1 - t_last) / (1 - terminal))`, in
/// float32 (the float32 scalar `1 - t_last` divided by a Python float stays float32 under NumPy
/// 2's promotion).
fn stretch_to_terminal(sigmas: &mut [f32], terminal: f64) {
    let Some(&last) = sigmas.last() else {
        return;
    };
    let scale = (1.0 - last) / (1.0 - terminal) as f32;
    for s in sigmas.iter_mut() {
        *s = 1.0 - (1.0 - *s) / scale;
    }
}

#[cfg(test)]
mod tests;
