//! LTX-Video's transformer (diffusers' `LTXVideoTransformer3DModel`): packed latent tokens
//! (b, f h w, 128) and T5 states in, the flow for every token out. `proj_in`, the adaLN-single
//! timestep embedding (a timestep per sample, or per token for image-to-video's conditioned
//! first frame), the caption projection, `num_layers` blocks (`blocks`) over the 3D RoPE
//! (`rope`), then a LayerNorm modulated by the embedded timestep and `proj_out`.

pub mod blocks;
pub mod config;
pub mod rope;

use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};
use candle_nn::{Linear, VarBuilder};

use self::blocks::{AttentionRun, Block, BlockInputs};
pub use self::config::LtxTransformerConfig;
use self::rope::rope_tables;
use super::vae::TimeEmbedder;
use crate::engines::EngineSwitches;
use crate::engines::nn::weights::Weights;
use crate::error::Result;

/// What a forward pass is given besides the tokens.
pub struct LtxInputs<'a> {
    /// (b, m, caption_channels) T5 states.
    pub text: &'a Tensor,
    /// (b, m) 1 for a real token, 0 for padding.
    pub mask: Option<&'a Tensor>,
    /// (b,) or (b, n) timesteps in [0, 1000].
    pub timestep: &'a Tensor,
    /// The latent grid (frames, height, width) the tokens were packed from.
    pub grid: [usize; 3],
    /// The pipeline's rope_interpolation_scale.
    pub rope_scale: Option<[f32; 3]>,
}

pub struct LtxTransformer {
    cfg: LtxTransformerConfig,
    proj_in: Linear,
    /// `time_embed.emb` and `time_embed.linear` (adaLN-single).
    time_emb: TimeEmbedder,
    time_linear: Linear,
    caption_1: Linear,
    caption_2: Linear,
    blocks: Vec<Block>,
    /// (2, dim): shift and scale of the output.
    table: Tensor,
    proj_out: Linear,
    run: AttentionRun,
    dtype: DType,
    device: Device,
}

impl LtxTransformer {
    /// Loads a diffusers `transformer/` folder.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let cfg = LtxTransformerConfig::read(dir)?;
        let weights = Weights::open(dir, device, dtype, false, switches)?;
        let run = AttentionRun {
            mode: Default::default(),
            fast: switches.kernels().fast(),
        };
        weights.build("LTX-Video transformer", |vb| {
            Self::build(cfg.clone(), vb, run)
        })
    }

    pub fn build(
        cfg: LtxTransformerConfig,
        vb: VarBuilder,
        run: AttentionRun,
    ) -> candle_core::Result<Self> {
        cfg.check().map_err(candle_core::Error::Msg)?;
        let dim = cfg.inner_dim();
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(&cfg, vb.pp(format!("transformer_blocks.{i}"))))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self {
            proj_in: candle_nn::linear(cfg.in_channels, dim, vb.pp("proj_in"))?,
            time_emb: TimeEmbedder::load(dim, vb.pp("time_embed.emb"))?,
            time_linear: candle_nn::linear(dim, 6 * dim, vb.pp("time_embed.linear"))?,
            caption_1: candle_nn::linear(
                cfg.caption_channels,
                dim,
                vb.pp("caption_projection.linear_1"),
            )?,
            caption_2: candle_nn::linear(dim, dim, vb.pp("caption_projection.linear_2"))?,
            blocks,
            table: vb.get((2, dim), "scale_shift_table")?,
            proj_out: candle_nn::linear(dim, cfg.out_channels, vb.pp("proj_out"))?,
            run,
            dtype: vb.dtype(),
            device: vb.device().clone(),
            cfg,
        })
    }

    pub fn config(&self) -> &LtxTransformerConfig {
        &self.cfg
    }

    /// `hidden` (b, n, in_channels) packed latents → (b, n, out_channels) (f32).
    pub fn forward(&self, hidden: &Tensor, inp: &LtxInputs) -> candle_core::Result<Tensor> {
        let dev = &self.device;
        let dim = self.cfg.inner_dim();
        let (b, n, _) = hidden.dims3()?;
        let [f, h, w] = inp.grid;
        if f * h * w != n {
            candle_core::bail!("{n} tokens are not a {f}x{h}x{w} latent grid");
        }
        let rope = rope_tables(
            dim,
            inp.grid,
            inp.rope_scale,
            [self.cfg.patch_size_t, self.cfg.patch_size],
            dev,
        )?;
        let mask = match inp.mask {
            Some(m) => {
                let m = m.to_device(dev)?.to_dtype(self.dtype)?;
                let l = m.dim(1)?;
                Some(((1.0 - m)? * -10000.0)?.reshape((b, 1, 1, l))?)
            }
            None => None,
        };
        let x = hidden.to_device(dev)?.to_dtype(self.dtype)?;
        let mut x = self.proj_in.forward(&x)?;
        let t = inp
            .timestep
            .to_device(dev)?
            .to_dtype(DType::F32)?
            .flatten_all()?;
        let nt = t.dim(0)? / b;
        let emb = self
            .time_emb
            .forward(&t, self.dtype)?
            .reshape((b * nt, dim))?;
        let temb = self
            .time_linear
            .forward(&emb.silu()?)?
            .reshape((b, nt, 6 * dim))?;
        let emb = emb.reshape((b, nt, dim))?;
        let text = inp.text.to_device(dev)?.to_dtype(self.dtype)?;
        let text = self
            .caption_2
            .forward(&self.caption_1.forward(&text)?.gelu()?)?;
        let inputs = BlockInputs {
            text: &text,
            mask: mask.as_ref(),
            temb: &temb,
            rope: &rope,
            eps: self.cfg.norm_eps,
            run: self.run,
        };
        for block in &self.blocks {
            x = block.forward(&x, &inputs)?;
        }
        let ss = emb
            .unsqueeze(2)?
            .broadcast_add(&self.table.to_dtype(self.dtype)?.reshape((1, 1, 2, dim))?)?;
        let shift = ss.narrow(2, 0, 1)?.squeeze(2)?;
        let scale = ss.narrow(2, 1, 1)?.squeeze(2)?;
        let xf = x.to_dtype(DType::F32)?;
        let centred = xf.broadcast_sub(&xf.mean_keepdim(D::Minus1)?)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred
            .broadcast_div(&(var + 1e-6)?.sqrt()?)?
            .to_dtype(self.dtype)?;
        let x = normed
            .broadcast_mul(&(scale + 1.0)?)?
            .broadcast_add(&shift)?;
        self.proj_out.forward(&x)?.to_dtype(DType::F32)
    }
}
