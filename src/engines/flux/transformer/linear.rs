//! The transformer's linear layers, dense or GGUF-quantized, in BFL's fused layout (one q/k/v
//! matmul per stream, a single block's q/k/v/MLP input as one): a GGUF's tensors are used as
//! stored and a diffusers checkpoint's are concatenated once at load.
//!
//! A quantized weight stays quantized in memory and is multiplied as its load's `GgufMatmul`
//! says (`gguf_matmul.rs`). `Dequant` dequantizes it for each call, then multiplies it as a
//! dense one: that is what diffusers' GGUF layers compute (dequantize in f16, cast to the
//! compute dtype, `F.linear`). On the CPU the dequantization is diffusers' own f16 arithmetic
//! (`dequant.rs`), so outputs agree to float rounding; on a GPU candle's kernel dequantizes to
//! f16 (f32 arithmetic rounded once, an f16 ulp from diffusers' at most). `Quantized` (the CPU
//! default) rounds the activations to 8-bit blocks for integer dot products against the stored
//! blocks, as ggml does: outputs move by a few 1e-3 relative, and a FLUX step is several times
//! faster on the CPU (BENCHMARKS.md).

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::{DType, Module, Result, Tensor};

use super::dequant;
use super::gguf_matmul::{self, GgufMatmul};
use crate::engines::nn::kernels;
use crate::engines::nn::weights::gguf::{GgufFile, TensorInfo};

/// A weight matrix (out, in).
#[derive(Debug, Clone)]
pub enum Weight {
    Dense(Tensor),
    /// Kept quantized and multiplied as `matmul` says. `ggml` is the type's gguf-py name.
    Quantized {
        q: Arc<QTensor>,
        ggml: &'static str,
        matmul: GgufMatmul,
    },
}

impl Weight {
    /// A GGUF tensor as a weight: the float types loaded dense in `dtype`, the others kept
    /// quantized and multiplied as `matmul` says (what both diffusion transformers' GGUF sources
    /// do; `matmul` is resolved for `device` by `GgufMatmul::resolve`).
    pub fn from_gguf(
        file: &GgufFile,
        info: &TensorInfo,
        dtype: DType,
        device: &candle_core::Device,
        matmul: GgufMatmul,
    ) -> crate::Result<Self> {
        Ok(match info.ggml.name {
            "F32" | "F16" | "BF16" => Self::Dense(file.load(&info.name, dtype, device)?),
            ggml => Self::Quantized {
                q: Arc::new(file.qtensor(&info.name, device)?),
                ggml,
                matmul,
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
            Self::Quantized { q, ggml, .. } => {
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

/// A LoRA applied beside a (quantized) weight: `x D^T U^T`, D (rank, in), U (out, rank) with
/// the LoRA's scale in it (`lora_gguf.rs`).
#[derive(Debug, Clone)]
pub struct LoraBranch {
    pub down: Tensor,
    pub up: Tensor,
}

impl LoraBranch {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = xs.broadcast_matmul(&self.down.to_dtype(xs.dtype())?.t()?)?;
        h.broadcast_matmul(&self.up.to_dtype(xs.dtype())?.t()?)
    }

    fn bytes(&self) -> usize {
        (self.down.elem_count() + self.up.elem_count()) * self.up.dtype().size_in_bytes()
    }
}

/// `x W^T + b`, plus a LoRA side branch when one is given.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
    fast: bool,
    lora: Option<LoraBranch>,
}

impl Linear {
    pub fn new(weight: Weight, bias: Option<Tensor>, fast: bool) -> Self {
        Self {
            weight,
            bias,
            fast,
            lora: None,
        }
    }

    /// The layer with `branch` added to its output.
    pub fn with_lora(self, branch: Option<LoraBranch>) -> Self {
        Self {
            lora: branch,
            ..self
        }
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

    /// Bytes held in memory, weight, bias and LoRA branch.
    pub fn bytes(&self) -> usize {
        self.weight.bytes()
            + self
                .bias
                .as_ref()
                .map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes())
            + self.lora.as_ref().map_or(0, LoraBranch::bytes)
    }

    fn base(&self, xs: &Tensor) -> Result<Tensor> {
        if let Weight::Quantized { q, matmul, .. } = &self.weight
            && *matmul != GgufMatmul::Dequant
            && q.device().is_cpu()
        {
            let ys = match matmul {
                GgufMatmul::Repacked => gguf_matmul::repacked_matmul(q, xs)?,
                _ => gguf_matmul::quantized_matmul(q, xs)?,
            };
            // None: a NaN or infinity in xs (carried through by the dequantized path below), or
            // a shape candle's kernel does not take.
            if let Some(ys) = ys {
                return match &self.bias {
                    Some(b) => ys.broadcast_add(&b.to_dtype(ys.dtype())?),
                    None => Ok(ys),
                };
            }
        }
        let weight = self.weight.dense(xs.dtype())?;
        let bias = match &self.bias {
            Some(b) => Some(b.to_dtype(xs.dtype())?),
            None => None,
        };
        let layer = candle_nn::Linear::new(weight, bias);
        kernels::linear(&layer, xs, self.fast)
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = self.base(xs)?;
        match &self.lora {
            Some(branch) => ys + branch.forward(xs)?,
            None => Ok(ys),
        }
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
            matmul: GgufMatmul::Dequant,
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

    /// A side branch on a quantized layer is the LoRA merged into its dequantized weight.
    #[test]
    fn a_lora_branch_equals_the_merged_dequantized_weight() {
        let dev = Device::Cpu;
        let q = QTensor::quantize(&wave(32, 64, 0.2, 0.05), GgmlDType::Q8_0).unwrap();
        // diffusers' Q8_0 values (what the Dequant mode multiplies): ggml's rounded to f16.
        let deq = q
            .dequantize_f16(&dev)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let (down, up) = (wave(2, 64, 0.9, 0.3), wave(32, 2, 0.4, 0.3));
        let merged = (&deq + up.matmul(&down).unwrap()).unwrap();
        let b = wave(1, 32, 0.5, 0.1).squeeze(0).unwrap();
        let weight = Weight::Quantized {
            q: Arc::new(q),
            ggml: "Q8_0",
            matmul: GgufMatmul::Dequant,
        };
        let branch = LoraBranch { down, up };
        let with = Linear::new(weight.clone(), Some(b.clone()), true).with_lora(Some(branch));
        let without = Linear::new(weight, Some(b.clone()), true);
        let dense = Linear::new(Weight::Dense(merged), Some(b), true);
        let x = wave(3, 64, 1.3, 1.0).unsqueeze(0).unwrap();
        let (got, want) = (with.forward(&x).unwrap(), dense.forward(&x).unwrap());
        let d = rel_mean_diff(&got, &want);
        let moved = rel_mean_diff(&without.forward(&x).unwrap(), &want);
        assert!(d < 1e-5, "branch vs merged: {d}");
        assert!(moved > 1e-2, "the LoRA moves the output by only {moved}");
        assert!(with.bytes() > without.bytes());
    }

    /// A deterministic (rows, cols) matrix of values in about [-scale, scale].
    fn wave(rows: usize, cols: usize, phase: f64, scale: f64) -> Tensor {
        Tensor::arange(0f32, (rows * cols) as f32, &Device::Cpu)
            .unwrap()
            .affine(0.37, phase)
            .unwrap()
            .sin()
            .unwrap()
            .affine(scale, 0.0)
            .unwrap()
            .reshape((rows, cols))
            .unwrap()
    }

    /// mean |a - b| / mean |b|.
    fn rel_mean_diff(a: &Tensor, b: &Tensor) -> f32 {
        let num = (a - b).unwrap().abs().unwrap().mean_all().unwrap();
        let den = b.abs().unwrap().mean_all().unwrap();
        (num / den).unwrap().to_scalar::<f32>().unwrap()
    }

    /// The 8-bit activations of the quantized modes move a linear's output by this much at most
    /// (mean |diff| / mean |output|) from the dequantized product; measured 1.2e-4 (Q4_K) and
    /// 7e-5 (Q8_0) on these smooth inputs (random normal ones: about 7e-3).
    const QUANTIZED_TOLERANCE: f32 = 1e-3;

    #[test]
    fn the_quantized_mode_stays_within_its_tolerance_of_the_dequantized_product() {
        for (dtype, ggml) in [(GgmlDType::Q4K, "Q4_K"), (GgmlDType::Q8_0, "Q8_0")] {
            let q = Arc::new(QTensor::quantize(&wave(48, 512, 0.3, 0.02), dtype).unwrap());
            let bias = wave(1, 48, 0.7, 0.1).squeeze(0).unwrap();
            let layer = |matmul| {
                let weight = Weight::Quantized {
                    q: q.clone(),
                    ggml,
                    matmul,
                };
                Linear::new(weight, Some(bias.clone()), true)
            };
            let exact = layer(GgufMatmul::Dequant);
            let x = wave(5, 512, 1.1, 1.0);
            // The tolerance's power: another input moves the exact output by far more.
            let other = wave(5, 512, 1.6, 1.0);
            let moved = rel_mean_diff(&exact.forward(&other).unwrap(), &exact.forward(&x).unwrap());
            assert!(
                moved > 10.0 * QUANTIZED_TOLERANCE,
                "{ggml}: another input moves {moved}"
            );
            // Both 8-bit modes, with a batch dim and without.
            for mode in [GgufMatmul::Quantized, GgufMatmul::Repacked] {
                let fast = layer(mode);
                for x in [x.unsqueeze(0).unwrap(), x.clone()] {
                    let (got, want) = (fast.forward(&x).unwrap(), exact.forward(&x).unwrap());
                    assert_eq!(got.dims(), want.dims());
                    let d = rel_mean_diff(&got, &want);
                    let what = format!("{ggml} {mode:?}: {d}");
                    eprintln!("{what}");
                    assert!(d.is_finite() && d > 0.0, "{what} (no rounding: not 8-bit?)");
                    assert!(d <= QUANTIZED_TOLERANCE, "{what}");
                }
            }
        }
    }

    /// 8-bit rounding would turn a NaN into finite values: such an input takes the dequantized
    /// path, so a NaN still fails the parity tests.
    #[test]
    fn the_8_bit_modes_pass_nan_through() {
        let q = Arc::new(QTensor::quantize(&wave(16, 256, 0.3, 0.02), GgmlDType::Q4K).unwrap());
        let x = wave(2, 256, 0.0, 1.0)
            .broadcast_mul(&Tensor::new(&[f32::NAN], &Device::Cpu).unwrap())
            .unwrap();
        for matmul in [GgufMatmul::Quantized, GgufMatmul::Repacked] {
            let weight = Weight::Quantized {
                q: q.clone(),
                ggml: "Q4_K",
                matmul,
            };
            let y = Linear::new(weight, None, true).forward(&x).unwrap();
            let values = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                values.iter().any(|v| !v.is_finite()),
                "{matmul:?}: {values:?}"
            );
        }
    }
}
