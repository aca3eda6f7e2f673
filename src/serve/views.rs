//! How the API shows a job: its stored record, with outputs as download links (by job id and
//! index) instead of server paths.

use serde_json::{Value, json};

use crate::jobs::{JobId, JobRecord};

/// The download path of output `index` of `job`.
pub fn output_url(job: JobId, index: usize) -> String {
    format!("/api/v1/jobs/{job}/outputs/{index}")
}

pub fn job(record: &JobRecord) -> Value {
    let outputs: Vec<Value> = record
        .outputs
        .iter()
        .enumerate()
        .map(|(index, path)| {
            json!({
                "index": index,
                "name": path.file_name().map(|n| n.to_string_lossy().into_owned()),
                "url": output_url(record.id, index),
            })
        })
        .collect();
    json!({
        "id": record.id,
        "state": record.state,
        "spec": record.spec,
        "created_ms": record.created_ms,
        "started_ms": record.started_ms,
        "finished_ms": record.finished_ms,
        "error": record.error,
        "position": record.position,
        "attempts": record.attempts,
        "outputs": outputs,
    })
}

/// The media type of an output, by its extension.
pub fn content_type(path: &std::path::Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("wav") => "audio/wav",
        Some("mp4") => "video/mp4",
        Some("json") => "application/json",
        Some("txt" | "srt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_show_as_links_not_paths() {
        let record = JobRecord {
            id: JobId(4),
            spec: crate::jobs::JobSpec::default(),
            state: crate::jobs::JobState::Done,
            created_ms: 1,
            started_ms: Some(2),
            finished_ms: Some(3),
            outputs: vec!["/secret/place/7_a-cat.png".into()],
            error: None,
            position: 0,
            attempts: 1,
        };
        let v = job(&record);
        assert_eq!(v["state"], "done");
        assert_eq!(v["outputs"][0]["url"], "/api/v1/jobs/4/outputs/0");
        assert_eq!(v["outputs"][0]["name"], "7_a-cat.png");
        assert!(!v.to_string().contains("/secret/place"));
        assert_eq!(content_type(std::path::Path::new("a.PNG")), "image/png");
    }
}
