//! The ControlNet flags: pairing, ranges, the family check, the PNG text and --from-image.

use super::*;

#[test]
fn per_controlnet_values_pair_or_apply_to_all() {
    assert_eq!(paired("--x", None, 2, 1.0).unwrap(), [1.0, 1.0]);
    assert_eq!(paired("--x", Some(&[0.5]), 2, 1.0).unwrap(), [0.5, 0.5]);
    assert_eq!(
        paired("--x", Some(&[0.5, 0.7]), 2, 1.0).unwrap(),
        [0.5, 0.7]
    );
    let e = paired("--x", Some(&[0.5, 0.7]), 3, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--x is given 2 times but --controlnet 3 times"),
        "{e}"
    );
}

#[test]
fn numbers_out_of_range_are_refused() {
    assert!(check_numbers(1.0, 0.0, 1.0).is_ok());
    assert!(check_numbers(-0.1, 0.0, 1.0).is_err());
    assert!(check_numbers(11.0, 0.0, 1.0).is_err());
    assert!(check_numbers(1.0, 0.5, 0.5).is_err());
    assert!(check_numbers(1.0, 0.0, 1.5).is_err());
    assert!(check_numbers(f64::NAN, 0.0, 1.0).is_err());
    assert!(check_canny(100.0, 200.0).is_ok());
    assert!(check_canny(200.0, 100.0).is_err());
}

#[test]
fn the_family_comes_from_the_config() {
    let sd1 = serde_json::json!({"cross_attention_dim": 768});
    let xl = serde_json::json!({"cross_attention_dim": 2048, "addition_embed_type": "text_time"});
    assert_eq!(config_family(&sd1), Family::Sd1);
    assert_eq!(config_family(&xl), Family::Sdxl);
}

fn one_net() -> ControlNetRef {
    ControlNetRef {
        model: "/m/control-canny".into(),
        image: "/i/edges.png".into(),
        scale: 0.5,
        start: 0.1,
        end: 0.9,
        preprocess: ControlPreprocess::Canny,
        canny_low: Some(50.0),
        canny_high: Some(150.0),
    }
}

#[test]
fn the_parameters_text_names_each_controlnet_and_parses_back_around_it() {
    let mut spec = crate::jobs::spec::JobSpec {
        model: "sd15".into(),
        prompt: "a fox".into(),
        seed: Some(3),
        ..Default::default()
    };
    if let Some(p) = spec.image_mut() {
        p.controlnets = vec![one_net()];
    }
    let text = crate::jobs::output::png_meta::a1111_parameters(&spec);
    assert!(
        text.contains(
            "ControlNet 0: \"Module: canny, Model: control-canny, Weight: 0.5, Guidance \
             Start: 0.1, Guidance End: 0.9, Threshold A: 50, Threshold B: 150\""
        ),
        "{text}"
    );
    let back = crate::jobs::output::png_meta::parse_a1111(&text);
    assert_eq!(back.model.as_deref(), Some("sd15"));
    assert_eq!(back.seed, Some(3));
}

#[test]
fn stored_controlnets_become_paired_flags_again() {
    let mut o = JobOverrides::default();
    to_overrides(&[one_net(), one_net()], &mut o);
    assert_eq!(o.controlnet.as_ref().map(Vec::len), Some(2));
    assert_eq!(o.control_scale, Some(vec![0.5, 0.5]));
    assert_eq!(o.control_end, Some(vec![0.9, 0.9]));
    assert_eq!(
        o.control_preprocess,
        Some(vec![ControlPreprocess::Canny, ControlPreprocess::Canny])
    );
    assert_eq!(o.canny_low, Some(vec![50.0, 50.0]));
}
