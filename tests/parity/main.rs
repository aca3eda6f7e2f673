//! Parity tests against references computed by diffusers/transformers from the committed tiny fixtures.
//! One test binary for the group: each binary links candle, so fewer binaries keep CI's disk and link
//! time small. Each module is one former tests/*.rs file; helpers live in tests/support/,
//! declared once here and imported by the modules that use them.

// Test code and its helpers unwrap: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../support/parity.rs"]
mod parity;

mod parity_blip;
mod parity_clip_vision;
mod parity_enhancer;
mod parity_flow_unipc;
mod parity_flux_parts;
mod parity_flux_pipeline;
mod parity_flux_transformer;
mod parity_gguf;
mod parity_ltx_pipeline;
mod parity_ltx_staged;
mod parity_ltx_transformer;
mod parity_ltx_vae;
mod parity_models;
mod parity_musicgen;
mod parity_parler;
mod parity_pipeline;
mod parity_power;
mod parity_qwen;
mod parity_rope;
mod parity_schedulers;
mod parity_sd3_parts;
mod parity_sd3_pipeline;
mod parity_t5;
mod parity_tokenizer;
mod parity_upscale;
mod parity_wan_model;
mod parity_wan_vae;
mod parity_whisper;
mod parity_zimage_pipeline;
mod parity_zimage_tokens;
mod parity_zimage_transformer;
