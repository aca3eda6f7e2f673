//! The planner on the tiny fixture through the library, with budgets around its real peaks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use candle_core::DType;
use pallaidium::device::DeviceMemory;
use pallaidium::models::planner::{self, Overrides, PlanRequest};
use pallaidium::vocab::Backend;
use pallaidium::vocab::Residency;

fn request(budget: u64, residency: Option<Residency>) -> PlanRequest {
    PlanRequest {
        width: 64,
        height: 64,
        batch: 1,
        guided: true,
        img2img: false,
        dtype: DType::F32,
        device: Backend::Cpu,
        memory: DeviceMemory::System {
            total: 1 << 40,
            available: 1 << 40,
        },
        budget_cap: Some(budget),
        overrides: Overrides {
            residency,
            ..Overrides::default()
        },
        stock_kernels: false,
        lora: Default::default(),
    }
}

#[test]
fn a_budget_that_fits_only_staged_picks_staged_and_too_small_refuses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd1-tiny");
    let plan = |r: &PlanRequest| planner::plan_folder(&dir, false, r).unwrap();
    let resident = plan(&request(1 << 40, Some(Residency::Resident))).peak_bytes;
    let staged = plan(&request(1 << 40, Some(Residency::Staged))).peak_bytes;
    assert!(staged < resident, "{staged} < {resident}");
    let chosen = plan(&request(staged, None));
    assert!(chosen.fits);
    assert_eq!(chosen.residency, Residency::Staged);
    let chosen = plan(&request(resident, None));
    assert_eq!(chosen.residency, Residency::Resident);
    let refused = plan(&request(1 << 20, None));
    assert!(!refused.fits);
    let err = refused.require_fit().err().unwrap();
    assert_eq!(err.exit_code(), 2);
    assert!(err.to_string().contains("1.0 MiB is available"), "{err}");
}
