//! Z-Image's transformer (diffusers 0.42's ZImageTransformer2DModel, the text-to-image path:
//! no Omni/SigLIP inputs, no controlnet): latents and Qwen3 caption features in, the model's
//! prediction over the latents out. A single-stream DiT: the latent patches go through the
//! modulated noise refiner, the caption features through the unmodulated context refiner, then
//! image and caption tokens through the main layers as one sequence.
//!
//! Built on the original checkpoint's layout (one fused q/k/v matmul per block) so a GGUF's
//! quantized tensors are used as stored; a diffusers checkpoint's `to_q`/`to_k`/`to_v` are
//! concatenated once at load. Linear layers are FLUX's (`flux::transformer::linear`): dense, or
//! quantized and dequantized per call with diffusers' arithmetic.
//!
//! Batching: diffusers pads a batch's sequences to one length and masks the padding in
//! attention; every other operation is per token, so an item's tokens see exactly what they
//! would alone. Items whose caption pads to the same length (and images of one size) run as one
//! batch, others one at a time, which needs no mask and gives the same values.

mod blocks;
mod build;
pub mod config;
mod embed;
mod load_dense;
mod load_gguf;
mod names;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};

use self::blocks::{AttentionRun, Block, rms_norm};
use self::build::Outer;
use self::config::PATCH;
pub use self::config::ZImageTransformerConfig;
use self::embed::{Rope, padded_len};
use self::load_dense::{DenseSource, WeightSource};
use self::load_gguf::GgufSource;
use crate::engines::EngineSwitches;
use crate::engines::flux::transformer::GgufMatmul;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::weights::{find_weight_files, gguf};
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

/// A latent's (channels, frames, height, width).
type Size = (usize, usize, usize, usize);

pub struct ZImageTransformer {
    config: ZImageTransformerConfig,
    outer: Outer,
    noise_refiner: Vec<Block>,
    context_refiner: Vec<Block>,
    layers: Vec<Block>,
    rope: Rope,
    dtype: DType,
    attention: AttentionRun,
}

impl ZImageTransformer {
    /// dir = the model's transformer/ folder (config.json + diffusers safetensors, sharded or
    /// not); gguf = Some(path) replaces the weights (a GGUF with the original checkpoint's
    /// names) while config.json still gives the config.
    pub fn load(
        dir: &Path,
        gguf: Option<&Path>,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_zimage_transformer", dir = %dir.display()).entered();
        let config = ZImageTransformerConfig::load(&dir.join("config.json"))?;
        let fast = switches.kernels().fast();
        match gguf {
            Some(path) => {
                let matmul = GgufMatmul::resolve(switches.gguf_matmul, device);
                tracing::info!(matmul = matmul.word(), "GGUF quantized matrices");
                let src = GgufSource::open(path, &config, device, dtype, fast, matmul)?;
                Self::build(config, &src, dtype, fast)
            }
            None => {
                let src = DenseSource::open(dir, device, dtype, switches)?;
                Self::build(config, &src, dtype, fast)
            }
        }
    }

    fn build(
        config: ZImageTransformerConfig,
        src: &dyn WeightSource,
        dtype: DType,
        fast: bool,
    ) -> Result<Self> {
        let outer = build::outer(src, &config)?;
        let blocks = |kind: &str, n: usize, modulated: bool| {
            (0..n)
                .map(|i| {
                    let _span = tracing::debug_span!("load_block", kind, i).entered();
                    build::block(src, &format!("{kind}.{i}"), modulated, &config)
                })
                .collect::<Result<Vec<_>>>()
        };
        let noise_refiner = blocks("noise_refiner", config.n_refiner_layers, true)?;
        let context_refiner = blocks("context_refiner", config.n_refiner_layers, false)?;
        let layers = blocks("layers", config.n_layers, true)?;
        let rope = Rope::new(config.rope_theta, &config.axes_dims, &config.axes_lens);
        Ok(Self {
            config,
            outer,
            noise_refiner,
            context_refiner,
            layers,
            rope,
            dtype,
            attention: AttentionRun {
                mode: AttentionMode::Auto,
                fast,
            },
        })
    }

    pub fn config(&self) -> &ZImageTransformerConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Query chunking for attention (the pipeline's `attention_slice`).
    pub fn set_attention_mode(&mut self, mode: AttentionMode) {
        self.attention.mode = mode;
    }

    /// As diffusers' ZImageTransformer2DModel.forward(x, t, cap_feats, return_dict=False)[0]
    /// with ZImagePipeline's arguments (patch 2, one-frame patch):
    /// - `latents`: one (C, F, H, W) tensor per image (the pipeline's latents with a frame axis
    ///   of 1: (in_channels, 1, height/8, width/8)); H and W even;
    /// - `timestep`: (b,) = (1000 - t) / 1000 as the pipeline passes it (the model multiplies
    ///   by `t_scale`);
    /// - `cap_feats`: one (L_i, cap_feat_dim) tensor per image, the prompt's Qwen3 features
    ///   (lengths may differ; with CFG the pipeline passes the prompts then the negatives).
    ///
    /// Returns one (C, F, H, W) tensor per image in the model's dtype: diffusers' output, which
    /// the pipeline negates before the scheduler step.
    pub fn forward(
        &self,
        latents: &[Tensor],
        timestep: &Tensor,
        cap_feats: &[Tensor],
    ) -> Result<Vec<Tensor>> {
        self.forward_watched(latents, timestep, cap_feats, &CancelToken::new())
    }

    /// `forward`, stopping with `Error::Cancelled` soon after `cancel` is set (checked before
    /// every block).
    pub fn forward_watched(
        &self,
        latents: &[Tensor],
        timestep: &Tensor,
        cap_feats: &[Tensor],
        cancel: &CancelToken,
    ) -> Result<Vec<Tensor>> {
        let sizes = self.check_inputs(latents, timestep, cap_feats)?;
        let _span = tracing::debug_span!("zimage_transformer").entered();
        let o = &self.outer;
        // t * t_scale in f32, its sinusoidal embedding, the MLP in the model's dtype.
        let scale = self.config.t_scale as f32;
        let t: Vec<f32> = embed::host_f32(timestep)?
            .iter()
            .map(|&t| t * scale)
            .collect();
        let device = latents[0].device();
        let t_freq = embed::timestep_embedding(&t, device)?.to_dtype(self.dtype)?;
        let adaln = o.t_out.forward(&o.t_in.forward(&t_freq)?.silu()?)?;
        // Items that share a caption length (after padding) and an image size run together.
        let mut groups: Vec<(usize, Size, Vec<usize>)> = Vec::new();
        for (i, &(cap_len, size)) in sizes.iter().enumerate() {
            let total = padded_len(cap_len);
            match groups.iter_mut().find(|g| g.0 == total && g.1 == size) {
                Some(g) => g.2.push(i),
                None => groups.push((total, size, vec![i])),
            }
        }
        let mut out: Vec<Option<Tensor>> = vec![None; latents.len()];
        for (cap_total, size, items) in groups {
            let pick =
                |ts: &[Tensor]| -> Vec<Tensor> { items.iter().map(|&i| ts[i].clone()).collect() };
            let index = Tensor::new(items.iter().map(|&i| i as u32).collect::<Vec<_>>(), device)?;
            let group = Group {
                latents: Tensor::stack(&pick(latents), 0)?,
                caps: pick(cap_feats),
                adaln: adaln.index_select(&index, 0)?,
                cap_total,
                size,
            };
            let result = self.run_group(&group, cancel)?;
            for (k, &i) in items.iter().enumerate() {
                out[i] = Some(result.get(k)?);
            }
        }
        out.into_iter()
            .map(|t| {
                t.ok_or_else(|| Error::job_failed("Z-Image transformer: an image was not run"))
            })
            .collect()
    }

    /// Images of one size whose captions pad to `cap_total` tokens, as one batch.
    fn run_group(&self, g: &Group, cancel: &CancelToken) -> Result<Tensor> {
        let (o, c) = (&self.outer, &self.config);
        let device = g.latents.device();
        let (ch, f, h, w) = g.size;
        let grid = (f, h / PATCH, w / PATCH);
        // Image tokens: embedded patches, then x_pad_token up to a multiple of 32.
        let patches = embed::patchify(&g.latents.to_dtype(self.dtype)?)?;
        let n_img = patches.dim(1)?;
        let x = o.x_embedder.forward(&patches)?;
        let mut x = embed::append_pad(&x, &o.x_pad, padded_len(n_img) - n_img)?;
        // Caption tokens: RMSNorm + linear, then cap_pad_token up to `cap_total`.
        let caps = g
            .caps
            .iter()
            .map(|cap| {
                let cap = cap.to_dtype(self.dtype)?;
                let e = o
                    .cap_linear
                    .forward(&rms_norm(&cap, &o.cap_norm, c.norm_eps)?)?
                    .unsqueeze(0)?;
                embed::append_pad(&e, &o.cap_pad, g.cap_total - cap.dim(0)?)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        let mut cap = Tensor::cat(&caps, 0)?;
        let x_rope = self
            .rope
            .tables(&embed::image_ids(g.cap_total, grid), device)?;
        let cap_rope = self.rope.tables(&embed::caption_ids(g.cap_total), device)?;
        for block in &self.noise_refiner {
            cancel.check()?;
            x = block.forward(&x, &x_rope, Some(&g.adaln), self.attention)?;
        }
        for block in &self.context_refiner {
            cancel.check()?;
            cap = block.forward(&cap, &cap_rope, None, self.attention)?;
        }
        // The main layers over image then caption tokens.
        let mut unified = Tensor::cat(&[x, cap], 1)?;
        let rope = embed::cat_tables(&x_rope, &cap_rope)?;
        for block in &self.layers {
            cancel.check()?;
            unified = block.forward(&unified, &rope, Some(&g.adaln), self.attention)?;
        }
        let out = o.final_layer.forward(&unified, &g.adaln)?;
        Ok(embed::unpatchify(&out, ch, (f, h, w))?)
    }

    /// Refuses inputs whose shapes disagree with the config or with each other; each item's
    /// caption length and latent size.
    fn check_inputs(
        &self,
        latents: &[Tensor],
        timestep: &Tensor,
        cap_feats: &[Tensor],
    ) -> Result<Vec<(usize, Size)>> {
        let c = &self.config;
        let bad = |why: String| Error::bad_input(format!("Z-Image transformer: {why}"));
        let b = latents.len();
        if b == 0 || cap_feats.len() != b || timestep.elem_count() != b {
            return Err(bad(format!(
                "{b} latents need as many caption features ({}) and timesteps ({})",
                cap_feats.len(),
                timestep.elem_count()
            )));
        }
        latents
            .iter()
            .zip(cap_feats)
            .map(|(x, cap)| {
                let (ch, f, h, w) = x.dims4().map_err(|_| {
                    bad(format!(
                        "latents {:?}; each must be (channels, frames, height, width)",
                        x.dims()
                    ))
                })?;
                if ch != c.in_channels
                    || h % PATCH != 0
                    || w % PATCH != 0
                    || f == 0
                    || h == 0
                    || w == 0
                {
                    return Err(bad(format!(
                        "latents {:?}: the config says {} channels, and height and width must be \
                         even",
                        x.dims(),
                        c.in_channels
                    )));
                }
                match cap.dims() {
                    &[len, width] if len > 0 && width == c.cap_feat_dim => Ok((len, (ch, f, h, w))),
                    dims => Err(bad(format!(
                        "caption features {dims:?}; the config says (tokens, {}) with at least \
                         one token",
                        c.cap_feat_dim
                    ))),
                }
            })
            .collect()
    }
}

/// One batch of [`ZImageTransformer::run_group`].
struct Group {
    /// (g, C, F, H, W).
    latents: Tensor,
    /// (L_i, cap_feat_dim) each.
    caps: Vec<Tensor>,
    /// (g, adaln_dim): the timestep embeddings.
    adaln: Tensor,
    cap_total: usize,
    size: Size,
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
