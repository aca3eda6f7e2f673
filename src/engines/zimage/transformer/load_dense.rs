//! The weight sources the model is built from, under the original checkpoint's names
//! (`names.rs`), and the diffusers `transformer/` folder's: safetensors (sharded or not), each
//! fused q/k/v concatenated from diffusers' `to_q`, `to_k`, `to_v` once at load.

use candle_core::{DType, Device, Tensor};

use super::names::{describe, diffusers_parts};
use crate::engines::flux::transformer::linear::{Linear, Weight};
use crate::engines::nn::weights::Weights;
use crate::error::Result;

/// Where the weights come from; every error is bad input naming the file and the tensor.
pub trait WeightSource {
    /// The linear layer `name` (a module path): weight (sum of `outs`, `in_dim`), and a bias when
    /// `bias`. `outs` is how a fused layer splits into diffusers' projections.
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize], bias: bool) -> Result<Linear>;
    /// The tensor `name` (full name) of `shape`, in the compute dtype.
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor>;
    /// Whether the source holds the linear layer `name`.
    fn has_linear(&self, name: &str) -> bool;
}

pub struct DenseSource {
    weights: Weights,
    fast: bool,
}

impl DenseSource {
    pub fn open(
        dir: &std::path::Path,
        device: &Device,
        dtype: DType,
        switches: crate::engines::EngineSwitches,
    ) -> Result<Self> {
        Ok(Self {
            weights: Weights::open(dir, device, dtype, false, switches)?,
            fast: switches.kernels().fast(),
        })
    }
}

impl WeightSource for DenseSource {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize], bias: bool) -> Result<Linear> {
        let parts = diffusers_parts(name);
        let total: usize = outs.iter().sum();
        // A fused layer's parts each have their share; an unfused one is split logically.
        let shares: Vec<usize> = if parts.len() == outs.len() {
            outs.to_vec()
        } else {
            vec![total]
        };
        let (weight, bias) = self.weights.build(&describe(name), |vb| {
            let mut ws = Vec::with_capacity(parts.len());
            let mut bs = Vec::with_capacity(parts.len());
            for (part, out) in parts.iter().zip(&shares) {
                ws.push(vb.get((*out, in_dim), &format!("{part}.weight"))?);
                if bias {
                    bs.push(vb.get(*out, &format!("{part}.bias"))?);
                }
            }
            let w = if ws.len() == 1 {
                ws.remove(0)
            } else {
                Tensor::cat(&ws, 0)?
            };
            let b = match bs.len() {
                0 => None,
                1 => Some(bs.remove(0)),
                _ => Some(Tensor::cat(&bs, 0)?),
            };
            Ok((w, b))
        })?;
        Ok(Linear::new(Weight::Dense(weight), bias, self.fast))
    }

    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let full = diffusers_parts(name).remove(0);
        self.weights
            .build(&describe(name), |vb| vb.get(shape, &full))
    }

    fn has_linear(&self, name: &str) -> bool {
        diffusers_parts(name)
            .iter()
            .all(|p| self.weights.vb().contains_tensor(&format!("{p}.weight")))
    }
}
