//! Schedulers against diffusers 0.42.1: timesteps, sigmas, init_noise_sigma, whole denoising
//! trajectories with a fake model, add_noise and img2img runs, for SD 1.5, SD 2.1 (v-prediction),
//! SDXL, turbo (trailing) and a cosine-schedule config. References:
//! tests/fixtures/schedulers/make_scheduler_refs.py.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use pallaidium::engines::nn::compare;
use pallaidium::engines::sd::noise::NoiseSource;
use pallaidium::engines::sd::schedulers::{Scheduler, SchedulerConfig, build, img2img_start};
use serde_json::Value;

const REL_TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedulers")
}

struct Refs {
    meta: Value,
    tensors: HashMap<String, Tensor>,
}

impl Refs {
    fn load() -> Self {
        let dir = fixtures();
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("scheduler_refs.json")).unwrap(),
        )
        .unwrap();
        let tensors =
            candle_core::safetensors::load(dir.join("scheduler_refs.safetensors"), &Device::Cpu)
                .unwrap();
        Self { meta, tensors }
    }

    fn t(&self, key: &str) -> &Tensor {
        self.tensors
            .get(key)
            .unwrap_or_else(|| panic!("missing reference tensor {key}"))
    }

    fn config(&self, name: &str) -> SchedulerConfig {
        let json = serde_json::to_string(&self.meta["configs"][name]).unwrap();
        SchedulerConfig::from_json(&json).unwrap()
    }
}

/// Replays the noise diffusers drew (Euler Ancestral), in order; errors once exhausted.
struct ReplayNoise {
    draws: Vec<Tensor>,
    next: usize,
}

impl ReplayNoise {
    fn new(draws: Option<&Tensor>) -> Self {
        let draws = match draws {
            Some(t) => (0..t.dim(0).unwrap())
                .map(|i| t.narrow(0, i, 1).unwrap())
                .collect(),
            None => Vec::new(),
        };
        Self { draws, next: 0 }
    }
}

impl NoiseSource for ReplayNoise {
    fn randn(
        &mut self,
        shape: &[usize],
        device: &Device,
        dtype: DType,
    ) -> candle_core::Result<Tensor> {
        let t = self.draws.get(self.next).ok_or_else(|| {
            candle_core::Error::Msg("the scheduler drew more noise than diffusers did".into())
        })?;
        self.next += 1;
        assert_eq!(t.dims(), shape);
        t.to_dtype(dtype)?.to_device(device)
    }
}

/// max |a - b| / max |b|; infinite on any NaN or infinity, so `d > REL_TOL` reports it.
fn rel_diff(a: &Tensor, b: &Tensor) -> f64 {
    f64::from(compare::max_rel_diff(a, b).unwrap())
}

/// The stand-in for the guided UNet, as in the Python script.
fn fake_model(scaled: &Tensor, t: f64, f: &Tensor) -> Tensor {
    (scaled.affine(0.5 * (t / 300.0).cos(), 0.0).unwrap() + f).unwrap()
}

/// Run the denoising loop from `start` at `begin`, comparing each sample with `traj` (rows).
fn run_and_compare(
    sched: &mut dyn Scheduler,
    start: Tensor,
    begin: usize,
    refs: &Refs,
    key: &str,
    failures: &mut Vec<String>,
) {
    let traj = refs.t(&format!("{key}/traj"));
    let mut noise = ReplayNoise::new(refs.tensors.get(&format!("{key}/drawn")));
    let f = refs.t("f");
    let n = sched.timesteps().len();
    assert_eq!(
        traj.dim(0).unwrap(),
        n - begin + 1,
        "{key}: trajectory length"
    );
    let mut x = start;
    for (row, i) in (begin..n).enumerate() {
        let d = rel_diff(&x, &traj.narrow(0, row, 1).unwrap());
        if d > REL_TOL {
            failures.push(format!("{key}: sample before step {i} differs by {d:.2e}"));
            return;
        }
        let scaled = sched.scale_model_input(&x, i).unwrap();
        let out = fake_model(&scaled, sched.timesteps()[i], f);
        x = match sched.step(&out, i, &x, &mut noise) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{key}: step {i} failed: {e}"));
                return;
            }
        };
    }
    let d = rel_diff(&x, &traj.narrow(0, n - begin, 1).unwrap());
    if d > REL_TOL {
        failures.push(format!("{key}: final sample differs by {d:.2e}"));
    }
    if noise.next != noise.draws.len() {
        failures.push(format!(
            "{key}: drew {} noise tensors, diffusers drew {}",
            noise.next,
            noise.draws.len()
        ));
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn check_case(refs: &Refs, case: &Value, failures: &mut Vec<String>) {
    let key = case["key"].as_str().unwrap();
    let name = case["scheduler"].as_str().unwrap();
    let steps = case["steps"].as_u64().unwrap() as usize;
    let config = refs.config(case["config"].as_str().unwrap());
    let make =
        || build(name, &config, steps).unwrap_or_else(|e| panic!("{key}: build failed: {e}"));
    let mut sched = make();

    let want_ts = floats(&case["timesteps"]);
    let ts_ok = sched.timesteps().len() == want_ts.len()
        && sched
            .timesteps()
            .iter()
            .zip(&want_ts)
            .all(|(a, b)| (a - b).abs() <= 1e-6 * b.abs().max(1.0));
    if !ts_ok {
        failures.push(format!(
            "{key}: timesteps {:?}, diffusers {want_ts:?}",
            sched.timesteps()
        ));
        return;
    }
    let want_sigmas = floats(&case["sigmas"]);
    let sig_ok = sched.sigmas().len() == want_sigmas.len()
        && sched
            .sigmas()
            .iter()
            .zip(&want_sigmas)
            .all(|(a, b)| (a - b).abs() <= 1e-5 * b.abs().max(1e-3));
    if !sig_ok {
        failures.push(format!(
            "{key}: sigmas {:?}, diffusers {want_sigmas:?}",
            sched.sigmas()
        ));
    }
    let want_init = case["init_noise_sigma"].as_f64().unwrap();
    if (sched.init_noise_sigma() - want_init).abs() > 1e-5 * want_init {
        failures.push(format!(
            "{key}: init_noise_sigma {} vs {want_init}",
            sched.init_noise_sigma()
        ));
    }

    // txt2img, unless diffusers' own trajectory overflowed (then only the schedule is checked).
    if case["traj_finite"].as_bool().unwrap() {
        let start = refs.t("x").affine(sched.init_noise_sigma(), 0.0).unwrap();
        run_and_compare(sched.as_mut(), start, 0, refs, key, failures);
    } else {
        eprintln!("{key}: diffusers' trajectory is not finite; samples not compared");
    }

    // add_noise
    let (clean, noise) = (refs.t("clean"), refs.t("noise"));
    for i in case["add_noise_indices"].as_array().unwrap() {
        let i = i.as_u64().unwrap() as usize;
        let got = make().add_noise(clean, noise, i).unwrap();
        let d = rel_diff(&got, refs.t(&format!("{key}/add_noise/{i}")));
        if d > REL_TOL {
            failures.push(format!("{key}: add_noise at {i} differs by {d:.2e}"));
        }
    }

    // img2img
    let t_start = case["img2img_start"].as_u64().unwrap() as usize;
    let strength = refs.meta["strength"].as_f64().unwrap();
    assert_eq!(
        img2img_start(steps, strength),
        t_start,
        "{key}: img2img start"
    );
    if t_start < steps {
        let mut sched = make();
        sched.set_begin_index(t_start);
        let start = sched.add_noise(clean, noise, t_start).unwrap();
        run_and_compare(
            sched.as_mut(),
            start,
            t_start,
            refs,
            &format!("{key}/img2img"),
            failures,
        );
    }
}

#[test]
fn schedulers_match_diffusers() {
    let refs = Refs::load();
    let cases = refs.meta["cases"].as_array().unwrap();
    assert!(
        cases.len() >= 90,
        "expected the full case list, got {}",
        cases.len()
    );
    // Only Euler Ancestral on the cosine schedule at 4 steps overflows in diffusers (float32).
    let overflowed: Vec<_> = cases
        .iter()
        .filter(|c| !c["traj_finite"].as_bool().unwrap())
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(overflowed, ["cosine/euler-a/4"]);
    let mut failures = Vec::new();
    for case in cases {
        check_case(&refs, case, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn a_rerun_from_the_begin_index_starts_fresh() {
    // Multistep history must not leak between two generations on one scheduler object.
    let refs = Refs::load();
    let config = refs.config("sd15");
    for name in ["dpm++2m", "unipc"] {
        let mut sched = build(name, &config, 10).unwrap();
        let f = refs.t("f");
        let mut results = Vec::new();
        for _ in 0..2 {
            let mut x = refs.t("x").clone();
            let mut noise = ReplayNoise::new(None);
            for i in 0..sched.timesteps().len() {
                let out = fake_model(&x, sched.timesteps()[i], f);
                x = sched.step(&out, i, &x, &mut noise).unwrap();
            }
            results.push(x);
        }
        assert_eq!(rel_diff(&results[0], &results[1]), 0.0, "{name}");
        let key = format!("sd15/{name}/10/traj");
        assert!(
            rel_diff(&results[0], &refs.t(&key).narrow(0, 10, 1).unwrap()) < REL_TOL,
            "{name}"
        );
    }
}

#[test]
fn out_of_order_multistep_steps_are_errors() {
    let refs = Refs::load();
    let mut sched = build("unipc", &refs.config("sd15"), 10).unwrap();
    let x = refs.t("x");
    let mut noise = ReplayNoise::new(None);
    sched.step(x, 0, x, &mut noise).unwrap();
    assert!(sched.step(x, 2, x, &mut noise).is_err());
    assert!(sched.step(x, 10, x, &mut noise).is_err());
}
