//! The flow models' flags (FLUX, SD 3.5): what each family takes and refuses.

use super::*;

fn flux_defaults(embedded: bool) -> Defaults {
    Defaults {
        steps: if embedded { 28 } else { 4 },
        guidance: if embedded { 3.5 } else { 0.0 },
        width: 1024,
        height: 1024,
        scheduler: Scheduler::FlowEuler,
        max_sequence_length: Some(if embedded { 512 } else { 256 }),
        embedded_guidance: Some(embedded),
        ..Defaults::default()
    }
}

#[test]
fn flux_jobs_take_flow_euler_multiples_of_16_and_their_t5_length() {
    let filled = fill(&spec(), &flux_defaults(false)).unwrap();
    let p = img(&filled);
    assert_eq!((p.steps, p.scheduler), (4, Scheduler::FlowEuler));
    assert_eq!(p.max_sequence_length, Some(256));
    let dev = fill(&spec(), &flux_defaults(true)).unwrap();
    assert_eq!(img(&dev).max_sequence_length, Some(512));
    let mut s = spec();
    s.width = Some(1000);
    let err = fill(&s, &flux_defaults(true)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.to_string().contains("multiple of 16") && err.to_string().contains("992"),
        "{err}"
    );
    // 8 is enough for SD.
    s.width = Some(1000);
    assert!(fill(&s, &defaults()).is_ok());
    let mut s = spec();
    s.max_sequence_length = Some(513);
    assert!(
        fill(&s, &flux_defaults(true))
            .unwrap_err()
            .to_string()
            .contains("512")
    );
    s.max_sequence_length = Some(77);
    assert_eq!(
        img(&fill(&s, &flux_defaults(true)).unwrap()).max_sequence_length,
        Some(77)
    );
}

#[test]
fn schedulers_and_flux_flags_stay_with_their_family() {
    let mut s = spec();
    s.scheduler = Some(Scheduler::Ddim);
    let err = fill(&s, &flux_defaults(false)).unwrap_err().to_string();
    assert!(err.contains("flow-matching Euler"), "{err}");
    s.scheduler = Some(Scheduler::FlowEuler);
    assert!(fill(&s, &flux_defaults(false)).is_ok());
    let err = fill(&s, &defaults()).unwrap_err().to_string();
    assert!(err.contains("flow-matching models"), "{err}");
    for set in [
        |s: &mut JobOverrides| s.true_cfg = Some(4.0),
        |s: &mut JobOverrides| s.transformer = Some("x.gguf".into()),
        |s: &mut JobOverrides| s.text_encoder_2 = Some("t5.gguf".into()),
        |s: &mut JobOverrides| s.no_t5 = Some(true),
    ] {
        let mut s = spec();
        set(&mut s);
        let err = fill(&s, &defaults()).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("for flow models"), "{err}");
    }
}

/// SD 3.5 (a flow model with classifier-free guidance: no embedded_guidance) takes --no-t5 and
/// --text-encoder-2 (its T5 from a GGUF, checked now) but not both, and refuses FLUX's
/// --true-cfg; FLUX refuses --no-t5.
#[test]
fn sd3_flags_stay_with_sd3() {
    let sd3 = Defaults {
        embedded_guidance: None,
        ..flux_defaults(true)
    };
    let mut s = spec();
    s.scheduler = Some(Scheduler::FlowEuler);
    s.no_t5 = Some(true);
    assert!(img(&fill(&s, &sd3).unwrap()).no_t5);
    let err = fill(&s, &flux_defaults(true)).unwrap_err().to_string();
    assert!(err.contains("--no-t5"), "{err}");
    for (set, flag) in [
        (
            (|s: &mut JobOverrides| s.true_cfg = Some(4.0)) as fn(&mut JobOverrides),
            "--true-cfg",
        ),
        (
            |s: &mut JobOverrides| {
                s.text_encoder_2 = Some("t5.gguf".into());
                s.no_t5 = Some(true);
            },
            "--no-t5",
        ),
        (
            |s: &mut JobOverrides| s.text_encoder_2 = Some("t5.gguf".into()),
            "no such file",
        ),
    ] {
        let mut s = spec();
        set(&mut s);
        let err = fill(&s, &sd3).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(flag), "{err}");
    }
}

#[test]
fn flux_flags_are_checked_and_reach_the_engine() {
    let mut s = spec();
    s.true_cfg = Some(f64::NAN);
    assert!(
        fill(&s, &flux_defaults(true))
            .unwrap_err()
            .to_string()
            .contains("--true-cfg")
    );
    s.true_cfg = Some(4.0);
    s.negative = Some("blurry".into());
    let filled = fill(&s, &flux_defaults(true)).unwrap();
    assert_eq!(img(&filled).true_cfg, Some(4.0));
    assert_eq!(build_request(&filled, 0).unwrap().true_cfg, Some(4.0));
    assert_eq!(filled.to_overrides().true_cfg, Some(4.0));
    let mut s = spec();
    s.transformer = Some("/nonexistent/flux.gguf".into());
    let err = fill(&s, &flux_defaults(true)).unwrap_err().to_string();
    assert!(
        err.contains("--transformer") && err.contains("no such file"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("flux.gguf");
    std::fs::write(&junk, b"not a gguf file at all, just text").unwrap();
    s.transformer = Some(junk.clone());
    let err = fill(&s, &flux_defaults(true)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("flux.gguf"), "{err}");
    let mut s = spec();
    s.mask = Some(junk.clone());
    s.init_image = Some(junk);
    assert!(
        fill(&s, &flux_defaults(true))
            .unwrap_err()
            .to_string()
            .contains("inpainting")
    );
}
