//! The DAC codec's decoding half: codes -> latent (residual VQ) -> waveform.
//!
//! candle's `dac` module hard-codes the 44.1 kHz codec's sizes, reads only one weight-norm naming
//! and leaves out the decoder's final `tanh`; this one takes its sizes from the config and accepts
//! the three ways checkpoints store the convolutions: `weight_g`/`weight_v` (torch's old
//! weight_norm, the Parler v1 checkpoints), `parametrizations.weight.original0/1` (torch 2.x) and
//! a plain fused `weight`.

use candle_core::{D, Module, Tensor};
use candle_nn::{
    Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig, Embedding, VarBuilder,
};
use candle_transformers::models::dac::Snake1d;

use super::config::CodecConfig;

/// A weight-normed kernel of shape `shape` (dim 0 is the normalised one, as torch's default).
fn wn_weight(vb: &VarBuilder, shape: (usize, usize, usize)) -> candle_core::Result<Tensor> {
    let (g, v) = if vb.contains_tensor("weight_g") {
        (
            vb.get((shape.0, 1, 1), "weight_g")?,
            vb.get(shape, "weight_v")?,
        )
    } else if vb.contains_tensor("parametrizations.weight.original0") {
        (
            vb.get((shape.0, 1, 1), "parametrizations.weight.original0")?,
            vb.get(shape, "parametrizations.weight.original1")?,
        )
    } else {
        // Already fused (or missing: the error then names `weight`).
        return vb.get(shape, "weight");
    };
    let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    v.broadcast_mul(&g)?.broadcast_div(&norm)
}

fn conv1d(
    vb: VarBuilder,
    in_c: usize,
    out_c: usize,
    kernel: usize,
    cfg: Conv1dConfig,
) -> candle_core::Result<Conv1d> {
    let weight = wn_weight(&vb, (out_c, in_c, kernel))?;
    let bias = vb.get(out_c, "bias")?;
    Ok(Conv1d::new(weight, Some(bias), cfg))
}

struct ResidualUnit {
    snake1: Snake1d,
    conv1: Conv1d,
    snake2: Snake1d,
    conv2: Conv1d,
}

impl ResidualUnit {
    fn new(dim: usize, dilation: usize, vb: VarBuilder) -> candle_core::Result<Self> {
        let vb = vb.pp("block");
        let cfg = Conv1dConfig {
            dilation,
            padding: 3 * dilation,
            ..Default::default()
        };
        Ok(Self {
            snake1: Snake1d::new(dim, vb.pp(0))?,
            conv1: conv1d(vb.pp(1), dim, dim, 7, cfg)?,
            snake2: Snake1d::new(dim, vb.pp(2))?,
            conv2: conv1d(vb.pp(3), dim, dim, 1, Default::default())?,
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let ys = xs
            .apply(&self.snake1)?
            .apply(&self.conv1)?
            .apply(&self.snake2)?
            .apply(&self.conv2)?;
        // DAC crops the skip path symmetrically when the convolutions shortened the signal.
        let pad = (xs.dim(D::Minus1)? - ys.dim(D::Minus1)?) / 2;
        let skip = if pad > 0 {
            xs.narrow(D::Minus1, pad, ys.dim(D::Minus1)?)?
        } else {
            xs.clone()
        };
        skip + ys
    }
}

struct DecoderBlock {
    snake: Snake1d,
    upsample: ConvTranspose1d,
    res: [ResidualUnit; 3],
}

impl DecoderBlock {
    fn new(
        in_dim: usize,
        out_dim: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let vb = vb.pp("block");
        let up_vb = vb.pp(1);
        let weight = wn_weight(&up_vb, (in_dim, out_dim, 2 * stride))?;
        let bias = up_vb.get(out_dim, "bias")?;
        let cfg = ConvTranspose1dConfig {
            stride,
            padding: stride.div_ceil(2),
            ..Default::default()
        };
        Ok(Self {
            snake: Snake1d::new(in_dim, vb.pp(0))?,
            upsample: ConvTranspose1d::new(weight, Some(bias), cfg),
            res: [
                ResidualUnit::new(out_dim, 1, vb.pp(2))?,
                ResidualUnit::new(out_dim, 3, vb.pp(3))?,
                ResidualUnit::new(out_dim, 9, vb.pp(4))?,
            ],
        })
    }

    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let mut xs = xs.apply(&self.snake)?.apply(&self.upsample)?;
        for unit in &self.res {
            xs = unit.forward(&xs)?;
        }
        Ok(xs)
    }
}

/// Residual-VQ lookup plus the convolutional decoder.
pub struct DacDecoder {
    codebooks: Vec<(Embedding, Conv1d)>,
    conv_in: Conv1d,
    blocks: Vec<DecoderBlock>,
    snake_out: Snake1d,
    conv_out: Conv1d,
}

impl DacDecoder {
    /// `vb` points at the DAC module (`audio_encoder.model` in a Parler checkpoint).
    pub fn new(cfg: &CodecConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        let q = vb.pp("quantizer").pp("quantizers");
        let mut codebooks = Vec::with_capacity(cfg.num_codebooks);
        for i in 0..cfg.num_codebooks {
            let vb_i = q.pp(i);
            let table = vb_i
                .pp("codebook")
                .get((cfg.codebook_size, cfg.codebook_dim), "weight")?;
            let out_proj = conv1d(
                vb_i.pp("out_proj"),
                cfg.codebook_dim,
                cfg.latent_dim,
                1,
                Default::default(),
            )?;
            codebooks.push((Embedding::new(table, cfg.codebook_dim), out_proj));
        }
        let d = vb.pp("decoder").pp("model");
        let same = Conv1dConfig {
            padding: 3,
            ..Default::default()
        };
        let conv_in = conv1d(d.pp(0), cfg.latent_dim, cfg.decoder_dim, 7, same)?;
        let mut channels = cfg.decoder_dim;
        let mut blocks = Vec::with_capacity(cfg.decoder_rates.len());
        for (i, &stride) in cfg.decoder_rates.iter().enumerate() {
            blocks.push(DecoderBlock::new(
                channels,
                channels / 2,
                stride,
                d.pp(i + 1),
            )?);
            channels /= 2;
        }
        let n = cfg.decoder_rates.len();
        Ok(Self {
            codebooks,
            conv_in,
            blocks,
            snake_out: Snake1d::new(channels, d.pp(n + 1))?,
            conv_out: conv1d(d.pp(n + 2), channels, 1, 7, same)?,
        })
    }

    /// `codes`: (batch, codebooks, frames) u32, codebooks <= the codec's. Returns (batch, 1, samples).
    pub fn decode(&self, codes: &Tensor) -> candle_core::Result<Tensor> {
        let (_, n, _) = codes.dims3()?;
        if n > self.codebooks.len() || n == 0 {
            candle_core::bail!("{n} codebooks given to a codec of {}", self.codebooks.len());
        }
        let mut latent: Option<Tensor> = None;
        // Python sums only the codebooks present in `codes`, as here.
        for (i, (table, out_proj)) in self.codebooks.iter().take(n).enumerate() {
            let z = codes
                .narrow(1, i, 1)?
                .squeeze(1)?
                .apply(table)?
                .transpose(1, 2)?;
            let z = z.apply(out_proj)?;
            latent = Some(match latent {
                None => z,
                Some(sum) => (sum + z)?,
            });
        }
        let Some(latent) = latent else {
            candle_core::bail!("no codebooks");
        };
        let mut xs = latent.apply(&self.conv_in)?;
        for block in &self.blocks {
            xs = block.forward(&xs)?;
        }
        xs.apply(&self.snake_out)?.apply(&self.conv_out)?.tanh()
    }
}

impl Module for DacDecoder {
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.decode(xs)
    }
}
