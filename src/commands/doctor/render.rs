//! The human form of doctor's report.

use super::{Report, Severity};
use crate::device::memory::format_bytes;

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The human report.
pub fn render(r: &Report) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let mut line = |label: &str, text: String| {
        let _ = writeln!(s, "{label:<10} {text}");
    };
    let mut system = format!(
        "{} {}, {} ({} cores)",
        r.os,
        r.arch,
        r.chip.as_deref().unwrap_or(&r.cpu),
        r.cpu_cores
    );
    if let Some(v) = &r.macos_version {
        system.push_str(&format!(", macOS {v}"));
    }
    if r.rosetta {
        system.push_str(", under Rosetta");
    }
    line("system", system);
    line(
        "session",
        format!(
            "ssh: {}, tmux: {}, keep-awake tool: {}",
            yes_no(r.ssh),
            yes_no(r.tmux),
            yes_no(r.keep_awake_tool)
        ),
    );
    line("backends", r.backends.join(", "));
    for (i, d) in r.devices.iter().enumerate() {
        line(
            if i == 0 { "devices" } else { "" },
            format!(
                "{}:{} {}: {} total, {} usable",
                d.kind,
                d.ordinal,
                d.name,
                format_bytes(d.memory_total),
                format_bytes(d.memory_free)
            ),
        );
    }
    let sel = &r.selected_device;
    line(
        "selected",
        format!("{}:{} {} ({})", sel.kind, sel.ordinal, sel.name, sel.reason),
    );
    line(
        "",
        format!(
            "job memory budget {}{}",
            format_bytes(sel.memory_budget),
            sel.memory_budget_cap.map_or(String::new(), |c| format!(
                " (capped at {})",
                format_bytes(c)
            ))
        ),
    );
    line(
        "dtype",
        format!(
            "{} (native here: {})",
            r.dtype.as_deref().unwrap_or("refused"),
            sel.native_dtypes.join(", ")
        ),
    );
    let m = &r.memory;
    let mut mem = format!(
        "RAM {} ({} available), swap {} used of {}",
        format_bytes(m.ram_total),
        format_bytes(m.ram_available),
        format_bytes(m.swap_used),
        format_bytes(m.swap_total)
    );
    if let Some(limit) = m.cgroup_limit {
        mem.push_str(&format!(", cgroup limit {}", format_bytes(limit)));
    }
    line("memory", mem);
    if let Some(p) = &r.paths {
        let rows = [
            ("home", &p.home),
            ("outputs", &p.outputs),
            ("logs", &p.logs),
            ("queue db", &p.queue_db),
            ("hf cache", &p.hf_cache),
        ];
        for (i, (name, row)) in rows.into_iter().enumerate() {
            let free = row.free_bytes.map_or_else(
                || "free unknown".to_string(),
                |f| format!("{} free", format_bytes(f)),
            );
            let state = if !row.writable {
                ", NOT WRITABLE"
            } else if !row.exists {
                ", not created yet"
            } else {
                ""
            };
            line(
                if i == 0 { "paths" } else { "" },
                format!("{name:<9} {} ({free}{state})", row.path.display()),
            );
        }
    }
    line(
        "hf token",
        if r.hf_token_set {
            "set".into()
        } else {
            "not set".into()
        },
    );
    let reg = match (&r.registry.entries, &r.registry.error) {
        (Some(n), _) => format!("ok, {n} models"),
        (None, Some(e)) => format!("error: {e}"),
        (None, None) => "unknown".into(),
    };
    line("registry", reg);
    if r.problems.is_empty() {
        let _ = writeln!(s, "\nno problems found");
    } else {
        let _ = writeln!(s, "\nproblems");
        for p in &r.problems {
            let sev = match p.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let _ = writeln!(s, "  {sev:<8} {}\n  {:<8} fix: {}", p.message, "", p.fix);
        }
    }
    s
}
