//! Wan's transformer (diffusers 0.42's WanTransformer3DModel, text-to-video: no image
//! embedder): video latents, a timestep and the UMT5 prompt embeddings in, the flow prediction
//! out. Patches (1x2x2) embedded by one linear layer (the Conv3d's kernel equals its stride),
//! blocks of modulated self-attention with 3D rotary positions, cross-attention to the text and
//! a feed-forward, then the modulated output norm, projection and unpatchify.
//!
//! Timesteps are one per item (Wan 2.1, Wan 2.2 A14B) or one per patch token (Wan 2.2
//! TI2V-5B's `expand_timesteps`, how it conditions on a first frame).

mod blocks;
pub mod config;
mod embed;
mod load;

use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Module, Tensor};

use self::blocks::{AttentionRun, Block, BlockInputs, layer_norm};
pub use self::config::WanTransformerConfig;
use self::embed::{ConditionEmbedder, modulation, patchify, rope_tables, unpatchify};
use crate::engines::EngineSwitches;
use crate::engines::flux::transformer::linear::Linear;
use crate::engines::nn::attention::AttentionMode;
use crate::engines::nn::rotary::RopeTables;
use crate::engines::progress::CancelToken;
use crate::error::{Error, Result};

/// A patch grid: (frames, rows, columns) of patches.
type Grid = (usize, usize, usize);

pub struct WanTransformer {
    config: WanTransformerConfig,
    /// The Conv3d patch embedding as a linear layer over flattened patches.
    patch_embedding: Linear,
    condition: ConditionEmbedder,
    blocks: Vec<Block>,
    /// (1, 2, dim) f32: the output norm's shift and scale.
    scale_shift_table: Tensor,
    proj_out: Linear,
    dtype: DType,
    device: Device,
    attention: AttentionRun,
    /// The last patch grid's rotary tables (every step of a video has the same grid).
    rope_cache: Mutex<Option<(Grid, RopeTables)>>,
}

impl WanTransformer {
    /// dir = the model's transformer/ folder (config.json + diffusers safetensors, sharded or
    /// not), weights in `dtype` (the timestep MLP, norms and modulation tables in f32, as
    /// diffusers keeps them). A bad config or a missing tensor is bad input naming the file.
    pub fn load(
        dir: &Path,
        device: &Device,
        dtype: DType,
        switches: EngineSwitches,
    ) -> Result<Self> {
        let _span = tracing::info_span!("load_wan_transformer", dir = %dir.display()).entered();
        let config = WanTransformerConfig::load(&dir.join("config.json"))?;
        load::load(dir, config, device, dtype, switches)
    }

    pub fn config(&self) -> &WanTransformerConfig {
        &self.config
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Query chunking for attention (the pipeline's `attention_slice`).
    pub fn set_attention_mode(&mut self, mode: AttentionMode) {
        self.attention.mode = mode;
    }

    /// As diffusers' `WanTransformer3DModel(latents, timestep, text, return_dict=False)[0]`:
    /// - `latents` (b, in_channels, F, H, W), F, H and W multiples of the patch (1, 2, 2);
    /// - `timestep` (b,) as the pipeline passes `t` (0..1000 scale), or (b, tokens) with one per
    ///   patch token (F * H/2 * W/2; Wan 2.2 TI2V's expanded timesteps);
    /// - `text` (b, seq, text_dim): the prompt embeddings (`wan::text::prompt_embeds`).
    ///
    /// Returns (b, out_channels, F, H, W) in the model's dtype.
    pub fn forward(&self, latents: &Tensor, timestep: &Tensor, text: &Tensor) -> Result<Tensor> {
        self.forward_watched(latents, timestep, text, &CancelToken::new())
    }

    /// `forward`, stopping with `Error::Cancelled` soon after `cancel` is set (checked before
    /// every block).
    pub fn forward_watched(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        text: &Tensor,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        self.forward_image_watched(latents, timestep, text, None, cancel)
    }

    /// `forward_watched` with Wan 2.1 image-to-video's CLIP image features: `image`
    /// (b, tokens, image_dim), the image encoder's `hidden_states[-2]` (257 tokens); FLF2V
    /// (`pos_embed_seq_len`) takes (2b, tokens, image_dim), each item's first then last frame.
    /// A model with an image embedder needs them, one without refuses them.
    pub fn forward_image_watched(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        text: &Tensor,
        image: Option<&Tensor>,
        cancel: &CancelToken,
    ) -> Result<Tensor> {
        let grid = self.check_inputs(latents, timestep, text)?;
        self.check_image(latents.dim(0)?, image)?;
        let _span = tracing::debug_span!("wan_transformer").entered();
        let c = &self.config;
        let latents = latents.to_device(&self.device)?.to_dtype(self.dtype)?;
        let x = patchify(&latents, c.patch_size)?;
        let mut x = self.patch_embedding.forward(&x)?;
        let timestep = timestep.to_device(&self.device)?.to_dtype(DType::F32)?;
        let text = text.to_device(&self.device)?.to_dtype(self.dtype)?;
        let cond = self.condition.forward(&timestep, &text)?;
        let image = match (&self.condition.image_embedder, image) {
            (Some(embedder), Some(image)) => {
                let image = image.to_device(&self.device)?;
                Some(embedder.forward(&image, self.dtype)?)
            }
            _ => None,
        };
        let rope = self.rope(grid)?;
        let inputs = BlockInputs {
            text: &cond.text,
            image: image.as_ref(),
            proj: &cond.proj,
            rope: &rope,
            heads: c.num_attention_heads,
            eps: c.eps,
            run: self.attention,
        };
        for block in &self.blocks {
            cancel.check()?;
            x = block.forward(&x, &inputs)?;
        }
        let m = modulation(&self.scale_shift_table, &cond.temb.unsqueeze(2)?)?;
        let x = layer_norm(&x, c.eps, None)?
            .broadcast_mul(&(&m[1] + 1.0)?)?
            .broadcast_add(&m[0])?
            .to_dtype(self.dtype)?;
        let out = self.proj_out.forward(&x)?;
        Ok(unpatchify(&out, c.out_channels, c.patch_size, grid)?)
    }

    /// The rotary tables of a patch grid, cached for the next call.
    fn rope(&self, grid: Grid) -> Result<RopeTables> {
        let mut cache = self
            .rope_cache
            .lock()
            .map_err(|_| Error::job_failed("Wan transformer: the rotary cache was poisoned"))?;
        if let Some((g, tables)) = cache.as_ref()
            && *g == grid
        {
            return Ok(tables.clone());
        }
        let tables = rope_tables(self.config.rope_axes(), grid, &self.device)?;
        *cache = Some((grid, tables.clone()));
        Ok(tables)
    }

    /// Refuses image features the model has no embedder for, or a missing or misshapen one.
    fn check_image(&self, b: usize, image: Option<&Tensor>) -> Result<()> {
        let c = &self.config;
        let bad = |why: String| Error::bad_input(format!("Wan transformer: {why}"));
        match (c.image_dim, image) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(bad(
                "image features were given to a model without an image embedder (`image_dim`)"
                    .into(),
            )),
            (Some(_), None) => Err(bad(
                "this model (Wan 2.1 image-to-video) needs the CLIP image features".into(),
            )),
            (Some(width), Some(image)) => {
                let n = if c.pos_embed_seq_len.is_some() {
                    2 * b
                } else {
                    b
                };
                match image.dims() {
                    &[ib, tokens, w] if ib == n && tokens > 0 && w == width => Ok(()),
                    dims => Err(bad(format!(
                        "image features {dims:?}; expected ({n}, tokens, {width})"
                    ))),
                }
            }
        }
    }

    /// Refuses inputs whose shapes disagree with the config or with each other; the patch grid
    /// (frames, rows, columns).
    fn check_inputs(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        text: &Tensor,
    ) -> Result<(usize, usize, usize)> {
        let c = &self.config;
        let bad = |why: String| Error::bad_input(format!("Wan transformer: {why}"));
        let (b, ch, f, h, w) = latents.dims5().map_err(|_| {
            bad(format!(
                "latents {:?}; expected (batch, channels, frames, height, width)",
                latents.dims()
            ))
        })?;
        let [pt, ph, pw] = c.patch_size;
        if ch != c.in_channels
            || b == 0
            || f == 0
            || h == 0
            || w == 0
            || !f.is_multiple_of(pt)
            || !h.is_multiple_of(ph)
            || !w.is_multiple_of(pw)
        {
            return Err(bad(format!(
                "latents {:?}: the config says {} channels, and frames, height and width must \
                 be multiples of the patch {:?}",
                latents.dims(),
                c.in_channels,
                c.patch_size
            )));
        }
        let grid = (f / pt, h / ph, w / pw);
        let longest = grid.0.max(grid.1).max(grid.2);
        if longest > c.rope_max_seq_len {
            return Err(bad(format!(
                "latents {:?} are {longest} patches long on one axis; the rotary embedding \
                 covers {} (`rope_max_seq_len`)",
                latents.dims(),
                c.rope_max_seq_len
            )));
        }
        let tokens = grid.0 * grid.1 * grid.2;
        match timestep.dims() {
            &[tb] if tb == b => {}
            &[tb, tt] if tb == b && tt == tokens => {}
            dims => {
                return Err(bad(format!(
                    "timestep {dims:?}: expected ({b},) or ({b}, {tokens}) for latents {:?}",
                    latents.dims()
                )));
            }
        }
        match text.dims() {
            &[tb, seq, width] if tb == b && seq > 0 && width == c.text_dim => Ok(grid),
            dims => Err(bad(format!(
                "text embeddings {dims:?}: expected ({b}, tokens, {}) with at least one token",
                c.text_dim
            ))),
        }
    }
}
