//! Where a diffusion transformer's layers come from, under the original checkpoint's names (the
//! names GGUF files store): a diffusers `transformer/` folder whose tensors are looked up through
//! a name map (fused q/k/v concatenated, swapped modulation halves swapped back, once at load),
//! or a GGUF file read as stored (quantized matrices kept quantized). SD 3.5 builds on these; the
//! FLUX and Z-Image sources predate them and keep their own.

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::engines::flux::transformer::GgufMatmul;
use crate::engines::flux::transformer::linear::{Linear, Weight};
use crate::engines::nn::weights::Weights;
use crate::engines::nn::weights::gguf::{GgufFile, TensorInfo};
use crate::error::{Error, Result};

/// Where an original-named tensor lives in a diffusers checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffusersParts {
    /// Module paths (or, for a plain tensor, full names) concatenated along dim 0, in order.
    pub parts: Vec<String>,
    /// The two halves of dim 0 swapped (diffusers' AdaLayerNormContinuous is scale, shift; the
    /// original modulations are shift, scale).
    pub swap_halves: bool,
}

impl DiffusersParts {
    pub fn one(name: impl Into<String>) -> Self {
        Self {
            parts: vec![name.into()],
            swap_halves: false,
        }
    }

    pub fn fused(prefix: &str, names: &[&str]) -> Self {
        Self {
            parts: names.iter().map(|n| format!("{prefix}.{n}")).collect(),
            swap_halves: false,
        }
    }

    pub fn swapped(name: impl Into<String>) -> Self {
        Self {
            parts: vec![name.into()],
            swap_halves: true,
        }
    }
}

/// A model's name map: original name -> diffusers parts (None: no such layer). A closure, so
/// it may depend on the config (which block is the last, say).
pub type NameMap = std::sync::Arc<dyn Fn(&str) -> Option<DiffusersParts> + Send + Sync>;

/// What a builder asks a source for; every error is bad input naming the file and the tensor.
pub trait LayerSource {
    /// The linear layer `name` (a module path): weight (sum of `outs`, `in_dim`), and a bias when
    /// `bias`. `outs` is how a fused layer splits into diffusers' projections.
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize], bias: bool) -> Result<Linear>;
    /// The tensor `name` (full name) of `shape`, in the compute dtype.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;
    /// Whether the source holds the linear layer `name`.
    fn has_linear(&self, name: &str) -> bool;
}

/// How an error names an original tensor: with its diffusers name, which users know.
pub fn describe(map: &NameMap, name: &str) -> String {
    match map(name) {
        Some(s) => format!("`{name}` (diffusers' {})", s.parts.join(" + ")),
        None => format!("`{name}`"),
    }
}

/// `t` with the halves of dim 0 swapped.
pub fn swap_halves(t: &Tensor) -> candle_core::Result<Tensor> {
    let half = t.dim(0)? / 2;
    Tensor::cat(&[t.narrow(0, half, half)?, t.narrow(0, 0, half)?], 0)
}

/// A diffusers `transformer/` folder seen through a name map.
pub struct MappedDense {
    weights: Weights,
    map: NameMap,
    fast: bool,
}

impl MappedDense {
    pub fn open(
        dir: &Path,
        map: NameMap,
        device: &Device,
        dtype: DType,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        Ok(Self {
            weights: Weights::open(dir, device, dtype, false, switches)?,
            map,
            fast: switches.kernels().fast(),
        })
    }

    fn parts(&self, name: &str) -> Result<DiffusersParts> {
        // Only the engine names layers: an unknown one is a bug, reported as a failure.
        (self.map)(name).ok_or_else(|| Error::job_failed(format!("no layer `{name}` to load")))
    }
}

/// Concatenates along dim 0 (one tensor: itself).
fn cat0(mut ts: Vec<Tensor>) -> candle_core::Result<Tensor> {
    if ts.len() == 1 {
        return Ok(ts.remove(0));
    }
    Tensor::cat(&ts, 0)
}

impl LayerSource for MappedDense {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize], bias: bool) -> Result<Linear> {
        let src = self.parts(name)?;
        let total: usize = outs.iter().sum();
        // A fused layer's parts each have their share; an unfused one is split logically.
        let shares: Vec<usize> = if src.parts.len() == outs.len() {
            outs.to_vec()
        } else {
            vec![total]
        };
        let (weight, bias) = self.weights.build(&describe(&self.map, name), |vb| {
            let mut ws = Vec::with_capacity(shares.len());
            let mut bs = Vec::with_capacity(shares.len());
            for (part, out) in src.parts.iter().zip(&shares) {
                ws.push(vb.get((*out, in_dim), &format!("{part}.weight"))?);
                if bias {
                    bs.push(vb.get(*out, &format!("{part}.bias"))?);
                }
            }
            let mut w = cat0(ws)?;
            let mut b = if bs.is_empty() { None } else { Some(cat0(bs)?) };
            if src.swap_halves {
                w = swap_halves(&w)?;
                b = b.as_ref().map(swap_halves).transpose()?;
            }
            Ok((w, b))
        })?;
        Ok(Linear::new(Weight::Dense(weight), bias, self.fast))
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let src = self.parts(name)?;
        self.weights.build(&describe(&self.map, name), |vb| {
            vb.get(shape, &src.parts[0])
        })
    }

    fn has_linear(&self, name: &str) -> bool {
        (self.map)(name).is_some_and(|s| {
            s.parts
                .iter()
                .all(|p| self.weights.vb().contains_tensor(&format!("{p}.weight")))
        })
    }
}

/// A GGUF with the original names, optionally under a prefix every name carries.
pub struct GgufLayers {
    file: GgufFile,
    prefix: String,
    map: NameMap,
    dtype: DType,
    device: Device,
    fast: bool,
    /// How the quantized matrices multiply (`PALLAIDIUM_GGUF_MATMUL`, resolved for the device).
    matmul: GgufMatmul,
}

impl GgufLayers {
    pub fn new(
        file: GgufFile,
        prefix: &str,
        map: NameMap,
        device: &Device,
        dtype: DType,
        (fast, matmul): (bool, GgufMatmul),
    ) -> Self {
        Self {
            file,
            prefix: prefix.to_string(),
            map,
            dtype,
            device: device.clone(),
            fast,
            matmul,
        }
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    pub fn bad(&self, why: String) -> Error {
        Error::bad_input(format!("{}: {why}", self.file.path().display()))
    }

    /// The stored tensor `{name}{suffix}`, checked to have `shape`.
    fn checked(&self, name: &str, suffix: &str, shape: &[usize]) -> Result<&TensorInfo> {
        let stored = format!("{}{name}{suffix}", self.prefix);
        let what = describe(&self.map, name);
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

impl LayerSource for GgufLayers {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn swapping_halves_puts_the_second_half_first() {
        let b = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &Device::Cpu).unwrap();
        assert_eq!(
            swap_halves(&b).unwrap().to_vec1::<f32>().unwrap(),
            [3.0, 4.0, 1.0, 2.0]
        );
    }

    #[test]
    fn describe_names_the_diffusers_parts() {
        let map: NameMap = std::sync::Arc::new(|n: &str| {
            (n == "a.qkv").then(|| DiffusersParts::fused("x", &["to_q", "to_k"]))
        });
        assert_eq!(
            describe(&map, "a.qkv"),
            "`a.qkv` (diffusers' x.to_q + x.to_k)"
        );
        assert_eq!(describe(&map, "b"), "`b`");
    }
}
