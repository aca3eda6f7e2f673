//! `pallaidium bench`: benchmarks of full-size architectures with random weights (the arithmetic
//! is the same as with trained weights). Prints one JSON object (`--json`) or a table; every
//! result names the device, dtype, candle version and machine. BENCHMARKS.md records results.

mod configs;
mod flow_common;
mod flux;
mod image;
mod ops;
mod random;
mod report;
mod sd3;
mod unet;
mod weights_dir;
mod zimage;

use candle_core::DType;
use serde_json::{Value, json};

use crate::cli::{BenchArgs, BenchCommand, GlobalArgs};
use crate::device::{DeviceRequest, SelectedDevice, resolve_dtype};
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::dtype::dtype_name;
use crate::platform::switches::Switches;
use crate::{Error, Result};

/// Everything a benchmark needs besides the model's configuration.
pub struct BenchSetup<'a> {
    pub args: &'a BenchArgs,
    pub device: SelectedDevice,
    pub dtype: DType,
    pub attention: AttentionMode,
    pub global: &'a GlobalArgs,
    /// The PALLAIDIUM_* switches of this run (kernels, weight loading, profile; recorded below).
    pub switches: &'a Switches,
}

pub fn run(global: &GlobalArgs, switches: &Switches, what: &BenchCommand) -> anyhow::Result<i32> {
    let (kind, args) = match what {
        BenchCommand::Unet(a) => ("unet", a),
        BenchCommand::Image(a) => ("image", a),
        BenchCommand::Ops(a) => ("ops", a),
        BenchCommand::Transformer(a) => ("transformer", a),
    };
    let result = run_inner(global, switches, kind, args)?;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else if kind == "ops" {
        print!("{}", ops::table(&result));
    } else {
        print!("{}", table(&result));
    }
    Ok(0)
}

fn run_inner(
    global: &GlobalArgs,
    switches: &Switches,
    kind: &str,
    args: &BenchArgs,
) -> Result<Value> {
    // FLUX's transformer has its own configs; every other bench builds an SD architecture.
    let model = if kind == "transformer" {
        None
    } else {
        Some(configs::find(&args.model)?)
    };
    let zimage_model = kind == "transformer" && zimage::is_zimage(&args.model);
    let sd3_model = kind == "transformer" && sd3::is_sd3(&args.model);
    let flux_model = if kind == "transformer" && !zimage_model && !sd3_model {
        Some(flux::find(&args.model)?)
    } else {
        None
    };
    check_limits(args)?;
    let device = crate::device::select(&DeviceRequest::parse(&global.device)?, switches)?;
    let platform = crate::platform::PlatformInfo::detect();
    let dtype = resolve_dtype(global.dtype, &device, &platform)?;
    let setup = BenchSetup {
        args,
        dtype,
        attention: parse_attention(args.attention_slicing.as_deref())?,
        device,
        global,
        switches,
    };
    let mut result = match (kind, model, flux_model) {
        _ if zimage_model => zimage::run(&setup)?,
        _ if sd3_model => sd3::run(&setup)?,
        (_, _, Some(f)) => flux::run(f, &setup)?,
        ("unet", Some(m), _) => unet::run(m, &setup)?,
        ("ops", Some(m), _) => ops::run(m, &setup)?,
        (_, Some(m), _) => image::run(m, &setup)?,
        _ => {
            return Err(Error::bad_input(format!(
                "--model {:?}: no benchmark configuration",
                args.model
            )));
        }
    };
    if let Value::Object(map) = &mut result {
        let common = json!({
            "device": setup.device.kind.to_string(),
            "device_name": setup.device.name,
            "dtype": dtype_name(dtype),
            "attention": format!("{:?}", setup.attention),
            "candle": report::CANDLE_VERSION,
            "candle_version_source": "report::CANDLE_VERSION, checked against Cargo.lock by a unit test",
            "pallaidium": env!("CARGO_PKG_VERSION"),
            "cpu": report::cpu_description(),
            "rayon_threads": candle_core::utils::get_num_threads(),
            // PALLAIDIUM_* switches set for this run that change results or speed ({} if none).
            "switches": switches.recorded(),
        });
        if let Value::Object(c) = common {
            map.extend(c);
        }
    }
    Ok(result)
}

/// `--attention-slicing auto|off|N` (absent: auto).
fn parse_attention(flag: Option<&str>) -> Result<AttentionMode> {
    match flag.map(str::trim) {
        None | Some("auto") => Ok(AttentionMode::Auto),
        Some("off") | Some("full") => Ok(AttentionMode::Full),
        Some(n) => match n.parse::<usize>() {
            Ok(q) if q > 0 => Ok(AttentionMode::Sliced { query_chunk: q }),
            _ => Err(Error::bad_input(format!(
                "--attention-slicing {n:?}: use auto, off, or a positive query chunk size"
            ))),
        },
    }
}

/// Most timed or warm-up runs one bench may ask for.
pub const MAX_RUNS: u32 = 1000;

/// The limits jobs have (size, batch, steps), and sane run counts, before anything is built.
fn check_limits(args: &BenchArgs) -> Result<()> {
    use crate::jobs::spec::resolve::{check_batch, check_side, check_steps};
    if args.runs == 0 || args.runs > MAX_RUNS {
        return Err(Error::bad_input(format!(
            "--runs {}: must be between 1 and {MAX_RUNS}",
            args.runs
        )));
    }
    if args.warmup > MAX_RUNS {
        return Err(Error::bad_input(format!(
            "--warmup {}: must be at most {MAX_RUNS}",
            args.warmup
        )));
    }
    check_side("--width", args.width)?;
    check_side("--height", args.height)?;
    check_batch(args.batch)?;
    check_steps(args.steps)
}

/// Width and height as latent-compatible pixel sizes, within the limits jobs have.
pub fn validate_size(width: u32, height: u32) -> Result<(usize, usize)> {
    crate::jobs::spec::resolve::check_side("--width", width)?;
    crate::jobs::spec::resolve::check_side("--height", height)?;
    Ok((width as usize, height as usize))
}

/// A two-column table of the result's scalar fields, for humans.
fn table(v: &Value) -> String {
    let mut out = String::new();
    let Value::Object(map) = v else {
        return format!("{v}\n");
    };
    let width = map.keys().map(String::len).max().unwrap_or(0);
    for (k, val) in map {
        let shown = match val {
            Value::Number(n) if k.ends_with("_bytes") => report::bytes_or_na(n.as_u64()),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.3}"),
                _ => n.to_string(),
            },
            Value::String(s) => s.clone(),
            Value::Null => "n/a".into(),
            other => other.to_string(),
        };
        out.push_str(&format!("{k:<width$}  {shown}\n"));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attention_flag_forms() {
        assert_eq!(parse_attention(None).unwrap(), AttentionMode::Auto);
        assert_eq!(parse_attention(Some("off")).unwrap(), AttentionMode::Full);
        assert_eq!(
            parse_attention(Some("512")).unwrap(),
            AttentionMode::Sliced { query_chunk: 512 }
        );
        let err = parse_attention(Some("0")).unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn sizes_must_be_multiples_of_8() {
        assert_eq!(validate_size(512, 768).unwrap(), (512, 768));
        assert_eq!(validate_size(500, 512).unwrap_err().exit_code(), 2);
    }

    fn args(width: u32, height: u32, batch: u32, steps: u32, runs: u32) -> BenchArgs {
        BenchArgs {
            model: "sd15".into(),
            width,
            height,
            batch,
            runs,
            warmup: 1,
            steps,
            attention_slicing: None,
            json: false,
            gguf: None,
            weights: None,
            text_tokens: None,
            device: Default::default(),
            dtype: Default::default(),
            out: Default::default(),
        }
    }

    #[test]
    fn bench_has_the_limits_jobs_have() {
        check_limits(&args(512, 512, 1, 20, 3)).unwrap();
        check_limits(&args(4096, 4096, 64, 1000, 1000)).unwrap();
        for (bad, names) in [
            (args(8192, 512, 1, 20, 3), "--width 8192"),
            (args(512, 8, 1, 20, 3), "--height 8"),
            (args(512, 512, 65, 20, 3), "--batch 65"),
            (args(512, 512, 0, 20, 3), "--batch 0"),
            (args(512, 512, 1, 5000, 3), "--steps 5000"),
            (args(512, 512, 1, 20, 0), "--runs 0"),
            (args(512, 512, 1, 20, 100_000), "--runs 100000"),
        ] {
            let err = check_limits(&bad).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains(names), "{names}: {err}");
        }
    }

    #[test]
    fn table_formats_bytes_and_seconds() {
        let t = table(&json!({"median_s": 1.23456, "peak_bytes": 1u64 << 31, "device": "cpu"}));
        assert!(t.contains("1.235"), "{t}");
        assert!(t.contains("2.0 GiB"), "{t}");
        assert!(t.contains("cpu"), "{t}");
    }
}
