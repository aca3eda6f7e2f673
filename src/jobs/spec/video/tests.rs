#![allow(clippy::unwrap_used)]
use std::path::Path;

use super::*;

const WAN: Kind = Kind::Txt2vid;

fn wan() -> VideoGeometry {
    VideoGeometry::of_family(Family::Wan)
}

#[test]
fn frames_are_4n_plus_1_and_bounded() {
    let g = wan();
    for ok in [1, 5, 33, 81, MAX_FRAMES] {
        g.check_frames(ok).unwrap();
    }
    for bad in [0, 2, 32, 80, MAX_FRAMES + 4, 1_000_001] {
        assert_eq!(g.check_frames(bad).unwrap_err().exit_code(), 2, "{bad}");
    }
    assert!(
        g.check_frames(32)
            .unwrap_err()
            .to_string()
            .contains("try 29 or 33")
    );
    assert_eq!(g.latent_frames(81), 21);
    assert_eq!(g.latent_frames(1), 1);
    assert!(check_fps(0).is_err() && check_fps(241).is_err() && check_fps(16).is_ok());
}

#[test]
fn ltx_makes_8n_plus_1_frames_at_multiples_of_32() {
    let g = VideoGeometry::of_family(Family::Ltx);
    for ok in [1, 9, 161, MAX_FRAMES] {
        g.check_frames(ok).unwrap();
    }
    let err = g.check_frames(32).unwrap_err().to_string();
    assert!(
        err.contains("LTX-Video makes 8n+1") && err.contains("try 25 or 33"),
        "{err}"
    );
    let err = g.check_frames(35).unwrap_err().to_string();
    assert!(err.contains("try 33 or 41"), "{err}");
    assert_eq!(g.latent_frames(161), 21);
    let d = Family::Ltx.default_params();
    let asked = JobOverrides {
        model: Some("ltx".into()),
        ..JobOverrides::default()
    };
    let spec = fill_video_spec(&asked, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap();
    let p = spec.video().unwrap();
    assert_eq!((p.width, p.height, p.frames, p.fps), (704, 512, 161, 25));
    assert_eq!(
        (p.steps, p.guidance, p.max_sequence_length),
        (50, 3.0, Some(128))
    );
    // 848 is a multiple of 16 (fine for Wan) but not of 32.
    let odd = JobOverrides {
        width: Some(848),
        ..asked.clone()
    };
    let err = fill_video_spec(&odd, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap_err();
    assert!(
        err.to_string().contains("multiples of 32") && err.to_string().contains("try 832"),
        "{err}"
    );
    fill_video_spec(&odd, JobKind::Txt2vid, (WAN, wan()), &d).unwrap();
    let dense = JobOverrides {
        text_encoder_2: Some("t5.safetensors".into()),
        ..asked
    };
    let err = fill_video_spec(&dense, JobKind::Txt2vid, (Kind::Img2vid, g), &d).unwrap_err();
    assert!(err.to_string().contains("LTX-Video takes its T5"), "{err}");
}

#[test]
fn the_geometry_comes_from_the_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    // The tiny fixtures' VAEs: LTX 8x spatial / 4x temporal; Wan 2.2's 16x spatial.
    let ltx = VideoGeometry::read(Family::Ltx, &root.join("ltx-tiny")).unwrap();
    assert_eq!((ltx.temporal, ltx.side), (4, 8));
    let ti2v = VideoGeometry::read(Family::Wan, &root.join("wan-ti2v-tiny")).unwrap();
    assert_eq!((ti2v.temporal, ti2v.side), (4, 32));
    let t2v = VideoGeometry::read(Family::Wan, &root.join("wan-t2v-tiny")).unwrap();
    assert_eq!((t2v.temporal, t2v.side), (4, 16));
    assert!(VideoGeometry::read(Family::Sd1, &root.join("sd1-tiny")).is_err());
}

#[test]
fn wan_defaults_fill_and_t2v_models_refuse_init_images() {
    let d = crate::models::Family::Wan.default_params();
    let asked = JobOverrides {
        model: Some("wan".into()),
        prompt: Some("a cat".into()),
        ..JobOverrides::default()
    };
    let spec = fill_video_spec(&asked, JobKind::Txt2vid, (WAN, wan()), &d).unwrap();
    let p = spec.video().unwrap();
    assert_eq!((p.width, p.height, p.frames, p.fps), (832, 480, 81, 16));
    assert_eq!((p.steps, p.guidance), (50, 5.0));
    let with_image = JobOverrides {
        init_image: Some("x.png".into()),
        ..asked.clone()
    };
    let err = fill_video_spec(&with_image, JobKind::Txt2vid, (WAN, wan()), &d).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("text-to-video only"), "{err}");
    let odd = JobOverrides {
        width: Some(840),
        ..asked
    };
    assert!(fill_video_spec(&odd, JobKind::Txt2vid, (WAN, wan()), &d).is_err());
}

#[test]
fn a_last_image_ends_a_wan_img2vid_clip_and_is_recorded() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images");
    let d = crate::models::Family::Wan.default_params();
    let asked = JobOverrides {
        model: Some("wan".into()),
        frames: Some(5),
        init_image: Some(root.join("init_80x64.png")),
        last_image: Some(root.join("init_wide.png")),
        ..JobOverrides::default()
    };
    let img2vid = (Kind::Img2vid, wan());
    let spec = fill_video_spec(&asked, JobKind::Img2vid, img2vid, &d).unwrap();
    assert_eq!(spec.video().unwrap().last_image, asked.last_image);
    let text = serde_json::to_string(&spec).unwrap();
    assert!(text.contains("\"last_image\""), "{text}");
    let back: JobSpec = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spec);
    // Stored before --last-image: no key, no last image.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    let video = old["params"]["video"].as_object_mut().unwrap();
    assert!(video.remove("last_image").is_some());
    let old: JobSpec = serde_json::from_value(old).unwrap();
    assert_eq!(old.video().unwrap().last_image, None);
    let refused = |o: JobOverrides, geometry: VideoGeometry, needle: &str| {
        let err = fill_video_spec(&o, JobKind::Img2vid, (Kind::Img2vid, geometry), &d).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    };
    let ltx = VideoGeometry::of_family(Family::Ltx);
    let ltx_frames = JobOverrides {
        frames: Some(9),
        ..asked.clone()
    };
    refused(ltx_frames, ltx, "LTX-Video does not take a last frame");
    let one = JobOverrides {
        frames: Some(1),
        ..asked.clone()
    };
    refused(one, wan(), "at least 2 frames");
    let missing = JobOverrides {
        last_image: Some(root.join("missing.png")),
        ..asked.clone()
    };
    refused(missing, wan(), "--last-image");
    let txt2vid = JobOverrides {
        init_image: None,
        ..asked
    };
    let err = fill_video_spec(&txt2vid, JobKind::Txt2vid, img2vid, &d).unwrap_err();
    assert!(err.to_string().contains("--init-image"), "{err}");
}
