//! Flow-matching UniPC (Wan's scheduler: `use_flow_sigmas`, `flow_prediction`) against diffusers
//! 0.42.1: integer timesteps, sigmas and whole trajectories with a fake velocity model, for Wan
//! 2.1's config at flow_shift 3.0 and 5.0, shift 1.0, order 3, bh1 and no lower-order final step.
//! References: tests/fixtures/schedulers/make_flow_unipc_refs.py.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use pallaidium::engines::nn::compare;
use pallaidium::engines::sd::noise::SeededNoise;
use pallaidium::engines::sd::schedulers::{SchedulerConfig, build};
use serde_json::Value;

const REL_TOL: f64 = 1e-4;

fn load() -> (Value, HashMap<String, Tensor>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schedulers");
    let meta =
        serde_json::from_str(&std::fs::read_to_string(dir.join("flow_unipc_refs.json")).unwrap())
            .unwrap();
    let tensors =
        candle_core::safetensors::load(dir.join("flow_unipc_refs.safetensors"), &Device::Cpu)
            .unwrap();
    (meta, tensors)
}

fn config(meta: &Value, name: &str) -> SchedulerConfig {
    SchedulerConfig::from_json(&serde_json::to_string(&meta["configs"][name]).unwrap()).unwrap()
}

fn fake_model(sample: &Tensor, t: f64, f: &Tensor) -> Tensor {
    (sample.affine(0.5 * (t / 300.0).cos(), 0.0).unwrap() + f).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn flow_unipc_matches_diffusers() {
    let (meta, tensors) = load();
    let f = &tensors["f"];
    let mut failures = Vec::new();
    let cases = meta["cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for case in cases {
        let key = case["key"].as_str().unwrap();
        let steps = case["steps"].as_u64().unwrap() as usize;
        let cfg = config(&meta, case["config"].as_str().unwrap());
        let mut sched = build("unipc", &cfg, steps).unwrap();
        assert_eq!(sched.timesteps(), floats(&case["timesteps"]), "{key}");
        let want = floats(&case["sigmas"]);
        assert_eq!(sched.sigmas().len(), want.len(), "{key}");
        for (a, b) in sched.sigmas().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-7, "{key}: sigma {a} vs {b}");
        }
        let traj = &tensors[&format!("{key}/traj")];
        let mut x = tensors["x"].clone();
        let mut noise = SeededNoise::new(0);
        for i in 0..steps {
            let t = sched.timesteps()[i];
            let out = fake_model(&x, t, f);
            x = sched.step(&out, i, &x, &mut noise).unwrap();
            let d =
                f64::from(compare::max_rel_diff(&x, &traj.narrow(0, i + 1, 1).unwrap()).unwrap());
            if d > REL_TOL {
                failures.push(format!("{key}: sample after step {i} differs by {d:.2e}"));
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The shift moves the trajectory far more than the tolerance: the test above can fail.
#[test]
fn flow_shift_moves_the_result() {
    let (meta, tensors) = load();
    let a = &tensors["wan480/10/traj"];
    let b = &tensors["wan720/10/traj"];
    let last = |t: &Tensor| t.narrow(0, 10, 1).unwrap();
    let d = f64::from(compare::max_rel_diff(&last(a), &last(b)).unwrap());
    assert!(d > 100.0 * REL_TOL, "{d}");
    // And the wrong shift fails the comparison.
    let mut sched = build("unipc", &config(&meta, "wan720"), 10).unwrap();
    let mut x = tensors["x"].clone();
    let mut noise = SeededNoise::new(0);
    for i in 0..10 {
        let out = fake_model(&x, sched.timesteps()[i], &tensors["f"]);
        x = sched.step(&out, i, &x, &mut noise).unwrap();
    }
    let d = f64::from(compare::max_rel_diff(&x, &last(a)).unwrap());
    assert!(d > REL_TOL, "{d}");
}
