//! The rules that turn doctor's facts into problems, each with its fix.

use super::{Problem, Report, Severity, problem};
use crate::device::memory::format_bytes;

const GIB: u64 = 1 << 30;

/// The rules that turn facts into problems with fixes (pure over the report).
pub fn find_problems(r: &Report, nvidia_driver: bool) -> Vec<Problem> {
    use Severity::{Error, Info, Warning};
    let mut out = Vec::new();
    if let Some(p) = &r.paths {
        if !p.home.writable {
            out.push(problem(
                Error,
                format!(
                    "the data folder {} cannot be written",
                    p.home.path.display()
                ),
                "set PALLAIDIUM_HOME to a folder you can write",
            ));
        }
        if !p.outputs.writable {
            out.push(problem(
                Error,
                format!(
                    "the output folder {} cannot be written",
                    p.outputs.path.display()
                ),
                "pass --out DIR with a folder you can write",
            ));
        }
        if !p.hf_cache.writable {
            out.push(problem(
                Warning,
                format!(
                    "the Hugging Face cache {} cannot be written: models cannot be downloaded",
                    p.hf_cache.path.display()
                ),
                "set HF_HUB_CACHE (or HF_HOME) to a folder you can write",
            ));
        }
        if p.hf_cache.free_bytes.is_some_and(|f| f < 10 * GIB) {
            out.push(problem(
                Warning,
                format!(
                    "only {} free for the model cache; a Stable Diffusion model takes 2-7 GB",
                    format_bytes(p.hf_cache.free_bytes.unwrap_or(0))
                ),
                "free disk space or move HF_HUB_CACHE to a bigger disk",
            ));
        }
        if p.outputs.free_bytes.is_some_and(|f| f < GIB) {
            out.push(problem(
                Warning,
                "less than 1 GiB free for outputs",
                "free disk space or pass --out DIR on another disk",
            ));
        }
    }
    if let Some(err) = &r.registry.error {
        out.push(problem(
            Error,
            format!("the model registry cannot be loaded: {err}"),
            "fix the models file at the line named (or drop --models)",
        ));
    }
    let compiled = |b: &str| r.backends.contains(&b);
    if r.apple_silicon && !compiled("metal") {
        out.push(problem(
            Warning,
            "this build has no Metal support: the GPU of this Mac is unused",
            "rebuild with `cargo build --release --features metal`",
        ));
    }
    if r.rosetta {
        out.push(problem(Warning, "this is an x86_64 build running under Rosetta: Metal is unavailable and everything is slower", "install the arm64 toolchain (`rustup default stable-aarch64-apple-darwin`) and rebuild"));
    }
    if nvidia_driver && !compiled("cuda") {
        out.push(problem(
            Warning,
            "an NVIDIA driver is loaded but this build has no CUDA support",
            "rebuild with `cargo build --release --features cuda`",
        ));
    }
    if let Some(dtype) = r.dtype.as_deref()
        && !r.selected_device.native_dtypes.contains(&dtype)
    {
        out.push(problem(
            Warning,
            format!("{dtype} is emulated on {}: slow", r.selected_device.kind),
            format!(
                "use one of {} (--dtype)",
                r.selected_device.native_dtypes.join(", ")
            ),
        ));
    }
    if r.selected_device.kind == "cpu" {
        out.push(problem(
            Info,
            "generating on the CPU: expect minutes per image",
            "use a CUDA or Metal build on a machine with a GPU",
        ));
    }
    let budget = r.selected_device.memory_budget;
    if budget < 3 * GIB {
        out.push(problem(
            Warning,
            format!(
                "only {} of memory for jobs; SD 1.5 in f16 needs about 3 GiB",
                format_bytes(budget)
            ),
            "close other programs, raise --memory-budget, or use a smaller model",
        ));
    }
    if r.ssh && !r.tmux {
        out.push(problem(
            Warning,
            "running over SSH outside tmux: jobs stop when the connection drops",
            "start `tmux new -s pallaidium` and run inside it (detach with Ctrl-b d)",
        ));
    }
    if !r.keep_awake_tool && (r.os == "macos" || r.os == "linux") {
        out.push(problem(Info, "no keep-awake tool (caffeinate / systemd-inhibit): the machine may sleep during long batches", "disable sleep in the system settings, or install systemd"));
    }
    if !r.hf_token_set {
        out.push(problem(
            Info,
            "no Hugging Face token: gated models cannot be downloaded",
            "set HF_TOKEN or run `huggingface-cli login`",
        ));
    }
    out
}
