//! Compatibility checks: model x device x dtype x OS/chip x memory x requested size -> findings.
//! Rules come from the registry (`known_issues`) plus the built-ins below, which apply to every model.
//! The context is a plain struct so this module depends on nothing but the registry types.

use serde::{Deserialize, Serialize};

use super::entry::{Family, KnownIssue, ModelEntry, Os};
use crate::device::memory::format_bytes;
use crate::vocab::{Backend, Dtype};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatFinding {
    pub severity: Severity,
    pub message: String,
    pub fix: String,
}

/// The overall answer for one model: `error` blocks the job, `warn` lets it run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Error,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// Everything the checks look at. Sizes, steps and guidance left `None` fall back on the entry's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct CompatContext {
    pub backend: Backend,
    pub dtype: Dtype,
    pub os: Os,
    /// e.g. "Apple M1 Pro"; `None` when unknown.
    pub chip: Option<String>,
    /// e.g. "14.4.1"; `None` off macOS or when unknown.
    pub macos_version: Option<String>,
    pub memory_budget_bytes: Option<u64>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub steps: Option<u32>,
    pub guidance: Option<f64>,
    pub hf_token_present: bool,
    /// The planner's peak estimate, when one was made.
    pub predicted_peak_bytes: Option<u64>,
    /// The family of a local folder with no registry entry (ignored when an entry is given).
    pub family: Option<Family>,
}

impl CompatContext {
    /// A context for `backend`/`dtype` on this OS with nothing else known.
    pub fn new(backend: Backend, dtype: Dtype) -> Self {
        Self {
            backend,
            dtype,
            os: Os::current(),
            chip: None,
            macos_version: None,
            memory_budget_bytes: None,
            width: None,
            height: None,
            steps: None,
            guidance: None,
            hf_token_present: false,
            predicted_peak_bytes: None,
            family: None,
        }
    }
}

/// All findings for one model (or a local folder when `entry` is `None`), most severe first.
pub fn check(ctx: &CompatContext, entry: Option<&ModelEntry>) -> Vec<CompatFinding> {
    let mut out = Vec::new();
    let family = entry.map(|e| e.family).or(ctx.family);
    let width = ctx.width.or(entry.map(|e| e.defaults.width));
    let height = ctx.height.or(entry.map(|e| e.defaults.height));
    let native = entry
        .map(|e| e.native_resolution)
        .or_else(|| family.map(|f| [f.native_side(), f.native_side()]));

    // Sizes only mean something for image models.
    let makes_images = family.is_none_or(Family::is_diffusion);
    if makes_images && let (Some(w), Some(h)) = (width, height) {
        let multiple = if family.is_some_and(Family::is_flow) {
            16
        } else {
            8
        };
        size_rules(w, h, multiple, native, &mut out);
    }
    bf16_rules(ctx, &mut out);
    if family == Some(Family::Sdxl) && ctx.dtype == Dtype::F16 {
        out.push(CompatFinding {
            severity: Severity::Warning,
            message: "SDXL's original VAE overflows in f16 and decodes to NaN (black images)"
                .to_owned(),
            fix: "use --dtype f32, or the f16-safe VAE madebyollin/sdxl-vae-fp16-fix".to_owned(),
        });
    }
    if let Some(e) = entry
        && e.gated
        && !ctx.hf_token_present
    {
        out.push(CompatFinding {
            severity: Severity::Error,
            message: format!(
                "{} ({}) is gated: downloads need an accepted licence and a token",
                e.id, e.repo
            ),
            fix: format!(
                "accept the licence at {} and set HF_TOKEN (or run `huggingface-cli login`)",
                e.license_url
            ),
        });
    }
    if let (Some(need), Some(have)) = (ctx.predicted_peak_bytes, ctx.memory_budget_bytes)
        && need > have
    {
        out.push(CompatFinding {
            severity: Severity::Error,
            message: format!("needs about {} but only {} is available", format_bytes(need), format_bytes(have)),
            fix: if makes_images {
                "use a smaller size or batch, --dtype f16, --residency staged or --vae-tiling on, or raise --memory-budget".to_owned()
            } else {
                "use a smaller model of the same kind, --dtype f16, a shorter --duration, or raise --memory-budget".to_owned()
            },
        });
    }
    if let Some(e) = entry {
        let steps = ctx.steps.unwrap_or(e.defaults.steps);
        let guidance = ctx.guidance.unwrap_or(e.defaults.guidance);
        for issue in e
            .known_issues
            .iter()
            .filter(|i| applies(i, ctx, steps, guidance))
        {
            out.push(CompatFinding {
                severity: issue.severity,
                message: issue.message.clone(),
                fix: issue.fix.clone(),
            });
        }
    }
    if let Some(e) = entry
        && let Some(first) = super::quant::names(e).first()
    {
        out.push(CompatFinding {
            severity: Severity::Info,
            message: format!(
                "quantized variants: {} (GGUF files that need far less memory)",
                super::quant::names(e).join(", ")
            ),
            fix: format!("`pallaidium fetch {} --quant {first}`", e.id),
        });
    }
    // Stable sort: most severe first, rule order kept within a severity.
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// Error if any finding is an error, warn if any is a warning, else ok.
pub fn verdict(findings: &[CompatFinding]) -> Verdict {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => Verdict::Error,
        Some(Severity::Warning) => Verdict::Warn,
        _ => Verdict::Ok,
    }
}

fn size_rules(w: u32, h: u32, m: u32, native: Option<[u32; 2]>, out: &mut Vec<CompatFinding>) {
    if w == 0 || h == 0 || !w.is_multiple_of(m) || !h.is_multiple_of(m) {
        let round = |v: u32| (v.saturating_add(m / 2) / m * m).max(m);
        let why = if m == 16 {
            "the VAE works on 8x8 blocks and FLUX packs 2x2 of them"
        } else {
            "the VAE works on 8x8 blocks"
        };
        out.push(CompatFinding {
            severity: Severity::Error,
            message: format!("{w}x{h}: width and height must be positive multiples of {m} ({why})"),
            fix: format!("use --width {} --height {}", round(w), round(h)),
        });
        return;
    }
    if let Some([nw, nh]) = native {
        let ratio = (f64::from(w) * f64::from(h)) / (f64::from(nw) * f64::from(nh));
        if !(0.5..=2.0).contains(&ratio) {
            out.push(CompatFinding {
                severity: Severity::Warning,
                message: format!(
                    "{w}x{h} is far from the model's native {nw}x{nh}: expect repeated subjects or mush"
                ),
                fix: format!("use {nw}x{nh}, or a size with about as many pixels"),
            });
        }
    }
}

fn bf16_rules(ctx: &CompatContext, out: &mut Vec<CompatFinding>) {
    if ctx.backend != Backend::Metal || ctx.dtype != Dtype::Bf16 {
        return;
    }
    if ctx.chip.as_deref().is_some_and(|c| chip_has_word(c, "M1")) {
        out.push(CompatFinding {
            severity: Severity::Error,
            message: format!(
                "{} has no bf16 support on its GPU",
                ctx.chip.as_deref().unwrap_or("this chip")
            ),
            fix: "use --dtype f16 (or f32)".to_owned(),
        });
    } else if let Some(v) = ctx.macos_version.as_deref().and_then(parse_version)
        && v.first().copied().unwrap_or(0) < 14
    {
        out.push(CompatFinding {
            severity: Severity::Error,
            message: format!(
                "bf16 on Metal needs macOS 14 or newer; this is macOS {}",
                ctx.macos_version.as_deref().unwrap_or("?")
            ),
            fix: "use --dtype f16, or update macOS".to_owned(),
        });
    }
}

fn applies(i: &KnownIssue, ctx: &CompatContext, steps: u32, guidance: f64) -> bool {
    let macos = ctx.macos_version.as_deref().and_then(parse_version);
    let within = |bound: &Option<String>, want: std::cmp::Ordering| match bound {
        None => true,
        Some(b) => match (macos.as_ref(), parse_version(b)) {
            (Some(v), Some(b)) => {
                let n = b.len().min(v.len());
                let ord = v[..n].cmp(&b[..n]);
                ord == std::cmp::Ordering::Equal || ord == want
            }
            _ => false,
        },
    };
    i.backend.is_none_or(|b| b == ctx.backend)
        && i.dtype.is_none_or(|d| d == ctx.dtype)
        && i.os.is_none_or(|o| o == ctx.os)
        && i.chip
            .as_deref()
            .is_none_or(|want| ctx.chip.as_deref().is_some_and(|c| chip_has_word(c, want)))
        && within(&i.min_macos, std::cmp::Ordering::Greater)
        && within(&i.max_macos, std::cmp::Ordering::Less)
        && i.guidance_above.is_none_or(|g| guidance > g)
        && i.steps_above.is_none_or(|s| steps > s)
}

/// "M1" is a word of "Apple M1 Pro" but not of "Apple M10" or "Apple M2".
fn chip_has_word(chip: &str, word: &str) -> bool {
    chip.split_whitespace()
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// "14.4.1" -> [14, 4, 1]; None unless every component is a number.
pub fn parse_version(v: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = v.trim().split('.').map(|p| p.parse().ok()).collect();
    parts.filter(|p| !p.is_empty())
}
