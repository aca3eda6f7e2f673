//! A test-only fault hook, so black-box tests can prove that a panic anywhere in a job fails only
//! that job: `PALLAIDIUM_TEST_FAULT=panic-at-load:3` panics while job 3 loads its model (points:
//! `load`, `plan`; several faults separated by commas). Not a user setting: unset, each point
//! costs one environment lookup.

use super::events::JobId;

pub const TEST_FAULT_VAR: &str = "PALLAIDIUM_TEST_FAULT";

/// Panics here when the test fault names this point and job.
pub fn point(name: &str, job: JobId) {
    let Ok(faults) = std::env::var(TEST_FAULT_VAR) else {
        return;
    };
    let wanted = format!("panic-at-{name}:{job}");
    if faults.split(',').any(|f| f.trim() == wanted) {
        panic!("test fault {wanted} ({TEST_FAULT_VAR})");
    }
}
