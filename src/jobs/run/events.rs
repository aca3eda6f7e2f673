//! `JobEvent`: every change of a job, broadcast to whoever watches (TUI, headless JSON lines).
//! The JSON shape is a contract (DESIGN.md): `{"event":"progress","job":3,"step":2,...}`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A job's id: the SQLite rowid of its row in the queue database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Seconds per stage (e.g. "load", "generate", "write"), in the order they ran.
pub type Timings = BTreeMap<String, f64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum JobEvent {
    /// The job is persisted and waits for a worker.
    Queued {
        job: JobId,
        /// 0-based place in the queue when it was added.
        position: usize,
    },
    /// A pipeline stage is loading or starting (e.g. "engine", "text_encoder", "unet", "vae").
    Loading {
        job: JobId,
        stage: String,
    },
    /// One denoising step finished.
    Progress {
        job: JobId,
        step: u32,
        steps: u32,
        elapsed_s: f64,
        eta_s: f64,
    },
    /// A cheap look at the current latents; the pixels travel in memory only.
    Preview {
        job: JobId,
        width: u32,
        height: u32,
        #[serde(skip)]
        pixels: Vec<u8>,
    },
    /// Text produced so far grew by `delta` (streamed tokens: enhanced prompts, captions,
    /// transcript segments).
    Text {
        job: JobId,
        delta: String,
    },
    /// Every output is written and recorded.
    Done {
        job: JobId,
        outputs: Vec<PathBuf>,
        timings: Timings,
        /// Peak resident memory of the process while the job ran, when known.
        peak_bytes: Option<u64>,
        /// Peak device memory in use while the job ran (CUDA: the memory pool's high-water
        /// mark, weights included), when the device reports it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        device_peak_bytes: Option<u64>,
        /// The whole text of a text job (caption, enhanced prompt, transcript).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        /// Seconds of audio of an audio job.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duration_s: Option<f64>,
    },
    Failed {
        job: JobId,
        error: String,
    },
    Cancelled {
        job: JobId,
    },
}

impl JobEvent {
    pub fn job(&self) -> JobId {
        match self {
            Self::Queued { job, .. }
            | Self::Loading { job, .. }
            | Self::Progress { job, .. }
            | Self::Preview { job, .. }
            | Self::Text { job, .. }
            | Self::Done { job, .. }
            | Self::Failed { job, .. }
            | Self::Cancelled { job } => *job,
        }
    }

    /// Done, failed and cancelled end a job; nothing follows them for that job.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Done { .. } | Self::Failed { .. } | Self::Cancelled { .. }
        )
    }

    /// One JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Serialising these plain structs cannot fail; fall back to a minimal line anyway.
        serde_json::to_string(self).unwrap_or_else(|_| {
            format!(
                r#"{{"event":"failed","job":{},"error":"unserialisable event"}}"#,
                self.job()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(event: &JobEvent) -> serde_json::Value {
        serde_json::from_str(&event.to_json_line()).unwrap()
    }

    #[test]
    fn progress_has_the_contract_fields() {
        let v = json(&JobEvent::Progress {
            job: JobId(7),
            step: 2,
            steps: 20,
            elapsed_s: 1.5,
            eta_s: 13.5,
        });
        assert_eq!(v["event"], "progress");
        assert_eq!(v["job"], 7);
        assert_eq!(v["step"], 2);
        assert_eq!(v["steps"], 20);
        assert_eq!(v["elapsed_s"], 1.5);
        assert_eq!(v["eta_s"], 13.5);
    }

    #[test]
    fn done_failed_loading_cancelled_shapes() {
        let mut timings = Timings::new();
        timings.insert("generate".into(), 2.0);
        let v = json(&JobEvent::Done {
            job: JobId(1),
            outputs: vec!["a/b.png".into()],
            timings,
            peak_bytes: Some(42),
            device_peak_bytes: None,
            text: None,
            duration_s: None,
        });
        assert_eq!(v["event"], "done");
        assert_eq!(v["outputs"][0], "a/b.png");
        assert_eq!(v["timings"]["generate"], 2.0);
        assert_eq!(v["peak_bytes"], 42);

        let v = json(&JobEvent::Failed {
            job: JobId(2),
            error: "boom".into(),
        });
        assert_eq!(
            (v["event"].as_str(), v["error"].as_str()),
            (Some("failed"), Some("boom"))
        );

        let v = json(&JobEvent::Loading {
            job: JobId(3),
            stage: "unet".into(),
        });
        assert_eq!(
            (v["event"].as_str(), v["stage"].as_str()),
            (Some("loading"), Some("unet"))
        );

        let v = json(&JobEvent::Cancelled { job: JobId(4) });
        assert_eq!(v, serde_json::json!({"event": "cancelled", "job": 4}));
    }

    #[test]
    fn preview_pixels_stay_out_of_json() {
        let event = JobEvent::Preview {
            job: JobId(5),
            width: 2,
            height: 1,
            pixels: vec![1, 2, 3, 4, 5, 6],
        };
        let v = json(&event);
        assert_eq!(
            v,
            serde_json::json!({"event": "preview", "job": 5, "width": 2, "height": 1})
        );
        assert!(!event.is_terminal());
        assert!(JobEvent::Cancelled { job: JobId(5) }.is_terminal());
    }
}
