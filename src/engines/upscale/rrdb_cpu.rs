//! RRDBNet on the CPU in f32 for one image without concatenations or separate element-wise
//! passes: each dense block works in one preallocated (nf + 4 gc, h, w) buffer (a conv reads
//! its leading channels, contiguous in CHW, and writes its own channel slice), and every bias,
//! LeakyReLU and scaled residual (`x5 * 0.2 + x`, the RRDB's `out * 0.2 + x`, `feat + body`)
//! is applied inside the convolution's own parallel pass (`Epilogue`).

use candle_core::{Device, Result, Tensor};
use rayon::prelude::*;

use super::{DenseBlock, Rrdb, RrdbNet};
use crate::engines::CancelToken;
use crate::engines::nn::kernels::conv::with_f32;
use crate::engines::nn::kernels::{Epilogue, upsample2x_planes};

/// BasicSR's LeakyReLU slope and residual scale.
const SLOPE: f32 = 0.2;
const RES_SCALE: f32 = 0.2;

impl DenseBlock {
    /// `buf` (nf + 4 gc, h, w) holds the block's input in its first `nf` channels; the output
    /// `x5 * 0.2 + x` goes to `out` (nf, h, w), or with `outer` Some(s) `(x5 * 0.2 + x) * s +
    /// out` (out holding the RRDB's input).
    fn forward_cpu(
        &self,
        buf: &mut [f32],
        nf: usize,
        hw: (usize, usize),
        out: &mut [f32],
        outer: Option<f32>,
    ) -> Result<()> {
        let plane = hw.0 * hw.1;
        let mut c = nf;
        for conv in &self.convs[..4] {
            let gc = conv.out_channels()?;
            if buf.len() < (c + gc) * plane {
                candle_core::bail!(
                    "dense block buffer of {} for {} channels",
                    buf.len(),
                    c + gc
                );
            }
            let (input, rest) = buf.split_at_mut(c * plane);
            conv.forward_into(
                input,
                hw,
                &mut rest[..gc * plane],
                Epilogue::LeakyRelu(SLOPE),
            )?;
            c += gc;
        }
        let res = &buf[..nf * plane];
        let epilogue = match outer {
            None => Epilogue::Residual {
                scale: RES_SCALE,
                res,
            },
            Some(outer) => Epilogue::ResidualInto {
                scale: RES_SCALE,
                res,
                outer,
            },
        };
        self.convs[4].forward_into(&buf[..c * plane], hw, out, epilogue)
    }
}

impl Rrdb {
    /// `trunk` (nf, h, w) replaced by the block's output; `bufs` two dense-block buffers.
    fn forward_cpu(
        &self,
        trunk: &mut [f32],
        bufs: &mut [Vec<f32>; 2],
        nf: usize,
        hw: (usize, usize),
    ) -> Result<()> {
        let n = trunk.len();
        let [a, b] = bufs;
        if a.len() < n || b.len() < n {
            candle_core::bail!("dense block buffers smaller than the trunk");
        }
        par_copy(&mut a[..n], trunk);
        self.blocks[0].forward_cpu(a, nf, hw, &mut b[..n], None)?;
        self.blocks[1].forward_cpu(b, nf, hw, &mut a[..n], None)?;
        self.blocks[2].forward_cpu(a, nf, hw, trunk, Some(RES_SCALE))
    }
}

impl RrdbNet {
    /// `forward` for one f32 image on the CPU.
    pub(super) fn forward_cpu(&self, x: &Tensor, cancel: &CancelToken) -> Result<Tensor> {
        let x = match self.shape.unshuffle {
            1 => x.clone(),
            r => candle_nn::ops::pixel_unshuffle(x, r)?,
        }
        .contiguous()?;
        let (_, _, mut h, mut w) = x.dims4()?;
        let nf = self.conv_first.out_channels()?;
        let plane = h * w;
        let mut feat = vec![0f32; nf * plane];
        with_f32(&x, |x| {
            self.conv_first
                .forward_into(x, (h, w), &mut feat, Epilogue::None)
        })?;
        let mut trunk = vec![0f32; feat.len()];
        par_copy(&mut trunk, &feat);
        {
            let dense = (nf + 4 * self.shape.grow) * plane;
            let mut bufs = [vec![0f32; dense], vec![0f32; dense]];
            for block in &self.body {
                cancel.check()?;
                block.forward_cpu(&mut trunk, &mut bufs, nf, (h, w))?;
            }
        }
        let mut cur = vec![0f32; nf * plane];
        let res = Epilogue::Residual {
            scale: 1.0,
            res: &feat,
        };
        self.conv_body.forward_into(&trunk, (h, w), &mut cur, res)?;
        drop((trunk, feat));
        for up in &self.ups {
            let big = upsample2x_planes(&cur, w);
            drop(cur);
            (h, w) = (2 * h, 2 * w);
            cur = vec![0f32; up.out_channels()? * h * w];
            up.forward_into(&big, (h, w), &mut cur, Epilogue::LeakyRelu(SLOPE))?;
        }
        let mut hr = vec![0f32; self.conv_hr.out_channels()? * h * w];
        self.conv_hr
            .forward_into(&cur, (h, w), &mut hr, Epilogue::LeakyRelu(SLOPE))?;
        drop(cur);
        let c_out = self.conv_last.out_channels()?;
        let mut out = vec![0f32; c_out * h * w];
        self.conv_last
            .forward_into(&hr, (h, w), &mut out, Epilogue::None)?;
        Tensor::from_vec(out, (1, c_out, h, w), &Device::Cpu)
    }
}

/// `dst.copy_from_slice(src)` over the threads (same lengths).
fn par_copy(dst: &mut [f32], src: &[f32]) {
    const CHUNK: usize = 1 << 16;
    dst.par_chunks_mut(CHUNK)
        .zip(src.par_chunks(CHUNK))
        .for_each(|(d, s)| d.copy_from_slice(s));
}
