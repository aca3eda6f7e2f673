//! The LTX VAE's encoder (`LTXVideoEncoder3d`, 0.9.0's and 0.9.5's down blocks) and decoder
//! (`LTXVideoDecoder3d`, with or without timestep conditioning), whole clips at a time.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{
    Downsampler, LtxConv, Resnet, ResnetOpts, TimeEmbedder, Upsampler, rms_channels,
};
use super::config::LtxVaeConfig;
use crate::engines::nn::kernels::Kernels;

fn opts(cfg: &LtxVaeConfig, causal: bool, noise: bool, timestep: bool) -> ResnetOpts {
    ResnetOpts {
        causal,
        eps: cfg.resnet_norm_eps,
        noise,
        timestep,
    }
}

enum Down {
    Conv(LtxConv),
    Space(Downsampler),
}

/// `LTXVideoDownBlock3D` (resnets, a stride-2 conv, a channel-changing resnet) or
/// `LTXVideo095DownBlock3D` (resnets, a space-to-depth downsampler).
struct DownBlock {
    resnets: Vec<Resnet>,
    down: Option<Down>,
    conv_out: Option<Resnet>,
}

pub struct Encoder {
    conv_in: LtxConv,
    blocks: Vec<DownBlock>,
    mid: Vec<Resnet>,
    conv_out: LtxConv,
    patch: usize,
    patch_t: usize,
}

impl Encoder {
    pub fn load(cfg: &LtxVaeConfig, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let causal = cfg.encoder_causal;
        let o = opts(cfg, causal, false, false);
        let chans = &cfg.block_out_channels;
        let p = cfg.patch_size;
        let in_c = cfg.in_channels * p * p * cfg.patch_size_t;
        let conv_in = LtxConv::load(in_c, chans[0], 3, causal, vb.pp("conv_in"), kernels)?;
        let is_095 = cfg.is_095();
        let n = cfg.encoder_blocks();
        let mut out_c = chans[0];
        let mut blocks = Vec::with_capacity(n);
        for i in 0..n {
            let vb = vb.pp(format!("down_blocks.{i}"));
            let in_c = out_c;
            out_c = if is_095 || i + 1 < n {
                chans[i + 1]
            } else {
                chans[i]
            };
            let resnets = (0..cfg.layers_per_block[i])
                .map(|j| Resnet::load(in_c, in_c, &o, vb.pp(format!("resnets.{j}")), kernels))
                .collect::<Result<Vec<_>>>()?;
            let dvb = vb.pp("downsamplers.0");
            let down = if !cfg.spatio_temporal_scaling[i] {
                None
            } else if cfg.down_block_types[i] == "LTXVideo095DownBlock3D" {
                let stride = match cfg.downsample_type[i].as_str() {
                    "conv" => None,
                    "spatial" => Some([1, 2, 2]),
                    "temporal" => Some([2, 1, 1]),
                    "spatiotemporal" => Some([2, 2, 2]),
                    other => candle_core::bail!("unknown downsample_type {other}"),
                };
                Some(match stride {
                    None => Down::Conv(strided(in_c, causal, dvb, kernels)?),
                    Some(s) => {
                        Down::Space(Downsampler::load(in_c, out_c, s, causal, dvb, kernels)?)
                    }
                })
            } else {
                Some(Down::Conv(strided(in_c, causal, dvb, kernels)?))
            };
            let conv_out = if !is_095 && in_c != out_c {
                Some(Resnet::load(in_c, out_c, &o, vb.pp("conv_out"), kernels)?)
            } else {
                None
            };
            blocks.push(DownBlock {
                resnets,
                down,
                conv_out,
            });
        }
        let mid = (0..cfg.layers_per_block[n])
            .map(|j| {
                Resnet::load(
                    out_c,
                    out_c,
                    &o,
                    vb.pp(format!("mid_block.resnets.{j}")),
                    kernels,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let conv_out = LtxConv::load(
            out_c,
            cfg.latent_channels + 1,
            3,
            causal,
            vb.pp("conv_out"),
            kernels,
        )?;
        Ok(Self {
            conv_in,
            blocks,
            mid,
            conv_out,
            patch: p,
            patch_t: cfg.patch_size_t,
        })
    }

    /// Frames (b, 3, f, h, w) → moments (b, 2c, t, h', w'): mean, then log-variance (the last
    /// output channel repeated, as diffusers does).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (p, pt) = (self.patch, self.patch_t);
        // diffusers' patch order: channels (c, pt, pw, ph).
        let (b, c, f, h, w) = x.dims5()?;
        let mut x = x
            .reshape(vec![b, c, f / pt, pt, h / p, p, w / p, p])?
            .permute([0, 1, 3, 7, 5, 2, 4, 6])?
            .contiguous()?
            .reshape((b, c * pt * p * p, f / pt, h / p, w / p))?;
        x = self.conv_in.forward(&x)?;
        for block in &self.blocks {
            for r in &block.resnets {
                x = r.forward(&x, None)?;
            }
            match &block.down {
                Some(Down::Conv(c)) => x = c.forward(&x)?,
                Some(Down::Space(d)) => x = d.forward(&x)?,
                None => {}
            }
            if let Some(r) = &block.conv_out {
                x = r.forward(&x, None)?;
            }
        }
        for r in &self.mid {
            x = r.forward(&x, None)?;
        }
        let x = self.conv_out.forward(&rms_channels(&x)?.silu()?)?;
        let ch = x.dim(1)?;
        let last = x.narrow(1, ch - 1, 1)?.repeat((1, ch - 2, 1, 1, 1))?;
        Tensor::cat(&[&x, &last], 1)
    }
}

fn strided(c: usize, causal: bool, vb: VarBuilder, kernels: Kernels) -> Result<LtxConv> {
    LtxConv::load_strided(c, c, 3, [2, 2, 2], causal, vb, kernels)
}

/// `LTXVideoUpBlock3d` / the mid block: an optional channel-changing resnet, an optional
/// time embedder of the block's input width, an optional upsampler, resnets.
struct UpBlock {
    conv_in: Option<Resnet>,
    time: Option<TimeEmbedder>,
    up: Option<Upsampler>,
    resnets: Vec<Resnet>,
}

impl UpBlock {
    fn forward(&self, x: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let mut x = match &self.conv_in {
            Some(r) => r.forward(x, None)?,
            None => x.clone(),
        };
        let emb = match (&self.time, temb) {
            (Some(t), Some(temb)) => Some(t.forward(temb, x.dtype())?),
            _ => None,
        };
        if let Some(up) = &self.up {
            x = up.forward(&x)?;
        }
        for r in &self.resnets {
            x = r.forward(&x, emb.as_ref())?;
        }
        Ok(x)
    }
}

pub struct Decoder {
    conv_in: LtxConv,
    mid: UpBlock,
    ups: Vec<UpBlock>,
    conv_out: LtxConv,
    /// `timestep_scale_multiplier`, time embedder and `scale_shift_table` (2, c) of the output.
    time: Option<(f32, TimeEmbedder, Tensor)>,
    patch: usize,
    patch_t: usize,
}

impl Decoder {
    pub fn load(cfg: &LtxVaeConfig, vb: VarBuilder, kernels: Kernels) -> Result<Self> {
        let causal = cfg.decoder_causal;
        let ts = cfg.timestep_conditioning;
        let n = cfg.decoder_block_out_channels.len();
        let rev = |v: &[usize]| v.iter().take(n).rev().copied().collect::<Vec<_>>();
        let chans = rev(&cfg.decoder_block_out_channels);
        let scaling: Vec<bool> = cfg.decoder_spatio_temporal_scaling[..n]
            .iter()
            .rev()
            .copied()
            .collect();
        let layers: Vec<usize> = cfg.decoder_layers_per_block[..n + 1]
            .iter()
            .rev()
            .copied()
            .collect();
        let noise: Vec<bool> = cfg.decoder_inject_noise[..n + 1]
            .iter()
            .rev()
            .copied()
            .collect();
        let residual: Vec<bool> = cfg.upsample_residual[..n].iter().rev().copied().collect();
        let factor = rev(&cfg.upsample_factor);
        let mut out_c = chans[0];
        let conv_in = LtxConv::load(
            cfg.latent_channels,
            out_c,
            3,
            causal,
            vb.pp("conv_in"),
            kernels,
        )?;
        let mvb = vb.pp("mid_block");
        let mo = opts(cfg, causal, noise[0], ts);
        let mid = UpBlock {
            conv_in: None,
            time: if ts {
                Some(TimeEmbedder::load(out_c * 4, mvb.pp("time_embedder"))?)
            } else {
                None
            },
            up: None,
            resnets: (0..layers[0])
                .map(|j| Resnet::load(out_c, out_c, &mo, mvb.pp(format!("resnets.{j}")), kernels))
                .collect::<Result<Vec<_>>>()?,
        };
        let mut ups = Vec::with_capacity(n);
        for i in 0..n {
            let vb = vb.pp(format!("up_blocks.{i}"));
            let in_c = out_c / factor[i];
            out_c = chans[i] / factor[i];
            let o = opts(cfg, causal, noise[i + 1], ts);
            let conv_in = if in_c != out_c {
                if ts {
                    candle_core::bail!(
                        "an LTX up block that changes channels ({in_c} to {out_c}) under \
                         timestep conditioning (diffusers cannot run it either)"
                    );
                }
                Some(Resnet::load(in_c, out_c, &o, vb.pp("conv_in"), kernels)?)
            } else {
                None
            };
            let time = if ts {
                Some(TimeEmbedder::load(in_c * 4, vb.pp("time_embedder"))?)
            } else {
                None
            };
            let up = if scaling[i] {
                Some(Upsampler::load(
                    out_c * factor[i],
                    causal,
                    residual[i],
                    factor[i],
                    vb.pp("upsamplers.0"),
                    kernels,
                )?)
            } else {
                None
            };
            let resnets = (0..layers[i + 1])
                .map(|j| Resnet::load(out_c, out_c, &o, vb.pp(format!("resnets.{j}")), kernels))
                .collect::<Result<Vec<_>>>()?;
            ups.push(UpBlock {
                conv_in,
                time,
                up,
                resnets,
            });
        }
        let p = cfg.patch_size;
        let conv_out = LtxConv::load(
            out_c,
            cfg.out_channels * p * p * cfg.patch_size_t,
            3,
            causal,
            vb.pp("conv_out"),
            kernels,
        )?;
        let time = if ts {
            let m = vb
                .get((), "timestep_scale_multiplier")?
                .to_dtype(candle_core::DType::F32)?
                .to_vec0::<f32>()?;
            Some((
                m,
                TimeEmbedder::load(out_c * 2, vb.pp("time_embedder"))?,
                vb.get((2, out_c), "scale_shift_table")?,
            ))
        } else {
            None
        };
        Ok(Self {
            conv_in,
            mid,
            ups,
            conv_out,
            time,
            patch: p,
            patch_t: cfg.patch_size_t,
        })
    }

    /// Latents (b, c, t, h, w) → frames (b, 3, t', h p', w p'); `temb` (b,) the decode timestep
    /// (required by a timestep-conditioned decoder, ignored otherwise).
    pub fn forward(&self, z: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        let mut x = self.conv_in.forward(z)?;
        let temb = match (&self.time, temb) {
            (Some((m, ..)), Some(t)) => {
                Some((t.to_dtype(candle_core::DType::F32)? * f64::from(*m))?)
            }
            (Some(_), None) => {
                candle_core::bail!(
                    "this LTX VAE is timestep-conditioned: a decode timestep is needed"
                )
            }
            (None, _) => None,
        };
        x = self.mid.forward(&x, temb.as_ref())?;
        for up in &self.ups {
            x = up.forward(&x, temb.as_ref())?;
        }
        x = rms_channels(&x)?;
        if let (Some((_, embedder, table)), Some(t)) = (&self.time, &temb) {
            let e = embedder.forward(t, x.dtype())?;
            let (b, c2, ..) = e.dims5()?;
            let c = c2 / 2;
            let e = e
                .reshape((b, 2, c, 1, 1, 1))?
                .broadcast_add(&table.reshape((1, 2, c, 1, 1, 1))?)?;
            let shift = e.narrow(1, 0, 1)?.squeeze(1)?;
            let scale = e.narrow(1, 1, 1)?.squeeze(1)?;
            x = x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(&shift)?;
        }
        let x = self.conv_out.forward(&x.silu()?)?;
        // diffusers' unpatchify: channels (c, pt, p_w, p_h).
        let (p, pt) = (self.patch, self.patch_t);
        let (b, cpp, t, h, w) = x.dims5()?;
        let c = cpp / (pt * p * p);
        x.reshape(vec![b, c, pt, p, p, t, h, w])?
            .permute([0, 1, 5, 2, 6, 4, 7, 3])?
            .contiguous()?
            .reshape((b, c, t * pt, h * p, w * p))
    }
}
