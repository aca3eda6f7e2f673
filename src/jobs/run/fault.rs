//! A test-only fault hook, so black-box tests can prove that a panic anywhere in a job fails only
//! that job: `PALLAIDIUM_TEST_FAULT=panic-at-load:3` panics while job 3 loads its model (points:
//! `load`, `plan`; several faults separated by commas). Not a user setting; the value comes from
//! `Switches::test_fault` (read at start), so unset it costs nothing.

use crate::jobs::run::events::JobId;

/// Panics here when `faults` (PALLAIDIUM_TEST_FAULT) names this point and job.
pub fn point(faults: Option<&str>, name: &str, job: JobId) {
    let Some(faults) = faults else {
        return;
    };
    let wanted = format!("panic-at-{name}:{job}");
    if faults.split(',').any(|f| f.trim() == wanted) {
        panic!("test fault {wanted} (PALLAIDIUM_TEST_FAULT)");
    }
}
