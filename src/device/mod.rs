//! Backend choice: `--device auto|cpu|cuda[:N]|metal[:N]`. Auto prefers CUDA, then Metal, then the CPU.
//! Memory per device lives in `memory`, dtype rules in `dtype`.

pub mod cuda_pool;
pub mod dtype;
pub mod memory;

use serde::Serialize;

use crate::platform::switches::Switches;
use crate::vocab::Backend;
use crate::{Error, Result};

pub use dtype::{DtypeSupport, Support, dtype_support, resolve_dtype};
pub use memory::{DeviceMemory, parse_size};

/// What the user asked for with `--device`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    Auto,
    Cpu,
    Cuda(usize),
    Metal(usize),
}

const DEVICE_FORMS: &str = "auto, cpu, cuda, cuda:N, metal or metal:N";

impl DeviceRequest {
    pub fn parse(s: &str) -> Result<Self> {
        let text = s.trim().to_ascii_lowercase();
        let bad = || {
            Error::bad_input(format!(
                "--device {s:?} is not a device: use {DEVICE_FORMS}"
            ))
        };
        let (name, ordinal) = match text.split_once(':') {
            Some((name, n)) => (name, Some(n.parse::<usize>().map_err(|_| bad())?)),
            None => (text.as_str(), None),
        };
        match (name, ordinal) {
            ("auto", None) => Ok(Self::Auto),
            ("cpu", None) => Ok(Self::Cpu),
            ("cuda", n) => Ok(Self::Cuda(n.unwrap_or(0))),
            ("metal", n) => Ok(Self::Metal(n.unwrap_or(0))),
            _ => Err(bad()),
        }
    }
}

/// The device a job runs on, with why it was chosen.
#[derive(Debug, Clone)]
pub struct SelectedDevice {
    pub device: candle_core::Device,
    pub kind: Backend,
    pub ordinal: usize,
    /// `NVIDIA H100 80GB HBM3`, `Apple GPU (applegpu_g14g)`, or the CPU brand.
    pub name: String,
    pub reason: String,
    /// CUDA compute capability (major, minor), e.g. (9, 0) on an H100.
    pub compute_capability: Option<(u32, u32)>,
}

/// The backends compiled into this binary (`cpu` always; `cudnn`, `accelerate`, `mkl` are CPU/CUDA helpers).
pub fn compiled_backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if candle_core::utils::cuda_is_available() {
        b.push("cuda");
    }
    if cfg!(feature = "cudnn") {
        b.push("cudnn");
    }
    if candle_core::utils::metal_is_available() {
        b.push("metal");
    }
    if candle_core::utils::has_accelerate() {
        b.push("accelerate");
    }
    if candle_core::utils::has_mkl() {
        b.push("mkl");
    }
    b
}

fn cpu_device(reason: String) -> SelectedDevice {
    let mut sys = sysinfo::System::new();
    sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
    let name = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "CPU".to_string());
    SelectedDevice {
        device: candle_core::Device::Cpu,
        kind: Backend::Cpu,
        ordinal: 0,
        name,
        reason,
        compute_capability: None,
    }
}

/// `cuda_defaults` (`Switches::cuda_defaults`) keeps cudarc's settings, to measure what ours
/// change.
fn open_cuda(ordinal: usize, cuda_defaults: bool) -> std::result::Result<SelectedDevice, String> {
    if !candle_core::utils::cuda_is_available() {
        return Err(
            "this build has no CUDA support: rebuild with `cargo build --release --features cuda`"
                .into(),
        );
    }
    let device = candle_core::Device::new_cuda(ordinal).map_err(|e| {
        format!(
            "CUDA device {ordinal} could not be opened ({e}); check `nvidia-smi` and the driver"
        )
    })?;
    let (name, compute_capability) = cuda_details(&device);
    if !cuda_defaults {
        if !cuda_pool::keep_freed_memory(&device) {
            tracing::warn!("the CUDA memory pool could not be set to keep freed memory");
        }
        skip_event_tracking(&device);
    }
    Ok(SelectedDevice {
        device,
        kind: Backend::Cuda,
        ordinal,
        name,
        reason: String::new(),
        compute_capability,
    })
}

/// cudarc creates two CUDA events for every allocation (and destroys them with it) so that
/// tensors shared between streams can be synchronised; they are only ever recorded once a
/// second stream exists. Every tensor of ours lives on the device's one stream, so the events
/// are pure overhead: thousands of driver calls per UNet step.
#[cfg(feature = "cuda")]
fn skip_event_tracking(device: &candle_core::Device) {
    if let Ok(cuda) = device.as_cuda_device() {
        // SAFETY: candle runs every kernel, copy and cuBLAS call of this device on its one
        // stream and we create no other, so no tensor is ever used across streams.
        unsafe { cuda.disable_event_tracking() };
    }
}

#[cfg(not(feature = "cuda"))]
fn skip_event_tracking(_device: &candle_core::Device) {}

#[cfg(feature = "cuda")]
fn cuda_details(device: &candle_core::Device) -> (String, Option<(u32, u32)>) {
    let Ok(cuda) = device.as_cuda_device() else {
        return ("CUDA device".into(), None);
    };
    let stream = cuda.cuda_stream();
    let ctx = stream.context();
    let name = ctx.name().unwrap_or_else(|_| "CUDA device".into());
    let cc = ctx
        .compute_capability()
        .ok()
        .map(|(a, b)| (a.max(0) as u32, b.max(0) as u32));
    (name, cc)
}

#[cfg(not(feature = "cuda"))]
fn cuda_details(_device: &candle_core::Device) -> (String, Option<(u32, u32)>) {
    ("CUDA device".into(), None)
}

fn open_metal(ordinal: usize) -> std::result::Result<SelectedDevice, String> {
    if !candle_core::utils::metal_is_available() {
        return Err("this build has no Metal support: rebuild with `cargo build --release --features metal`".into());
    }
    let device = candle_core::Device::new_metal(ordinal).map_err(|e| {
        format!("Metal device {ordinal} could not be opened ({e}); Metal needs a Mac with a GPU")
    })?;
    let name = metal_name(&device);
    Ok(SelectedDevice {
        device,
        kind: Backend::Metal,
        ordinal,
        name,
        reason: String::new(),
        compute_capability: None,
    })
}

#[cfg(feature = "metal")]
fn metal_name(device: &candle_core::Device) -> String {
    device.as_metal_device().map_or_else(
        |_| "Apple GPU".into(),
        |m| format!("Apple GPU ({})", m.device().architecture_name()),
    )
}

#[cfg(not(feature = "metal"))]
fn metal_name(_device: &candle_core::Device) -> String {
    "Apple GPU".into()
}

/// Opens the requested device. An explicit backend that is not compiled in, or not present,
/// is bad input (exit 2) naming the cargo feature or the reason; auto falls back to the CPU.
pub fn select(request: &DeviceRequest, switches: &Switches) -> Result<SelectedDevice> {
    let explicit = |r: std::result::Result<SelectedDevice, String>, why: String| {
        r.map(|d| SelectedDevice { reason: why, ..d })
            .map_err(|e| Error::bad_input(format!("{e}; or use --device cpu")))
    };
    match *request {
        DeviceRequest::Cpu => Ok(cpu_device("requested with --device cpu".into())),
        DeviceRequest::Cuda(n) => explicit(
            open_cuda(n, switches.cuda_defaults),
            format!("requested with --device cuda:{n}"),
        ),
        DeviceRequest::Metal(n) => {
            explicit(open_metal(n), format!("requested with --device metal:{n}"))
        }
        DeviceRequest::Auto => {
            let cuda = open_cuda(0, switches.cuda_defaults);
            if let Ok(d) = cuda {
                return Ok(SelectedDevice {
                    reason: "auto: CUDA device 0 is available (CUDA is preferred)".into(),
                    ..d
                });
            }
            let metal = open_metal(0);
            if let Ok(d) = metal {
                return Ok(SelectedDevice {
                    reason: "auto: Metal is available (no CUDA)".into(),
                    ..d
                });
            }
            // Short reasons for backends not built in; the full error when one failed to open.
            let short = |compiled: bool, name: &str, err: Option<String>| match (compiled, err) {
                (false, _) => Some(format!("no {name} in this build")),
                (true, err) => err,
            };
            let why = [
                short(candle_core::utils::cuda_is_available(), "CUDA", cuda.err()),
                short(
                    candle_core::utils::metal_is_available(),
                    "Metal",
                    metal.err(),
                ),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            Ok(cpu_device(format!("auto: {why}; using the CPU")))
        }
    }
}

/// A device found on this machine, with its memory (for `doctor`).
#[derive(Debug, Clone, Serialize)]
pub struct FoundDevice {
    pub kind: Backend,
    pub ordinal: usize,
    pub name: String,
    pub memory: DeviceMemory,
}

/// Every device this build can use: the CPU, each CUDA device, the Metal GPU.
pub fn list(platform: &crate::platform::PlatformInfo, switches: &Switches) -> Vec<FoundDevice> {
    let found = |d: SelectedDevice| FoundDevice {
        memory: memory::query(&d, platform),
        kind: d.kind,
        ordinal: d.ordinal,
        name: d.name,
    };
    let mut all = vec![found(cpu_device(String::new()))];
    if candle_core::utils::cuda_is_available() {
        // Opening each ordinal until one fails: candle does not expose a device count.
        all.extend(
            (0..64)
                .map_while(|n| open_cuda(n, switches.cuda_defaults).ok())
                .map(found),
        );
    }
    if candle_core::utils::metal_is_available()
        && let Ok(d) = open_metal(0)
    {
        all.push(found(d));
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_strings() {
        let ok = |s: &str| DeviceRequest::parse(s).ok();
        assert_eq!(ok("auto"), Some(DeviceRequest::Auto));
        assert_eq!(ok(" CPU "), Some(DeviceRequest::Cpu));
        assert_eq!(ok("cuda"), Some(DeviceRequest::Cuda(0)));
        assert_eq!(ok("cuda:1"), Some(DeviceRequest::Cuda(1)));
        assert_eq!(ok("metal"), Some(DeviceRequest::Metal(0)));
        assert_eq!(ok("metal:0"), Some(DeviceRequest::Metal(0)));
    }

    #[test]
    fn bad_device_strings_name_the_accepted_forms() {
        for bad in [
            "gpu", "cuda:", "cuda:x", "cpu:1", "auto:0", "", "cuda:-1", "mps",
        ] {
            let err = DeviceRequest::parse(bad).err();
            assert_eq!(err.as_ref().map(Error::exit_code), Some(2), "{bad:?}");
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(msg.contains("cuda:N") && msg.contains("metal:N"), "{msg}");
        }
    }

    #[test]
    fn cpu_is_always_selectable() {
        let d = select(&DeviceRequest::Cpu, &Switches::default()).map_err(|e| e.to_string());
        assert!(
            d.as_ref()
                .is_ok_and(|d| d.kind == Backend::Cpu && d.device.is_cpu())
        );
        assert!(d.is_ok_and(|d| !d.name.is_empty() && d.reason.contains("--device cpu")));
    }

    #[test]
    fn missing_backend_names_its_feature() {
        if !candle_core::utils::cuda_is_available() {
            let msg = select(&DeviceRequest::Cuda(0), &Switches::default())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.contains("--features cuda"), "{msg}");
        }
        if !candle_core::utils::metal_is_available() {
            let err = select(&DeviceRequest::Metal(0), &Switches::default()).err();
            assert_eq!(err.as_ref().map(Error::exit_code), Some(2));
            assert!(err.is_some_and(|e| e.to_string().contains("--features metal")));
        }
    }

    #[test]
    fn auto_without_gpus_explains_the_cpu() {
        let d = select(&DeviceRequest::Auto, &Switches::default()).map_err(|e| e.to_string());
        if !candle_core::utils::cuda_is_available() && !candle_core::utils::metal_is_available() {
            assert!(d.is_ok_and(
                |d| d.kind == Backend::Cpu && d.reason.contains("no CUDA in this build")
            ));
        } else {
            assert!(d.is_ok());
        }
    }

    #[test]
    fn backends_always_include_the_cpu() {
        let b = compiled_backends();
        assert_eq!(b.first(), Some(&"cpu"));
        assert_eq!(b.contains(&"cuda"), cfg!(feature = "cuda"));
        assert_eq!(b.contains(&"metal"), cfg!(feature = "metal"));
    }
}
