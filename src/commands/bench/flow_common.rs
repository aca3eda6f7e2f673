//! What the single-model flow transformer benches (Z-Image-Turbo, SD 3.5 Medium) share: their
//! argument checks, the folder that holds the committed config, and the timing fields of the
//! JSON they print.

use std::path::PathBuf;

use serde_json::{Map, Value, json};

use super::report::{TimedRuns, current_rss};
use super::{BenchSetup, validate_size};
use crate::platform::paths::Paths;
use crate::{Error, Result};

/// The bench's checked size and text tokens.
pub struct FlowShape {
    pub width: usize,
    pub height: usize,
    pub text_tokens: usize,
}

/// Checks --width/--height (multiples of 16), that --weights or --gguf is given (`hint` says how
/// to make them), and --text-tokens (1..4096, `default_tokens` when absent).
pub fn check_args(
    s: &BenchSetup,
    family: &str,
    default_tokens: usize,
    hint: &str,
) -> Result<FlowShape> {
    let a = s.args;
    let (width, height) = validate_size(a.width, a.height)?;
    if width % 16 != 0 || height % 16 != 0 {
        return Err(Error::bad_input(format!(
            "{family} needs --width and --height in multiples of 16 ({width}x{height})"
        )));
    }
    if a.gguf.is_none() && a.weights.is_none() {
        return Err(Error::bad_input(format!(
            "bench transformer needs --weights DIR (a diffusers transformer/ folder; {hint})"
        )));
    }
    let text_tokens = a.text_tokens.map_or(default_tokens, |n| n as usize);
    if text_tokens == 0 || text_tokens > 4096 {
        return Err(Error::bad_input(format!(
            "--text-tokens {text_tokens}: 1 to 4096"
        )));
    }
    Ok(FlowShape {
        width,
        height,
        text_tokens,
    })
}

/// `--weights`, else the committed `config` written under PALLAIDIUM_HOME/bench-models/`id`
/// (a GGUF brings every weight).
pub fn transformer_dir(s: &BenchSetup, id: &str, config: &str) -> Result<PathBuf> {
    if let Some(dir) = &s.args.weights {
        return Ok(dir.clone());
    }
    let paths = Paths::resolve(s.global.out.as_deref(), s.switches)?;
    let dir = paths.home.join("bench-models").join(id).join("transformer");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let file = dir.join("config.json");
    std::fs::write(&file, config).map_err(|e| Error::io(&file, e))?;
    Ok(dir)
}

/// Where the weights came from: the GGUF file and its size, or the diffusers folder.
pub fn weights_json(s: &BenchSetup, dir: &std::path::Path) -> Value {
    match &s.args.gguf {
        Some(g) => json!({
            "gguf": g.display().to_string(),
            "file_bytes": std::fs::metadata(g).ok().map(|m| m.len()),
        }),
        None => json!({"diffusers_dir": dir.display().to_string()}),
    }
}

/// How long building the model took, and the process's RSS around it.
pub struct Built {
    pub build_s: f64,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

/// Runs `load` (the model built and its attention mode set), then a device synchronize, timed.
pub fn timed_build<T>(
    device: &candle_core::Device,
    load: impl FnOnce() -> Result<T>,
) -> Result<(T, Built)> {
    let rss_before = current_rss();
    let t = std::time::Instant::now();
    let model = load()?;
    device.synchronize()?;
    let build_s = t.elapsed().as_secs_f64();
    let built = Built {
        build_s,
        rss_before,
        rss_after: current_rss(),
    };
    Ok((model, built))
}

/// The timing and memory fields every transformer bench reports.
pub fn timing_json(s: &BenchSetup, timed: &TimedRuns, built: &Built) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("runs".into(), json!(timed.times.len()));
    m.insert("warmup".into(), json!(s.args.warmup));
    m.insert("times_s".into(), json!(timed.times_s()));
    m.insert("median_s".into(), json!(timed.median_s));
    m.insert("min_s".into(), json!(timed.min_s));
    m.insert("build_s".into(), json!(built.build_s));
    m.insert("rss_after_build_bytes".into(), json!(built.rss_after));
    m.insert("rss_before_build_bytes".into(), json!(built.rss_before));
    m.insert("peak_bytes".into(), json!(timed.peak_bytes));
    m.insert(
        "peak_reserved_bytes".into(),
        json!(timed.peak_reserved_bytes),
    );
    m.insert(
        "peak_kind".into(),
        json!(format!("{}; over the timed runs", timed.peak_kind)),
    );
    m.insert(
        "peak_rss_load_and_warmup_bytes".into(),
        json!(timed.peak_rss_load_and_warmup),
    );
    m
}
