//! Doctor's report and rules on this machine (CPU).

use super::*;
use crate::vocab::DtypeChoice;

fn global() -> GlobalArgs {
    GlobalArgs {
        device: "cpu".into(),
        dtype: DtypeChoice::Auto,
        models_file: None,
        offline: true,
        memory_budget: None,
        log_level: None,
        theme: None,
        out: None,
        preview_protocol: None,
    }
}

fn severities(r: &Report, needle: &str) -> Vec<Severity> {
    find_problems(r, false)
        .into_iter()
        .filter(|p| p.message.contains(needle))
        .map(|p| p.severity)
        .collect()
}

#[test]
fn cpu_report_and_rules() {
    let report = collect(&global(), &Default::default());
    let Ok(mut r) = report else {
        panic!("doctor failed: {:?}", report.err());
    };
    assert_eq!(r.selected_device.kind, "cpu");
    assert_eq!(r.dtype.as_deref(), Some("f32"));
    assert!(
        r.devices
            .iter()
            .any(|d| d.kind == "cpu" && d.memory_total > 0)
    );
    assert!(render(&r).contains("selected   cpu:0"));

    r.ssh = true;
    r.tmux = false;
    assert_eq!(severities(&r, "outside tmux"), [Severity::Warning]);
    r.tmux = true;
    assert!(severities(&r, "outside tmux").is_empty());

    r.apple_silicon = true;
    assert_eq!(severities(&r, "no Metal"), [Severity::Warning]);
    assert_eq!(
        find_problems(&r, true)
            .iter()
            .filter(|p| p.fix.contains("--features cuda"))
            .count(),
        1
    );

    if let Some(p) = r.paths.as_mut() {
        p.home.writable = false;
    }
    assert_eq!(severities(&r, "data folder"), [Severity::Error]);
}

#[test]
fn slow_cpu_dtype_warns_but_does_not_block() {
    // f16 on the CPU is emulated: allowed, with a warning naming the native dtypes.
    let mut g = global();
    g.dtype = DtypeChoice::F16;
    let r = collect(&g, &Default::default()).ok();
    assert!(
        r.as_ref()
            .is_some_and(|r| r.dtype.as_deref() == Some("f16"))
    );
    let slow: Vec<Severity> = r
        .iter()
        .flat_map(|r| &r.problems)
        .filter(|p| p.message.contains("f16 is emulated"))
        .map(|p| p.severity)
        .collect();
    assert_eq!(slow, [Severity::Warning]);
}

#[test]
fn bad_flags_are_bad_input() {
    let mut g = global();
    g.device = "gpu".into();
    assert_eq!(
        collect(&g, &Default::default())
            .err()
            .map(|e| e.exit_code()),
        Some(2)
    );
    let mut g = global();
    g.memory_budget = Some("lots".into());
    assert_eq!(
        collect(&g, &Default::default())
            .err()
            .map(|e| e.exit_code()),
        Some(2)
    );
}

#[test]
fn an_unusable_home_or_queue_is_exit_2_other_errors_1() {
    let Ok(mut r) = collect(&global(), &Default::default()) else {
        panic!("doctor failed");
    };
    r.problems.clear();
    r.queue_db.status = "ok";
    if let Some(p) = r.paths.as_mut() {
        p.home.writable = true;
    }
    assert_eq!(exit_code(&r), 0);
    r.problems.push(problem(Severity::Error, "x", "y"));
    assert_eq!(exit_code(&r), 1);
    r.queue_db.status = "unusable";
    assert_eq!(exit_code(&r), 2);
    r.queue_db.status = "ok";
    if let Some(p) = r.paths.as_mut() {
        p.home.writable = false;
    }
    assert_eq!(exit_code(&r), 2);
}
