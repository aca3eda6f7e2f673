//! The transformer's linear layers, dense or GGUF-quantized, in BFL's fused layout (one q/k/v
//! matmul per stream, a single block's q/k/v/MLP input as one): a GGUF's tensors are used as
//! stored and a diffusers checkpoint's are concatenated once at load.
//!
//! A quantized weight stays quantized in memory and is dequantized for each call, then multiplied
//! as a dense one: that is what diffusers' GGUF layers compute (dequantize in f16, cast to the
//! compute dtype, `F.linear`). On the CPU the dequantization is diffusers' own f16 arithmetic
//! (`dequant.rs`), so outputs agree to float rounding; on a GPU candle's kernel dequantizes to
//! f16 (f32 arithmetic rounded once, an f16 ulp from diffusers' at most). candle's quantized matmul
//! (`QMatMul::QTensor`) would quantize the activations to 8 bits for its integer dot products on
//! the CPU, which moves outputs by ~1e-3 relative, and it is no faster than one GEMM over the
//! dequantized weight at the token counts of an image (thousands of rows).

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Module, Result, Tensor};

use super::dequant;
use crate::engines::nn::kernels;
use crate::engines::nn::weights::gguf::{GgufFile, TensorInfo};

/// A weight matrix (out, in).
#[derive(Debug, Clone)]
pub enum Weight {
    Dense(Tensor),
    /// Kept quantized; dequantized for each call. `ggml` is the type's gguf-py name.
    Quantized {
        q: Arc<QTensor>,
        ggml: &'static str,
    },
}

impl Weight {
    /// A GGUF tensor as a weight: the float types loaded dense in `dtype`, the others kept
    /// quantized (what both diffusion transformers' GGUF sources do).
    pub fn from_gguf(
        file: &GgufFile,
        info: &TensorInfo,
        dtype: DType,
        device: &candle_core::Device,
    ) -> crate::Result<Self> {
        Ok(match info.ggml.name {
            "F32" | "F16" | "BF16" => Self::Dense(file.load(&info.name, dtype, device)?),
            ggml => Self::Quantized {
                q: Arc::new(file.qtensor(&info.name, device)?),
                ggml,
            },
        })
    }

    /// (out, in).
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Self::Dense(t) => t.dims2(),
            Self::Quantized { q, .. } => q.shape().dims2(),
        }
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        match self {
            Self::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            Self::Quantized { q, .. } => q.storage_size_in_bytes(),
        }
    }

    /// The dense weight in `dtype` on its device (a fresh one for a quantized weight).
    fn dense(&self, dtype: DType) -> Result<Tensor> {
        match self {
            Self::Dense(t) => t.to_dtype(dtype),
            Self::Quantized { q, ggml } => {
                let device = q.device();
                if !device.is_cpu() {
                    return q.dequantize_f16(&device)?.to_dtype(dtype);
                }
                let data = q.data()?;
                let mut values = vec![0f32; q.shape().elem_count()];
                if dequant::dequantize(ggml, &data, &mut values).is_none() {
                    // A type diffusers' arithmetic is not written for: ggml's, rounded to f16.
                    return q.dequantize_f16(&device)?.to_dtype(dtype);
                }
                Tensor::from_vec(values, q.shape(), &device)?.to_dtype(dtype)
            }
        }
    }
}

/// `x W^T + b`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    fast: bool,
}

impl Linear {
    pub fn new(weight: Weight, bias: Option<Tensor>, fast: bool) -> Self {
        Self { weight, bias, fast }
    }

    pub fn weight(&self) -> &Weight {
        &self.weight
    }

    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Output features.
    pub fn out_dim(&self) -> Result<usize> {
        Ok(self.weight.dims()?.0)
    }

    /// Bytes held in memory, weight and bias.
    pub fn bytes(&self) -> usize {
        self.weight.bytes()
            + self
                .bias
                .as_ref()
                .map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes())
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let weight = self.weight.dense(xs.dtype())?;
        let bias = match &self.bias {
            Some(b) => Some(b.to_dtype(xs.dtype())?),
            None => None,
        };
        let layer = candle_nn::Linear::new(weight, bias);
        kernels::linear(&layer, xs, self.fast)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_core::quantized::GgmlDType;

    #[test]
    fn quantized_weights_multiply_as_their_dequantized_values() {
        let dev = Device::Cpu;
        let w = Tensor::arange(0f32, 64. * 32., &dev)
            .unwrap()
            .affine(0.013, -3.0)
            .unwrap()
            .sin()
            .unwrap()
            .reshape((32, 64))
            .unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        // diffusers' Q8_0 values: ggml's rounded to f16.
        let deq = q
            .dequantize_f16(&dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let b = Tensor::arange(0f32, 32., &dev).unwrap();
        let x = Tensor::arange(0f32, 3. * 64., &dev)
            .unwrap()
            .cos()
            .unwrap()
            .reshape((1, 3, 64))
            .unwrap();
        let q = Weight::Quantized {
            q: Arc::new(q),
            ggml: "Q8_0",
        };
        let ql = Linear::new(q, Some(b.clone()), true);
        let dl = Linear::new(Weight::Dense(deq), Some(b), true);
        assert_eq!(ql.out_dim().unwrap(), 32);
        assert!(ql.bytes() < dl.bytes());
        let (a, want) = (ql.forward(&x).unwrap(), dl.forward(&x).unwrap());
        assert_eq!(a.dims(), &[1, 3, 32]);
        let d = crate::engines::nn::compare::max_abs_diff(&a, &want)
            .unwrap()
            .0;
        assert_eq!(d, 0.0);
    }
}
