//! FLUX.1's transformer (diffusers' FluxTransformer2DModel, BFL's Flux): packed latent patches
//! and T5 tokens in, the flow over the patches out. Built on BFL's fused layout (one q/k/v
//! matmul per stream, a single block's q/k/v/MLP input as one) so a city96 GGUF's quantized
//! tensors are used as stored; a diffusers checkpoint is fused once at load (`load_dense`).
//!
//! Arithmetic follows diffusers 0.42: LayerNorms (eps 1e-6, no affine) with the mean removed
//! first, RMSNorm on q/k per head, tanh-GELU MLPs, 3-axis RoPE over text then image ids, the
//! timestep and guidance scaled by 1000 in the hidden dtype, f16 activations clipped after each
//! block.

pub(crate) mod blocks;
mod build;
pub mod config;
mod dequant;
pub(crate) mod embeddings;
mod gguf_matmul;
pub mod linear;
mod load_dense;
mod load_gguf;
pub mod names;

use std::path::Path;

use candle_core::{D, DType, Device, Module, Tensor};

use self::blocks::{AttentionRun, DoubleBlock, SingleBlock, layer_norm};
use self::build::{Outer, WeightSource};
pub use self::config::FluxTransformerConfig;
pub use self::gguf_matmul::GgufMatmul;
use self::load_dense::DenseSource;
use self::load_gguf::GgufSource;
use crate::engines::EngineSwitches;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::rotary::MultiAxisRope;
use crate::engines::nn::weights::{find_weight_files, gguf};
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

/// FluxPosEmbed's theta.
const ROPE_THETA: f64 = 10_000.0;

pub struct FluxTransformer {
    config: FluxTransformerConfig,
    outer: Outer,
    double: Vec<DoubleBlock>,
    single: Vec<SingleBlock>,
    rope: MultiAxisRope,
    dtype: DType,
    attention: AttentionRun,
}

impl FluxTransformer {
    /// dir = the model's transformer/ folder (config.json + diffusers safetensors, sharded or
    /// not); gguf = Some(path) replaces the weights (city96/BFL-named GGUF) while config.json
    /// still gives the config.
    pub fn load(
        dir: &Path,
        gguf: Option<&Path>,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
        patch: Option<&std::sync::Arc<crate::engines::nn::lora::WeightPatch>>,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_flux_transformer", dir = %dir.display()).entered();
        let config = FluxTransformerConfig::load(&dir.join("config.json"))?;
        let fast = switches.kernels().fast();
        match gguf {
            Some(path) => {
                let matmul = GgufMatmul::resolve(switches.gguf_matmul, device);
                tracing::info!(matmul = matmul.word(), "GGUF quantized matrices");
                let src = GgufSource::open(path, &config, device, dtype, fast, matmul)?;
                Self::build(config, &src, dtype, fast)
            }
            None => {
                let src = DenseSource::open(dir, device, dtype, switches, patch)?;
                Self::build(config, &src, dtype, fast)
            }
        }
    }

    fn build(
        config: FluxTransformerConfig,
        src: &dyn WeightSource,
        dtype: DType,
        fast: bool,
    ) -> Result<Self> {
        let outer = build::outer(src, &config)?;
        let double = (0..config.num_layers)
            .map(|i| {
                let _span = tracing::debug_span!("load_double_block", i).entered();
                build::double_block(src, i, &config)
            })
            .collect::<Result<Vec<_>>>()?;
        let single = (0..config.num_single_layers)
            .map(|i| {
                let _span = tracing::debug_span!("load_single_block", i).entered();
                build::single_block(src, i, &config)
            })
            .collect::<Result<Vec<_>>>()?;
        let rope = MultiAxisRope::new(ROPE_THETA, &config.axes_dims_rope)?;
        Ok(Self {
            config,
            outer,
            double,
            single,
            rope,
            dtype,
            attention: AttentionRun {
                mode: AttentionMode::Auto,
                fast,
            },
        })
    }

    pub fn config(&self) -> &FluxTransformerConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Query chunking for attention (the pipeline's `attention_slice`).
    pub fn set_attention_mode(&mut self, mode: AttentionMode) {
        self.attention.mode = mode;
    }

    /// As diffusers' FluxTransformer2DModel.forward (return_dict=False)[0]:
    /// hidden_states (b, seq_img, in_channels) packed latents; encoder_hidden_states
    /// (b, seq_txt, joint_dim); pooled (b, pooled_dim); timestep (b,) = t/1000 as the pipeline
    /// passes it; guidance (b,) or None (the value the pipeline passes, e.g. 3.5; the model
    /// multiplies by 1000 as diffusers does); img_ids (seq_img, 3), txt_ids (seq_txt, 3) f32
    /// (or with a leading batch dim, whose first entry is used, as diffusers does).
    /// Returns (b, seq_img, out_channels) in the model's dtype.
    #[allow(clippy::too_many_arguments)] // diffusers' forward, argument for argument
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled: &Tensor,
        timestep: &Tensor,
        guidance: Option<&Tensor>,
        img_ids: &Tensor,
        txt_ids: &Tensor,
    ) -> Result<Tensor> {
        let inputs = Inputs {
            hidden_states,
            encoder_hidden_states,
            pooled,
            timestep,
            guidance,
            img_ids,
            txt_ids,
        };
        self.forward_watched(&inputs, &CancelToken::new())
    }

    /// `forward`, stopping with `Error::Cancelled` soon after `cancel` is set (checked before
    /// every block: a block of FLUX.1 at 1024x1024 takes seconds on a CPU).
    pub fn forward_watched(&self, inputs: &Inputs, cancel: &CancelToken) -> Result<Tensor> {
        let Inputs {
            hidden_states,
            encoder_hidden_states,
            pooled,
            timestep,
            guidance,
            img_ids,
            txt_ids,
        } = *inputs;
        let (img_ids, txt_ids) = (ids_2d(img_ids)?, ids_2d(txt_ids)?);
        self.check_inputs(inputs, &img_ids, &txt_ids)?;
        let _span = tracing::debug_span!("flux_transformer").entered();
        let dtype = self.dtype;
        let o = &self.outer;
        let guidance = match (self.config.guidance_embeds, guidance) {
            (true, Some(g)) => Some((g.to_dtype(dtype)? * 1000.0)?),
            (true, None) => {
                return Err(Error::bad_input(
                    "this FLUX transformer (guidance_embeds, e.g. FLUX.1-dev) needs a guidance \
                     value",
                ));
            }
            // As FluxPipeline, which passes none to a model without the embedding.
            (false, _) => None,
        };
        let mut img = o.img_in.forward(&hidden_states.to_dtype(dtype)?)?;
        let timestep = (timestep.to_dtype(dtype)? * 1000.0)?;
        let temb = o
            .time_text
            .forward(&timestep, guidance.as_ref(), &pooled.to_dtype(dtype)?)?;
        let mut txt = o.txt_in.forward(&encoder_hidden_states.to_dtype(dtype)?)?;
        let ids = Tensor::cat(&[txt_ids, img_ids], 0)?;
        let rope = self.rope.tables(&ids.to_device(hidden_states.device())?)?;
        for block in &self.double {
            cancel.check()?;
            (txt, img) = block.forward(&img, &txt, &temb, &rope, self.attention)?;
        }
        let n_txt = txt.dim(1)?;
        let n_img = img.dim(1)?;
        let mut joint = Tensor::cat(&[txt, img], 1)?;
        for block in &self.single {
            cancel.check()?;
            joint = block.forward(&joint, &temb, &rope, self.attention)?;
        }
        let img = joint.narrow(1, n_txt, n_img)?;
        let m = o
            .final_modulation
            .forward(&temb.silu()?)?
            .chunk(2, D::Minus1)?;
        let (shift, scale) = (&m[0], &m[1]);
        let normed = layer_norm(&img)?
            .broadcast_mul(&(scale + 1.0)?.unsqueeze(1)?)?
            .broadcast_add(&shift.unsqueeze(1)?)?;
        Ok(o.final_linear.forward(&normed)?)
    }

    /// Refuses inputs whose shapes disagree with the config or with each other.
    fn check_inputs(&self, x: &Inputs, img_ids: &Tensor, txt_ids: &Tensor) -> Result<()> {
        let c = &self.config;
        let bad = |why: String| Err(Error::bad_input(format!("FLUX transformer: {why}")));
        let (b, n_img, in_c) = x.hidden_states.dims3()?;
        let (tb, n_txt, joint) = x.encoder_hidden_states.dims3()?;
        let (pb, pooled) = x.pooled.dims2()?;
        let axes = c.axes_dims_rope.len();
        if in_c != c.in_channels
            || joint != c.joint_attention_dim
            || pooled != c.pooled_projection_dim
        {
            return bad(format!(
                "inputs {in_c}, {joint} and {pooled} wide (latents, text, pooled); the config \
                 says in_channels {}, joint_attention_dim {}, pooled_projection_dim {}",
                c.in_channels, c.joint_attention_dim, c.pooled_projection_dim
            ));
        }
        let per_batch = |t: &Tensor| t.elem_count() == b;
        if tb != b || pb != b || !per_batch(x.timestep) || !x.guidance.is_none_or(per_batch) {
            return bad(format!(
                "a batch of {b} latents needs as many text states ({tb}), pooled ({pb}), \
                 timesteps and guidance values"
            ));
        }
        if img_ids.dims() != [n_img, axes] || txt_ids.dims() != [n_txt, axes] {
            return bad(format!(
                "ids {:?} (image) and {:?} (text) for {n_img} image and {n_txt} text tokens of \
                 {axes} rotary axes",
                img_ids.dims(),
                txt_ids.dims()
            ));
        }
        Ok(())
    }

    /// Bytes the weights hold in memory.
    pub fn weight_bytes_loaded(&self) -> usize {
        let o = &self.outer;
        let mut lins = vec![&o.img_in, &o.txt_in, &o.final_modulation, &o.final_linear];
        let t = &o.time_text;
        for e in [Some(&t.time), t.guidance.as_ref(), Some(&t.vector)]
            .into_iter()
            .flatten()
        {
            lins.extend([&e.in_layer, &e.out_layer]);
        }
        let mut n: usize = lins.iter().map(|l| l.bytes()).sum();
        for b in &self.double {
            for s in [&b.img, &b.txt] {
                n += [&s.modulation, &s.qkv, &s.proj, &s.mlp_in, &s.mlp_out]
                    .iter()
                    .map(|l| l.bytes())
                    .sum::<usize>();
            }
        }
        for b in &self.single {
            n += [&b.modulation, &b.linear1, &b.linear2]
                .iter()
                .map(|l| l.bytes())
                .sum::<usize>();
        }
        n
    }
}

/// The forward's inputs, as [`FluxTransformer::forward`] describes them.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub hidden_states: &'a Tensor,
    pub encoder_hidden_states: &'a Tensor,
    pub pooled: &'a Tensor,
    pub timestep: &'a Tensor,
    pub guidance: Option<&'a Tensor>,
    pub img_ids: &'a Tensor,
    pub txt_ids: &'a Tensor,
}

/// Ids as (seq, 3): diffusers takes the first of a batched (b, seq, 3).
fn ids_2d(ids: &Tensor) -> Result<Tensor> {
    Ok(match ids.rank() {
        3 => ids.get(0)?,
        _ => ids.clone(),
    })
}

/// The stored bytes of the transformer's weights: the GGUF's tensors when one is given, else the
/// folder's safetensors files (for the memory planner; the header only of a GGUF is read).
pub fn weight_bytes(dir: &Path, gguf: Option<&Path>) -> Result<u64> {
    if let Some(path) = gguf {
        return Ok(gguf::footprint(path)?.stored);
    }
    let mut total = 0;
    for file in find_weight_files(dir, false)? {
        total += std::fs::metadata(&file)
            .map_err(|e| Error::io(&file, e))?
            .len();
    }
    Ok(total)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
