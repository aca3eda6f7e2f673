//! `--history [--json]`: the jobs in the queue database, newest first.

use std::io::Write;

use crate::jobs::JobRecord;

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
    if records.is_empty() {
        let _ = writeln!(out, "no jobs yet");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:>6}  {:<11}  {:<19}  {:>7}  prompt",
        "job", "state", "created", "outputs"
    );
    for r in &records {
        let mut prompt: String = r.spec.prompt.chars().take(50).collect();
        if r.spec.prompt.chars().count() > 50 {
            prompt.push('…');
        }
        let _ = writeln!(
            out,
            "{:>6}  {:<11}  {:<19}  {:>7}  {prompt}",
            r.id.0,
            r.state.as_str(),
            when(Some(r.created_ms)),
            r.outputs.len()
        );
        if let Some(error) = &r.error {
            let _ = writeln!(out, "{:>6}  error: {error}", "");
        }
    }
    Ok(())
}
