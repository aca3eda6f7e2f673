//! Reading a LoRA safetensors file into its modules: each module's down and up matrices and
//! alpha, in f32 on the CPU (LoRAs are small; the deltas are made on the device at load).

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::keys::{KeyKind, Module, Part, parse_key};
use crate::error::{Error, Result};

/// One module's low-rank pair.
#[derive(Debug, Clone)]
pub struct LoraModule {
    /// The file's name for the module's down tensor (for messages).
    pub key: String,
    pub down: Tensor,
    pub up: Tensor,
    pub alpha: Option<f64>,
}

impl LoraModule {
    pub fn rank(&self) -> usize {
        self.down.dims().first().copied().unwrap_or(1)
    }

    /// alpha / rank, or 1 without an alpha (PEFT's files, saved at alpha = rank).
    pub fn scale(&self) -> f64 {
        self.alpha.map_or(1.0, |a| a / self.rank() as f64)
    }
}

/// The pickled formats, refused as everywhere else.
const PICKLES: [&str; 4] = ["pth", "pt", "ckpt", "bin"];

fn bad(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::bad_input(format!("--lora {}: {why}", path.display()))
}

#[derive(Default)]
struct Parts {
    down: Option<(String, Tensor)>,
    up: Option<(String, Tensor)>,
    alpha: Option<f64>,
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
                    format!("`{key}` is a LyCORIS {kind} tensor; only plain LoRAs are read"),
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
        match part {
            Part::Down => entry.down = Some((key.clone(), t)),
            Part::Up => entry.up = Some((key.clone(), t)),
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
        .map(|(module, parts)| match (parts.down, parts.up) {
            (Some((key, down)), Some((_, up))) => {
                if down.rank() < 2 || up.rank() < 2 || up.dim(1)? != down.dim(0)? {
                    return Err(bad(
                        path,
                        format!(
                            "`{key}`: its up {:?} and down {:?} matrices do not pair",
                            up.dims(),
                            down.dims()
                        ),
                    ));
                }
                Ok((
                    module,
                    LoraModule {
                        key,
                        down,
                        up,
                        alpha: parts.alpha,
                    },
                ))
            }
            (Some((key, _)), None) | (None, Some((key, _))) => {
                Err(bad(path, format!("`{key}` has no matching up/down half")))
            }
            (None, None) => Err(bad(
                path,
                format!("module `{}` has an alpha but no weights", module.path),
            )),
        })
        .collect()
}
