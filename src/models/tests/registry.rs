use crate::models::entry::{Family, Kind};
use crate::models::registry::Registry;

const ONE: &str = r#"
[[models]]
id = "mine"
name = "Mine"
kind = "txt2img"
family = "sd1"
repo = "me/mine"
license = "mit"
license_url = "https://example.org/licence"
gated = false
native_resolution = [512, 512]

[models.defaults]
steps = 20
guidance = 5.0
width = 512
height = 512
scheduler = "euler"

[models.tokenizer]
format = "clip-bpe"
folders = ["tokenizer"]

[[models.components]]
name = "unet"
files = ["unet/config.json"]
weights = "unet/diffusion_pytorch_model.safetensors"
"#;

fn err_of(text: &str) -> String {
    match Registry::from_toml(text, "user.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn shipped_registry_has_the_required_entries() {
    let reg = Registry::shipped().unwrap();
    for id in [
        "sd15",
        "sd15-inpaint",
        "sd21",
        "sd-turbo",
        "sdxl",
        "sdxl-inpaint",
        "sdxl-turbo",
    ] {
        let e = reg.get(id).unwrap_or_else(|| panic!("{id} missing"));
        assert!(!e.required_files(true).is_empty());
        assert!(
            e.source.starts_with("models.toml (shipped):"),
            "{}",
            e.source
        );
    }
    let sd15 = reg.get("sd15").unwrap();
    assert_eq!(sd15.repo, "stable-diffusion-v1-5/stable-diffusion-v1-5");
    assert_eq!(sd15.revision, "main");
    assert_eq!(sd15.family, Family::Sd1);
    assert!(
        sd15.required_files(true)
            .contains(&"unet/diffusion_pytorch_model.fp16.safetensors")
    );
    assert!(
        sd15.required_files(false)
            .contains(&"unet/diffusion_pytorch_model.safetensors")
    );
    assert!(
        !sd15
            .required_files(false)
            .contains(&"unet/diffusion_pytorch_model.fp16.safetensors")
    );
    let sdxl = reg.get("sdxl").unwrap();
    assert_eq!(sdxl.family, Family::Sdxl);
    assert!(
        sdxl.required_files(false)
            .contains(&"text_encoder_2/model.safetensors")
    );
    assert_eq!(reg.get("sdxl-inpaint").unwrap().kind, Kind::Inpaint);
    let turbo = reg.get("sd-turbo").unwrap();
    assert_eq!((turbo.defaults.steps, turbo.defaults.guidance), (1, 0.0));
}

#[test]
fn revision_defaults_to_main_and_source_has_the_line() {
    let reg = Registry::from_toml(ONE, "user.toml").unwrap();
    let e = reg.get("mine").unwrap();
    assert_eq!(e.revision, "main");
    assert_eq!(e.source, "user.toml:2");
}

#[test]
fn user_entries_replace_and_add() {
    let mut reg = Registry::shipped().unwrap();
    let count = reg.entries().len();
    let pos = reg.ids().position(|id| id == "sd15").unwrap();
    let user = ONE.replace("id = \"mine\"", "id = \"sd15\"")
        + &ONE.replace("id = \"mine\"", "id = \"new\"");
    reg.merge(Registry::from_toml(&user, "user.toml").unwrap());
    assert_eq!(reg.entries().len(), count + 1);
    assert_eq!(
        reg.ids().position(|id| id == "sd15"),
        Some(pos),
        "replaced in place"
    );
    assert_eq!(reg.get("sd15").unwrap().repo, "me/mine");
    assert_eq!(reg.ids().last(), Some("new"));
}

#[test]
fn load_merges_a_file_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("extra.toml");
    std::fs::write(&path, ONE).unwrap();
    let reg = Registry::load(Some(&path)).unwrap();
    assert!(reg.get("mine").is_some() && reg.get("sdxl").is_some());
    let missing = dir.path().join("nope.toml");
    let err = Registry::load(Some(&missing)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn syntax_error_names_file_line_and_column() {
    let text = ONE.replace("gated = false", "gated = ");
    let msg = err_of(&text);
    assert!(msg.contains("user.toml, line 10, column"), "{msg}");
}

#[test]
fn unknown_key_names_the_key_and_line() {
    let text = ONE.replace("gated = false", "gated = false\ncolour = \"blue\"");
    let msg = err_of(&text);
    assert!(msg.contains("line 11"), "{msg}");
    assert!(msg.contains("key `colour`"), "{msg}");
    assert!(msg.contains("entry `mine`"), "{msg}");
    // Nested tables deny unknown keys too.
    let msg = err_of(&ONE.replace("steps = 20", "stepz = 20"));
    assert!(
        msg.contains("key `stepz`") && msg.contains("line 14"),
        "{msg}"
    );
}

#[test]
fn missing_field_names_the_key() {
    let msg = err_of(&ONE.replace("license = \"mit\"\n", ""));
    assert!(msg.contains("key `license`"), "{msg}");
    assert!(msg.contains("line "), "{msg}");
}

#[test]
fn bad_enum_value_names_the_key_and_line() {
    let msg = err_of(&ONE.replace("kind = \"txt2img\"", "kind = \"painting\""));
    assert!(
        msg.contains("line 5") && msg.contains("key `kind`"),
        "{msg}"
    );
    assert!(msg.contains("painting"), "{msg}");
}

#[test]
fn duplicate_ids_name_both_lines() {
    let msg = err_of(&format!("{ONE}{ONE}"));
    assert!(msg.contains("duplicate id `mine`"), "{msg}");
    assert!(msg.contains("first defined at line 2"), "{msg}");
    assert!(
        msg.contains("user.toml, line 30 "),
        "points at the second id: {msg}"
    );
    assert!(msg.contains("key `id`"), "{msg}");
}

#[test]
fn an_unknown_default_scheduler_is_refused_where_it_is_written() {
    // The default is typed as the file is read, so the TOML parser's error names it.
    let text = ONE.replace("scheduler = \"euler\"", "scheduler = \"pndm\"");
    assert_ne!(text, ONE);
    let msg = err_of(&text);
    for part in [
        "user.toml, line 18,",
        "key `scheduler`",
        "pndm",
        "dpm++2m-karras",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    // An alias reads as its canonical scheduler, like `--scheduler`.
    let text = ONE.replace(
        "scheduler = \"euler\"",
        "scheduler = \"DPMSolverMultistepScheduler\"",
    );
    let reg = Registry::from_toml(&text, "user.toml").unwrap();
    let entry = reg.get("mine").unwrap();
    assert_eq!(entry.defaults.scheduler, crate::vocab::Scheduler::DpmPp2m);
}

#[test]
fn impossible_values_are_refused() {
    // Each error points at the line of the offending key.
    for (from, to, key, line) in [
        ("width = 512", "width = 510", "defaults.width", 16),
        ("steps = 20", "steps = 0", "defaults.steps", 14),
        ("repo = \"me/mine\"", "repo = \"mine\"", "repo", 7),
        ("id = \"mine\"", "id = \"Mine/x\"", "id", 3),
        (
            "diffusion_pytorch_model.safetensors",
            "diffusion_pytorch_model.bin",
            "components.weights",
            27,
        ),
        (
            "license_url = \"https://",
            "license_url = \"http://",
            "license_url",
            9,
        ),
    ] {
        let text = ONE.replace(from, to);
        assert_ne!(text, ONE, "{from}");
        let msg = err_of(&text);
        assert!(msg.contains(&format!("key `{key}`")), "{key}: {msg}");
        assert!(
            msg.contains(&format!("user.toml, line {line} ")),
            "{key}: {msg}"
        );
    }
}

/// The corpus the black-box test feeds the binary, checked here at the library level too.
#[test]
fn bad_models_corpus_names_file_line_and_key() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_models");
    let mut seen = 0;
    let files = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path());
    // Only the models files: bad_models/configs/ holds broken model configs (cli_bad_configs.rs).
    for file in files.filter(|p| p.extension().is_some_and(|e| e == "toml")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let expect = |what: &str| {
            let tag = format!("# expect-{what}: ");
            text.lines()
                .find_map(|l| l.strip_prefix(tag.as_str()))
                .unwrap()
                .trim()
                .to_owned()
        };
        let err = Registry::load(Some(&file)).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(msg.contains(&name), "{name}: {msg}");
        assert!(
            msg.contains(&format!("line {},", expect("line")))
                || msg.contains(&format!("line {} ", expect("line"))),
            "{name}: {msg}"
        );
        assert!(
            msg.contains(&format!("`{}`", expect("key"))),
            "{name}: {msg}"
        );
        seen += 1;
    }
    assert!(seen >= 5, "corpus has {seen} files");
}

#[test]
fn flux_entries_ship_with_their_defaults_licences_and_quantized_variants() {
    let reg = Registry::shipped().unwrap();
    let schnell = reg.get("flux-schnell").unwrap();
    assert_eq!(schnell.family, Family::Flux);
    assert!(!schnell.gated && schnell.license == "apache-2.0");
    assert_eq!(
        (schnell.defaults.steps, schnell.defaults.embedded_guidance),
        (4, Some(false))
    );
    let dev = reg.get("flux-dev").unwrap();
    assert!(dev.gated && dev.license_url.contains("FLUX.1-dev"));
    assert_eq!((dev.defaults.steps, dev.defaults.guidance), (28, 3.5));
    assert_eq!(dev.defaults.max_sequence_length, Some(512));
    for e in [schnell, dev] {
        assert!(e.defaults.scheduler.is_flow());
        assert_eq!(crate::models::quant::names(e), vec!["q4_k_s", "q8_0"]);
    }
}

#[test]
fn quant_rows_and_flow_schedulers_are_checked() {
    let bad_component = format!(
        "{ONE}\n[[models.quants]]\nname = \"q4_k_s\"\ncomponent = \"vae\"\nrepo = \"a/b\"\nfile = \"x.gguf\"\n"
    );
    assert!(err_of(&bad_component).contains("quants.component"));
    let flow_for_sd = ONE.replace("scheduler = \"euler\"", "scheduler = \"flow-euler\"");
    assert!(err_of(&flow_for_sd).contains("defaults.scheduler"));
}

#[test]
fn z_image_turbo_ships_with_its_defaults_licence_and_quantized_variants() {
    let reg = Registry::shipped().unwrap();
    let e = reg.get("z-image-turbo").unwrap();
    assert_eq!(e.family, Family::ZImage);
    assert!(!e.gated && e.license == "apache-2.0");
    assert_eq!((e.defaults.steps, e.defaults.guidance), (9, 0.0));
    assert_eq!(e.defaults.max_sequence_length, Some(512));
    assert!(e.defaults.scheduler.is_flow());
    assert_eq!(e.native_resolution, [1024, 1024]);
    assert_eq!(crate::models::quant::names(e), vec!["q4_k_m", "q8_0"]);
}

#[test]
fn wan_entries_ship_with_video_defaults_and_take_single_or_sharded_weights() {
    let reg = Registry::shipped().unwrap();
    // TI2V makes video from text or from a first frame (`--init-image`).
    for (id, size, frames, fps, kind) in [
        ("wan2.1-t2v-1.3b", [832, 480], 81, 16, Kind::Txt2vid),
        ("wan2.2-ti2v-5b", [1280, 704], 121, 24, Kind::Img2vid),
    ] {
        let e = reg.get(id).unwrap_or_else(|| panic!("{id} missing"));
        assert_eq!((e.family, e.kind), (Family::Wan, kind), "{id}");
        assert!(!e.gated && e.license == "apache-2.0", "{id}");
        assert_eq!(e.native_resolution, size, "{id}");
        let d = &e.defaults;
        assert_eq!([d.width, d.height], size, "{id}");
        assert_eq!(
            (d.frames, d.fps, d.steps),
            (Some(frames), Some(fps), 50),
            "{id}"
        );
        assert_eq!((frames - 1) % 4, 0, "{id}: Wan makes 4n+1 frames");
        let files = e.required_files(false);
        let weights = files
            .iter()
            .find(|f| f.starts_with("transformer/") && f.contains('*'))
            .unwrap();
        for repo_file in [
            "transformer/diffusion_pytorch_model.safetensors",
            "transformer/diffusion_pytorch_model-00001-of-00003.safetensors",
            "transformer/diffusion_pytorch_model.safetensors.index.json",
        ] {
            assert!(
                crate::models::file_pattern::matches(weights, repo_file),
                "{repo_file}"
            );
        }
        assert!(!crate::models::file_pattern::matches(
            weights,
            "transformer/config.json"
        ));
    }
    // A trailing `*` is only allowed after .safetensors: pickles stay refused.
    let sharded = ONE.replace(
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model*.safetensors*",
    );
    assert!(Registry::from_toml(&sharded, "user.toml").is_ok());
    let pickle = ONE.replace(
        "unet/diffusion_pytorch_model.safetensors",
        "unet/diffusion_pytorch_model*.bin*",
    );
    assert!(err_of(&pickle).contains("key `components.weights`"));
}
