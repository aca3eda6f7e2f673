//! SD 3 / 3.5's transformer (diffusers' SD3Transformer2DModel, the original MMDiT): latents in
//! 2x2 patches plus learned positions cropped from the centre of a larger grid, the text states
//! projected to the model width, joint blocks modulated by the timestep and the pooled text
//! embedding, then the final modulated projection back to latents. Built on the original
//! checkpoint's fused layout (one q/k/v matmul per stream), so a GGUF's tensors are used as
//! stored and a diffusers checkpoint's are concatenated once at load.
//!
//! Arithmetic follows diffusers 0.42: LayerNorms (eps 1e-6, no affine) with the mean removed
//! first, RMSNorm on q/k per head (SD 3.5), tanh-GELU MLPs, the sinusoidal timestep embedding of
//! `t` as the pipeline passes it (sigma x 1000), attention over image then text tokens.

mod blocks;
mod build;
pub mod config;
mod gguf_source;
mod names;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};

use self::blocks::JointBlock;
use self::build::Outer;
pub use self::config::Sd3TransformerConfig;
use crate::engines::EngineSwitches;
use crate::engines::flux::transformer::GgufMatmul;
use crate::engines::flux::transformer::blocks::AttentionRun;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::layer_source::{LayerSource, MappedDense};
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

pub struct Sd3Transformer {
    config: Sd3TransformerConfig,
    outer: Outer,
    blocks: Vec<JointBlock>,
    dtype: DType,
    attention: AttentionRun,
}

impl Sd3Transformer {
    /// dir = the model's transformer/ folder (config.json + diffusers safetensors, sharded or
    /// not); gguf = Some(path) replaces the weights (a GGUF with the original names, as city96's
    /// SD 3.5 files) while config.json still gives the config.
    pub fn load(
        dir: &Path,
        gguf: Option<&Path>,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_sd3_transformer", dir = %dir.display()).entered();
        let config = Sd3TransformerConfig::load(&dir.join("config.json"))?;
        let fast = switches.kernels().fast();
        match gguf {
            Some(path) => {
                let matmul = GgufMatmul::resolve(switches.gguf_matmul, device);
                tracing::info!(matmul = matmul.word(), "GGUF quantized matrices");
                let src = gguf_source::open(path, &config, device, dtype, (fast, matmul))?;
                Self::build(config, &src, dtype, fast)
            }
            None => {
                let map = names::name_map(config.num_layers);
                let src = MappedDense::open(dir, map, device, dtype, switches)?;
                Self::build(config, &src, dtype, fast)
            }
        }
    }

    fn build(
        config: Sd3TransformerConfig,
        src: &dyn LayerSource,
        dtype: DType,
        fast: bool,
    ) -> Result<Self> {
        let outer = build::outer(src, &config, fast)?;
        let blocks = (0..config.num_layers)
            .map(|i| {
                let _span = tracing::debug_span!("load_joint_block", i).entered();
                build::joint_block(src, i, &config)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            outer,
            blocks,
            dtype,
            attention: AttentionRun {
                mode: AttentionMode::Auto,
                fast,
            },
        })
    }

    pub fn config(&self) -> &Sd3TransformerConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Query chunking for attention (the pipeline's `attention_slice`).
    pub fn set_attention_mode(&mut self, mode: AttentionMode) {
        self.attention.mode = mode;
    }

    /// As diffusers' SD3Transformer2DModel.forward (return_dict=False)[0]: hidden_states
    /// (b, in_channels, h, w) latents; encoder_hidden_states (b, seq, joint_dim); pooled
    /// (b, pooled_dim); timestep (b,) as the pipeline passes it (0..1000). Returns
    /// (b, out_channels, h, w) in the model's dtype.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled: &Tensor,
        timestep: &Tensor,
    ) -> Result<Tensor> {
        self.forward_watched(
            hidden_states,
            encoder_hidden_states,
            pooled,
            timestep,
            &CancelToken::new(),
        )
    }

    /// `forward`, stopping with `Error::Cancelled` soon after `cancel` is set (checked before
    /// every block).
    pub fn forward_watched(
        &self,
        hidden_states: &Tensor,
        encoder_hidden_states: &Tensor,
        pooled: &Tensor,
        timestep: &Tensor,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let (b, _, h, w) = hidden_states.dims4()?;
        self.check_inputs(hidden_states, encoder_hidden_states, pooled, timestep)?;
        let _span = tracing::debug_span!("sd3_transformer").entered();
        let dtype = self.dtype;
        let o = &self.outer;
        let mut x = self.embed_patches(&hidden_states.to_dtype(dtype)?)?;
        let pooled = pooled.to_dtype(dtype)?;
        // The timestep stays f32 into its sinusoidal embedding, as diffusers passes it.
        let temb = o
            .time_text
            .forward(&timestep.to_dtype(DType::F32)?, None, &pooled)?;
        let mut c = o
            .context_embedder
            .forward(&encoder_hidden_states.to_dtype(dtype)?)?;
        for block in &self.blocks {
            cancel.check()?;
            (x, c) = block.forward(&x, &c, &temb, self.attention)?;
        }
        let out = o.final_layer.forward(&x, &temb)?;
        // (b, h/p * w/p, p*p*c) -> (b, c, h, w): diffusers' einsum "nhwpqc->nchpwq".
        let p = self.config.patch_size;
        let oc = self.config.out_channels;
        Ok(out
            .reshape((b, h / p, w / p, p, p, oc))?
            .permute((0, 5, 1, 3, 2, 4))?
            .contiguous()?
            .reshape((b, oc, h, w))?)
    }

    /// diffusers' PatchEmbed: the stride-p convolution as a matmul over p x p patches, plus the
    /// positions cropped from the centre of the grid.
    fn embed_patches(&self, latents: &Tensor) -> Result<Tensor> {
        let (b, ch, h, w) = latents.dims4()?;
        let p = self.config.patch_size;
        let (gh, gw) = (h / p, w / p);
        let patches = latents
            .reshape((b, ch, gh, p, gw, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .contiguous()?
            .reshape((b, gh * gw, ch * p * p))?;
        let x = self.outer.patch.forward(&patches)?;
        let max = self.config.pos_embed_max_size;
        let (top, left) = ((max - gh) / 2, (max - gw) / 2);
        let d = x.dim(2)?;
        let pos = self
            .outer
            .pos_embed
            .reshape((max, max, d))?
            .narrow(0, top, gh)?
            .narrow(1, left, gw)?
            .contiguous()?
            .reshape((1, gh * gw, d))?
            .to_dtype(x.dtype())?;
        Ok(x.broadcast_add(&pos)?)
    }

    /// Refuses inputs whose shapes disagree with the config or with each other.
    fn check_inputs(&self, x: &Tensor, text: &Tensor, pooled: &Tensor, t: &Tensor) -> Result<()> {
        let c = &self.config;
        let bad = |why: String| Err(Error::bad_input(format!("SD 3 transformer: {why}")));
        let (b, ch, h, w) = x.dims4()?;
        let (tb, _, joint) = text.dims3()?;
        let (pb, pw) = pooled.dims2()?;
        if ch != c.in_channels || joint != c.joint_attention_dim || pw != c.pooled_projection_dim {
            return bad(format!(
                "inputs {ch}, {joint} and {pw} wide (latents, text, pooled); the config says \
                 in_channels {}, joint_attention_dim {}, pooled_projection_dim {}",
                c.in_channels, c.joint_attention_dim, c.pooled_projection_dim
            ));
        }
        if tb != b || pb != b || t.elem_count() != b {
            return bad(format!(
                "a batch of {b} latents needs as many text states ({tb}), pooled ({pb}) and \
                 timesteps ({})",
                t.elem_count()
            ));
        }
        let p = c.patch_size;
        if !h.is_multiple_of(p) || !w.is_multiple_of(p) {
            return bad(format!("latents {h}x{w} do not split into {p}x{p} patches"));
        }
        let max = c.pos_embed_max_size;
        if h / p > max || w / p > max {
            return bad(format!(
                "latents of {h}x{w} make a {}x{} patch grid, larger than the {max}x{max} \
                 positions the model learned (pos_embed_max_size): at most {} pixels a side",
                h / p,
                w / p,
                max * p * 8
            ));
        }
        Ok(())
    }

    /// Bytes the weights hold in memory.
    pub fn weight_bytes_loaded(&self) -> usize {
        let o = &self.outer;
        let t = &o.time_text;
        let mut lins = vec![
            &o.patch,
            &o.context_embedder,
            &o.final_layer.modulation,
            &o.final_layer.linear,
            &t.time.in_layer,
            &t.time.out_layer,
            &t.vector.in_layer,
            &t.vector.out_layer,
        ];
        for b in &self.blocks {
            lins.extend([&b.x.modulation, &b.x.attn.qkv, &b.x.mlp.fc1, &b.x.mlp.fc2]);
            lins.extend([&b.context.modulation, &b.context.attn.qkv]);
            lins.extend(b.x.attn.proj.iter().chain(b.context.attn.proj.iter()));
            if let Some(a) = &b.x.attn2 {
                lins.extend([&a.qkv].into_iter().chain(a.proj.iter()));
            }
            if let Some(m) = &b.context.mlp {
                lins.extend([&m.fc1, &m.fc2]);
            }
        }
        let pos = o.pos_embed.elem_count() * o.pos_embed.dtype().size_in_bytes();
        lins.iter().map(|l| l.bytes()).sum::<usize>() + pos
    }
}

/// The stored bytes of the transformer's weights (the GGUF's, or the folder's safetensors).
pub use crate::engines::flux::transformer::weight_bytes;
