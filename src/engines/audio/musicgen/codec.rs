//! EnCodec's decoding half (codes -> waveform), as transformers' `EncodecModel.decode` does it.
//!
//! Written here rather than taken from candle_transformers::models::encodec because that one
//! differs from transformers for MusicGen's 32 kHz codec: it has no reflect padding (the
//! codec's `pad_mode`), does not trim the transposed convolutions' padding, and opens the
//! decoder with `last_kernel_size` where transformers uses `kernel_size`.

use candle_core::{D, Module, Result, Tensor};
use candle_nn::{
    Conv1d, Conv1dConfig, ConvTranspose1d, ConvTranspose1dConfig, LSTM, RNN, VarBuilder,
};

use super::config::CodecConfig;

/// A weight-normed weight: v * g / ||v|| (norm over all but the first dim), stored either as
/// the old `weight_g`/`weight_v` (the real checkpoints) or as torch parametrizations.
fn weight_norm(vb: &VarBuilder, shape: (usize, usize, usize)) -> Result<Tensor> {
    let (g, v) = if vb.contains_tensor("weight_g") {
        (
            vb.get((shape.0, 1, 1), "weight_g")?,
            vb.get(shape, "weight_v")?,
        )
    } else {
        let p = vb.pp("parametrizations").pp("weight");
        (
            p.get((shape.0, 1, 1), "original0")?,
            p.get(shape, "original1")?,
        )
    };
    let norm = v.sqr()?.sum_keepdim((1, 2))?.sqrt()?;
    v.broadcast_mul(&g)?.broadcast_div(&norm)
}

#[derive(Clone, Copy)]
enum Pad {
    Reflect,
    Zero,
    Replicate,
}

struct Conv {
    conv: Conv1d,
    kernel: usize,
    stride: usize,
    causal: bool,
    pad: Pad,
}

impl Conv {
    fn load(
        cfg: &CodecConfig,
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
        dilation: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("conv");
        let weight = weight_norm(&vb, (cout, cin, k))?;
        let bias = vb.get(cout, "bias")?;
        let config = Conv1dConfig {
            stride,
            dilation,
            ..Default::default()
        };
        let pad = match cfg.pad_mode.as_str() {
            "reflect" => Pad::Reflect,
            "replicate" => Pad::Replicate,
            _ => Pad::Zero,
        };
        Ok(Self {
            conv: Conv1d::new(weight, Some(bias), config),
            kernel: (k - 1) * dilation + 1,
            stride,
            causal: cfg.use_causal_conv,
            pad,
        })
    }
}

impl Module for Conv {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let len = xs.dim(D::Minus1)?;
        let padding_total = self.kernel - self.stride;
        // transformers' _get_extra_padding_for_conv1d: pad so the last window is complete.
        let frames = ((len + padding_total) as f64 - self.kernel as f64) / self.stride as f64 + 1.0;
        let frames = (frames.ceil() as i64 - 1).max(0) as usize;
        let ideal = frames * self.stride + self.kernel - padding_total;
        let extra = ideal.saturating_sub(len);
        let (left, right) = if self.causal {
            (padding_total, extra)
        } else {
            let right = padding_total / 2;
            (padding_total - right, right + extra)
        };
        pad1d(xs, left, right, self.pad)?.apply(&self.conv)
    }
}

/// torch's pad along the last dim; reflect on a signal too short first appends zeros, as
/// transformers' `_pad1d` does.
fn pad1d(xs: &Tensor, left: usize, right: usize, mode: Pad) -> Result<Tensor> {
    match mode {
        Pad::Zero => xs.pad_with_zeros(D::Minus1, left, right),
        Pad::Replicate => xs.pad_with_same(D::Minus1, left, right),
        Pad::Reflect => {
            let len = xs.dim(D::Minus1)?;
            let max_pad = left.max(right);
            let extra = if len <= max_pad { max_pad - len + 1 } else { 0 };
            let xs = xs.pad_with_zeros(D::Minus1, 0, extra)?.contiguous()?;
            let n = len + extra;
            let mut idx: Vec<u32> = (1..=left).rev().map(|i| i as u32).collect();
            idx.extend((0..n).map(|i| i as u32));
            idx.extend((0..right).map(|i| (n - 2 - i) as u32));
            let idx = Tensor::new(idx.as_slice(), xs.device())?;
            let padded = xs.index_select(&idx, xs.rank() - 1)?;
            let total = padded.dim(D::Minus1)?;
            padded.narrow(D::Minus1, 0, total - extra)
        }
    }
}

struct ConvTranspose {
    conv: ConvTranspose1d,
    trim_left: usize,
    trim_right: usize,
}

impl ConvTranspose {
    fn load(
        cfg: &CodecConfig,
        (cin, cout, k): (usize, usize, usize),
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let vb = vb.pp("conv");
        let weight = weight_norm(&vb, (cin, cout, k))?;
        let bias = vb.get(cout, "bias")?;
        let config = ConvTranspose1dConfig {
            stride,
            ..Default::default()
        };
        let padding_total = k - stride;
        let trim_right = if cfg.use_causal_conv {
            (padding_total as f64 * cfg.trim_right_ratio).ceil() as usize
        } else {
            padding_total / 2
        };
        Ok(Self {
            conv: ConvTranspose1d::new(weight, Some(bias), config),
            trim_left: padding_total - trim_right.min(padding_total),
            trim_right,
        })
    }
}

impl Module for ConvTranspose {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let ys = xs.apply(&self.conv)?;
        let len = ys.dim(D::Minus1)?;
        ys.narrow(
            D::Minus1,
            self.trim_left,
            len - self.trim_left - self.trim_right,
        )
    }
}

struct ResBlock {
    conv1: Conv,
    conv2: Conv,
    shortcut: Option<Conv>,
}

impl Module for ResBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&xs.elu(1.0)?)?;
        let h = self.conv2.forward(&h.elu(1.0)?)?;
        match &self.shortcut {
            Some(s) => s.forward(xs)? + h,
            None => xs + h,
        }
    }
}

/// The LSTM with its residual, on (b, c, t) like transformers' `EncodecLSTM`.
struct Lstm {
    layers: Vec<LSTM>,
}

impl Module for Lstm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let input = xs.transpose(1, 2)?.contiguous()?; // candle's LSTM is batch-first (b, t, c)
        let mut h = input.clone();
        for layer in &self.layers {
            let states = layer.seq(&h)?;
            h = layer.states_to_tensor(&states)?;
        }
        (h + input)?.transpose(1, 2)
    }
}

enum Stage {
    Conv(Conv),
    Lstm(Lstm),
    Up(ConvTranspose),
    Res(ResBlock),
    Elu,
}

/// RVQ codebooks + the SEANet decoder.
pub struct CodecDecoder {
    codebooks: Vec<Tensor>,
    stages: Vec<Stage>,
}

impl CodecDecoder {
    /// `vb` at the checkpoint's `audio_encoder` prefix; loads the first `num_codebooks` codebooks.
    pub fn load(cfg: &CodecConfig, num_codebooks: usize, vb: VarBuilder) -> Result<Self> {
        let codebooks = (0..num_codebooks)
            .map(|i| {
                vb.pp("quantizer.layers")
                    .pp(i)
                    .get((cfg.codebook_size, cfg.codebook_dim()), "codebook.embed")
            })
            .collect::<Result<Vec<_>>>()?;
        let vb = vb.pp("decoder.layers");
        let nf = cfg.num_filters;
        let mut scale = 1usize << cfg.upsampling_ratios.len();
        let mut stages = Vec::new();
        // Indexes follow transformers' nn.ModuleList, where every ELU takes a slot.
        let mut next = 0usize;
        let mut slot = || {
            next += 1;
            next - 1
        };
        stages.push(Stage::Conv(Conv::load(
            cfg,
            (cfg.hidden_size, scale * nf, cfg.kernel_size),
            1,
            1,
            vb.pp(slot()),
        )?));
        stages.push(Stage::Lstm(load_lstm(cfg, scale * nf, vb.pp(slot()))?));
        for &ratio in &cfg.upsampling_ratios {
            let dim = scale * nf;
            slot();
            stages.push(Stage::Elu);
            stages.push(Stage::Up(ConvTranspose::load(
                cfg,
                (dim, dim / 2, 2 * ratio),
                ratio,
                vb.pp(slot()),
            )?));
            for j in 0..cfg.num_residual_layers {
                let dilation = cfg.dilation_growth_rate.pow(j as u32);
                stages.push(Stage::Res(load_resblock(
                    cfg,
                    dim / 2,
                    dilation,
                    vb.pp(slot()),
                )?));
            }
            scale /= 2;
        }
        slot();
        stages.push(Stage::Elu);
        stages.push(Stage::Conv(Conv::load(
            cfg,
            (nf, cfg.audio_channels, cfg.last_kernel_size),
            1,
            1,
            vb.pp(slot()),
        )?));
        Ok(Self { codebooks, stages })
    }

    /// Codes (num_codebooks, frames) -> waveform (channels, samples).
    pub fn decode(&self, codes: &Tensor) -> Result<Tensor> {
        let (k, _frames) = codes.dims2()?;
        if k > self.codebooks.len() {
            candle_core::bail!(
                "{k} codebooks of codes for a codec with {}",
                self.codebooks.len()
            );
        }
        let mut emb: Option<Tensor> = None;
        for (i, book) in self.codebooks.iter().take(k).enumerate() {
            let q = book.embedding(&codes.get(i)?)?;
            emb = Some(match emb {
                Some(e) => (e + q)?,
                None => q,
            });
        }
        let Some(emb) = emb else {
            candle_core::bail!("no codes to decode")
        };
        let mut xs = emb.t()?.contiguous()?.unsqueeze(0)?; // (1, dim, frames)
        for stage in &self.stages {
            xs = match stage {
                Stage::Conv(c) => c.forward(&xs)?,
                Stage::Lstm(l) => l.forward(&xs)?,
                Stage::Up(u) => u.forward(&xs)?,
                Stage::Res(r) => r.forward(&xs)?,
                Stage::Elu => xs.elu(1.0)?,
            };
        }
        xs.squeeze(0)
    }
}

fn load_lstm(cfg: &CodecConfig, dim: usize, vb: VarBuilder) -> Result<Lstm> {
    let layers = (0..cfg.num_lstm_layers)
        .map(|layer_idx| {
            let c = candle_nn::LSTMConfig {
                layer_idx,
                ..Default::default()
            };
            candle_nn::lstm(dim, dim, c, vb.pp("lstm"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Lstm { layers })
}

fn load_resblock(
    cfg: &CodecConfig,
    dim: usize,
    dilation: usize,
    vb: VarBuilder,
) -> Result<ResBlock> {
    let hidden = dim / cfg.compress;
    let block = vb.pp("block");
    let conv1 = Conv::load(
        cfg,
        (dim, hidden, cfg.residual_kernel_size),
        1,
        dilation,
        block.pp(1),
    )?;
    let conv2 = Conv::load(cfg, (hidden, dim, 1), 1, 1, block.pp(3))?;
    let shortcut = if cfg.use_conv_shortcut {
        Some(Conv::load(cfg, (dim, dim, 1), 1, 1, vb.pp("shortcut"))?)
    } else {
        None
    };
    Ok(ResBlock {
        conv1,
        conv2,
        shortcut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn reflect_pad_matches_torch() {
        let xs = Tensor::new(&[[[1f32, 2., 3., 4.]]], &Device::Cpu).unwrap();
        let p: Vec<f32> = pad1d(&xs, 2, 3, Pad::Reflect)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // torch.nn.functional.pad(x, (2, 3), "reflect")
        assert_eq!(p, vec![3., 2., 1., 2., 3., 4., 3., 2., 1.]);
    }

    #[test]
    fn reflect_pad_of_a_short_signal_appends_zeros_first() {
        let xs = Tensor::new(&[[[1f32, 2.]]], &Device::Cpu).unwrap();
        let p: Vec<f32> = pad1d(&xs, 3, 1, Pad::Reflect)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        // transformers' _pad1d: pad to [1, 2, 0, 0], reflect (3, 1), drop the 2 extra at the end.
        assert_eq!(p, vec![0., 0., 2., 1., 2., 0.]);
    }
}
