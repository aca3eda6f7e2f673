//! What a human sees on stderr: one progress line redrawn in place, with ETA.

use std::io::Write;

use crate::jobs::JobEvent;

const BAR_WIDTH: usize = 24;

/// `job 3 [#########...............] 12/30 eta 4.2s`
pub fn bar_line(job: i64, step: u32, steps: u32, eta_s: f64) -> String {
    let steps = steps.max(1);
    let filled = (step.min(steps) as usize * BAR_WIDTH) / steps as usize;
    format!(
        "job {job} [{}{}] {step}/{steps} eta {}",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        human_secs(eta_s)
    )
}

pub fn human_secs(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "?".into();
    }
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = secs.round() as u64;
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// Draws events for a human: a redrawn bar when stderr is a terminal, plain lines otherwise.
/// Write errors are ignored: after a dropped SSH session the terminal is gone, the job is not.
pub struct HumanView {
    redraw: bool,
    bar_shown: bool,
}

impl HumanView {
    pub fn new(stderr_is_terminal: bool) -> Self {
        Self {
            redraw: stderr_is_terminal,
            bar_shown: false,
        }
    }

    fn clear_bar(&mut self, err: &mut impl Write) {
        if self.bar_shown {
            let _ = write!(err, "\r\x1b[2K");
            self.bar_shown = false;
        }
    }

    pub fn show(&mut self, event: &JobEvent) {
        let mut err = std::io::stderr().lock();
        match event {
            JobEvent::Progress {
                job,
                step,
                steps,
                eta_s,
                ..
            } if self.redraw => {
                let _ = write!(err, "\r\x1b[2K{}", bar_line(job.0, *step, *steps, *eta_s));
                let _ = err.flush();
                self.bar_shown = true;
            }
            JobEvent::Queued { .. }
            | JobEvent::Progress { .. }
            | JobEvent::Preview { .. }
            | JobEvent::Text { .. } => {}
            JobEvent::Loading { job, stage } if stage == "model" => {
                self.clear_bar(&mut err);
                let _ = writeln!(err, "job {job}: loading the model");
            }
            JobEvent::Loading { job, stage } if stage == "enhance" => {
                self.clear_bar(&mut err);
                let _ = writeln!(err, "job {job}: enhancing the prompt");
            }
            JobEvent::Loading { .. } => {}
            JobEvent::Done {
                job,
                outputs,
                duration_s,
                text,
                ..
            } => {
                self.clear_bar(&mut err);
                let what = done_summary(outputs, *duration_s, text.is_some());
                let _ = writeln!(err, "job {job}: done, {what}");
            }
            JobEvent::Failed { job, error } => {
                self.clear_bar(&mut err);
                let error = crate::terminal_text::escape_controls(error);
                let _ = writeln!(err, "job {job}: failed: {error}");
            }
            JobEvent::Cancelled { job } => {
                self.clear_bar(&mut err);
                let _ = writeln!(err, "job {job}: cancelled");
            }
        }
    }
}

/// "2 image(s)", "1 audio file(s), 8.0 s", "text": what a finished job made, for people.
fn done_summary(outputs: &[std::path::PathBuf], duration_s: Option<f64>, text: bool) -> String {
    let count = |ext: &str| {
        outputs
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .count()
    };
    if let Some(seconds) = duration_s
        && count("wav") > 0
    {
        return format!("{} audio file(s), {seconds:.1} s", count("wav"));
    }
    if text {
        return "text".to_owned();
    }
    format!("{} image(s)", count("png"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_fills_with_progress() {
        assert_eq!(
            bar_line(3, 0, 4, 8.0),
            format!("job 3 [{}] 0/4 eta 8.0s", ".".repeat(24))
        );
        assert_eq!(
            bar_line(3, 2, 4, 75.0),
            format!("job 3 [{}{}] 2/4 eta 1m15s", "#".repeat(12), ".".repeat(12))
        );
        assert!(bar_line(1, 9, 4, 0.0).contains(&"#".repeat(24)));
        assert_eq!(human_secs(f64::NAN), "?");
    }

    #[test]
    fn done_says_what_was_made() {
        let wav = vec!["a.wav".into(), "a.json".into()];
        assert_eq!(
            done_summary(&wav, Some(8.0), false),
            "1 audio file(s), 8.0 s"
        );
        assert_eq!(done_summary(&["a.txt".into()], None, true), "text");
        assert_eq!(
            done_summary(&["a.png".into(), "b.png".into()], None, false),
            "2 image(s)"
        );
    }
}
