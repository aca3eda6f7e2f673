//! Reading a LoRA safetensors file into its modules: each module's factors (a LoRA's down and
//! up matrices, a LoHa's or LoKr's, see `factors`) and alpha, in f32 on the CPU (LoRAs are
//! small; the deltas are made on the device at load).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::factors::{Factors, KronFactor, Product};
use super::keys::{KeyKind, Ly, Module, Part, parse_key};
use crate::error::{Error, Result};

/// One module's change.
#[derive(Debug, Clone)]
pub struct LoraModule {
    /// The file's name for the module's first tensor (for messages).
    pub key: String,
    pub factors: Factors,
    pub alpha: Option<f64>,
}

impl LoraModule {
    /// alpha / rank, or 1 without an alpha (PEFT's files, saved at alpha = rank) or a rank
    /// (a LoKr of whole factors).
    pub fn scale(&self) -> f64 {
        match (self.alpha, self.factors.rank()) {
            (Some(a), Some(rank)) => a / rank as f64,
            _ => 1.0,
        }
    }
}

/// The pickled formats, refused as everywhere else.
const PICKLES: [&str; 4] = ["pth", "pt", "ckpt", "bin"];

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::bad_input(format!("--lora {}: {why}", path.display()))
}

#[derive(Default)]
struct Parts {
    /// The first key read (for messages).
    key: Option<String>,
    down: Option<Tensor>,
    up: Option<Tensor>,
    ly: HashMap<Ly, Tensor>,
    alpha: Option<f64>,
}

impl Parts {
    /// The module's factors; Err(why) when its tensors do not make one.
    fn factors(mut self) -> std::result::Result<Factors, String> {
        let (loha, lokr) = (self.ly.keys().any(|l| l.is_loha()), !self.ly.is_empty());
        let mut ly = std::mem::take(&mut self.ly);
        let mut take = |l: Ly| ly.remove(&l);
        let factors = if loha {
            let pair = |a, b, t| match (a, b) {
                (Some(a), Some(b)) => Ok(Product { a, b, t }),
                _ => Err("a LoHa module needs hada_w1_a, hada_w1_b, hada_w2_a and hada_w2_b"),
            };
            let (t1, t2) = (take(Ly::HadaT1), take(Ly::HadaT2));
            let w1 = pair(take(Ly::HadaW1A), take(Ly::HadaW1B), t1)?;
            let w2 = pair(take(Ly::HadaW2A), take(Ly::HadaW2B), t2)?;
            Factors::Hadamard { w1, w2 }
        } else if lokr {
            let factor = |whole: Option<Tensor>, a, b, t: Option<Tensor>, n: u8| match (whole, a, b)
            {
                (Some(w), None, None) if t.is_none() => Ok(KronFactor::Whole(w)),
                (None, Some(a), Some(b)) => Ok(KronFactor::Product(Product { a, b, t })),
                _ => Err(format!(
                    "a LoKr module needs lokr_w{n}, or lokr_w{n}_a and lokr_w{n}_b"
                )),
            };
            let w1 = factor(
                take(Ly::LokrW1),
                take(Ly::LokrW1A),
                take(Ly::LokrW1B),
                None,
                1,
            )?;
            let t2 = take(Ly::LokrT2);
            let w2 = factor(
                take(Ly::LokrW2),
                take(Ly::LokrW2A),
                take(Ly::LokrW2B),
                t2,
                2,
            )?;
            Factors::Kronecker { w1, w2 }
        } else {
            match (self.down.take(), self.up.take()) {
                (Some(down), Some(up)) => Factors::LowRank { up, down },
                (None, None) => return Err("an alpha but no weights".into()),
                _ => return Err("no matching up/down half".into()),
            }
        };
        if self.down.is_some() || self.up.is_some() || !ly.is_empty() {
            return Err("LoRA, LoHa and LoKr tensors mixed in one module".into());
        }
        if !factors.fits() {
            return Err(format!(
                "its {} tensors {} do not fit together",
                factors.kind(),
                factors.describe()
            ));
        }
        Ok(factors)
    }
}

/// Refuses a pickled file (`.pt`, `.pth`, `.ckpt`, `.bin`) with how to convert it, and anything
/// that is not an existing file.
pub fn check_path(path: &Path) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    if PICKLES.contains(&ext.as_str()) {
        return Err(bad(
            path,
            "a pickled PyTorch file, which is refused because unpickling can run arbitrary \
             code; use the LoRA's .safetensors release or convert it once with `python -c \
             \"import torch, safetensors.torch as st; st.save_file({k: v.contiguous() for k, v \
             in torch.load('IN', map_location='cpu', weights_only=True).items()}, \
             'OUT.safetensors')\"`",
        ));
    }
    if !path.is_file() {
        return Err(bad(path, "no such file"));
    }
    if ext != "safetensors" {
        return Err(bad(path, "not a .safetensors file"));
    }
    Ok(())
}

/// The modules of the LoRA in `path`, in name order.
pub fn read(path: &Path) -> Result<Vec<(Module, LoraModule)>> {
    check_path(path)?;
    let tensors = candle_core::safetensors::load(path, &Device::Cpu)
        .map_err(|e| bad(path, format!("not a valid safetensors file ({e})")))?;
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    let mut modules: BTreeMap<Module, Parts> = BTreeMap::new();
    for key in keys {
        let (module, part) = match parse_key(key) {
            KeyKind::Lora(m, p) => (m, p),
            KeyKind::Lycoris(kind) => {
                return Err(bad(
                    path,
                    format!(
                        "`{key}` is a LyCORIS {kind} tensor, which is not read (LoRA, LoHa \
                         and LoKr are)"
                    ),
                ));
            }
            KeyKind::Unknown => {
                return Err(bad(
                    path,
                    format!(
                        "`{key}` is not a LoRA tensor of a known naming (kohya `lora_unet_*` / \
                         `lora_te*_*`, or diffusers/PEFT `unet.*`, `text_encoder*.*`, \
                         `transformer.*` with lora_A/lora_B)"
                    ),
                ));
            }
        };
        let t = tensors[key].to_dtype(DType::F32)?;
        let entry = modules.entry(module).or_default();
        if entry.key.is_none() || part == Part::Down {
            entry.key = Some(key.clone());
        }
        match part {
            Part::Down => entry.down = Some(t),
            Part::Up => entry.up = Some(t),
            Part::Lycoris(ly) => {
                entry.ly.insert(ly, t);
            }
            Part::Alpha => {
                entry.alpha = Some(f64::from(t.flatten_all()?.get(0)?.to_scalar::<f32>()?))
            }
        }
    }
    if modules.is_empty() {
        return Err(bad(path, "holds no LoRA tensors"));
    }
    modules
        .into_iter()
        .map(|(module, mut parts)| {
            let key = parts.key.take().unwrap_or_else(|| module.path.clone());
            let alpha = parts.alpha;
            let factors = parts
                .factors()
                .map_err(|why| bad(path, format!("`{key}`: {why}")))?;
            Ok((
                module,
                LoraModule {
                    key,
                    factors,
                    alpha,
                },
            ))
        })
        .collect()
}
