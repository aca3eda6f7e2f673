//! Wan 2.2's VAE stages (`is_residual: true`): each encoder stage adds a parameter-free
//! space/time-to-channel average of its input (`AvgDown3D`), each decoder stage a
//! channel-to-space/time duplicate (`DupUp3D`); the frames are patchified 2x2 into channels
//! around the whole model (`patchify` / `unpatchify`), which makes it 16x spatial.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{ResidualBlock, resnets, run_resnets};
use super::resample::{Mode, Resample};
use crate::engines::nn::conv3d_causal::FeatCache;
use crate::engines::nn::kernels::Kernels;

/// diffusers' `patchify`: (b, c, f, h, w) → (b, c·p·p, f, h/p, w/p), channel c·p·p + pw·p + ph.
pub fn patchify(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, c, f, h, w) = x.dims5()?;
    x.reshape(vec![b, c, f, h / p, p, w / p, p])?
        .permute(vec![0, 1, 6, 4, 2, 3, 5])?
        .contiguous()?
        .reshape((b, c * p * p, f, h / p, w / p))
}

/// diffusers' `unpatchify`, `patchify`'s inverse.
pub fn unpatchify(x: &Tensor, p: usize) -> Result<Tensor> {
    if p == 1 {
        return Ok(x.clone());
    }
    let (b, cp, f, h, w) = x.dims5()?;
    let c = cp / (p * p);
    x.reshape(vec![b, c, p, p, f, h, w])?
        .permute(vec![0, 1, 4, 5, 3, 6, 2])?
        .contiguous()?
        .reshape((b, c, f, h * p, w * p))
}

/// `AvgDown3D`: front-pad time to a multiple of `ft`, fold (ft, fs, fs) into channels and
/// average groups of them down to `out` channels.
fn avg_down(x: &Tensor, out: usize, ft: usize, fs: usize) -> Result<Tensor> {
    let t = x.dim(2)?;
    let pad = (ft - t % ft) % ft;
    let x = if pad > 0 {
        x.pad_with_zeros(2, pad, 0)?
    } else {
        x.clone()
    };
    let (b, c, t, h, w) = x.dims5()?;
    let factor = ft * fs * fs;
    let group = c * factor / out;
    x.reshape(vec![b, c, t / ft, ft, h / fs, fs, w / fs, fs])?
        .permute(vec![0, 1, 3, 5, 7, 2, 4, 6])?
        .contiguous()?
        .reshape(vec![b, out, group, t / ft, h / fs, w / fs])?
        .mean(2)
}

/// `DupUp3D`: repeat each channel, unfold channels into (ft, fs, fs); the first chunk drops
/// the `ft - 1` leading frames.
fn dup_up(x: &Tensor, out: usize, ft: usize, fs: usize, first_chunk: bool) -> Result<Tensor> {
    let (b, c, t, h, w) = x.dims5()?;
    let repeats = out * ft * fs * fs / c;
    // repeat_interleave on channels: (b, c, 1, ...) broadcast to (b, c, repeats, ...).
    let x = x
        .unsqueeze(2)?
        .broadcast_as(vec![b, c, repeats, t, h, w])?
        .reshape(vec![b, out, ft, fs, fs, t, h, w])?
        .permute(vec![0, 1, 5, 2, 6, 3, 7, 4])?
        .contiguous()?
        .reshape((b, out, t * ft, h * fs, w * fs))?;
    if first_chunk && ft > 1 {
        return x.narrow(2, ft - 1, t * ft - (ft - 1));
    }
    Ok(x)
}

/// `WanResidualDownBlock`.
#[derive(Debug, Clone)]
pub struct DownBlock {
    resnets: Vec<ResidualBlock>,
    downsampler: Option<Resample>,
    out: usize,
    ft: usize,
    fs: usize,
}

impl DownBlock {
    pub fn load(
        in_dim: usize,
        out_dim: usize,
        blocks: usize,
        down_t: bool,
        down: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let resnets = resnets(in_dim, out_dim, blocks, vb.clone(), kernels)?;
        let downsampler = if down {
            let mode = if down_t { Mode::Down3d } else { Mode::Down2d };
            Some(Resample::load(
                out_dim,
                mode,
                out_dim,
                vb.pp("downsampler"),
                kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            downsampler,
            out: out_dim,
            ft: if down_t { 2 } else { 1 },
            fs: if down { 2 } else { 1 },
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut h = run_resnets(&self.resnets, x, cache)?;
        if let Some(d) = &self.downsampler {
            h = d.forward(&h, cache)?;
        }
        h + avg_down(x, self.out, self.ft, self.fs)?
    }
}

/// `WanResidualUpBlock`.
#[derive(Debug, Clone)]
pub struct UpBlock {
    resnets: Vec<ResidualBlock>,
    upsampler: Option<Resample>,
    out: usize,
    ft: usize,
}

impl UpBlock {
    pub fn load(
        in_dim: usize,
        out_dim: usize,
        blocks: usize,
        up_t: bool,
        up: bool,
        vb: VarBuilder,
        kernels: Kernels,
    ) -> Result<Self> {
        let resnets = resnets(in_dim, out_dim, blocks + 1, vb.clone(), kernels)?;
        let upsampler = if up {
            let mode = if up_t { Mode::Up3d } else { Mode::Up2d };
            Some(Resample::load(
                out_dim,
                mode,
                out_dim,
                vb.pp("upsampler"),
                kernels,
            )?)
        } else {
            None
        };
        Ok(Self {
            resnets,
            upsampler,
            out: out_dim,
            ft: if up_t { 2 } else { 1 },
        })
    }

    pub fn forward(&self, x: &Tensor, cache: &mut FeatCache, first_chunk: bool) -> Result<Tensor> {
        let h = run_resnets(&self.resnets, x, cache)?;
        match &self.upsampler {
            Some(u) => {
                let h = u.forward(&h, cache)?;
                h + dup_up(x, self.out, self.ft, 2, first_chunk)?
            }
            None => Ok(h),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn patchify_round_trips_and_orders_channels_as_diffusers() {
        let x = Tensor::arange(0f32, 2.0 * 3.0 * 4.0 * 6.0, &Device::Cpu)
            .unwrap()
            .reshape((1, 2, 3, 4, 6))
            .unwrap();
        let p = patchify(&x, 2).unwrap();
        assert_eq!(p.dims(), &[1, 8, 3, 2, 3]);
        // Channel c*4 + pw*2 + ph: channel 1 is c 0, pw 0, ph 1 → pixel (1, 0) of frame 0.
        let v = p
            .narrow(1, 1, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(v[0], 6.0);
        let back = unpatchify(&p, 2).unwrap();
        let d = (back - &x).unwrap().abs().unwrap().sum_all().unwrap();
        assert_eq!(
            d.to_dtype(DType::F32).unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
    }

    #[test]
    fn avg_down_then_dup_up_keeps_a_constant() {
        let x = Tensor::ones((1, 4, 4, 6, 8), DType::F32, &Device::Cpu).unwrap();
        let d = avg_down(&x, 8, 2, 2).unwrap();
        assert_eq!(d.dims(), &[1, 8, 2, 3, 4]);
        let u = dup_up(&d, 4, 2, 2, true).unwrap();
        assert_eq!(u.dims(), &[1, 4, 3, 6, 8]);
        assert_eq!(
            u.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            (4 * 3 * 6 * 8) as f32
        );
    }
}
