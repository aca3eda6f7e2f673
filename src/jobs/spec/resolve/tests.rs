use super::*;
use crate::vocab::Scheduler;

fn defaults() -> Defaults {
    Defaults {
        steps: 25,
        guidance: 7.5,
        width: 512,
        height: 512,
        scheduler: Scheduler::Euler,
        ..Defaults::default()
    }
}

fn spec() -> JobOverrides {
    JobOverrides {
        model: Some("tiny".into()),
        prompt: Some("a cat".into()),
        ..JobOverrides::default()
    }
}

/// The image job `asked` describes, filled from `defaults`; the family is what such defaults
/// belong to (a flow model without embedded guidance is SD 3.5 here).
fn fill(asked: &JobOverrides, defaults: &Defaults) -> crate::Result<JobSpec> {
    use crate::models::Family;
    let family = match (defaults.scheduler.is_flow(), defaults.embedded_guidance) {
        (true, None) => Family::Sd3,
        (true, Some(_)) => Family::Flux,
        (false, _) => Family::Sd1,
    };
    fill_spec(asked, asked.kind_asked(), defaults, family)
}

fn img(spec: &JobSpec) -> &ImageParams {
    spec.image().unwrap()
}

fn bad_input(spec: &JobOverrides) -> String {
    let err = fill(spec, &defaults()).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    err.to_string()
}

#[test]
fn defaults_fill_every_option_and_a_seed_is_recorded() {
    let filled = fill(&spec(), &defaults()).unwrap();
    let p = img(&filled);
    assert_eq!((p.steps, p.guidance), (25, 7.5));
    assert_eq!((p.width, p.height, p.batch), (512, 512, 1));
    assert_eq!((p.scheduler, p.strength), (Scheduler::Euler, 1.0));
    assert!(filled.seed.is_some());
    let mut given = spec();
    given.seed = Some(7);
    given.steps = Some(3);
    let filled = fill(&given, &defaults()).unwrap();
    assert_eq!((filled.seed, img(&filled).steps), (Some(7), 3));
    let request = build_request(&filled, 0).unwrap();
    assert_eq!((request.seed, request.steps, request.width), (7, 3, 512));
}

#[test]
fn steps_must_be_positive_and_sane() {
    let mut s = spec();
    s.steps = Some(0);
    assert!(bad_input(&s).contains("--steps 0"));
    s.steps = Some(MAX_STEPS + 1);
    assert!(bad_input(&s).contains("--steps"));
}

#[test]
fn guidance_must_be_finite_and_in_range() {
    let mut s = spec();
    for g in [f64::NAN, f64::INFINITY, -1.0, 1000.0] {
        s.guidance = Some(g);
        assert!(bad_input(&s).contains("--guidance"));
    }
    s.guidance = Some(0.0);
    assert!(fill(&s, &defaults()).is_ok());
}

#[test]
fn sizes_are_multiples_of_8_within_limits() {
    let mut s = spec();
    s.width = Some(500);
    let msg = bad_input(&s);
    assert!(
        msg.contains("--width 500") && msg.contains("try 496"),
        "{msg}"
    );
    s.width = Some(64);
    s.height = Some(8);
    assert!(bad_input(&s).contains("--height 8"));
    s.height = Some(100_000);
    assert!(bad_input(&s).contains("--height"));
    s.height = Some(4096);
    assert!(fill(&s, &defaults()).is_ok());
}

#[test]
fn strength_batch_scheduler_and_slicing_are_checked() {
    let mut s = spec();
    s.strength = Some(1.5);
    assert!(bad_input(&s).contains("--strength 1.5"));
    s.strength = Some(f64::NAN);
    assert!(bad_input(&s).contains("--strength"));
    let mut s = spec();
    s.batch = Some(0);
    assert!(bad_input(&s).contains("--batch 0"));
    s.batch = Some(65);
    assert!(bad_input(&s).contains("--batch 65"));
    // A job's scheduler is typed when it is read (flag, job file, form), and so is a model's
    // default (the registry refuses an unknown one: models/tests/registry.rs); the job's wins.
    let mut unipc = defaults();
    unipc.scheduler = Scheduler::UniPc;
    let filled = fill(&spec(), &unipc).unwrap();
    assert_eq!(filled.image().unwrap().scheduler, Scheduler::UniPc);
    let mut s = spec();
    s.scheduler = Some(Scheduler::Ddim);
    assert_eq!(
        fill(&s, &unipc).unwrap().image().unwrap().scheduler,
        Scheduler::Ddim
    );
    let mut s = spec();
    s.attention_slicing = Some(crate::vocab::AttentionSlicing::Tokens(64));
    let filled = fill(&s, &defaults()).unwrap();
    assert_eq!(
        build_request(&filled, 0).unwrap().memory.attention_slice,
        Some(64)
    );
}

#[test]
fn model_and_mask_need_their_partners() {
    let mut s = spec();
    s.model = Some(String::new());
    assert!(bad_input(&s).contains("--model"));
    let mut s = spec();
    s.mask = Some("m.png".into());
    assert!(bad_input(&s).contains("--mask needs --init-image"));
    let mut s = spec();
    s.kind = Some(JobKind::Img2img);
    assert!(bad_input(&s).contains("--init-image"));
}

#[test]
fn init_image_and_mask_are_decoded_and_resized() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.png");
    let mask = dir.path().join("mask.png");
    image::RgbImage::from_pixel(100, 60, image::Rgb([200, 10, 10]))
        .save(&init)
        .unwrap();
    image::GrayImage::from_pixel(30, 30, image::Luma([255]))
        .save(&mask)
        .unwrap();
    let mut s = spec();
    s.init_image = Some(init.clone());
    // No size given: the init image's, rounded down to a multiple of 8.
    let filled = fill(&s, &defaults()).unwrap();
    assert_eq!(filled.kind, JobKind::Img2img);
    assert_eq!((img(&filled).width, img(&filled).height), (96, 64));
    assert_eq!(img(&filled).strength, 0.8);
    s.mask = Some(mask);
    s.width = Some(64);
    s.height = Some(64);
    let filled = fill(&s, &defaults()).unwrap();
    assert_eq!(filled.kind, JobKind::Inpaint);
    let request = build_request(&filled, 0).unwrap();
    let image = request.init_image.unwrap();
    assert_eq!(image.dimensions(), (64, 64));
    assert!(image.get_pixel(10, 10)[0] > 150);
    assert_eq!(request.mask.unwrap().dimensions(), (64, 64));
}

#[test]
fn unreadable_init_images_are_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.png");
    std::fs::write(&broken, b"not a png at all").unwrap();
    let mut s = spec();
    s.init_image = Some(dir.path().join("missing.png"));
    s.width = Some(64);
    s.height = Some(64);
    let filled = fill(&s, &defaults()).unwrap();
    let err = build_request(&filled, 0).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("--init-image"), "{err}");
    s.init_image = Some(broken);
    let filled = fill(&s, &defaults()).unwrap();
    let err = build_request(&filled, 0).unwrap_err();
    assert!(err.to_string().contains("not a decodable image"), "{err}");
    // Without a size, the size probe already refuses it.
    s.width = None;
    s.height = None;
    assert!(bad_input(&s).contains("--init-image"));
}

#[test]
fn the_job_size_from_an_image_is_scaled_rounded_and_noted() {
    let dir = tempfile::tempdir().unwrap();
    let d = defaults();
    let png = |name: &str, w: u32, h: u32| {
        let path = dir.path().join(name);
        image::RgbImage::new(w, h).save(&path).unwrap();
        path
    };
    let exact = png("exact.png", 128, 64);
    let size = job_size(Some(&exact), None, None, &d).unwrap();
    assert_eq!((size.width, size.height), (128, 64));
    assert!(size.notes[0].contains("its own size"), "{:?}", size.notes);
    let odd = png("odd.png", 100, 70);
    let size = job_size(Some(&odd), None, None, &d).unwrap();
    assert_eq!((size.width, size.height), (96, 64));
    assert!(size.notes[0].contains("rounded to a multiple of 8"));
    // Wider than the limit: scaled down with its aspect kept, not clamped side by side.
    let wide = png("wide.png", 8192, 2048);
    let size = job_size(Some(&wide), None, None, &d).unwrap();
    assert_eq!((size.width, size.height), (4096, 1024));
    assert!(size.notes[0].contains("scaled down"), "{:?}", size.notes);
    // A size given on the command line wins, silently.
    let size = job_size(Some(&wide), Some(512), Some(256), &d).unwrap();
    assert_eq!((size.width, size.height, size.notes.len()), (512, 256, 0));
}

#[test]
fn img2img_with_no_denoising_step_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("init.png");
    image::RgbImage::new(64, 64).save(&init).unwrap();
    let mut s = spec();
    s.init_image = Some(init);
    s.steps = Some(1);
    s.strength = Some(0.8);
    let err = bad_input(&s);
    assert!(err.contains("--strength 0.8 with --steps 1"), "{err}");
    assert!(err.contains("at least 2"), "{err}");
    s.steps = Some(2);
    assert!(fill(&s, &defaults()).is_ok());
    s.strength = Some(0.0);
    assert!(bad_input(&s).contains("--strength 0"));
}

#[test]
fn max_sequence_length_is_checked_and_reaches_the_engine() {
    let mut s = spec();
    for n in [0, 2, MAX_SEQUENCE + 1] {
        s.max_sequence_length = Some(n);
        assert!(bad_input(&s).contains("--max-sequence-length"), "{n}");
    }
    s.max_sequence_length = Some(16);
    let filled = fill(&s, &defaults()).unwrap();
    assert_eq!(img(&filled).max_sequence_length, Some(16));
    assert_eq!(filled.to_overrides().max_sequence_length, Some(16));
    let request = build_request(&filled, 0).unwrap();
    assert_eq!(request.max_sequence_length, Some(16));
    let unset = build_request(&fill(&spec(), &defaults()).unwrap(), 0).unwrap();
    assert_eq!(unset.max_sequence_length, None);
}

/// FLUX's and SD 3.5's flags.
mod flow;
