//! Nearest-neighbour 2x upsampling of an NCHW tensor on the CPU, spread over the threads (candle's
//! is one thread and zero-fills its output first): every output row is two copies of an input
//! row with each value doubled. On CUDA builds the same 2x as our kernel (candle's is a general
//! strided gather). Other sizes, devices and dtypes use candle's.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::threads::par_chunks_mut;

/// `xs` (b, c, h, w) -> (b, c, th, tw), nearest neighbour as diffusers' `F.interpolate`.
pub fn upsample_nearest2d(xs: &Tensor, th: usize, tw: usize, fast: bool) -> Result<Tensor> {
    let (_, _, h, w) = xs.dims4()?;
    if fast
        && xs.device().is_cpu()
        && xs.dtype() == candle_core::DType::F32
        && th == 2 * h
        && tw == 2 * w
    {
        return xs.contiguous()?.apply_op1_no_bwd(&Upsample2x);
    }
    #[cfg(feature = "cuda")]
    if fast && xs.device().is_cuda() && th == 2 * h && tw == 2 * w {
        return xs
            .contiguous()?
            .apply_op1_no_bwd(&super::cuda::Upsample2xOp);
    }
    xs.upsample_nearest2d(th, tw)
}

/// Planes of width `w` laid end to end (NCHW, any n*c*h) -> each 2x nearest upsampled, over the
/// threads.
pub fn upsample2x_planes(x: &[f32], w: usize) -> Vec<f32> {
    let w = w.max(1);
    let mut out = vec![0f32; 4 * x.len()];
    // One task per input row: two output rows of 2w.
    par_chunks_mut(&mut out, 4 * w, |row, dst| {
        let src = &x[row * w..(row + 1) * w];
        let (top, bottom) = dst.split_at_mut(2 * w);
        for (pair, &v) in top.chunks_exact_mut(2).zip(src) {
            pair[0] = v;
            pair[1] = v;
        }
        bottom.copy_from_slice(top);
    });
    out
}

struct Upsample2x;

impl CustomOp1 for Upsample2x {
    fn name(&self) -> &'static str {
        "pallaidium-cpu-upsample-2x"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(data), Some((a, b))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("2x upsampling takes a contiguous f32 tensor");
        };
        let (n, c, h, w) = layout.shape().dims4()?;
        let out = upsample2x_planes(&data[a..b], w);
        Ok((CpuStorage::F32(out), Shape::from((n, c, 2 * h, 2 * w))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn equals_candle_exactly() {
        let x = Tensor::randn(0f32, 1., (2, 3, 5, 7), &Device::Cpu).unwrap();
        let want = x.upsample_nearest2d(10, 14).unwrap();
        let ours = upsample_nearest2d(&x, 10, 14, true).unwrap();
        assert_eq!(ours.dims(), want.dims());
        let (diff, _) = crate::engines::nn::compare::max_abs_diff(&ours, &want).unwrap();
        assert_eq!(diff, 0.0);
        // Non-2x sizes (an odd skip connection) take candle's path.
        let odd = upsample_nearest2d(&x, 11, 14, true).unwrap();
        assert_eq!(odd.dims(), &[2, 3, 11, 14]);
    }
}
