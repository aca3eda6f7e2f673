//! `WanResample`: 2x spatial up/downsampling per frame, with a causal time conv that doubles
//! (decoder) or halves (encoder) the frames in the 3d modes. The first chunk's time handling is
//! diffusers' exactly: the upsampler passes its first frame through once ("Rep"), the
//! downsampler keeps its first chunk whole and convolves from the second on.

use candle_core::{Result, Tensor};
use candle_nn::{Conv2dConfig, VarBuilder};

use crate::engines::nn::conv3d_causal::{CACHE_T, CacheSlot, CausalConv3d, FeatCache, last_frames};
use crate::engines::nn::kernels::{Conv2d, Kernels, upsample_nearest2d};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up2d,
    Up3d,
    Down2d,
    Down3d,
}

#[derive(Debug, Clone)]
pub struct Resample {
    mode: Mode,
    conv: Conv2d,
    time_conv: Option<CausalConv3d>,
    kernels: Kernels,
}

impl Resample {
    /// `up_out`: the upsamplers' output channels (diffusers' `upsample_out_dim`).
    pub fn load(
        dim: usize,
        mode: Mode,
        up_out: usize,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let (out, cfg) = match mode {
            Mode::Up2d | Mode::Up3d => (
                up_out,
                Conv2dConfig {
                    padding: 1,
                    ..Default::default()
                },
            ),
            Mode::Down2d | Mode::Down3d => (
                dim,
                Conv2dConfig {
                    stride: 2,
                    ..Default::default()
                },
            ),
        };
        let conv = candle_nn::conv2d(dim, out, 3, cfg, vb.pp("resample.1"))?;
        let time_conv = match mode {
            Mode::Up3d => Some(CausalConv3d::load(
                dim,
                2 * dim,
                [3, 1, 1],
                [1; 3],
                [1, 0, 0],
                vb.pp("time_conv"),
                kernels,
            )?),
            Mode::Down3d => Some(CausalConv3d::load(
                dim,
                dim,
                [3, 1, 1],
                [2, 1, 1],
                [0; 3],
                vb.pp("time_conv"),
                kernels,
            )?),
            Mode::Up2d | Mode::Down2d => None,
        };
        Ok(Self {
            mode,
            conv: Conv2d::from_candle(conv, kernels),
            time_conv,
            kernels,
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut x = x.clone();
        if self.mode == Mode::Up3d
            && let Some(tc) = &self.time_conv
        {
            x = self.time_up(tc, &x, cache)?;
        }
        let (b, c, t, h, w) = x.dims5()?;
        let fast = self.kernels.fast();
        let frames = x.permute((0, 2, 1, 3, 4))?.reshape((b * t, c, h, w))?;
        let frames = match self.mode {
            Mode::Up2d | Mode::Up3d => {
                let up = upsample_nearest2d(&frames.contiguous()?, 2 * h, 2 * w, fast)?;
                self.conv.forward_with(&up, fast)?
            }
            Mode::Down2d | Mode::Down3d => {
                // ZeroPad2d((0, 1, 0, 1)): one zero column on the right, one row at the bottom.
                let padded = frames.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
                self.conv.forward_with(&padded, fast)?
            }
        };
        let (_, o, ho, wo) = frames.dims4()?;
        let mut x = frames
            .reshape((b, t, o, ho, wo))?
            .permute((0, 2, 1, 3, 4))?
            .contiguous()?;
        if self.mode == Mode::Down3d
            && let Some(tc) = &self.time_conv
        {
            x = Self::time_down(tc, &x, cache)?;
        }
        Ok(x)
    }

    /// upsample3d's time doubling: each frame becomes two (the conv's two channel halves).
    fn time_up(&self, tc: &CausalConv3d, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let slot = cache.take_slot();
        let y = match &cache.slots[slot] {
            CacheSlot::Empty => {
                cache.slots[slot] = CacheSlot::Rep;
                return Ok(x.clone());
            }
            CacheSlot::Rep => {
                let t = x.dim(2)?;
                let mut keep = x
                    .narrow(2, t - t.min(CACHE_T), t.min(CACHE_T))?
                    .contiguous()?;
                if keep.dim(2)? < CACHE_T {
                    keep = Tensor::cat(&[&keep.zeros_like()?, &keep], 2)?;
                }
                let y = tc.forward(x, None)?;
                cache.slots[slot] = CacheSlot::Frames(keep);
                y
            }
            CacheSlot::Frames(prev) => {
                let prev = prev.clone();
                let keep = last_frames(x, Some(&prev))?;
                let y = tc.forward(x, Some(&prev))?;
                cache.slots[slot] = CacheSlot::Frames(keep);
                y
            }
        };
        let (b, c2, t, h, w) = y.dims5()?;
        let c = c2 / 2;
        y.reshape((b, 2, c, t, h, w))?
            .permute((0, 2, 3, 1, 4, 5))?
            .reshape((b, c, 2 * t, h, w))
    }

    /// downsample3d's time halving: the first chunk passes (and is kept); later chunks are
    /// convolved with stride 2 after the previous chunk's last frame.
    fn time_down(tc: &CausalConv3d, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let slot = cache.take_slot();
        let t = x.dim(2)?;
        match &cache.slots[slot] {
            CacheSlot::Frames(prev) => {
                let pt = prev.dim(2)?;
                let input = Tensor::cat(&[&prev.narrow(2, pt - 1, 1)?, x], 2)?;
                let keep = x.narrow(2, t - 1, 1)?.contiguous()?;
                let y = tc.forward(&input, None)?;
                cache.slots[slot] = CacheSlot::Frames(keep);
                Ok(y)
            }
            CacheSlot::Empty | CacheSlot::Rep => {
                cache.slots[slot] = CacheSlot::Frames(x.clone());
                Ok(x.clone())
            }
        }
    }
}
