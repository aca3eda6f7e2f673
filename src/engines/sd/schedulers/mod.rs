//! Diffusion schedulers, exact against diffusers 0.42.1: DDIM, Euler, Euler Ancestral,
//! DPM-Solver++ 2M (optionally with Karras sigmas) and UniPC.
//!
//! Steps are addressed by index into `timesteps()`, not by timestep value: diffusers looks the
//! value up and picks the *second* match when a timestep repeats (Karras sigmas can repeat), which
//! skips a step; indexing is what diffusers does whenever a begin index is set, and what its
//! pipelines mean. Multistep solvers keep their history between calls, so their steps must run in
//! order from the begin index (a step at the begin index starts afresh).

pub mod config;
mod ddim;
mod dpm_solver;
mod euler;
mod euler_ancestral;
mod flow;
mod names;
mod ops;
mod schedule;
mod unipc;

use candle_core::Tensor;

pub use config::SchedulerConfig;
pub use names::SchedulerKind;

use super::noise::NoiseSource;

/// One configured sampling schedule and its update rule. The pipeline's loop:
/// `for i in begin..timesteps().len() { x_in = scale_model_input(x, i); eps = unet(x_in, timesteps()[i]);
/// x = step(eps, i, x, noise) }`, starting from `randn * init_noise_sigma()` (or `add_noise`).
pub trait Scheduler: Send {
    /// The CLI name of this scheduler (for the PNG "Sampler:" field and logs).
    fn name(&self) -> &'static str;
    /// The model timesteps, in order (f64: Euler with linspace spacing interpolates).
    fn timesteps(&self) -> &[f64];
    /// The noise levels (sigma = sqrt((1 - alpha_bar) / alpha_bar)) at each timestep plus the final
    /// one, float32 values as diffusers holds them; empty for DDIM, which has none.
    fn sigmas(&self) -> &[f64];
    /// Img2img: start at this index into timesteps() (diffusers' set_begin_index; multistep
    /// history starts fresh).
    fn set_begin_index(&mut self, index: usize);
    fn init_noise_sigma(&self) -> f64;
    /// Scale the latents before the UNet (Euler family divides by sqrt(sigma^2+1)); identity otherwise.
    fn scale_model_input(
        &self,
        sample: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor>;
    /// One step from timestep_index: model output (already guided) -> previous sample, in the
    /// model output's dtype (computed in float32). `noise` draws fresh standard normal noise
    /// (ancestral samplers; one draw per step, the last included, as diffusers does).
    fn step(
        &mut self,
        model_output: &Tensor,
        timestep_index: usize,
        sample: &Tensor,
        noise: &mut dyn NoiseSource,
    ) -> candle_core::Result<Tensor>;
    /// Noise a clean sample to the level of timesteps()[timestep_index] (img2img, inpaint blending).
    fn add_noise(
        &self,
        original: &Tensor,
        noise: &Tensor,
        timestep_index: usize,
    ) -> candle_core::Result<Tensor>;
    /// diffusers' `scheduler.order`: 1 for every scheduler here (DPM-Solver and UniPC included:
    /// they are multistep, one model call per step).
    fn order(&self) -> usize {
        1
    }
}

/// Build the named scheduler (see [`crate::vocab::Scheduler`]; aliases and diffusers class names are
/// accepted) from the model's scheduler config, with `steps` inference steps.
pub fn build(
    name: &str,
    config: &SchedulerConfig,
    steps: usize,
) -> crate::Result<Box<dyn Scheduler>> {
    let kind = SchedulerKind::parse(name)?;
    build_kind(kind, config, steps)
}

/// Build a scheduler of an already parsed kind.
pub fn build_kind(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    steps: usize,
) -> crate::Result<Box<dyn Scheduler>> {
    if steps == 0 {
        return Err(crate::Error::bad_input("--steps must be at least 1"));
    }
    let _span = tracing::debug_span!("scheduler", name = kind.cli_name(), steps).entered();
    Ok(match kind {
        SchedulerKind::Ddim => Box::new(ddim::Ddim::new(config, steps)?),
        SchedulerKind::Euler => Box::new(euler::Euler::new(config, steps)?),
        SchedulerKind::EulerAncestral => {
            Box::new(euler_ancestral::EulerAncestral::new(config, steps)?)
        }
        SchedulerKind::DpmPp2m { karras } => Box::new(dpm_solver::DpmSolver::new(
            config,
            steps,
            dpm_solver::Variant::TwoM { karras },
        )?),
        SchedulerKind::DpmSolverFromConfig => Box::new(dpm_solver::DpmSolver::new(
            config,
            steps,
            dpm_solver::Variant::FromConfig,
        )?),
        SchedulerKind::UniPc => Box::new(unipc::UniPc::new(config, steps)?),
    })
}

/// diffusers' img2img `get_timesteps`: the index to start at for this strength
/// (`steps - min(int(steps * strength), steps)`); equal to `steps` when nothing is left to do.
pub fn img2img_start(steps: usize, strength: f64) -> usize {
    let init = ((steps as f64 * strength) as usize).min(steps);
    steps - init
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn img2img_start_follows_diffusers() {
        assert_eq!(img2img_start(10, 0.6), 4);
        assert_eq!(img2img_start(20, 0.6), 8);
        assert_eq!(img2img_start(4, 0.6), 2);
        assert_eq!(img2img_start(1, 0.6), 1);
        assert_eq!(img2img_start(50, 1.0), 0);
        assert_eq!(img2img_start(50, 0.0), 50);
        assert_eq!(img2img_start(3, 1.5), 0);
    }

    #[test]
    fn zero_steps_is_bad_input() {
        let err = build("euler", &SchedulerConfig::default(), 0)
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn every_name_builds_with_order_one() {
        for kind in crate::vocab::Scheduler::ALL.iter().filter(|s| !s.is_flow()) {
            let name = kind.as_str();
            let s = build(name, &SchedulerConfig::default(), 10).unwrap();
            assert_eq!(s.name(), name);
            assert_eq!(s.order(), 1);
            assert_eq!(s.timesteps().len(), 10);
        }
    }
}
