//! Weights from a diffusers `transformer/` folder (safetensors, sharded or not): each BFL layer
//! assembled from diffusers' tensors, fused projections concatenated along the output dimension
//! and the final modulation's halves swapped, once at load.

use candle_core::{DType, Device, Tensor};

use super::build::WeightSource;
use super::linear::{Linear, Weight};
use super::names::{describe, diffusers_source};
use crate::engines::nn::weights::Weights;
use crate::error::{Error, Result};

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
        patch: Option<&std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
    ) -> Result<Self> {
        Ok(Self {
            weights: Weights::open_patched(dir, device, dtype, false, switches, patch)?,
            fast: switches.kernels().fast(),
        })
    }
}

/// `t` with the halves of dim 0 swapped.
fn swap_halves(t: &Tensor) -> candle_core::Result<Tensor> {
    let half = t.dim(0)? / 2;
    Tensor::cat(&[t.narrow(0, half, half)?, t.narrow(0, 0, half)?], 0)
}

fn unknown(name: &str) -> Error {
    // Only this module's callers name layers: an unknown one is a bug, reported as a failure.
    Error::job_failed(format!("FLUX has no layer `{name}`"))
}

impl WeightSource for DenseSource {
    fn linear(&self, name: &str, in_dim: usize, outs: &[usize]) -> Result<Linear> {
        let source = diffusers_source(name).ok_or_else(|| unknown(name))?;
        let total: usize = outs.iter().sum();
        let parts: Vec<(String, usize)> = if source.parts.len() == outs.len() {
            source.parts.into_iter().zip(outs.iter().copied()).collect()
        } else if source.parts.len() == 1 {
            // An unfused layer the caller splits logically (modulations).
            vec![(source.parts[0].clone(), total)]
        } else {
            return Err(unknown(name));
        };
        let (weight, bias) = self.weights.build(&describe(name), |vb| {
            let mut ws = Vec::with_capacity(parts.len());
            let mut bs = Vec::with_capacity(parts.len());
            for (part, out) in &parts {
                let vb = vb.pp(part);
                ws.push(vb.get((*out, in_dim), "weight")?);
                bs.push(vb.get(*out, "bias")?);
            }
            let (mut w, mut b) = if ws.len() == 1 {
                (ws.remove(0), bs.remove(0))
            } else {
                (Tensor::cat(&ws, 0)?, Tensor::cat(&bs, 0)?)
            };
            if source.swap_halves {
                w = swap_halves(&w)?;
                b = swap_halves(&b)?;
            }
            Ok((w, b))
        })?;
        Ok(Linear::new(Weight::Dense(weight), Some(bias), self.fast))
    }

    fn vector(&self, name: &str, len: usize) -> Result<Tensor> {
        let source = diffusers_source(name).ok_or_else(|| unknown(name))?;
        let full = &source.parts[0];
        self.weights.build(&describe(name), |vb| vb.get(len, full))
    }

    fn has_linear(&self, name: &str) -> bool {
        diffusers_source(name).is_some_and(|s| {
            s.parts
                .iter()
                .all(|p| self.weights.vb().contains_tensor(&format!("{p}.weight")))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn swapping_halves_puts_the_second_half_first() {
        let t = Tensor::arange(0f32, 8., &Device::Cpu)
            .unwrap()
            .reshape((4, 2))
            .unwrap();
        let s = swap_halves(&t).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(
            s,
            vec![
                vec![4.0, 5.0],
                vec![6.0, 7.0],
                vec![0.0, 1.0],
                vec![2.0, 3.0]
            ]
        );
        let b = Tensor::new(&[1f32, 2.0, 3.0, 4.0], &Device::Cpu).unwrap();
        assert_eq!(
            swap_halves(&b).unwrap().to_vec1::<f32>().unwrap(),
            [3.0, 4.0, 1.0, 2.0]
        );
    }
}
