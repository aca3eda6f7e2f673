//! With the `cuda` feature, compiles the engine's own CUDA kernels
//! (src/engines/nn/kernels/cuda/sd_kernels.cu and the .cuh files it includes) to PTX with nvcc,
//! as candle-kernels does for candle's. Without it, does nothing.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "src/engines/nn/kernels/cuda/sd_kernels.cu";
/// The folder of SOURCE and the per-op headers it includes.
const SOURCE_DIR: &str = "src/engines/nn/kernels/cuda";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={SOURCE_DIR}");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rustc-check-cfg=cfg(sd_mma)");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return Ok(());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("sd_kernels.ptx");
    let nvcc = std::env::var_os("CUDA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("nvcc"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nvcc"));
    // PTX is compiled for the architecture asked for (CUDA_COMPUTE_CAP, as candle-kernels reads
    // it), else this machine's GPU as nvidia-smi reports it, else 70; the driver JIT-compiles it
    // for newer GPUs. The tensor-core attention needs 80 or more.
    let cap = std::env::var("CUDA_COMPUTE_CAP")
        .ok()
        .or_else(detected_compute_cap)
        .unwrap_or_else(|| {
            println!(
                "cargo:warning=CUDA_COMPUTE_CAP unset and no GPU found: building PTX for \
                 compute 7.0 (set CUDA_COMPUTE_CAP=80 or higher for the tensor-core attention)"
            );
            "70".into()
        });
    let cap: String = cap.chars().filter(char::is_ascii_digit).collect();
    // The tensor-core attention (mma.sync on f16/bf16) needs sm_80 or newer.
    if cap.parse::<u32>().is_ok_and(|c| c >= 80) {
        println!("cargo:rustc-cfg=sd_mma");
    }
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=compute_{cap}"))
        .arg("-o")
        .arg(&out)
        .arg(SOURCE)
        .status()
        .map_err(|e| {
            format!(
                "running {} failed ({e}): install the CUDA toolkit or set CUDA_HOME",
                nvcc.display()
            )
        })?;
    if !status.success() {
        return Err(format!("nvcc failed on {SOURCE} ({status})").into());
    }
    Ok(())
}

/// The first GPU's compute capability as nvidia-smi reports it ("9.0" -> "90").
fn detected_compute_cap() -> Option<String> {
    let out = Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let digits: String = text
        .lines()
        .next()?
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    (!digits.is_empty()).then_some(digits)
}
