use super::*;

#[test]
fn form_to_spec_and_field_errors() {
    let mut f = Form {
        model: "sd15".into(),
        random_seed: true,
        ..Form::default()
    };
    f.set(ParamField::Size, "512x768".into()).unwrap();
    f.set(ParamField::Seed, "42".into()).unwrap();
    f.set(ParamField::Mask, "m.png".into()).unwrap();
    let spec = f.to_overrides().unwrap();
    assert_eq!(
        (spec.width, spec.height, spec.seed),
        (Some(512), Some(768), Some(42))
    );
    assert_eq!(spec.kind_asked(), JobKind::Inpaint);
    assert!(
        f.set(ParamField::Steps, "ten".into())
            .unwrap_err()
            .starts_with("steps:")
    );
    assert!(
        f.set(ParamField::Size, "512".into())
            .unwrap_err()
            .starts_with("size:")
    );
    assert!(f.set(ParamField::Strength, "2".into()).is_err());
    assert!(
        f.set(ParamField::Scheduler, "nope".into())
            .unwrap_err()
            .contains("euler")
    );
    assert_eq!(f.steps, "", "a rejected value leaves the form as it was");
}

#[test]
fn each_kind_submits_only_its_own_fields() {
    let mut f = Form {
        model: "m".into(),
        random_seed: false,
        seed: "7".into(),
        steps: "20".into(),
        size: "512x512".into(),
        init_image: "in.png".into(),
        voice: "a calm voice".into(),
        duration: "3.5".into(),
        audio: "talk.wav".into(),
        language: "de".into(),
        translate: true,
        ..Form::default()
    };
    let image = f.to_overrides().unwrap();
    assert_eq!(image.kind_asked(), JobKind::Img2img);
    assert_eq!(
        (image.voice, image.duration, image.audio),
        (None, None, None)
    );

    f.kind = Some(Kind::Tts);
    let tts = f.to_overrides().unwrap();
    assert_eq!(tts.kind, Some(JobKind::Tts));
    assert_eq!(tts.voice.as_deref(), Some("a calm voice"));
    assert_eq!((tts.duration, tts.seed), (Some(3.5), Some(7)));
    assert_eq!((tts.steps, tts.width, tts.init_image), (None, None, None));

    f.kind = Some(Kind::Music);
    let music = f.to_overrides().unwrap();
    assert_eq!((music.kind, music.voice), (Some(JobKind::Music), None));

    f.kind = Some(Kind::Stt);
    let stt = f.to_overrides().unwrap();
    assert_eq!(stt.kind, Some(JobKind::Stt));
    assert_eq!(stt.audio, Some("talk.wav".into()));
    assert_eq!(
        (stt.language.as_deref(), stt.translate),
        (Some("de"), Some(true))
    );
    assert_eq!((stt.seed, stt.duration), (None, None));

    f.kind = Some(Kind::Caption);
    let caption = f.to_overrides().unwrap();
    assert_eq!(caption.kind, Some(JobKind::Caption));
    assert_eq!(caption.caption, Some("in.png".into()));
    assert_eq!((caption.init_image, caption.translate), (None, None));

    f.kind = Some(Kind::Text);
    assert_eq!(f.to_overrides().unwrap().kind, Some(JobKind::Enhance));

    // Flags the form has no field for pass through; those it shows are the form's.
    f.base = JobOverrides {
        max_tokens: Some(64),
        steps: Some(99),
        attention_slicing: Some(crate::vocab::AttentionSlicing::Off),
        ..JobOverrides::default()
    };
    f.kind = None;
    let image = f.to_overrides().unwrap();
    assert_eq!(image.max_tokens, Some(64));
    assert_eq!(image.steps, Some(20));
    assert_eq!(
        image.attention_slicing,
        Some(crate::vocab::AttentionSlicing::Off)
    );

    f.kind = Some(Kind::Music);
    assert!(
        f.set(ParamField::Duration, "-1".into())
            .unwrap_err()
            .starts_with("duration:")
    );
    assert!(fields_for(Some(Kind::Stt)).contains(&ParamField::Translate));
    assert!(!fields_for(Some(Kind::Tts)).contains(&ParamField::Steps));
}

#[test]
fn a_video_form_sends_frames_and_fps_checked_as_headless() {
    let mut f = Form {
        model: "wan".into(),
        kind: Some(Kind::Txt2vid),
        random_seed: true,
        ..Form::default()
    };
    assert!(fields_for(f.kind).contains(&ParamField::Frames));
    assert!(fields_for(f.kind).contains(&ParamField::Fps));
    assert!(!fields_for(None).contains(&ParamField::Frames));
    let none = f.to_overrides().unwrap();
    assert_eq!(
        (none.frames, none.fps),
        (None, None),
        "the model's defaults"
    );
    f.set(ParamField::Frames, "33".into()).unwrap();
    f.set(ParamField::Fps, "24".into()).unwrap();
    let o = f.to_overrides().unwrap();
    assert_eq!(
        (o.kind, o.frames, o.fps),
        (Some(JobKind::Txt2vid), Some(33), Some(24))
    );
    let e = f.set(ParamField::Frames, "34".into()).unwrap_err();
    assert!(e.starts_with("frames: ") && e.contains("4n+1"), "{e}");
    assert!(
        f.set(ParamField::Frames, "485".into())
            .unwrap_err()
            .contains("481")
    );
    assert!(
        f.set(ParamField::Fps, "0".into())
            .unwrap_err()
            .starts_with("fps: ")
    );
    assert!(f.set(ParamField::Fps, "241".into()).is_err());
    assert_eq!((f.frames.as_str(), f.fps.as_str()), ("33", "24"));
    // An image model sends no video flags, even typed ones.
    f.kind = None;
    let image = f.to_overrides().unwrap();
    assert_eq!((image.frames, image.fps), (None, None));
}

#[test]
fn an_image_to_video_model_sends_img2vid_with_a_first_frame_only() {
    let mut f = Form {
        model: "wan-ti2v".into(),
        kind: Some(Kind::Img2vid),
        random_seed: true,
        ..Form::default()
    };
    assert!(fields_for(f.kind).contains(&ParamField::InitImage));
    assert!(!fields_for(Some(Kind::Txt2vid)).contains(&ParamField::InitImage));
    let o = f.to_overrides().unwrap();
    assert_eq!((o.kind, o.init_image), (Some(JobKind::Txt2vid), None));
    f.init_image = "first.png".into();
    let o = f.to_overrides().unwrap();
    assert_eq!(o.kind, Some(JobKind::Img2vid));
    assert_eq!(
        o.init_image.as_deref(),
        Some(std::path::Path::new("first.png"))
    );
    // A text-to-video model never sends a left-over image.
    f.kind = Some(Kind::Txt2vid);
    let o = f.to_overrides().unwrap();
    assert_eq!((o.kind, o.init_image), (Some(JobKind::Txt2vid), None));
}
