//! A job's life: queued -> running -> done | failed | cancelled, or interrupted when its process
//! died; failed, cancelled and interrupted jobs can be queued again (retry, resume).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    Cancelled,
    Interrupted,
}

impl JobState {
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Running,
        Self::Done,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The allowed transitions; everything else is a bug or a stale request.
    pub fn can_become(self, to: JobState) -> bool {
        use JobState::{Cancelled, Done, Failed, Interrupted, Queued, Running};
        matches!(
            (self, to),
            (Queued, Running | Cancelled)
                | (Running, Done | Failed | Cancelled | Interrupted)
                | (Interrupted, Running | Queued | Cancelled)
                | (Failed | Cancelled, Queued)
        )
    }

    /// Done, failed and cancelled jobs wait for nothing.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
        }
        assert_eq!(JobState::parse("paused"), None);
    }

    #[test]
    fn done_is_final_and_running_needs_a_claim() {
        for to in JobState::ALL {
            assert!(!JobState::Done.can_become(to), "done -> {to}");
        }
        assert!(JobState::Queued.can_become(JobState::Running));
        assert!(!JobState::Queued.can_become(JobState::Done));
        assert!(!JobState::Failed.can_become(JobState::Running));
        assert!(JobState::Failed.can_become(JobState::Queued));
        assert!(JobState::Interrupted.can_become(JobState::Running));
    }
}
