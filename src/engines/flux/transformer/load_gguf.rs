//! Weights from a FLUX GGUF with BFL's names (city96's flux1-*-Q*.gguf, architecture "flux"),
//! optionally under the `model.diffusion_model.` prefix some converters keep. Quantized matrices
//! stay quantized (`Weight::Quantized`, multiplied as `GgufMatmul` says); F32/F16/BF16 ones and every 1-D
//! tensor (biases, norm scales) are read into the compute dtype. Every tensor is checked against
//! `transformer/config.json` before it is read.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::build::WeightSource;
use super::config::FluxTransformerConfig;
use super::gguf_matmul::GgufMatmul;
use super::linear::{Linear, Weight};
use super::names::describe;
use crate::engines::nn::weights::gguf::GgufFile;
use crate::error::{Error, Result};

/// The prefix ComfyUI-era conversions keep on every name.
pub(super) const DIFFUSION_MODEL_PREFIX: &str = "model.diffusion_model.";

pub struct GgufSource {
    file: GgufFile,
    prefix: &'static str,
    dtype: DType,
    device: Device,
    fast: bool,
    matmul: GgufMatmul,
    /// LoRAs, applied as side branches.
    lora: Option<std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
}

impl GgufSource {
    /// Opens `path`, refusing another architecture, unreadable tensor types, diffusers-named or
    /// unrecognisable files, and a file whose blocks or guidance embedder disagree with `config`.
    pub fn open(
        path: &Path,
        config: &FluxTransformerConfig,
        device: &Device,
        dtype: DType,
        fast: bool,
        matmul: GgufMatmul,
    ) -> Result<Self> {
        let file = GgufFile::open(path)?;
        file.expect_architecture("flux")?;
        file.check_supported()?;
        let bad = |why: String| Error::bad_input(format!("{}: {why}", path.display()));
        let prefix = if file.contains("img_in.weight") {
            ""
        } else if file.contains(&format!("{DIFFUSION_MODEL_PREFIX}img_in.weight")) {
            DIFFUSION_MODEL_PREFIX
        } else if file.contains("x_embedder.weight") {
            return Err(bad(
                "a FLUX GGUF with diffusers' tensor names; only BFL's names \
                 (img_in, double_blocks.N..., as in city96's FLUX GGUFs) are read"
                    .to_string(),
            ));
        } else {
            return Err(bad(
                "no `img_in.weight`: not a FLUX transformer GGUF with BFL's names (city96's \
                 flux1-*.gguf)"
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
            lora: None,
        };
        source.check_structure(config)?;
        Ok(source)
    }

    /// The source with `patch`'s LoRAs as side branches of the layers they change.
    pub fn with_lora(
        self,
        patch: Option<std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
    ) -> Self {
        Self {
            lora: patch,
            ..self
        }
    }

    /// Blocks and the guidance embedder present exactly as the config says.
    fn check_structure(&self, c: &FluxTransformerConfig) -> Result<()> {
        let extra = |name: &str| self.has_linear(name);
        if !c.guidance_embeds && extra("guidance_in.in_layer") {
            return Err(self.bad(
                "it has a guidance embedder (`guidance_in`, FLUX.1-dev) but the model's \
                 transformer config says guidance_embeds = false (a dev GGUF with a schnell \
                 model folder?)"
                    .to_string(),
            ));
        }
        for (kind, layer, count, key) in [
            ("double_blocks", "img_mod.lin", c.num_layers, "num_layers"),
            (
                "single_blocks",
                "linear1",
                c.num_single_layers,
                "num_single_layers",
            ),
        ] {
            if extra(&format!("{kind}.{count}.{layer}")) {
                let stored = (count..)
                    .take_while(|i| extra(&format!("{kind}.{i}.{layer}")))
                    .count()
                    + count;
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

    /// The stored tensor `name`, checked to have `shape`.
    fn checked(
        &self,
        bfl: &str,
        suffix: &str,
        shape: &[usize],
    ) -> Result<&crate::engines::nn::weights::gguf::TensorInfo> {
        let stored = format!("{}{bfl}{suffix}", self.prefix);
        let what = describe(bfl);
        let info = self.file.tensor(&stored).map_err(|_| {
            self.bad(format!(
                "tensor `{stored}` of {what} is missing; the model's transformer config needs it \
                 (an incomplete file or another model?)"
            ))
        })?;
        if info.shape == shape {
            return Ok(info);
        }
        let why = match (info.shape.as_slice(), shape) {
            ([_, got], [_, want]) if got != want => format!(
                "{what} is {got} wide in the GGUF, the model's transformer config says {want}"
            ),
            ([got, _], [want, _]) => format!(
                "{what} has {got} outputs in the GGUF, the model's transformer config says {want}"
            ),
            ([got], [want]) => format!(
                "`{stored}` of {what} holds {got} values in the GGUF, the model's transformer \
                 config says {want}"
            ),
            (got, want) => format!(
                "`{stored}` of {what} has shape {got:?} in the GGUF, the model's transformer \
                 config needs {want:?}"
            ),
        };
        Err(self.bad(why))
    }

    fn read_1d(&self, bfl: &str, suffix: &str, len: usize) -> Result<Tensor> {
        let info = self.checked(bfl, suffix, &[len])?;
        let name = info.name.clone();
        self.file.load(&name, self.dtype, &self.device)
    }
}

impl WeightSource for GgufSource {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize]) -> Result<Linear> {
        let out: usize = outs.iter().sum();
        let info = self.checked(name, ".weight", &[out, in_dim])?;
        let weight = Weight::from_gguf(&self.file, info, self.dtype, &self.device, self.matmul)?;
        let bias = self.read_1d(name, ".bias", out)?;
        let branch = match &self.lora {
            Some(patch) => super::lora_gguf::branch(patch, name, outs, self.dtype, &self.device)
                .map_err(|e| self.bad(format!("the LoRA on {}: {e}", describe(name))))?,
            None => None,
        };
        Ok(Linear::new(weight, Some(bias), self.fast).with_lora(branch))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Tensor> {
        self.read_1d(name, "", len)
    }

    fn has_linear(&self, name: &str) -> bool {
        self.file.contains(&format!("{}{name}.weight", self.prefix))
    }
}
