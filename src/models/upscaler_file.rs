//! A single weight file given as a model: a Real-ESRGAN upscaler in safetensors, recognised from
//! its header's tensor names and shapes (nothing is loaded). Pickled .pth / .pt files, the form
//! Real-ESRGAN releases its weights in, are refused with the one-line conversion.

use std::collections::HashMap;
use std::path::Path;

use super::entry::Family;
use super::media_layout::MediaLayout;
use crate::{Error, Result};

/// How to turn a released Real-ESRGAN .pth into the safetensors file we load.
pub const UPSCALER_CONVERT_HINT: &str = "convert it once with: `python -c \"import torch, \
safetensors.torch as st; d = torch.load('IN.pth', map_location='cpu', weights_only=True); \
d = d.get('params_ema', d.get('params', d)); st.save_file({k: v.contiguous() for k, v in \
d.items()}, 'OUT.safetensors')\"`";

/// The upscaler in `path` (a file), None for a file of another kind we do not take as a model.
pub fn detect(path: &Path) -> Result<Option<MediaLayout>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "pth" | "pt" | "ckpt" | "bin" => Err(Error::bad_input(format!(
            "{} is a pickled PyTorch file, which is refused: unpickling can run arbitrary code. \
             Only safetensors weights load; {UPSCALER_CONVERT_HINT}",
            path.display()
        ))),
        "safetensors" => {
            let header = super::safetensors_header::read_header(path)?;
            let shapes: HashMap<String, Vec<usize>> = header
                .tensors
                .iter()
                .map(|(k, t)| (k.clone(), t.shape.iter().map(|&d| d as usize).collect()))
                .collect();
            let (arch, _) = crate::engines::upscale::detect::detect(shapes).map_err(|e| {
                Error::bad_input(format!(
                    "{}: a single .safetensors file as a model must be a Real-ESRGAN upscaler, \
                     and this one is {}; image models are diffusers folders or registry ids",
                    path.display(),
                    e.0
                ))
            })?;
            Ok(Some(MediaLayout {
                path: path.to_path_buf(),
                family: Family::Realesrgan,
                scale: Some(arch.scale() as u32),
            }))
        }
        _ => Ok(None),
    }
}
