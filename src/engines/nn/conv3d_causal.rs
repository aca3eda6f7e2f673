//! Causal 3D convolution as the Wan VAE runs it (diffusers' `WanCausalConv3d`): the time axis is
//! padded on the front only, by twice the layer's temporal padding, so a frame never sees later
//! frames; height and width are padded on both sides. Decoding and encoding go chunk by chunk
//! (one latent frame, or four video frames, at a time): each causal conv keeps the last
//! `CACHE_T` frames of its input in a `FeatCache` slot, and the next chunk's call puts them in
//! front of its input in place of zeros, so the chunked result equals the whole-clip one.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::conv3d::{Conv3d, Conv3dConfig};
use super::kernels::Kernels;

/// Frames a causal conv keeps from one chunk for the next (diffusers' `CACHE_T`).
pub const CACHE_T: usize = 2;

/// `WanCausalConv3d`: a conv3d with the time axis padded `2 * padding_t` in front.
#[derive(Debug, Clone)]
pub struct CausalConv3d {
    conv: Conv3d,
    /// Zero frames put in front of the input (less the cached frames given).
    front: usize,
}

impl CausalConv3d {
    /// Loads `weight` (out, in, kt, kh, kw) and `bias` (out) under `vb`.
    pub fn load(
        in_c: usize,
        out_c: usize,
        kernel: [usize; 3],
        stride: [usize; 3],
        padding: [usize; 3],
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let cfg = Conv3dConfig {
            padding: [0, padding[1], padding[2]],
            stride,
            ..Default::default()
        };
        Ok(Self {
            conv: Conv3d::load(in_c, out_c, kernel, cfg, true, vb, kernels)?,
            front: 2 * padding[0],
        })
    }

    /// From a loaded conv3d whose temporal padding is zero, with `front` zero frames.
    pub fn from_conv(conv: Conv3d, front: usize) -> Self {
        Self { conv, front }
    }

    /// `cache`: frames of the previous chunk that replace as many front zero frames.
    pub fn forward(&self, x: &Tensor, cache: Option<&Tensor>) -> Result<Tensor> {
        let mut x = x.clone();
        let mut front = self.front;
        if let Some(cache) = cache
            && front > 0
        {
            let cached = cache.dim(2)?;
            x = Tensor::cat(&[&cache.to_device(x.device())?, &x], 2)?;
            front = front.saturating_sub(cached);
        }
        if front > 0 {
            x = x.pad_with_zeros(2, front, 0)?;
        }
        self.conv.forward(&x)
    }

    /// The chunked call every causal conv of the Wan VAE makes: the input's last `CACHE_T`
    /// frames (with the previous slot's last frame in front when the chunk has one frame) go to
    /// the slot, the slot's old frames to the conv.
    pub fn forward_cached(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let slot = cache.take_slot();
        let previous = match &cache.slots[slot] {
            CacheSlot::Frames(t) => Some(t.clone()),
            CacheSlot::Empty | CacheSlot::Rep => None,
        };
        let keep = last_frames(x, previous.as_ref())?;
        let y = self.forward(x, previous.as_ref())?;
        cache.slots[slot] = CacheSlot::Frames(keep);
        Ok(y)
    }
}

/// `x[:, :, -CACHE_T:]`, with the previous cache's last frame in front when that is one frame.
pub fn last_frames(x: &Tensor, previous: Option<&Tensor>) -> Result<Tensor> {
    let t = x.dim(2)?;
    let n = t.min(CACHE_T);
    let keep = x.narrow(2, t - n, n)?.contiguous()?;
    match previous {
        Some(prev) if n < CACHE_T => {
            let pt = prev.dim(2)?;
            Tensor::cat(&[&prev.narrow(2, pt - 1, 1)?, &keep], 2)
        }
        _ => Ok(keep),
    }
}

/// One causal layer's memory between chunks.
#[derive(Debug, Clone, Default)]
pub enum CacheSlot {
    /// Not called yet (diffusers' `None`).
    #[default]
    Empty,
    /// Called once on the first chunk, which it passed through unchanged (diffusers' `"Rep"`:
    /// the time upsampler's first frame).
    Rep,
    /// The last frames it saw.
    Frames(Tensor),
}

/// The feature caches of one encoder or decoder (diffusers' `feat_cache` and `feat_idx`):
/// one slot per causal layer, visited in the same order every chunk.
#[derive(Debug, Clone, Default)]
pub struct FeatCache {
    pub slots: Vec<CacheSlot>,
    next: usize,
}

impl FeatCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// Back to the first slot: called before each chunk (diffusers' `feat_idx = [0]`).
    pub fn start_chunk(&mut self) {
        self.next = 0;
    }

    /// Forgets everything (diffusers' `clear_cache`).
    pub fn clear(&mut self) {
        self.slots.clear();
        self.next = 0;
    }

    /// The index of the next layer's slot, grown on the first chunk.
    pub fn take_slot(&mut self) -> usize {
        let i = self.next;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, CacheSlot::Empty);
        }
        self.next += 1;
        i
    }

    /// Bytes the cached frames hold (for the memory planner's checks).
    pub fn bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|s| match s {
                CacheSlot::Frames(t) => t.elem_count() * t.dtype().size_in_bytes(),
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use candle_core::{DType, Device, Tensor};

    use super::*;
    use crate::engines::nn::compare::max_rel_diff;

    fn conv(kt: usize, pad_t: usize) -> CausalConv3d {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.3, (3, 2, kt, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 3, &dev).unwrap();
        let cfg = Conv3dConfig {
            padding: [0, 1, 1],
            ..Default::default()
        };
        CausalConv3d::from_conv(
            Conv3d::new(w, Some(b), cfg, Kernels::Ours).unwrap(),
            2 * pad_t,
        )
    }

    #[test]
    fn causal_padding_puts_zeros_in_front_only() {
        let c = conv(3, 1);
        let x = Tensor::randn(0f32, 1.0, (1, 2, 4, 5, 6), &Device::Cpu).unwrap();
        let y = c.forward(&x, None).unwrap();
        assert_eq!(y.dims(), &[1, 3, 4, 5, 6]);
        // Frame 0 depends on frame 0 only: changing later frames leaves it.
        let x2 = Tensor::cat(
            &[
                &x.narrow(2, 0, 1).unwrap(),
                &x.narrow(2, 1, 3).unwrap().affine(2.0, 1.0).unwrap(),
            ],
            2,
        )
        .unwrap();
        let y2 = c.forward(&x2, None).unwrap();
        let f0 = |t: &Tensor| t.narrow(2, 0, 1).unwrap();
        assert!(max_rel_diff(&f0(&y2), &f0(&y)).unwrap() < 1e-6);
        assert!(max_rel_diff(&y2, &y).unwrap() > 0.1);
    }

    #[test]
    fn chunked_with_the_cache_equals_the_whole_clip() {
        let c = conv(3, 1);
        let x = Tensor::randn(0f32, 1.0, (1, 2, 5, 4, 7), &Device::Cpu).unwrap();
        let whole = c.forward(&x, None).unwrap();
        // Chunks of 1, 1, 3 frames (the single-frame chunks take the one-frame cache path).
        let mut cache = FeatCache::new();
        let mut outs = Vec::new();
        for (start, len) in [(0, 1), (1, 1), (2, 3)] {
            cache.start_chunk();
            outs.push(
                c.forward_cached(&x.narrow(2, start, len).unwrap(), &mut cache)
                    .unwrap(),
            );
        }
        let chunked = Tensor::cat(&outs, 2).unwrap();
        let rel = max_rel_diff(&chunked, &whole).unwrap();
        assert!(rel < 1e-5, "rel {rel}");
        assert_eq!(cache.slots.len(), 1);
        assert_eq!(cache.bytes(), 2 * 2 * 4 * 7 * DType::F32.size_in_bytes());
    }
}
