use super::*;

fn base() -> JobSpec {
    JobSpec {
        model: "shared-model".into(),
        steps: Some(4),
        ..JobSpec::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn toml_jobs_override_the_shared_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "jobs.toml",
        r#"
[[job]]
prompt = "a cat"
seed = 1

[[job]]
prompt = "a dog"
model = "other"
init-image = "in.png"
attention_slicing = "64"
"#,
    );
    let specs = read_job_file(&path, &base()).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(
        (specs[0].prompt.as_str(), specs[0].model.as_str()),
        ("a cat", "shared-model")
    );
    assert_eq!((specs[0].seed, specs[0].steps), (Some(1), Some(4)));
    assert_eq!(specs[1].model, "other");
    let init = specs[1].init_image.as_ref().unwrap();
    assert!(init.is_absolute() && init.ends_with("in.png"), "{init:?}");
    assert_eq!(specs[1].attention_slicing.as_deref(), Some("64"));
}

#[test]
fn toml_errors_name_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        "[[job]]\nprompt = \"a\"\n\n[[job]]\nstepz = 3\n",
    );
    let err = read_job_file(&path, &base()).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 2);
    assert!(
        msg.contains("bad.toml line 5") && msg.contains("stepz"),
        "{msg}"
    );
    let path = write(dir.path(), "type.toml", "[[job]]\nsteps = \"ten\"\n");
    let msg = read_job_file(&path, &base()).unwrap_err().to_string();
    assert!(msg.contains("type.toml line 2"), "{msg}");
    let path = write(dir.path(), "empty.toml", "# nothing\n");
    assert!(
        read_job_file(&path, &base())
            .unwrap_err()
            .to_string()
            .contains("no jobs")
    );
}

#[test]
fn json_lines_parse_and_errors_carry_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "jobs.jsonl",
        "{\"prompt\": \"a\", \"steps\": 2}\n\n# a comment\n{\"prompt\": \"b\", \"init_latents\": \"l.npy\"}\n",
    );
    let specs = read_job_file(&path, &base()).unwrap();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].steps, Some(2));
    assert!(specs[1].init_latents.as_ref().unwrap().is_absolute());
    let path = write(
        dir.path(),
        "bad.jsonl",
        "{\"prompt\": \"a\"}\n{\"steps\": -1}\n",
    );
    let msg = read_job_file(&path, &base()).unwrap_err().to_string();
    assert!(msg.contains("bad.jsonl line 2"), "{msg}");
    let path = write(dir.path(), "unknown.jsonl", "{\"colour\": \"red\"}\n");
    let msg = read_job_file(&path, &base()).unwrap_err().to_string();
    assert!(msg.contains("line 1") && msg.contains("colour"), "{msg}");
}

#[test]
fn prompts_file_skips_blanks_and_comments() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "p.txt", "# header\na cat\n\n  a dog  \n#x\n");
    let specs = read_prompts_file(&path, &base()).unwrap();
    let prompts: Vec<&str> = specs.iter().map(|s| s.prompt.as_str()).collect();
    assert_eq!(prompts, ["a cat", "a dog"]);
    assert!(specs.iter().all(|s| s.model == "shared-model"));
    let empty = write(dir.path(), "e.txt", "\n# only comments\n");
    assert_eq!(
        read_prompts_file(&empty, &base()).unwrap_err().exit_code(),
        2
    );
    assert_eq!(
        read_prompts_file(&dir.path().join("none"), &base())
            .unwrap_err()
            .exit_code(),
        2
    );
}

#[test]
fn from_image_reads_the_stored_spec_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.png");
    let stored = JobSpec {
        model: "m".into(),
        prompt: "stored prompt".into(),
        seed: Some(99),
        steps: Some(30),
        ..JobSpec::default()
    };
    let mut bytes = vec![];
    super::super::png_meta::encode_png(
        &mut bytes,
        &image::RgbImage::new(8, 8),
        &stored,
        &Default::default(),
    )
    .unwrap();
    std::fs::write(&path, bytes).unwrap();
    let args = JobArgs {
        steps: Some(5),
        ..JobArgs::default()
    };
    let spec = from_image(&path, &args).unwrap();
    assert_eq!(
        (spec.prompt.as_str(), spec.seed, spec.steps),
        ("stored prompt", Some(99), Some(5))
    );
}

#[test]
fn audio_and_text_outputs_rerun_from_their_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("7_lofi.wav");
    std::fs::write(&wav, b"RIFF").unwrap();
    let stored = JobSpec {
        kind: JobKind::Music,
        model: "musicgen-small".into(),
        prompt: "lofi".into(),
        seed: Some(7),
        duration: Some(8.0),
        ..JobSpec::default()
    };
    let car =
        super::super::media_files::Sidecar::new(&stored, vec![wav.clone()], &Default::default());
    std::fs::write(dir.path().join("7_lofi.json"), car.to_json()).unwrap();
    let args = JobArgs {
        duration: Some(4.0),
        ..JobArgs::default()
    };
    let spec = from_image(&wav, &args).unwrap();
    assert_eq!(spec.kind, JobKind::Music);
    assert_eq!((spec.seed, spec.duration), (Some(7), Some(4.0)));
    // An enhanced image re-run with a new idea is enhanced again.
    let enhanced = JobSpec {
        prompt: "a detailed fox".into(),
        enhance: true,
        enhanced_from: Some("a fox".into()),
        ..JobSpec::default()
    };
    let json =
        super::super::media_files::Sidecar::new(&enhanced, vec![], &Default::default()).to_json();
    let side = dir.path().join("x.json");
    std::fs::write(&side, json).unwrap();
    let same = from_image(&side, &JobArgs::default()).unwrap();
    assert_eq!(same.enhanced_from.as_deref(), Some("a fox"));
    let args = JobArgs {
        prompt: Some("a wolf".into()),
        ..JobArgs::default()
    };
    assert_eq!(from_image(&side, &args).unwrap().enhanced_from, None);
    assert_eq!(
        from_image(&dir.path().join("none.srt"), &args)
            .unwrap_err()
            .exit_code(),
        2
    );
}

#[test]
fn the_committed_sample_files_parse() {
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobs");
    let three = read_job_file(&jobs.join("three.toml"), &JobSpec::default()).unwrap();
    assert_eq!(three.len(), 3);
    assert!(
        Path::new(&three[0].model)
            .join("model_index.json")
            .is_file(),
        "{}",
        three[0].model
    );
    assert!(three[2].init_image.as_ref().unwrap().is_file());
    assert_eq!(three[1].scheduler.as_deref(), Some("ddim"));
    let two = read_job_file(&jobs.join("two.jsonl"), &JobSpec::default()).unwrap();
    assert_eq!(two[1].batch, Some(2));
    let prompts = read_prompts_file(&jobs.join("prompts.txt"), &JobSpec::default()).unwrap();
    assert_eq!(prompts.len(), 2);
    let err = read_job_file(&jobs.join("malformed.toml"), &JobSpec::default()).unwrap_err();
    assert!(err.to_string().contains("malformed.toml line 7"), "{err}");
}
