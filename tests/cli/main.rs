//! Black-box tests of the binary and its runner: headless runs, job files, fetch, doctor, refused inputs.
//! One test binary for the group: each binary links candle, so fewer binaries keep CI's disk and link
//! time small. Each module is one former tests/*.rs file; helpers live in tests/support/,
//! declared once here and imported by the modules that use them.

// Test code and its helpers unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/mock_hub.rs"]
mod mock_hub;
#[path = "../support/parity.rs"]
mod parity;
#[path = "../support/run.rs"]
mod run;
#[path = "../support/runner.rs"]
mod runner;
#[path = "../support/serve.rs"]
mod serve;
#[path = "../support/silent_hub.rs"]
mod silent_hub;

mod cli_audio_text;
mod cli_bad_configs;
mod cli_bad_weights;
mod cli_cancel_stage;
mod cli_controlnet;
mod cli_doctor;
mod cli_failures;
mod cli_fetch;
mod cli_fetch_flux_quant;
mod cli_fetch_mock_hub;
mod cli_fetch_timeouts;
mod cli_flux;
mod cli_headless;
mod cli_help;
mod cli_jobs;
mod cli_large_batch;
mod cli_lora;
mod cli_ltx;
mod cli_memory;
mod cli_models;
mod cli_no_terminal;
mod cli_output_text;
mod cli_parity;
mod cli_plan_size;
mod cli_refused_inputs;
mod cli_sd3;
mod cli_serve;
mod cli_serve_client;
mod cli_serve_compat;
mod cli_serve_load;
mod cli_serve_logs;
mod cli_serve_preview;
mod cli_serve_ws;
mod cli_switches;
mod cli_upscale;
mod cli_video_output;
mod cli_wan;
mod cli_wan_flf2v;
mod cli_wan_i2v;
mod cli_workers;
mod cli_zimage;
mod hf_cache_layout;
mod planner;
mod runner_shutdown;
