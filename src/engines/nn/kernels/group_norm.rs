//! GroupNorm with an optional fused SiLU: a CPU f32 custom op (two reads, one write of the
//! activation), candle_nn's composition everywhere else. Built from weights by
//! `nn::norm::group_norm`.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Result, Shape, Tensor};

use super::threads::par_chunks_mut;

/// diffusers' GroupNorm (affine), with `forward_silu` for the GroupNorm -> SiLU pairs.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    plain: candle_nn::GroupNorm,
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
    kernels: super::Kernels,
}

impl GroupNorm {
    pub fn new(
        weight: Tensor,
        bias: Tensor,
        channels: usize,
        groups: usize,
        eps: f64,
    ) -> Result<Self> {
        let plain = candle_nn::GroupNorm::new(weight.clone(), bias.clone(), channels, groups, eps)?;
        Ok(Self {
            plain,
            weight,
            bias,
            groups,
            eps,
            kernels: super::Kernels::Ours,
        })
    }

    /// This layer running `kernels` (`new` runs ours).
    pub fn with_kernels(self, kernels: super::Kernels) -> Self {
        Self { kernels, ..self }
    }

    /// GroupNorm then SiLU.
    pub fn forward_silu(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, true, self.kernels.fast())
    }

    /// The layer (then SiLU when `silu`) with (`fast`) or without (candle_nn's composition)
    /// this crate's kernels: CPU f32, and f32/f16/bf16 on CUDA builds.
    pub fn forward_with(&self, xs: &Tensor, silu: bool, fast: bool) -> Result<Tensor> {
        if fast && xs.rank() >= 3 && xs.device().is_cpu() && xs.dtype() == DType::F32 {
            let op = FusedGroupNorm {
                weight: self.weight.to_dtype(DType::F32)?.to_vec1()?,
                bias: self.bias.to_dtype(DType::F32)?.to_vec1()?,
                groups: self.groups,
                eps: self.eps,
                silu,
            };
            return xs.contiguous()?.apply_op1_no_bwd(&op);
        }
        #[cfg(feature = "cuda")]
        if fast
            && xs.rank() >= 3
            && xs.device().is_cuda()
            && matches!(xs.dtype(), DType::F32 | DType::F16 | DType::BF16)
        {
            let op = super::cuda::GroupNormOp {
                groups: self.groups,
                eps: self.eps as f32,
                silu,
            };
            let weight = self.weight.to_dtype(xs.dtype())?;
            let bias = self.bias.to_dtype(xs.dtype())?;
            return xs.contiguous()?.apply_op3_no_bwd(&weight, &bias, &op);
        }
        let out = self.plain.forward(xs)?;
        if silu {
            candle_nn::ops::silu(&out)
        } else {
            Ok(out)
        }
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_with(xs, false, self.kernels.fast())
    }
}

struct FusedGroupNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    groups: usize,
    eps: f64,
    silu: bool,
}

impl CustomOp1 for FusedGroupNorm {
    fn name(&self) -> &'static str {
        "fused-group-norm"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("fused group norm takes f32");
        };
        let dims = layout.shape().dims();
        let (b, c) = (dims[0], dims[1]);
        let spatial: usize = dims[2..].iter().product();
        if c != self.weight.len() || c % self.groups != 0 {
            candle_core::bail!(
                "group norm over {c} channels with {} weights",
                self.weight.len()
            );
        }
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("fused group norm takes a contiguous input");
        };
        let x = &data[start..end];
        let per_group = c / self.groups * spatial;
        let mut out = vec![0f32; b * c * spatial];
        par_chunks_mut(&mut out, per_group, |gi, dst| {
            let src = &x[gi * per_group..(gi + 1) * per_group];
            // Two-pass statistics in f64: the same numerics as candle's mean-then-variance.
            let n = per_group as f64;
            let mean = src.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
            let var = src
                .iter()
                .map(|&v| (f64::from(v) - mean).powi(2))
                .sum::<f64>()
                / n;
            let inv = 1.0 / (var + self.eps).sqrt();
            let first_channel = (gi % self.groups) * (c / self.groups);
            for (k, (d, s)) in dst.chunks_mut(spatial).zip(src.chunks(spatial)).enumerate() {
                let ch = first_channel + k;
                let scale = (f64::from(self.weight[ch]) * inv) as f32;
                let shift =
                    (f64::from(self.bias[ch]) - mean * f64::from(self.weight[ch]) * inv) as f32;
                if self.silu {
                    for (o, &v) in d.iter_mut().zip(s) {
                        let y = v * scale + shift;
                        *o = y / (1.0 + (-y).exp());
                    }
                } else {
                    for (o, &v) in d.iter_mut().zip(s) {
                        *o = v * scale + shift;
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engines::nn::kernels::test_support::rel;
    use candle_core::Device;

    fn layer(c: usize, groups: usize) -> GroupNorm {
        let dev = Device::Cpu;
        let w = Tensor::randn(1f32, 0.5, c, &dev).unwrap();
        let b = Tensor::randn(0f32, 0.5, c, &dev).unwrap();
        GroupNorm::new(w, b, c, groups, 1e-5).unwrap()
    }

    #[test]
    fn fused_matches_candle_group_norm_and_silu() {
        let dev = Device::Cpu;
        for (b, c, g, h, w) in [(2, 64, 32, 9, 7), (1, 12, 3, 4, 4), (3, 8, 8, 1, 5)] {
            let x = (Tensor::randn(0f32, 3., (b, c, h, w), &dev).unwrap() + 1.5).unwrap();
            let gn = layer(c, g);
            let plain = gn.plain.forward(&x).unwrap();
            assert!(rel(&gn.forward(&x).unwrap(), &plain) < 1e-5);
            let silu = candle_nn::ops::silu(&plain).unwrap();
            assert!(rel(&gn.forward_silu(&x).unwrap(), &silu) < 1e-5);
        }
    }

    #[test]
    fn non_contiguous_and_rank3_inputs() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (2, 5, 16), &dev)
            .unwrap()
            .transpose(1, 2)
            .unwrap();
        let gn = layer(16, 4);
        let plain = gn.plain.forward(&x.contiguous().unwrap()).unwrap();
        assert!(rel(&gn.forward(&x).unwrap(), &plain) < 1e-5);
    }

    #[test]
    fn other_dtypes_use_the_plain_path() {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1., (1, 8, 4, 4), &dev).unwrap();
        let gn = layer(8, 4);
        let h = |t: &Tensor| t.to_dtype(DType::F16).unwrap();
        let gn16 = GroupNorm::new(h(&gn.weight), h(&gn.bias), 8, 4, 1e-5).unwrap();
        let f16 = gn16.forward_silu(&h(&x)).unwrap();
        assert_eq!(f16.dtype(), DType::F16);
        let want = gn.forward_silu(&x).unwrap();
        assert!(rel(&f16.to_dtype(DType::F32).unwrap(), &want) < 1e-2);
    }
}
