#![allow(clippy::unwrap_used)]

use candle_core::{DType, Device, Tensor};

use super::*;

const SCHNELL: &str = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler",
  "_diffusers_version": "0.30.0.dev0", "base_image_seq_len": 256, "base_shift": 0.5,
  "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 1.0,
  "use_dynamic_shifting": false}"#;
/// FLUX.1-dev's scheduler_config.json.
const DEV: &str = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler",
  "_diffusers_version": "0.30.0.dev0", "base_image_seq_len": 256, "base_shift": 0.5,
  "max_image_seq_len": 4096, "max_shift": 1.15, "num_train_timesteps": 1000, "shift": 3.0,
  "use_dynamic_shifting": true}"#;

fn config(text: &str) -> FlowMatchConfig {
    FlowMatchConfig::from_json(text).unwrap()
}

#[test]
fn calculate_shift_is_the_line_through_base_and_max() {
    assert_eq!(calculate_shift(256, 256, 4096, 0.5, 1.15), 0.5);
    assert!((calculate_shift(4096, 256, 4096, 0.5, 1.15) - 1.15).abs() < 1e-15);
    // 1024x1024: (1024/16)^2 = 4096 patches; 512x512: 1024.
    let mu = calculate_shift(1024, 256, 4096, 0.5, 1.15);
    assert!((mu - (0.5 + 0.65 * 768.0 / 3840.0)).abs() < 1e-15);
}

#[test]
fn linspace_is_numpys() {
    assert_eq!(linspace(1.0, 0.25, 4), vec![1.0, 0.75, 0.5, 0.25]);
    assert_eq!(linspace(1.0, 1.0, 1), vec![1.0]);
    let v = linspace(1.0, 1.0 / 28.0, 28);
    assert_eq!(v[27], 1.0 / 28.0);
    assert_eq!(v[1], 1.0 + (1.0 / 28.0 - 1.0) / 27.0);
}

#[test]
fn schnell_schedule_is_unshifted() {
    let s = FlowMatchEuler::for_flux(&config(SCHNELL), 4, 4096).unwrap();
    assert_eq!(s.sigmas(), &[1.0, 0.75, 0.5, 0.25, 0.0]);
    assert_eq!(s.timesteps(), &[1000.0, 750.0, 500.0, 250.0]);
}

#[test]
fn dev_schedule_shifts_by_resolution() {
    let c = config(DEV);
    for (steps, seq) in [(28usize, 4096usize), (4, 1024), (1, 12)] {
        let s = FlowMatchEuler::for_flux(&c, steps, seq).unwrap();
        let mu = calculate_shift(seq, 256, 4096, 0.5, 1.15);
        assert_eq!(s.timesteps().len(), steps);
        assert_eq!(s.sigmas().len(), steps + 1);
        assert_eq!(s.sigmas()[steps], 0.0);
        for (i, (&sigma, &t)) in s.sigmas().iter().zip(s.timesteps()).enumerate() {
            let x = 1.0 - i as f64 * (1.0 - 1.0 / steps as f64) / (steps as f64 - 1.0).max(1.0);
            let want = mu.exp() / (mu.exp() + (1.0 / x - 1.0));
            assert!((sigma - want).abs() < 1e-6, "{steps} steps, sigma {i}");
            assert_eq!(t, f64::from(sigma as f32 * 1000.0));
            // Every value is an f32.
            assert_eq!(sigma, f64::from(sigma as f32));
        }
        assert_eq!(s.sigmas()[0], 1.0);
    }
}

#[test]
fn static_shift_and_linear_and_terminal() {
    let mut c = config(SCHNELL);
    c.shift = 3.0;
    let s = FlowMatchEuler::for_flux(&c, 2, 1).unwrap();
    // 3 * 0.5 / (1 + 2 * 0.5) = 0.75.
    assert_eq!(s.sigmas(), &[1.0, 0.75, 0.0]);
    c.use_dynamic_shifting = true;
    c.time_shift_type = TimeShift::Linear;
    let s = FlowMatchEuler::with_sigmas(&c, &[1.0, 0.5], Some(2.0)).unwrap();
    assert_eq!(s.sigmas(), &[1.0, f64::from(2.0f32 / 3.0), 0.0]);
    assert!(FlowMatchEuler::with_sigmas(&c, &[1.0], None).is_err());
    let mut c = config(SCHNELL);
    c.shift_terminal = Some(0.1);
    let s = FlowMatchEuler::for_flux(&c, 4, 1).unwrap();
    assert!((s.sigmas()[3] - 0.1).abs() < 1e-7);
    assert_eq!(s.sigmas()[0], 1.0);
}

#[test]
fn strength_drops_the_first_steps_as_python_truncates() {
    let c = config(SCHNELL);
    let mut s = FlowMatchEuler::for_flux(&c, 28, 1).unwrap();
    // 28 - 28 * 0.3 = 19.6: int() drops 19 steps (rounding would drop 20).
    assert_eq!(s.truncate_for_strength(0.3).unwrap(), 9);
    assert_eq!(s.begin_index(), 19);
    assert_eq!(s.timesteps().len(), 9);
    assert_eq!(s.sigmas().len(), 10);
    assert_eq!(s.all_sigmas().len(), 29);
    assert_eq!(
        s.timesteps()[0],
        f64::from(s.all_sigmas()[19] as f32 * 1000.0)
    );
    let mut s = FlowMatchEuler::for_flux(&c, 4, 1).unwrap();
    assert_eq!(s.truncate_for_strength(1.0).unwrap(), 4);
    assert_eq!(s.truncate_for_strength(0.1).unwrap(), 1);
    assert!(s.truncate_for_strength(0.0).is_err());
    assert!(s.truncate_for_strength(1.5).is_err());
}

#[test]
fn step_and_scale_noise() {
    let dev = Device::Cpu;
    let c = config(SCHNELL);
    let mut s = FlowMatchEuler::for_flux(&c, 4, 1).unwrap();
    let x = Tensor::new(&[1.0f32, 2.0], &dev).unwrap();
    let v = Tensor::new(&[4.0f32, -8.0], &dev).unwrap();
    // sigma 0.75 -> 0.5: x - 0.25 v.
    let prev = s.step(&v, 1, &x).unwrap();
    assert_eq!(prev.to_vec1::<f32>().unwrap(), vec![0.0, 4.0]);
    assert!(s.step(&v, 4, &x).is_err());
    let out = s.step(&v.to_dtype(DType::BF16).unwrap(), 0, &x).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    s.truncate_for_strength(0.5).unwrap();
    let noise = Tensor::new(&[10.0f32, 20.0], &dev).unwrap();
    let y = s.scale_noise(&x, &noise).unwrap();
    assert_eq!(y.to_vec1::<f32>().unwrap(), vec![5.5, 11.0]);
    // After truncation, step 0 is the schedule's step 2 (0.5 -> 0.25).
    let prev = s.step(&v, 0, &x).unwrap();
    assert_eq!(prev.to_vec1::<f32>().unwrap(), vec![0.0, 4.0]);
}

#[test]
fn config_defaults_and_refusals() {
    let c = config("{}");
    assert_eq!(c, FlowMatchConfig::default());
    let d = config(DEV);
    assert!(d.use_dynamic_shifting && d.shift == 3.0);
    for (text, key) in [
        (r#"{"use_karras_sigmas": true}"#, "use_karras_sigmas"),
        (r#"{"use_beta_sigmas": true}"#, "use_beta_sigmas"),
        (
            r#"{"use_exponential_sigmas": true}"#,
            "use_exponential_sigmas",
        ),
        (r#"{"invert_sigmas": true}"#, "invert_sigmas"),
        (r#"{"stochastic_sampling": true}"#, "stochastic_sampling"),
        (r#"{"time_shift_type": "cosine"}"#, "time_shift_type"),
        (
            r#"{"_class_name": "EulerDiscreteScheduler"}"#,
            "_class_name",
        ),
        (r#"{"shift": "3"}"#, "shift"),
        (r#"{"shift": 0}"#, "shift"),
        (r#"{"num_train_timesteps": 0}"#, "num_train_timesteps"),
        (r#"{"shift_terminal": 1.0}"#, "shift_terminal"),
        (
            r#"{"use_dynamic_shifting": true, "base_shift": null}"#,
            "base_shift",
        ),
        (
            r#"{"use_dynamic_shifting": true, "max_image_seq_len": 256}"#,
            "max_image_seq_len",
        ),
    ] {
        let err = FlowMatchConfig::from_json(text).unwrap_err();
        assert!(err.contains(&format!("`{key}`")), "{text}: {err}");
    }
    // Off options and a null Optional are fine.
    let c = config(r#"{"use_karras_sigmas": false, "shift_terminal": null, "base_shift": null}"#);
    assert_eq!(c.base_shift, None);
    assert!(FlowMatchEuler::for_flux(&c, 0, 1).is_err());
}

#[test]
fn load_names_the_file() {
    let dir = std::env::temp_dir().join(format!("pallaidium-flowmatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scheduler_config.json");
    std::fs::write(&path, r#"{"use_beta_sigmas": true}"#).unwrap();
    let err = FlowMatchConfig::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("scheduler_config.json") && err.contains("use_beta_sigmas"),
        "{err}"
    );
    let err = FlowMatchConfig::load(&dir.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// bf16 values and outputs from diffusers 0.42.1 / torch 2.15 (FlowMatchEulerDiscreteScheduler(
/// shift=3.0), set_timesteps(sigmas=[1.0, 0.7, 0.3]), step at index 1, scale_noise at begin
/// index 1). The step's product is bf16 (torch keeps a 0-dim f32 times a bf16 tensor in bf16);
/// computing it in f32 gives other values here.
// The literals are torch's exact bf16 values as Python prints them.
#[allow(clippy::excessive_precision)]
#[test]
fn bf16_step_and_scale_noise_round_as_torch_does() {
    let dev = Device::Cpu;
    let bf16 = |v: &[f32]| Tensor::new(v, &dev).unwrap().to_dtype(DType::BF16).unwrap();
    let values = |t: &Tensor| t.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap();
    let mut c = config(SCHNELL);
    c.shift = 3.0;
    let mut s = FlowMatchEuler::with_sigmas(&c, &[1.0, 0.7, 0.3], None).unwrap();
    assert_eq!(s.sigmas(), &[1.0, 0.8749999403953552, 0.5625, 0.0]);
    let x = bf16(&[
        1.5390625,
        -0.29296875,
        -2.171875,
        0.5703125,
        -1.0859375,
        -1.3984375,
        0.404296875,
        0.83984375,
    ]);
    let v = bf16(&[
        -2.15625, -1.2109375, -1.7890625, 0.546875, -2.5625, 3.296875, -3.21875, 0.3671875,
    ]);
    let out = s.step(&v, 1, &x).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    assert_eq!(
        values(&out),
        vec![
            2.21875,
            0.0859375,
            -1.609375,
            0.3984375,
            -0.28515625,
            -2.4375,
            1.4140625,
            0.7265625
        ]
    );
    // 3 * 0.6 = 1.7999999999999998: int(1.2000000000000002) = 1 step dropped.
    assert_eq!(s.truncate_for_strength(0.6).unwrap(), 2);
    let n = bf16(&[
        -0.56640625,
        0.373046875,
        -0.890625,
        -1.5078125,
        0.37109375,
        1.453125,
        0.94140625,
        0.7734375,
    ]);
    let y = s.scale_noise(&x, &n).unwrap();
    assert_eq!(y.dtype(), DType::BF16);
    assert_eq!(
        values(&y),
        vec![
            -0.3046875,
            0.2890625,
            -1.0546875,
            -1.25,
            0.1884765625,
            1.1015625,
            0.875,
            0.78125
        ]
    );
}

#[test]
fn torch_linspace_matches_torch_float32_values() {
    // torch.linspace(1.0, 1 / n, n).tolist() printed by torch 2.15 (get_default_z_image_sigmas).
    let cases: [(usize, &[f64]); 5] = [
        (3, &[1.0, 0.666_666_626_930_236_8, 0.333_333_343_267_440_8]),
        (
            10,
            &[
                1.0,
                0.899_999_976_158_142_1,
                0.800_000_011_920_929,
                0.700_000_047_683_715_8,
                0.600_000_023_841_857_9,
                0.499_999_970_197_677_6,
                0.399_999_976_158_142_1,
                0.299_999_982_118_606_57,
                0.199_999_988_079_071_04,
                0.100_000_001_490_116_12,
            ],
        ),
        (
            9,
            &[
                1.0,
                0.888_888_895_511_627_2,
                0.777_777_791_023_254_4,
                0.666_666_686_534_881_6,
                0.555_555_582_046_508_8,
                0.444_444_447_755_813_6,
                0.333_333_343_267_440_8,
                0.222_222_223_877_906_8,
                0.111_111_111_938_953_4,
            ],
        ),
        (
            13,
            &[
                1.0,
                0.923_076_927_661_895_8,
                0.846_153_855_323_791_5,
                0.769_230_782_985_687_3,
                0.692_307_710_647_583,
                0.615_384_578_704_834,
                0.538_461_565_971_374_5,
                0.461_538_493_633_270_26,
                0.384_615_391_492_843_63,
                0.307_692_319_154_739_4,
                0.230_769_246_816_635_13,
                0.153_846_159_577_369_7,
                0.076_923_079_788_684_84,
            ],
        ),
        (
            50,
            &[
                1.0,
                0.980_000_019_073_486_3,
                0.959_999_978_542_327_9,
                0.939_999_997_615_814_2,
                0.920_000_016_689_300_5,
                0.899_999_976_158_142_1,
            ],
        ),
    ];
    for (n, want) in cases {
        let got = torch_linspace_f32(1.0, (1.0 / n as f64) as f32, n);
        assert_eq!(got.len(), n);
        for (i, w) in want.iter().enumerate() {
            assert_eq!(f64::from(got[i]), *w, "n {n}, index {i}");
        }
    }
}

/// Z-Image-Turbo's scheduler_config.json.
const ZIMAGE: &str = r#"{"_class_name": "FlowMatchEulerDiscreteScheduler",
  "_diffusers_version": "0.36.0.dev0", "num_train_timesteps": 1000,
  "use_dynamic_shifting": false, "shift": 3.0}"#;

#[test]
fn zimage_schedule_is_the_static_shift_of_torch_linspace() {
    let s = FlowMatchEuler::for_zimage(&config(ZIMAGE), 2, 12).unwrap();
    assert_eq!(s.timesteps(), &[1000.0, 750.0]);
    assert_eq!(s.sigmas(), &[1.0, 0.75, 0.0]);
    assert!(FlowMatchEuler::for_zimage(&config(ZIMAGE), 0, 12).is_err());
}
