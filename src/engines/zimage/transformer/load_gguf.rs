//! Weights from a Z-Image GGUF with the original checkpoint's names (ComfyUI-GGUF's conversions,
//! architecture "lumina2": Z-Image is Lumina-Image 2's NextDiT there), optionally under the
//! `model.diffusion_model.` prefix some converters keep; the names diffusers' single-file loader
//! maps (`convert_z_image_transformer_checkpoint_to_diffusers`). Quantized matrices stay
//! quantized (multiplied as `GgufMatmul` says: dequantized per call as diffusers' GGUF layers,
//! or against 8-bit activations on the CPU); F32/F16/BF16 ones and every
//! 1-D tensor are read into the compute dtype. Every tensor is checked against
//! `transformer/config.json` before it is read.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::config::ZImageTransformerConfig;
use super::load_dense::WeightSource;
use super::names::describe;
use crate::engines::flux::transformer::GgufMatmul;
use crate::engines::flux::transformer::linear::{Linear, Weight};
use crate::engines::nn::weights::gguf::{GgufFile, TensorInfo};
use crate::error::{Error, Result};

/// Architectures a Z-Image GGUF is written under: ComfyUI-GGUF's name for the NextDiT family,
/// and the model's own.
const ARCHITECTURES: [&str; 2] = ["lumina2", "z_image"];
/// The prefix ComfyUI-era conversions keep on every name.
const DIFFUSION_MODEL_PREFIX: &str = "model.diffusion_model.";

pub struct GgufSource {
    file: GgufFile,
    prefix: &'static str,
    dtype: DType,
    device: Device,
    fast: bool,
    matmul: GgufMatmul,
}

impl GgufSource {
    /// Opens `path`, refusing another architecture, unreadable tensor types, diffusers-named or
    /// unrecognisable files, and a file whose layer counts disagree with `config`.
    pub fn open(
        path: &Path,
        config: &ZImageTransformerConfig,
        device: &Device,
        dtype: DType,
        fast: bool,
        matmul: GgufMatmul,
    ) -> Result<Self> {
        let file = GgufFile::open(path)?;
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        match file.architecture() {
            Some(a) if ARCHITECTURES.contains(&a) => {}
            found => {
                return Err(bad(format!(
                    "a GGUF of architecture {found:?}, but a Z-Image transformer ({}) is needed \
                     here (the wrong file?)",
                    ARCHITECTURES.join(" or ")
                )));
            }
        }
        file.check_supported()?;
        let prefix = if file.contains("x_embedder.weight") {
            ""
        } else if file.contains(&format!("{DIFFUSION_MODEL_PREFIX}x_embedder.weight")) {
            DIFFUSION_MODEL_PREFIX
        } else if file.contains("all_x_embedder.2-1.weight") {
            return Err(bad(
                "a Z-Image GGUF with diffusers' tensor names; only the original checkpoint's \
                 names (x_embedder, layers.N.attention.qkv, ...) are read"
                    .to_string(),
            ));
        } else {
            return Err(bad(
                "no `x_embedder.weight`: not a Z-Image transformer GGUF with the original \
                 checkpoint's names"
                    .to_string(),
            ));
        };
        let source = Self {
            file,
            prefix,
            dtype,
            device: device.clone(),
            fast,
            matmul,
        };
        source.check_structure(config)?;
        Ok(source)
    }

    /// No more layers than the config says (missing ones are refused when read).
    fn check_structure(&self, c: &ZImageTransformerConfig) -> Result<()> {
        for (kind, count, key) in [
            ("layers", c.n_layers, "n_layers"),
            ("noise_refiner", c.n_refiner_layers, "n_refiner_layers"),
            ("context_refiner", c.n_refiner_layers, "n_refiner_layers"),
        ] {
            let has = |i: usize| self.has_linear(&format!("{kind}.{i}.attention.qkv"));
            if has(count) {
                let stored = count + (count..).take_while(|&i| has(i)).count();
                return Err(self.bad(format!(
                    "it has {stored} {kind} but the model's transformer config says {key} = \
                     {count} (a GGUF of another model?)"
                )));
            }
        }
        Ok(())
    }

    fn bad(&self, why: String) -> Error {
        Error::bad_input(format!("{}: {why}", self.file.path().display()))
    }

    /// The stored tensor `{name}{suffix}`, checked to have `shape`.
    fn checked(&self, name: &str, suffix: &str, shape: &[usize]) -> Result<&TensorInfo> {
        let stored = format!("{}{name}{suffix}", self.prefix);
        let what = describe(name);
        let info = self.file.tensor(&stored).map_err(|_| {
            self.bad(format!(
                "tensor `{stored}` of {what} is missing; the model's transformer config needs it \
                 (an incomplete file or another model?)"
            ))
        })?;
        if info.shape == shape {
            return Ok(info);
        }
        Err(self.bad(format!(
            "`{stored}` of {what} has shape {:?} in the GGUF, the model's transformer config \
             needs {shape:?}",
            info.shape
        )))
    }

    fn read(&self, name: &str, suffix: &str, shape: &[usize]) -> Result<Tensor> {
        let stored = self.checked(name, suffix, shape)?.name.clone();
        self.file.load(&stored, self.dtype, &self.device)
    }
}

impl WeightSource for GgufSource {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize], bias: bool) -> Result<Linear> {
        let out: usize = outs.iter().sum();
        let info = self.checked(name, ".weight", &[out, in_dim])?;
        let weight = Weight::from_gguf(&self.file, info, self.dtype, &self.device, self.matmul)?;
        let bias = if bias {
            Some(self.read(name, ".bias", &[out])?)
        } else {
            None
        };
        Ok(Linear::new(weight, bias, self.fast))
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        self.read(name, "", shape)
    }

    fn has_linear(&self, name: &str) -> bool {
        self.file.contains(&format!("{}{name}.weight", self.prefix))
    }
}
