//! Sinusoidal timestep embeddings and the MLP that lifts them (diffusers' Timesteps and
//! TimestepEmbedding), also used for SDXL's size/crop ids.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder};

/// diffusers' `get_timestep_embedding` for values `ts`, computed in f32 in the same order as
/// torch so the result matches it bit for bit in most entries: (ts.len(), dim).
pub fn sinusoidal(
    ts: &[f32],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: &Device,
) -> Result<Tensor> {
    let half = dim / 2;
    let neg_log = -(10000f64.ln()) as f32;
    let denom = (half as f64 - freq_shift) as f32;
    let freqs: Vec<f32> = (0..half)
        .map(|i| (neg_log * i as f32 / denom).exp())
        .collect();
    let mut data = Vec::with_capacity(ts.len() * dim);
    for &t in ts {
        let args: Vec<f32> = freqs.iter().map(|f| t * f).collect();
        let (first, second): (Vec<f32>, Vec<f32>) = if flip_sin_to_cos {
            (
                args.iter().map(|a| a.cos()).collect(),
                args.iter().map(|a| a.sin()).collect(),
            )
        } else {
            (
                args.iter().map(|a| a.sin()).collect(),
                args.iter().map(|a| a.cos()).collect(),
            )
        };
        data.extend(first);
        data.extend(second);
        if dim % 2 == 1 {
            data.push(0.0);
        }
    }
    Tensor::from_vec(data, (ts.len(), dim), device)
}

/// linear_1 -> SiLU -> linear_2.
#[derive(Debug)]
pub struct TimestepEmbedding {
    linear_1: Linear,
    linear_2: Linear,
}

impl TimestepEmbedding {
    pub fn new(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        Ok(Self {
            linear_1: candle_nn::linear(in_dim, out_dim, vb.pp("linear_1"))?,
            linear_2: candle_nn::linear(out_dim, out_dim, vb.pp("linear_2"))?,
        })
    }
}

impl Module for TimestepEmbedding {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = candle_nn::ops::silu(&self.linear_1.forward(xs)?)?;
        self.linear_2.forward(&xs)
    }
}

/// Reads a small tensor (time ids) back to the host as f32 values.
pub fn host_f32(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sinusoidal_matches_the_formula() {
        let e = sinusoidal(&[0.0, 10.0], 6, true, 0.0, &Device::Cpu).unwrap();
        let v = e.to_vec2::<f32>().unwrap();
        // t = 0: cos = 1, sin = 0 (flipped: cos first).
        assert_eq!(v[0], vec![1., 1., 1., 0., 0., 0.]);
        // t = 10, i = 1: freq = exp(-ln(10000) / 3).
        let f = (-(10000f32.ln()) / 3.0).exp();
        assert!((v[1][1] - (10.0 * f).cos()).abs() < 1e-6);
        assert!((v[1][4] - (10.0 * f).sin()).abs() < 1e-6);
        let unflipped = sinusoidal(&[10.0], 6, false, 1.0, &Device::Cpu).unwrap();
        let u = unflipped.to_vec2::<f32>().unwrap();
        // Unflipped: sin first; freq_shift 1 divides by (half - 1) = 2.
        let f1 = (-(10000f32.ln()) / 2.0).exp();
        assert!((u[0][0] - 10f32.sin()).abs() < 1e-6);
        assert!((u[0][4] - (10.0 * f1).cos()).abs() < 1e-6);
    }
}
