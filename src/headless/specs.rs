//! The jobs a headless run was asked for: --jobs, --prompts, --from-image, or the flags alone.

use crate::cli::Cli;
use crate::jobs::spec::JobOverrides;
use crate::jobs::spec::sources::{read_job_file, read_prompts_file, stored_job};

/// The jobs of --jobs, --prompts and --from-image (the job flags are their defaults, and win
/// over a stored output's values); the TUI queues these too.
pub fn from_files(cli: &Cli) -> crate::Result<Vec<JobOverrides>> {
    let base = &cli.job.job;
    let batch = &cli.batch;
    let mut specs = Vec::new();
    if let Some(path) = &batch.jobs {
        specs.extend(read_job_file(path, base)?);
    }
    if let Some(path) = &batch.prompts {
        specs.extend(read_prompts_file(path, base)?);
    }
    if let Some(path) = &batch.from_image {
        specs.push(stored_job(path)?.merged(base.clone()));
    }
    Ok(specs)
}

/// Every new job the command line describes (empty with only --resume).
pub fn collect(cli: &Cli) -> crate::Result<Vec<JobOverrides>> {
    let batch = &cli.batch;
    let mut specs = from_files(cli)?;
    let from_files = batch.jobs.is_some() || batch.prompts.is_some() || batch.from_image.is_some();
    // A job needs a prompt or a model, or an input that implies its kind (and default model).
    let job = &cli.job.job;
    let described = job.prompt.is_some()
        || job.model.is_some()
        || job.audio.is_some()
        || job.caption.is_some()
        || job.kind.is_some();
    if !from_files && described {
        specs.push(job.clone());
    }
    if specs.is_empty() && !batch.resume {
        return Err(crate::Error::bad_input(
            "nothing to run: pass --model and --prompt (or --audio FILE, --caption IMAGE), \
             --jobs FILE, --prompts FILE, --from-image OUTPUT, --resume or --history",
        ));
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::parse_from(std::iter::once("pallaidium").chain(args.iter().copied()))
    }

    #[test]
    fn an_input_alone_makes_a_job_for_the_default_model() {
        for args in [&["--audio", "talk.wav"][..], &["--caption", "photo.png"]] {
            let specs = collect(&cli(args)).unwrap();
            assert_eq!(specs.len(), 1, "{args:?}");
            assert!(
                specs[0].model.is_none(),
                "the runner picks the kind's default"
            );
        }
        assert!(collect(&cli(&[])).is_err());
    }

    #[test]
    fn flags_alone_make_one_job() {
        let specs = collect(&cli(&["--headless", "--model", "m", "--prompt", "a cat"])).unwrap();
        assert_eq!(specs.len(), 1);
        assert_eq!(
            (specs[0].model.as_deref(), specs[0].prompt.as_deref()),
            (Some("m"), Some("a cat"))
        );
    }

    #[test]
    fn prompts_file_shares_the_other_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.txt");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let p = path.to_str().unwrap();
        let specs = collect(&cli(&[
            "--headless",
            "--model",
            "m",
            "--steps",
            "3",
            "--prompts",
            p,
        ]))
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert!(
            specs
                .iter()
                .all(|s| s.model.as_deref() == Some("m") && s.steps == Some(3))
        );
    }

    #[test]
    fn switches_take_no_value_and_absent_ones_ask_nothing() {
        let job = cli(&["--translate", "--audio", "a.wav", "--enhance"])
            .job
            .job;
        assert_eq!((job.translate, job.enhance), (Some(true), Some(true)));
        assert_eq!(job.audio, Some("a.wav".into()));
        let none = cli(&["--audio", "a.wav"]).job.job;
        assert_eq!((none.translate, none.enhance), (None, None));
        // A subcommand after a switch is not taken as its value.
        let c = cli(&["--enhance", "models"]);
        assert!(c.command.is_some() && c.job.job.enhance == Some(true));
    }

    #[test]
    fn nothing_to_do_is_bad_input_unless_resuming() {
        let err = collect(&cli(&["--headless"])).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            collect(&cli(&["--headless", "--resume"]))
                .unwrap()
                .is_empty()
        );
    }
}
