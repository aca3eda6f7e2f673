//! The batch flags in the TUI: --jobs, --prompts and --from-image are read before the terminal
//! is taken (a bad file is exit 2, nothing queued) and queued with --resume's jobs, so the TUI
//! shows them running instead of silently dropping them.

use crate::cli::Cli;
use crate::jobs::spec::JobOverrides;
use crate::jobs::{JobId, JobRunner};

/// The jobs the command line asks to queue at start.
#[derive(Debug, Default)]
pub struct StartJobs {
    pub specs: Vec<JobOverrides>,
    pub resume: bool,
}

impl StartJobs {
    pub fn read(cli: &Cli) -> crate::Result<Self> {
        Ok(Self {
            specs: crate::headless::specs::from_files(cli)?,
            resume: cli.batch.resume,
        })
    }

    /// Queues them (all or nothing for the files' jobs, as headless); returns the ids and what
    /// the status line says about them.
    pub fn queue(self, runner: &JobRunner) -> crate::Result<(Vec<JobId>, Option<String>)> {
        let mut ids = Vec::new();
        let resumed = if self.resume {
            runner.resume_pending()?
        } else {
            Vec::new()
        };
        ids.extend(&resumed);
        let submitted = runner.submit(&self.specs)?;
        ids.extend(&submitted);
        let notice = match (self.resume, resumed.len(), submitted.len()) {
            (true, 0, 0) => Some("nothing to resume: no queued or interrupted jobs".to_owned()),
            (_, 0, 0) => None,
            (_, r, 0) => Some(format!("resumed {r} job(s)")),
            (_, 0, s) => Some(format!("queued {s} job(s) from the command line")),
            (_, r, s) => Some(format!("resumed {r} and queued {s} job(s)")),
        };
        Ok((ids, notice))
    }
}
