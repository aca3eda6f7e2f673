//! The activations of the MLPs (transformers' `ACT2FN` names), with the exact GELU spread over
//! all CPU cores: candle's unary ops run on one thread, which left cores idle in Whisper's encoder
//! and BLIP's vision MLP (each had its own copy of this kernel). Same per-element formula as
//! candle's `gelu_erf` (`erf_f32`, term for term), so results are bit-identical.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};

/// An activation as the configs name it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// transformers' "gelu": the exact erf form.
    GeluErf,
    /// "gelu_new", "gelu_pytorch_tanh", "gelu_fast": the tanh approximation.
    GeluTanh,
    /// CLIP's "quick_gelu": x * sigmoid(1.702 x).
    QuickGelu,
    Relu,
    /// "silu" / "swish".
    Silu,
    /// Any other of candle's activations, applied by candle (configs typed by candle).
    Candle(candle_nn::Activation),
}

impl Activation {
    /// transformers' name, or nothing for a name this crate does not implement.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Self::GeluTanh),
            "quick_gelu" => Some(Self::QuickGelu),
            "relu" => Some(Self::Relu),
            "silu" | "swish" => Some(Self::Silu),
            _ => None,
        }
    }

    /// candle's activation (configs candle_transformers parses), the same arithmetic.
    pub fn from_candle(act: candle_nn::Activation) -> Self {
        use candle_nn::Activation as C;
        match act {
            C::Gelu => Self::GeluErf,
            C::NewGelu | C::GeluPytorchTanh => Self::GeluTanh,
            C::Relu => Self::Relu,
            C::Silu => Self::Silu,
            other => Self::Candle(other),
        }
    }

    pub fn apply(self, xs: &Tensor) -> Result<Tensor> {
        match self {
            Self::GeluErf => gelu_erf(xs),
            Self::GeluTanh => xs.gelu(),
            Self::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Self::Relu => xs.relu(),
            Self::Silu => xs.silu(),
            Self::Candle(act) => act.forward(xs),
        }
    }
}

impl Module for Activation {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.apply(xs)
    }
}

/// Below this many elements one thread does the whole tensor.
const CHUNK_MIN: usize = 1 << 14;

/// The exact (erf) GELU: on all cores for contiguous f32 CPU tensors, candle's elsewhere.
pub fn gelu_erf(xs: &Tensor) -> Result<Tensor> {
    if xs.device().is_cpu() && xs.dtype() == DType::F32 && xs.is_contiguous() {
        xs.apply_op1_no_bwd(&ParallelGeluErf)
    } else {
        xs.gelu_erf()
    }
}

struct ParallelGeluErf;

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("parallel-gelu-erf needs a contiguous tensor");
        };
        let src = &storage.as_slice::<f32>()?[start..end];
        let mut dst = vec![0f32; src.len()];
        let threads = candle_core::utils::get_num_threads().clamp(1, 16);
        let chunk = src.len().div_ceil(threads).max(CHUNK_MIN);
        std::thread::scope(|s| {
            let mut pairs = src.chunks(chunk).zip(dst.chunks_mut(chunk)).peekable();
            while let Some((src, dst)) = pairs.next() {
                // The last chunk runs on this thread.
                if pairs.peek().is_none() {
                    gelu_erf_slice(src, dst);
                } else {
                    s.spawn(move || gelu_erf_slice(src, dst));
                }
            }
        });
        Ok((CpuStorage::F32(dst), layout.shape().clone()))
    }
}

fn gelu_erf_slice(src: &[f32], dst: &mut [f32]) {
    for (d, &v) in dst.iter_mut().zip(src) {
        // candle's `gelu_erf` for f32, term for term.
        *d = (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn parallel_gelu_equals_candles_bit_for_bit() {
        for n in [7, CHUNK_MIN * 3 + 5, 120_000] {
            let xs: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 7e-5).collect();
            let xs = Tensor::from_vec(xs, (n,), &Device::Cpu).unwrap();
            let ours = gelu_erf(&xs).unwrap().to_vec1::<f32>().unwrap();
            let theirs = xs.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
            assert!(
                ours.iter()
                    .zip(&theirs)
                    .all(|(a, b)| a.to_bits() == b.to_bits())
            );
        }
        // Strided input takes candle's path.
        let m = Tensor::arange(0f32, 12., &Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap()
            .t()
            .unwrap();
        let want = m.gelu_erf().unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(gelu_erf(&m).unwrap().to_vec2::<f32>().unwrap(), want);
    }

    #[test]
    fn names_and_candle_activations_map_to_the_same_arithmetic() {
        assert_eq!(Activation::parse("gelu"), Some(Activation::GeluErf));
        assert_eq!(
            Activation::parse("gelu_pytorch_tanh"),
            Some(Activation::GeluTanh)
        );
        assert_eq!(Activation::parse("quick_gelu"), Some(Activation::QuickGelu));
        assert_eq!(Activation::parse("mish"), None);
        let xs = Tensor::new(&[-2f32, -0.5, 0.0, 0.7, 3.0], &Device::Cpu).unwrap();
        for act in [
            candle_nn::Activation::Gelu,
            candle_nn::Activation::NewGelu,
            candle_nn::Activation::GeluPytorchTanh,
            candle_nn::Activation::Relu,
            candle_nn::Activation::Silu,
            candle_nn::Activation::Mish,
        ] {
            let ours = Activation::from_candle(act).apply(&xs).unwrap();
            let theirs = act.forward(&xs).unwrap();
            assert_eq!(
                ours.to_vec1::<f32>().unwrap(),
                theirs.to_vec1::<f32>().unwrap(),
                "{act:?}"
            );
        }
        let quick = Activation::QuickGelu
            .apply(&xs)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let x: f32 = 0.7;
        assert!((quick[3] - x / (1.0 + (-1.702 * x).exp())).abs() < 1e-6);
    }
}
