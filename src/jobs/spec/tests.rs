use super::*;
use crate::models::Defaults;
use crate::vocab::{AttentionSlicing, Scheduler};

#[test]
fn a_spec_round_trips_through_json_in_the_family_shape() {
    let spec = JobSpec {
        model: "sd15".into(),
        prompt: "a cat".into(),
        seed: Some(3),
        params: Params::Image(ImageParams {
            steps: 20,
            attention_slicing: Some(AttentionSlicing::Tokens(64)),
            ..ImageParams::default()
        }),
        ..JobSpec::default()
    };
    let text = serde_json::to_string(&spec).unwrap();
    assert!(text.contains(r#""params":{"image":{"#), "{text}");
    assert!(!text.contains("voice") && !text.contains("dtype"), "{text}");
    let back: JobSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(spec, back);
}

#[test]
fn flat_specs_of_earlier_releases_still_read() {
    // What a PNG chunk or a sidecar written before the family shape holds.
    let flat = r#"{"kind":"music","model":"musicgen-small","prompt":"lofi","negative":"",
        "steps":null,"guidance":3.0,"seed":7,"width":null,"height":null,"batch":1,
        "scheduler":null,"init_image":null,"strength":null,"mask":null,"init_latents":null,
        "dtype":null,"attention_slicing":null,"vae_tiling":null,"residency":null,"duration":8.0}"#;
    let spec: JobSpec = serde_json::from_str(flat).unwrap();
    assert_eq!(
        spec.params,
        Params::Music(MusicParams {
            duration: 8.0,
            guidance: 3.0,
            batch: 1
        })
    );
    assert_eq!(spec.seed, Some(7));
    let enhanced = r#"{"model":"sd15","prompt":"a detailed fox","steps":4,"scheduler":"ddim",
        "enhance":true,"enhanced_from":"a fox","enhancer":"qwen","attention_slicing":"off"}"#;
    let spec: JobSpec = serde_json::from_str(enhanced).unwrap();
    let p = spec.image().unwrap();
    assert_eq!((p.steps, p.scheduler), (4, Scheduler::Ddim));
    assert_eq!(p.attention_slicing, Some(AttentionSlicing::Off));
    let e = p.enhance.as_ref().unwrap();
    assert_eq!(
        (e.enhancer.as_str(), e.from.as_deref()),
        ("qwen", Some("a fox"))
    );
    // Unknown keys and bad values are refused, in either shape.
    assert!(serde_json::from_str::<JobSpec>(r#"{"model":"m","colour":"red"}"#).is_err());
    assert!(
        serde_json::from_str::<JobSpec>(r#"{"model":"m","attention_slicing":"lots"}"#).is_err()
    );
    let stt_without_audio = r#"{"kind":"stt","model":"whisper-base"}"#;
    let err = serde_json::from_str::<JobSpec>(stt_without_audio).unwrap_err();
    assert!(err.to_string().contains("audio"), "{err}");
}

#[test]
fn parameters_must_belong_to_the_kind() {
    let wrong = r#"{"kind":"tts","model":"m","prompt":"hi","params":{"music":{"duration":1.0,"guidance":3.0,"batch":1}}}"#;
    let err = serde_json::from_str::<JobSpec>(wrong).unwrap_err();
    assert!(err.to_string().contains("another family"), "{err}");
}

#[test]
fn a_stored_spec_asked_again_fills_to_the_same_spec() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("talk.wav");
    std::fs::write(&wav, b"x").unwrap();
    let image = JobSpec {
        model: "sd15".into(),
        prompt: "a cat".into(),
        seed: Some(9),
        params: Params::Image(ImageParams {
            negative: "blurry".into(),
            steps: 12,
            guidance: 5.0,
            width: 640,
            height: 384,
            batch: 2,
            scheduler: Scheduler::UniPc,
            vae_tiling: Some(crate::vocab::Toggle::On),
            ..ImageParams::default()
        }),
        ..JobSpec::default()
    };
    let asked = image.to_overrides();
    let again = resolve::fill_spec(
        &asked,
        asked.kind_asked(),
        &Defaults::default(),
        crate::models::Family::Sd1,
    )
    .unwrap();
    assert_eq!(again, image);
    let music = JobSpec {
        kind: JobKind::Music,
        model: "musicgen-small".into(),
        prompt: "lofi".into(),
        seed: Some(1),
        dtype: Some(DtypeChoice::F32),
        params: Params::Music(MusicParams {
            duration: 4.0,
            guidance: 2.0,
            batch: 1,
        }),
    };
    let asked = music.to_overrides();
    let again = media::fill_media_spec(&asked, JobKind::Music, &Defaults::default()).unwrap();
    assert_eq!(again, music);
}
