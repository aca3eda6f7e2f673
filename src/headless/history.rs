//! `--history [--json]`: the jobs in the queue database, newest first.

use std::io::Write;

use crate::jobs::JobRecord;
use crate::terminal_text::escape_controls;

const HISTORY_LIMIT: usize = 200;

fn when(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

pub fn record_json(record: &JobRecord) -> serde_json::Value {
    serde_json::json!({
        "job": record.id,
        "state": record.state,
        "created": when(Some(record.created_ms)),
        "started": when(record.started_ms),
        "finished": when(record.finished_ms),
        "attempts": record.attempts,
        "outputs": record.outputs,
        "error": record.error,
        "spec": record.spec,
    })
}

pub fn print(store: &crate::jobs::Store, json: bool) -> crate::Result<()> {
    let records = store.history(HISTORY_LIMIT)?;
    let mut out = std::io::stdout().lock();
    if json {
        for record in &records {
            let _ = writeln!(out, "{}", record_json(record));
        }
        return Ok(());
    }
    let _ = out.write_all(table(&records).as_bytes());
    Ok(())
}

/// The human table: stored prompts and errors with their control characters escaped.
fn table(records: &[JobRecord]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if records.is_empty() {
        let _ = writeln!(out, "no jobs yet");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<11}  {:<19}  {:>7}  prompt",
        "job", "state", "created", "outputs"
    );
    for r in records {
        let mut prompt: String = r.spec.prompt.chars().take(50).collect();
        if r.spec.prompt.chars().count() > 50 {
            prompt.push('…');
        }
        let _ = writeln!(
            out,
            "{:>6}  {:<11}  {:<19}  {:>7}  {}",
            r.id.0,
            r.state.as_str(),
            when(Some(r.created_ms)),
            r.outputs.len(),
            escape_controls(&prompt)
        );
        if let Some(error) = &r.error {
            let _ = writeln!(out, "{:>6}  error: {}", "", escape_controls(error));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobId, JobSpec, JobState};

    #[test]
    fn stored_prompts_and_errors_are_escaped_and_json_stays_exact() {
        let hostile = "fox \u{1b}]0;pwned\u{7}";
        let record = JobRecord {
            id: JobId(7),
            spec: JobSpec {
                prompt: hostile.into(),
                ..JobSpec::default()
            },
            state: JobState::Failed,
            created_ms: 0,
            started_ms: None,
            finished_ms: None,
            outputs: Vec::new(),
            error: Some("bad \u{1b}[2J".into()),
            position: 0,
            attempts: 1,
        };
        let text = table(std::slice::from_ref(&record));
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{7}'),
            "{text:?}"
        );
        assert!(
            text.contains("fox \\x1b]0;pwned\\x07") && text.contains("bad \\x1b[2J"),
            "{text}"
        );
        let line = record_json(&record).to_string();
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["spec"]["prompt"], hostile);
    }
}
