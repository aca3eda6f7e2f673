use super::*;

fn base() -> JobOverrides {
    JobOverrides {
        model: Some("shared-model".into()),
        steps: Some(4),
        ..JobOverrides::default()
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
        (specs[0].prompt.as_deref(), specs[0].model.as_deref()),
        (Some("a cat"), Some("shared-model"))
    );
    assert_eq!((specs[0].seed, specs[0].steps), (Some(1), Some(4)));
    assert_eq!(specs[1].model.as_deref(), Some("other"));
    let init = specs[1].init_image.as_ref().unwrap();
    assert!(init.is_absolute() && init.ends_with("in.png"), "{init:?}");
    assert_eq!(
        specs[1].attention_slicing,
        Some(crate::vocab::AttentionSlicing::Tokens(64))
    );
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
    let prompts: Vec<&str> = specs.iter().filter_map(|s| s.prompt.as_deref()).collect();
    assert_eq!(prompts, ["a cat", "a dog"]);
    assert!(
        specs
            .iter()
            .all(|s| s.model.as_deref() == Some("shared-model"))
    );
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
fn the_committed_sample_files_parse() {
    let jobs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jobs");
    let three = read_job_file(&jobs.join("three.toml"), &JobOverrides::default()).unwrap();
    assert_eq!(three.len(), 3);
    assert!(
        Path::new(three[0].model.as_deref().unwrap())
            .join("model_index.json")
            .is_file(),
        "{:?}",
        three[0].model
    );
    assert!(three[2].init_image.as_ref().unwrap().is_file());
    assert_eq!(three[1].scheduler, Some(crate::vocab::Scheduler::Ddim));
    let two = read_job_file(&jobs.join("two.jsonl"), &JobOverrides::default()).unwrap();
    assert_eq!(two[1].batch, Some(2));
    let prompts = read_prompts_file(&jobs.join("prompts.txt"), &JobOverrides::default()).unwrap();
    assert_eq!(prompts.len(), 2);
    let err = read_job_file(&jobs.join("malformed.toml"), &JobOverrides::default()).unwrap_err();
    assert!(err.to_string().contains("malformed.toml line 7"), "{err}");
}
